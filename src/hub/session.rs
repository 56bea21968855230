//! The WebSocket session actor: one per connection. The only module that uses
//! actix-web-actors, so that a later switch to actix-ws touches one file.
//!
//! It attaches to the user's stream in `started` (connected frame and any replay are queued
//! under the user's lock), drains its bounded [`SessionQueue`] when woken, pings every 15 s and
//! closes with 4002 after 30 s of silence, with 4001 when the token expires, with 4008 when its
//! queue overflowed, 4003 on revocation, 1003 for anything but `{"type":"ping"}` and 1009 for
//! frames over 4 KiB.

use crate::hub::frame_guard::FrameGuard;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;

use super::queue::{QueueLimits, SessionQueue};
use super::users::{Cursor, Users};

/// How often the server pings.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long a client may stay silent before 4002.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest client frame.
pub const MAX_FRAME: usize = 4096;

pub struct WsSession {
    user: String,
    users: Arc<Users>,
    after: Option<Cursor>,
    /// `?lang=` (CONTRACT §10.3).
    lang: Option<Arc<str>>,
    expires_in: Duration,
    limits: QueueLimits,
    queue: Option<Arc<SessionQueue>>,
    session: u64,
    last_seen: Instant,
    /// Why the session ended, for `confab_realtime_sessions_closed_total{reason}`.
    closed_by: &'static str,
}

/// SessionQueue → session: frames are waiting (sent once per empty → non-empty transition).
#[derive(Message)]
#[rtype(result = "()")]
struct Wake;

fn close(act: &mut WsSession, ctx: &mut ws::WebsocketContext<WsSession>, code: u16, reason: &str) {
    act.closed_by = match code {
        4001 => "token_expired",
        4002 => "heartbeat_timeout",
        4003 => "revoked",
        4008 => "slow_consumer",
        1001 => "shutdown",
        _ => "protocol_error",
    };
    ctx.close(Some(ws::CloseReason {
        code: ws::CloseCode::Other(code),
        description: Some(reason.to_string()),
    }));
    ctx.stop();
}

impl WsSession {
    fn drain(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(queue) = &self.queue else { return };
        let (frames, closed) = queue.drain();
        for f in frames {
            ctx.text(f.json.to_string());
        }
        if let Some(reason) = closed {
            close(self, ctx, reason.code(), reason.text());
        }
    }
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let addr = ctx.address();
        let queue = SessionQueue::with_lang(
            self.limits,
            Box::new(move || addr.do_send(Wake)),
            self.lang.clone(),
        );
        let (id, _) =
            self.users
                .attach(&self.user, &self.after, queue.clone(), HEARTBEAT.as_secs());
        self.session = id;
        self.queue = Some(queue);
        metrics::gauge!(crate::metrics::REALTIME_SESSIONS, "transport" => "websocket")
            .increment(1.0);
        metrics::counter!(crate::metrics::REALTIME_OPENED, "transport" => "websocket").increment(1);
        ctx.run_interval(HEARTBEAT, |act, ctx| {
            if act.last_seen.elapsed() > CLIENT_TIMEOUT {
                close(act, ctx, 4002, "heartbeat timeout");
                return;
            }
            ctx.ping(b"");
        });
        ctx.run_later(self.expires_in, |act, ctx| {
            close(act, ctx, 4001, "token expired")
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.users.detach(&self.user, self.session);
        metrics::gauge!(crate::metrics::REALTIME_SESSIONS, "transport" => "websocket")
            .decrement(1.0);
        metrics::counter!(crate::metrics::REALTIME_CLOSED, "transport" => "websocket", "reason" => self.closed_by).increment(1);
    }
}

impl Handler<Wake> for WsSession {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.drain(ctx);
    }
}

/// Whether a client's text frame is the one it may send: exactly `{"type":"ping"}`.
pub fn is_ping(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| {
        v.as_object()
            .is_some_and(|o| o.len() == 1 && o.get("type").is_some_and(|t| t == "ping"))
    })
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen = Instant::now();
        match msg {
            Ok(ws::Message::Ping(p)) => ctx.pong(&p),
            Ok(ws::Message::Pong(_)) => {}
            Ok(ws::Message::Text(t)) => {
                if is_ping(&t) {
                    ctx.text(r#"{"type":"pong"}"#);
                } else {
                    close(self, ctx, 1003, "only {\"type\":\"ping\"} may be sent");
                }
            }
            Ok(ws::Message::Binary(_)) | Ok(ws::Message::Continuation(_)) => {
                close(self, ctx, 1003, "binary frames are not accepted")
            }
            Ok(ws::Message::Close(_)) => {
                ctx.close(Some(ws::CloseCode::Normal.into()));
                ctx.stop();
            }
            Ok(ws::Message::Nop) => {}
            Err(ws::ProtocolError::Overflow) => close(self, ctx, 1009, "frame too large"),
            Err(_) => ctx.stop(),
        }
    }
}

/// Upgrades an authenticated request to a WebSocket session.
pub fn start(
    req: &HttpRequest,
    stream: web::Payload,
    user: String,
    users: Arc<Users>,
    after: Option<Cursor>,
    lang: Option<Arc<str>>,
    expires_in: Duration,
) -> Result<HttpResponse, actix_web::Error> {
    let session = WsSession {
        user,
        users,
        after,
        lang,
        expires_in,
        limits: QueueLimits::default(),
        queue: None,
        session: 0,
        last_seen: Instant::now(),
        closed_by: "client",
    };
    // The guard applies the limit as each frame header arrives (see `frame_guard`); the codec's
    // own limit then turns the refused header into `Overflow`, and 1009.
    ws::WsResponseBuilder::new(session, req, FrameGuard::new(stream, MAX_FRAME))
        .frame_size(MAX_FRAME)
        .protocols(&["confab.v1"])
        .start()
}
