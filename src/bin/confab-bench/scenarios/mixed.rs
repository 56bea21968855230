//! `mixed`: many small threads, each with a sender, a WebSocket member and a long-poll member.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::sessions::*;
use super::*;
use crate::client::{client, CHAT_V};
use crate::stats::Stats;

pub fn mixed(ctx: &Ctx, chat_threads: usize, rate: f64) -> Result<(), String> {
    // per thread: a sender (HTTP, also reading history), a WebSocket member, a long-poll member
    let us = users(ctx, chat_threads * 3)?;
    let threads: Vec<String> = block(async {
        let c = client(None);
        let mut out = Vec::new();
        for g in 0..chat_threads {
            out.push(
                ctx.target
                    .thread(&c, &us[3 * g], &us[3 * g + 1..3 * g + 3])
                    .await?,
            );
        }
        Ok::<_, String>(out)
    })?;
    let ws_shared = Arc::new(Shared::default());
    let poll_shared = Arc::new(Shared::default());
    let parked = Arc::new(AtomicUsize::new(0));
    let (base, n_workers) = (ctx.target.base.clone(), ctx.threads);
    let ws_tokens: Vec<String> = (0..chat_threads)
        .map(|g| us[3 * g + 1].token.clone())
        .collect();
    let poll_tokens: Vec<String> = (0..chat_threads)
        .map(|g| us[3 * g + 2].token.clone())
        .collect();
    let (ws_sh, poll_sh, pk) = (ws_shared.clone(), poll_shared.clone(), parked.clone());
    let receivers = spawn(n_workers, move |w| {
        let (base, ws_tokens, poll_tokens) = (base.clone(), ws_tokens.clone(), poll_tokens.clone());
        let (ws_shared, poll_shared, parked) = (ws_sh.clone(), poll_sh.clone(), pk.clone());
        Box::pin(async move {
            let c = client(None);
            let mut ws = Vec::new();
            for i in share(ws_tokens.len(), w, n_workers) {
                if let Ok(f) = open_ws(&c, &base, &ws_tokens[i]).await {
                    ws_shared.connected.fetch_add(1, Relaxed);
                    ws.push(actix_web::rt::spawn(receive(
                        f,
                        ws_shared.clone(),
                        Arc::new(std::sync::OnceLock::new()),
                    )));
                }
            }
            let polls: Vec<_> = share(poll_tokens.len(), w, n_workers)
                .map(|i| {
                    actix_web::rt::spawn(poll_loop(
                        c.clone(),
                        base.clone(),
                        poll_tokens[i].clone(),
                        poll_shared.clone(),
                        parked.clone(),
                    ))
                })
                .collect();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for t in ws {
                a.push(t.await.unwrap_or_default());
            }
            for t in polls {
                b.push(t.await.unwrap_or_default());
            }
            (merge(a), merge(b))
        })
    });
    wait_for(Duration::from_secs(60), || {
        ws_shared.connected.load(Relaxed) >= chat_threads && parked.load(Relaxed) >= chat_threads
    });
    let (target, dur) = (ctx.target.clone(), ctx.duration);
    let plan: Vec<(String, String)> = (0..chat_threads)
        .map(|g| (us[3 * g].token.clone(), threads[g].clone()))
        .collect();
    let started = Instant::now();
    let sent = merge(join(spawn(n_workers, move |w| {
        let (target, plan) = (target.clone(), plan.clone());
        Box::pin(async move {
            let c = client(None);
            let until = Instant::now() + dur;
            let n = plan.len();
            let loops = share(n, w, n_workers).map(|g| {
                let (c, target, (token, thread)) = (c.clone(), target.clone(), plan[g].clone());
                let phase = g as f64 / n as f64;
                async move {
                    let read = format!(
                        "{}/chat/threads/{thread}/messages?api-version={CHAT_V}&maxPageSize=20",
                        target.base
                    );
                    let mut s =
                        send_loop(c.clone(), target, token.clone(), thread, rate, until, phase)
                            .await;
                    // one history read per thread at the end, as a client resyncing would
                    if c.get(&read)
                        .bearer_auth(&token)
                        .send()
                        .await
                        .map(|r| r.status() != 200)
                        .unwrap_or(true)
                    {
                        s.errors += 1;
                    }
                    s
                }
            });
            merge(join_all(loops).await)
        })
    })));
    let secs = started.elapsed().as_secs_f64();
    let expected = sent.ok;
    let drained = wait_for(Duration::from_secs(10), || {
        ws_shared.received.load(Relaxed) >= expected
            && poll_shared.received.load(Relaxed) >= expected
    });
    ws_shared.done.store(true, Relaxed);
    poll_shared.done.store(true, Relaxed);
    let (ws, polls): (Vec<Stats>, Vec<Stats>) = join(receivers).into_iter().unzip();
    let (ws, polls) = (merge(ws), merge(polls));
    line(
        "mixed-send",
        &sent,
        secs,
        "msg",
        &format!("  ({chat_threads} threads × {rate}/s)"),
    );
    line(
        "mixed-ws",
        &ws,
        secs,
        "dlv",
        &format!(
            "  (lost {})",
            lost(expected, ws_shared.received.load(Relaxed))
        ),
    );
    line(
        "mixed-poll",
        &polls,
        secs,
        "dlv",
        &format!(
            "  (lost {}, {}drained)",
            lost(expected, poll_shared.received.load(Relaxed)),
            if drained { "" } else { "NOT " }
        ),
    );
    Ok(())
}
