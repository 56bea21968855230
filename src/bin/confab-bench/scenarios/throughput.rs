//! `noop` (the HTTP ceiling) and `send` (persisted sends, with the noop ratio).

use std::time::Instant;

use futures_util::future::join_all;

use super::*;
use crate::client::{client, now_us};
use crate::stats::Stats;

pub fn noop(ctx: &Ctx, concurrency: usize) -> Result<(), String> {
    let (s, secs) = noop_phase(ctx, concurrency);
    line(
        "noop",
        &s,
        secs,
        "req",
        &format!("  (concurrency {concurrency})"),
    );
    Ok(())
}

pub fn send(ctx: &Ctx, senders: usize, chat_threads: usize) -> Result<(), String> {
    let us = users(ctx, senders)?;
    let started = Instant::now();
    let (target, threads) = (ctx.target.clone(), ctx.threads);
    let owners = us.clone();
    let mut made: Vec<(usize, String)> = join(spawn(threads, move |w| {
        let (target, owners) = (target.clone(), owners.clone());
        Box::pin(async move {
            let c = client(None);
            let mut out = Vec::new();
            for i in share(chat_threads, w, threads) {
                let owner = &owners[i % owners.len()];
                match target.thread(&c, owner, &[]).await {
                    Ok(t) => out.push((i, t)),
                    Err(e) => eprintln!("  {e}"),
                }
            }
            out
        })
    }))
    .into_iter()
    .flatten()
    .collect();
    made.sort();
    eprintln!(
        "  setup: {} threads in {:.1} s",
        made.len(),
        started.elapsed().as_secs_f64()
    );
    let (noop, noop_secs) = noop_phase(ctx, senders);
    line(
        "noop",
        &noop,
        noop_secs,
        "req",
        &format!("  (concurrency {senders})"),
    );

    // sender j posts round-robin to the threads its user owns
    let plan: Vec<(String, Vec<String>)> = us
        .iter()
        .enumerate()
        .map(|(j, u)| {
            let mine = made
                .iter()
                .filter(|(i, _)| i % senders == j)
                .map(|(_, t)| t.clone())
                .collect();
            (u.token.clone(), mine)
        })
        .collect();
    let (target, dur) = (ctx.target.clone(), ctx.duration);
    let started = Instant::now();
    let out = join(spawn(threads, move |w| {
        let (target, plan) = (target.clone(), plan.clone());
        Box::pin(async move {
            let c = client(None);
            let deadline = Instant::now() + dur;
            let loops = share(plan.len(), w, threads).map(|j| {
                let (c, target) = (c.clone(), target.clone());
                let (token, mine) = plan[j].clone();
                async move {
                    let mut s = Stats::default();
                    let mut k = 0;
                    while Instant::now() < deadline && !mine.is_empty() {
                        let t0 = now_us();
                        match target.send(&c, &token, &mine[k % mine.len()], "m").await {
                            Ok(()) => s.record(now_us() - t0),
                            Err(_) => s.errors += 1,
                        }
                        k += 1;
                    }
                    s
                }
            });
            merge(join_all(loops).await)
        })
    }));
    let s = merge(out);
    let secs = started.elapsed().as_secs_f64();
    let ratio = (s.ok as f64 / secs) / (noop.ok as f64 / noop_secs).max(1.0);
    line(
        "send",
        &s,
        secs,
        "msg",
        &format!(
            "  ({senders} senders, {} threads, {:.0}% of noop)",
            chat_threads,
            ratio * 100.0
        ),
    );
    Ok(())
}
