//! `noop` (the HTTP ceiling) and `send` (persisted sends, with the noop ratio).

use std::time::Instant;

use futures_util::future::join_all;

use super::*;
use crate::client::{client, now_us, Conn};
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
    let plan = send_plan(ctx, senders, chat_threads)?;
    let (noop, noop_secs) = noop_phase(ctx, senders);
    line(
        "noop",
        &noop,
        noop_secs,
        "req",
        &format!("  (concurrency {senders})"),
    );
    let (s, secs) = send_phase(ctx, std::slice::from_ref(&ctx.target.base), plan);
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

/// Each sender's token and the threads it owns (and posts to, round-robin).
pub(super) type SendPlan = Vec<(String, Vec<String>)>;

/// `senders` users owning `chat_threads` threads between them.
pub(super) fn send_plan(
    ctx: &Ctx,
    senders: usize,
    chat_threads: usize,
) -> Result<SendPlan, String> {
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
    // sender j posts round-robin to the threads its user owns
    Ok(us
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
        .collect())
}

/// Every sender of `plan` posts as fast as it can for the duration, sender `j` through
/// `send_on[j % len]`.
pub(super) fn send_phase(ctx: &Ctx, send_on: &[String], plan: SendPlan) -> (Stats, f64) {
    let (threads, send_on) = (ctx.threads, send_on.to_vec());
    let dur = ctx.duration;
    let started = Instant::now();
    let out = join(spawn(threads, move |w| {
        let (plan, send_on) = (plan.clone(), send_on.clone());
        Box::pin(async move {
            let deadline = Instant::now() + dur;
            let loops = share(plan.len(), w, threads).map(|j| {
                let mut conn = Conn::new(&send_on[j % send_on.len()]);
                let (token, mine) = plan[j].clone();
                async move {
                    let mut s = Stats::default();
                    let mut k = 0;
                    while Instant::now() < deadline && !mine.is_empty() {
                        let t0 = now_us();
                        match conn.send(&token, &mine[k % mine.len()], "m").await {
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
    (merge(out), started.elapsed().as_secs_f64())
}
