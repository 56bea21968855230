//! `fanout`: one thread of many WebSocket members, at a set or the highest send rate.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::sessions::*;
use super::*;
use crate::client::{client, now_us};
use crate::stats::Stats;

pub fn fanout(ctx: &Ctx, members: usize, senders: usize, rate: f64) -> Result<(), String> {
    let us = users(ctx, members.max(2))?;
    let thread = block(async {
        let c = client(None);
        ctx.target.thread(&c, &us[0], &us[1..]).await
    })?;
    let shared = Arc::new(Shared::default());
    let deadline = Arc::new(std::sync::OnceLock::new());
    let (target, threads) = (ctx.target.clone(), ctx.threads);
    let (tokens, sh, dl) = (
        us.iter().map(|u| u.token.clone()).collect::<Vec<_>>(),
        shared.clone(),
        deadline.clone(),
    );
    let receivers = spawn(threads, move |w| {
        let (target, tokens, shared, deadline) =
            (target.clone(), tokens.clone(), sh.clone(), dl.clone());
        Box::pin(async move {
            let c = client(None);
            let mut tasks = Vec::new();
            for i in share(tokens.len(), w, threads) {
                match open_ws(&c, &target.base, &tokens[i]).await {
                    Ok(f) => {
                        shared.connected.fetch_add(1, Relaxed);
                        tasks.push(actix_web::rt::spawn(receive(
                            f,
                            shared.clone(),
                            deadline.clone(),
                        )));
                    }
                    Err(e) => {
                        shared.failed.fetch_add(1, Relaxed);
                        eprintln!("  ws: {e}");
                    }
                }
            }
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap_or_default());
            }
            merge(out)
        })
    });
    let n = us.len();
    if !wait_for(Duration::from_secs(60), || {
        shared.connected.load(Relaxed) + shared.failed.load(Relaxed) >= n
    }) {
        return Err("sessions did not connect".into());
    }
    // the senders run on their own thread
    let (target, token, dur) = (ctx.target.clone(), us[0].token.clone(), ctx.duration);
    let started = Instant::now();
    deadline.set(now_us() + dur.as_micros() as u64).ok();
    let sent = join(spawn(1, move |_| {
        let (target, token, thread) = (target.clone(), token.clone(), thread.clone());
        Box::pin(async move {
            let c = client(None);
            let until = Instant::now() + dur;
            let per = if rate > 0.0 {
                rate / senders as f64
            } else {
                0.0
            };
            let loops = (0..senders).map(|i| {
                send_loop(
                    c.clone(),
                    target.clone(),
                    token.clone(),
                    thread.clone(),
                    per,
                    until,
                    i as f64 / senders as f64,
                )
            });
            merge(join_all(loops).await)
        })
    }));
    let sent = merge(sent);
    let secs = started.elapsed().as_secs_f64();
    let expected = sent.ok * shared.connected.load(Relaxed) as u64;
    let drained = wait_for(Duration::from_secs(10), || {
        shared.received.load(Relaxed) >= expected
    });
    shared.done.store(true, Relaxed);
    let got = merge(join(receivers));
    let received = shared.received.load(Relaxed);
    line(
        "fanout-send",
        &sent,
        secs,
        "msg",
        &format!(
            "  (rate {})",
            if rate > 0.0 {
                format!("{rate}/s")
            } else {
                "max".into()
            }
        ),
    );
    let delivered = Stats {
        ok: shared.in_window.load(Relaxed),
        ..got.clone()
    };
    line(
        "fanout",
        &delivered,
        secs,
        "dlv",
        &format!(
            "  ({} members, lost {}, {}drained; latency send→receive)",
            shared.connected.load(Relaxed),
            lost(expected, received),
            if drained { "" } else { "NOT " }
        ),
    );
    Ok(())
}
