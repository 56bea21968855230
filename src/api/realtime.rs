//! The real-time endpoints (contract §6): `GET /realtime` (WebSocket), `/realtime/poll`
//! (long-poll) and `/realtime/sse` (Server-Sent Events). All share one per-user stream.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::stream;

use super::Params;
use crate::auth::ChatUser;
use crate::error::ApiError;
use crate::hub::queue::{CloseReason, QueueLimits, SessionQueue};
use crate::hub::realtime::Frame;
use crate::hub::session::{self, HEARTBEAT};
use crate::hub::users::{Cursor, PollState, Users};
use crate::ids::now_ms;
use crate::state::AppState;

/// Long-poll timeout: default and largest, in seconds.
const POLL_DEFAULT_SECS: u64 = 25;
const POLL_MAX_SECS: u64 = 30;
/// Concurrent long-polls per user.
const MAX_POLLS_PER_USER: usize = 4;

/// Whether a browser `origin` is on `--allowed-origins` (default: the loopback hosts on any
/// scheme and port; `*`: any). Used for real-time connections and CORS alike.
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        let host = origin.split_once("://").map(|(_, r)| r).unwrap_or(origin);
        let host = if host.starts_with('[') {
            host.split(']')
                .next()
                .map(|h| format!("{h}]"))
                .unwrap_or_default()
        } else {
            host.split(':').next().unwrap_or_default().to_string()
        };
        matches!(
            host.to_ascii_lowercase().as_str(),
            "localhost" | "127.0.0.1" | "[::1]"
        )
    } else {
        allowed.iter().any(|a| {
            a == "*"
                || a.trim_end_matches('/')
                    .eq_ignore_ascii_case(origin.trim_end_matches('/'))
        })
    }
}

/// Checks `Origin` against `--allowed-origins` (no Origin: a non-browser client, allowed).
pub fn check_origin(req: &HttpRequest, app: &AppState) -> Result<(), ApiError> {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return Ok(());
    };
    if origin_allowed(origin, &app.config.allowed_origins) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("Origin {origin:?} is not allowed; see --allowed-origins."),
        ))
    }
}

/// Authenticates a real-time request (header or `access_token`), checks the origin and parses
/// `cursor` (or SSE's `Last-Event-ID`).
async fn prologue(
    req: &HttpRequest,
    app: &AppState,
    sse: bool,
) -> Result<(ChatUser, Option<Cursor>, Option<std::sync::Arc<str>>), ApiError> {
    let params = Params::of(req);
    let token = crate::auth::bearer(req)
        .map(str::to_string)
        .or_else(|| params.get("access_token").cloned());
    let Some(token) = token else {
        metrics::counter!(crate::metrics::AUTH_FAILURES, "reason" => "missing_token").increment(1);
        return Err(ApiError::unauthorized());
    };
    let user = app.auth.authenticate_token(&token).await?;
    check_origin(req, app)?;
    let raw = params.get("cursor").cloned().or_else(|| {
        sse.then(|| {
            req.headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .flatten()
    });
    let cursor = match raw {
        None => None,
        Some(c) => Some(
            Cursor::parse(&c)
                .ok_or_else(|| ApiError::invalid("cursor", format!("Malformed cursor {c:?}.")))?,
        ),
    };
    // `?lang=`: translations into it too (CONTRACT §10.3), when a translator is configured
    let lang = match params.get("lang") {
        None => None,
        Some(l) if crate::cognitive::is_language_tag(l) => Some(l.as_str().into()),
        Some(l) => {
            return Err(ApiError::invalid(
                "lang",
                format!("lang must be a BCP-47 language tag; got {l:?}."),
            ))
        }
    };
    Ok((user, cursor, lang))
}

fn check_connection_cap(app: &AppState, user: &str) -> Result<(), ApiError> {
    if app.users.session_count(user) >= app.config.realtime_max_connections_per_user {
        let mut e = ApiError::too_many_requests(1);
        e.message = format!(
            "Too many real-time connections for this user (limit {}).",
            app.config.realtime_max_connections_per_user
        );
        return Err(e);
    }
    Ok(())
}

fn expires_in(user: &ChatUser) -> Duration {
    Duration::from_millis(u64::try_from(user.exp * 1000 - now_ms()).unwrap_or(0))
}

/// GET /realtime — WebSocket upgrade.
pub async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, cursor, lang) = prologue(&req, &app, false).await?;
    check_connection_cap(&app, &user.id)?;
    let ttl = expires_in(&user);
    session::start(
        &req,
        body,
        user.id.to_string(),
        app.users.clone(),
        cursor,
        lang,
        ttl,
    )
    .map_err(|e| ApiError::invalid("upgrade", format!("WebSocket upgrade failed: {e}")))
}

/// Releases a long-poll slot however the request ends.
struct PollSlot<'a> {
    users: &'a Users,
    user: &'a str,
}

impl Drop for PollSlot<'_> {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::REALTIME_SESSIONS, "transport" => "longpoll")
            .decrement(1.0);
        self.users.end_poll(self.user);
    }
}

/// A long-poll answer carrying `events`, continuing from the last one's cursor.
fn ready(events: &[Frame]) -> HttpResponse {
    let last = events
        .last()
        .map(|f| f.cursor.to_string())
        .unwrap_or_default();
    super::json_text(StatusCode::OK, poll_body(&last, true, events))
}

fn poll_body(cursor: &str, recovered: bool, events: &[Frame]) -> String {
    let mut s = format!("{{\"cursor\":\"{cursor}\",\"recovered\":{recovered},\"events\":[");
    for (i, f) in events.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&f.json);
    }
    s.push_str("]}");
    s
}

/// GET /realtime/poll?cursor=&timeout= — answers at once when events are pending, else at the
/// first event or the timeout.
pub async fn poll(req: HttpRequest, app: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (user, cursor, lang) = prologue(&req, &app, false).await?;
    let params = Params::of(&req);
    let timeout = match params.get("timeout") {
        None => POLL_DEFAULT_SECS,
        Some(t) => t
            .parse::<u64>()
            .map_err(|_| {
                ApiError::invalid(
                    "timeout",
                    format!("timeout must be whole seconds, got {t:?}."),
                )
            })?
            .min(POLL_MAX_SECS),
    };
    if !app.users.begin_poll(&user.id, MAX_POLLS_PER_USER) {
        let mut e = ApiError::too_many_requests(1);
        e.message = format!("At most {MAX_POLLS_PER_USER} concurrent polls per user.");
        return Err(e);
    }
    metrics::gauge!(crate::metrics::REALTIME_SESSIONS, "transport" => "longpoll").increment(1.0);
    let _slot = PollSlot {
        users: &app.users,
        user: &user.id,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let (notify, at) = match app.users.poll(&user.id, &cursor, lang.as_ref()) {
            PollState::Unrecoverable { head } => {
                return Ok(super::json_text(
                    StatusCode::OK,
                    poll_body(&head, false, &[]),
                ))
            }
            PollState::Ready { events } => {
                return Ok(ready(&events));
            }
            PollState::Wait { notify, cursor } => (notify, cursor),
        };
        // Register the waiter, then look again: an event published in between is not missed.
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let PollState::Ready { events } = app.users.poll(&user.id, &cursor, lang.as_ref()) {
            return Ok(ready(&events));
        }
        if timeout == 0 || tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Ok(super::json_text(StatusCode::OK, poll_body(&at, true, &[])));
        }
    }
}

fn sse_event(f: &Frame) -> String {
    format!("id: {}\nevent: {}\ndata: {}\n\n", f.cursor, f.kind, f.json)
}

fn sse_disconnected(code: u16, reason: &str) -> Bytes {
    let data = serde_json::json!({"type": "realTimeNotificationDisconnected", "data": {"code": code, "reason": reason}});
    Bytes::from(format!(
        "event: realTimeNotificationDisconnected\ndata: {data}\n\n"
    ))
}

/// Detaches an SSE session when its response stream is dropped.
struct SseSession {
    users: Arc<Users>,
    user: String,
    session: u64,
    queue: Arc<SessionQueue>,
    notify: Arc<tokio::sync::Notify>,
}

impl Drop for SseSession {
    fn drop(&mut self) {
        self.users.detach(&self.user, self.session);
        metrics::gauge!(crate::metrics::REALTIME_SESSIONS, "transport" => "sse").decrement(1.0);
        metrics::counter!(crate::metrics::REALTIME_CLOSED, "transport" => "sse", "reason" => "ended").increment(1);
    }
}

enum SseStep {
    Frames(Vec<Frame>, Option<CloseReason>),
    Ping,
    Expired,
}

/// GET /realtime/sse — the same stream as Server-Sent Events; `Last-Event-ID` resumes.
pub async fn sse(req: HttpRequest, app: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (user, cursor, lang) = prologue(&req, &app, true).await?;
    check_connection_cap(&app, &user.id)?;
    let notify = Arc::new(tokio::sync::Notify::new());
    let waker = notify.clone();
    let queue = SessionQueue::with_lang(
        QueueLimits::default(),
        Box::new(move || waker.notify_one()),
        lang,
    );
    let (session, _) = app
        .users
        .attach(&user.id, &cursor, queue.clone(), HEARTBEAT.as_secs());
    metrics::gauge!(crate::metrics::REALTIME_SESSIONS, "transport" => "sse").increment(1.0);
    metrics::counter!(crate::metrics::REALTIME_OPENED, "transport" => "sse").increment(1);
    let state = SseSession {
        users: app.users.clone(),
        user: user.id.to_string(),
        session,
        queue,
        notify,
    };
    let expiry = tokio::time::Instant::now() + expires_in(&user);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    type Body = Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, actix_web::Error>>>>;
    let body: Body = Box::pin(stream::unfold(Some((state, ping)), move |st| async move {
        let (state, mut ping) = st?;
        let step = {
            let (frames, closed) = state.queue.drain();
            if !frames.is_empty() || closed.is_some() {
                SseStep::Frames(frames, closed)
            } else {
                tokio::select! {
                    _ = state.notify.notified() => {
                        let (frames, closed) = state.queue.drain();
                        SseStep::Frames(frames, closed)
                    }
                    _ = ping.tick() => SseStep::Ping,
                    _ = tokio::time::sleep_until(expiry) => SseStep::Expired,
                }
            }
        };
        match step {
            SseStep::Ping => Some((Ok(Bytes::from_static(b": ping\n\n")), Some((state, ping)))),
            SseStep::Expired => Some((Ok(sse_disconnected(4001, "token expired")), None)),
            SseStep::Frames(frames, closed) => {
                let mut out: String = frames.iter().map(sse_event).collect();
                match closed {
                    Some(reason) => {
                        out.push_str(&String::from_utf8_lossy(&sse_disconnected(
                            reason.code(),
                            reason.text(),
                        )));
                        Some((Ok(Bytes::from(out)), None))
                    }
                    None => Some((Ok(Bytes::from(out)), Some((state, ping)))),
                }
            }
        }
    }));
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}
