//! `longpoll`: many parked long-polls, and the latency of what wakes them.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::sessions::*;
use super::*;
use crate::client::{client, now_us, User};
use crate::stats::Stats;

pub fn longpoll(ctx: &Ctx, pollers: usize, interval: Duration) -> Result<(), String> {
    const PER_THREAD: usize = 249;
    let groups = pollers.div_ceil(PER_THREAD);
    let us = users(ctx, pollers + groups)?;
    let (senders, polling) = us.split_at(groups);
    let threads: Vec<(String, usize)> = block(async {
        let c = client(None);
        let mut out = Vec::new();
        for (g, owner) in senders.iter().enumerate() {
            let members: Vec<User> = polling
                .iter()
                .skip(g * PER_THREAD)
                .take(PER_THREAD)
                .cloned()
                .collect();
            out.push((ctx.target.thread(&c, owner, &members).await?, members.len()));
        }
        Ok::<_, String>(out)
    })?;
    let shared = Arc::new(Shared::default());
    let parked = Arc::new(AtomicUsize::new(0));
    let (base, workers_n) = (ctx.target.base.clone(), ctx.threads);
    let tokens: Vec<String> = polling.iter().map(|u| u.token.clone()).collect();
    let (sh, pk) = (shared.clone(), parked.clone());
    let workers = spawn(workers_n, move |w| {
        let (base, tokens, shared, parked) = (base.clone(), tokens.clone(), sh.clone(), pk.clone());
        Box::pin(async move {
            let mut clients: std::collections::HashMap<Option<IpAddr>, awc::Client> =
                Default::default();
            let loops: Vec<_> = share(tokens.len(), w, workers_n)
                .map(|i| {
                    let c = clients
                        .entry(source(i))
                        .or_insert_with(|| client(source(i)))
                        .clone();
                    actix_web::rt::spawn(poll_loop(
                        c,
                        base.clone(),
                        tokens[i].clone(),
                        shared.clone(),
                        parked.clone(),
                    ))
                })
                .collect();
            let mut out = Vec::new();
            for l in loops {
                out.push(l.await.unwrap_or_default());
            }
            merge(out)
        })
    });
    if !wait_for(Duration::from_secs(120), || {
        parked.load(Relaxed) + shared.failed.load(Relaxed) >= pollers
    }) {
        return Err(format!("only {} polls parked", parked.load(Relaxed)));
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss = ctx.rss();
    let (target, token_of, dur) = (
        ctx.target.clone(),
        senders.iter().map(|u| u.token.clone()).collect::<Vec<_>>(),
        ctx.duration,
    );
    let plan = threads.clone();
    let started = Instant::now();
    let sent = merge(join(spawn(1, move |_| {
        let (target, token_of, plan) = (target.clone(), token_of.clone(), plan.clone());
        Box::pin(async move {
            let c = client(None);
            let mut s = Stats::default();
            let until = Instant::now() + dur;
            while Instant::now() < until {
                let round = Instant::now();
                let groups = plan.len() as u32;
                // each thread's message at its own point of the interval, as independent
                // conversations would send, rather than every thread in the same instant
                let sends = plan.iter().enumerate().map(|(g, (t, _))| {
                    let (c, target, token) = (c.clone(), target.clone(), token_of[g].clone());
                    let at = round + interval * g as u32 / groups;
                    async move {
                        if let Some(wait) = at.checked_duration_since(Instant::now()) {
                            actix_web::rt::time::sleep(wait).await;
                        }
                        let t0 = now_us();
                        (
                            target.send(&c, &token, t, &t0.to_string()).await,
                            now_us() - t0,
                        )
                    }
                });
                for (r, us) in join_all(sends).await {
                    match r {
                        Ok(()) => s.record(us),
                        Err(_) => s.errors += 1,
                    }
                }
                if let Some(wait) = (round + interval).checked_duration_since(Instant::now()) {
                    actix_web::rt::time::sleep(wait).await;
                }
            }
            s
        })
    })));
    let secs = started.elapsed().as_secs_f64();
    let rounds = sent.ok / threads.len().max(1) as u64;
    let expected: u64 = rounds * threads.iter().map(|(_, n)| *n as u64).sum::<u64>();
    let drained = wait_for(Duration::from_secs(10), || {
        shared.received.load(Relaxed) >= expected
    });
    shared.done.store(true, Relaxed);
    let got = merge(join(workers));
    line(
        "longpoll",
        &got,
        secs,
        "dlv",
        &format!(
            "  ({} parked polls, {rounds} rounds, lost {}, {}drained; server RSS {} KiB while parked)",
            parked.load(Relaxed),
            lost(expected, shared.received.load(Relaxed)),
            if drained { "" } else { "NOT " },
            rss.map_or("?".into(), |r| r.to_string())
        ),
    );
    Ok(())
}
