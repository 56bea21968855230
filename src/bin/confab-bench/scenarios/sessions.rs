//! The real-time clients the scenarios run: WebSocket members, senders, long-pollers, and
//! what they share across worker threads.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;

use crate::client::{now_us, sent_at, Target};
use crate::stats::Stats;

#[derive(Default)]
pub(super) struct Shared {
    pub(super) connected: AtomicUsize,
    pub(super) failed: AtomicUsize,
    pub(super) received: AtomicU64,
    pub(super) in_window: AtomicU64,
    pub(super) done: AtomicBool,
}

/// Opens a WebSocket session for `token`; returns the framed stream after the connected frame.
pub(super) async fn open_ws(
    c: &awc::Client,
    base: &str,
    token: &str,
) -> Result<actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>, String> {
    let url = format!(
        "{}/realtime?access_token={token}",
        base.replacen("http", "ws", 1)
    );
    let (_, mut framed) = c
        .ws(url)
        .max_frame_size(1 << 20)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    match framed.next().await {
        Some(Ok(awc::ws::Frame::Text(_))) => Ok(framed),
        other => Err(format!("no connected frame: {other:?}")),
    }
}

/// Reads a session until told to stop: records latency of message frames, answers pings.
pub(super) async fn receive(
    mut framed: actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>,
    shared: Arc<Shared>,
    deadline: Arc<std::sync::OnceLock<u64>>,
) -> Stats {
    let mut s = Stats::default();
    loop {
        let next = actix_web::rt::time::timeout(Duration::from_millis(100), framed.next()).await;
        match next {
            Ok(Some(Ok(awc::ws::Frame::Text(t)))) => {
                if let Some(at) = sent_at(&t) {
                    let now = now_us();
                    s.record(now.saturating_sub(at));
                    shared.received.fetch_add(1, Relaxed);
                    if deadline.get().is_none_or(|d| now <= *d) {
                        shared.in_window.fetch_add(1, Relaxed);
                    }
                }
            }
            Ok(Some(Ok(awc::ws::Frame::Ping(p)))) => {
                let _ = framed.send(awc::ws::Message::Pong(p)).await;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) => {
                s.errors += 1;
                return s;
            }
            Err(_) => {}
        }
        if shared.done.load(Relaxed) {
            return s;
        }
    }
}

/// Senders post `now_us()` as content; paced at `rate` msgs/s in total, or flat out.
pub(super) async fn send_loop(
    c: awc::Client,
    target: Target,
    token: String,
    thread: String,
    rate: f64,
    until: Instant,
    phase: f64,
) -> Stats {
    let mut s = Stats::default();
    // paced loops start staggered (phase in [0, 1) of one interval), not in lock-step bursts
    let start =
        Instant::now() + Duration::from_secs_f64(if rate > 0.0 { phase / rate } else { 0.0 });
    let mut k = 0u64;
    while Instant::now() < until {
        if rate > 0.0 {
            let at = start + Duration::from_secs_f64(k as f64 / rate);
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                actix_web::rt::time::sleep(wait).await;
            }
            if Instant::now() >= until {
                break;
            }
        }
        let t0 = now_us();
        match target.send(&c, &token, &thread, &t0.to_string()).await {
            Ok(()) => s.record(now_us() - t0),
            Err(_) => s.errors += 1,
        }
        k += 1;
    }
    s
}

/// Waits until `cond` holds or `limit` passes.
pub(super) fn wait_for(limit: Duration, cond: impl Fn() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// One long-poll loop: head first, then parked polls, recording message latencies.
pub(super) async fn poll_loop(
    c: awc::Client,
    base: String,
    token: String,
    shared: Arc<Shared>,
    parked: Arc<AtomicUsize>,
) -> Stats {
    let mut s = Stats::default();
    let head = format!("{base}/realtime/poll?timeout=0&access_token={token}");
    let mut cursor = match c.get(&head).send().await {
        Ok(mut r) => match r.json::<Value>().await {
            Ok(v) => v["cursor"].as_str().unwrap_or_default().to_string(),
            Err(_) => String::new(),
        },
        Err(_) => String::new(),
    };
    if cursor.is_empty() {
        s.errors += 1;
        shared.failed.fetch_add(1, Relaxed);
        return s;
    }
    shared.connected.fetch_add(1, Relaxed);
    let mut first = true;
    while !shared.done.load(Relaxed) {
        let url = format!("{base}/realtime/poll?timeout=2&cursor={cursor}&access_token={token}");
        let req = c.get(&url).send();
        if first {
            parked.fetch_add(1, Relaxed);
            first = false;
        }
        match req.await {
            Ok(mut r) if r.status() == 200 => {
                let Ok(body) = r.body().limit(4 << 20).await else {
                    s.errors += 1;
                    continue;
                };
                let now = now_us();
                // a scan rather than a full JSON parse: in a burst the load generator's own
                // parsing would otherwise dominate what is measured
                for at in crate::client::sent_times(&body) {
                    s.record(now.saturating_sub(at));
                    shared.received.fetch_add(1, Relaxed);
                }
                match crate::client::first_cursor(&body) {
                    Some(c) => cursor = c,
                    None => s.errors += 1,
                }
            }
            _ => {
                s.errors += 1;
                actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    s
}
