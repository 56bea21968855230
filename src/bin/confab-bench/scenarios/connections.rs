//! `connections`: many idle WebSocket sessions, and the server memory per session.

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::sessions::*;
use super::*;
use crate::client::client;

pub fn connections(ctx: &Ctx, count: usize, per_user: usize) -> Result<(), String> {
    let per_user = per_user.max(1);
    let us = users(ctx, count.div_ceil(per_user))?;
    std::thread::sleep(Duration::from_secs(1));
    let before = ctx.rss();
    let shared = Arc::new(Shared::default());
    let (base, threads) = (ctx.target.base.clone(), ctx.threads);
    let tokens: Vec<String> = us.iter().map(|u| u.token.clone()).collect();
    let sh = shared.clone();
    let started = Instant::now();
    let workers = spawn(threads, move |w| {
        let (base, tokens, shared) = (base.clone(), tokens.clone(), sh.clone());
        Box::pin(async move {
            let mut clients: std::collections::HashMap<Option<IpAddr>, awc::Client> =
                Default::default();
            let mine: Vec<usize> = share(count, w, threads).collect();
            let opened: Vec<_> = futures_util::stream::iter(mine)
                .map(|i| {
                    let c = clients
                        .entry(source(i))
                        .or_insert_with(|| client(source(i)))
                        .clone();
                    let (base, token) = (base.clone(), tokens[i / per_user].clone());
                    async move { open_ws(&c, &base, &token).await }
                })
                .buffer_unordered(128)
                .collect()
                .await;
            let mut held = Vec::new();
            for f in opened {
                match f {
                    Ok(f) => {
                        shared.connected.fetch_add(1, Relaxed);
                        held.push(f);
                    }
                    Err(_) => {
                        shared.failed.fetch_add(1, Relaxed);
                    }
                }
            }
            // hold them (answering pings) until the measurement is done
            let tasks: Vec<_> = held
                .into_iter()
                .map(|f| {
                    actix_web::rt::spawn(receive(
                        f,
                        shared.clone(),
                        Arc::new(std::sync::OnceLock::new()),
                    ))
                })
                .collect();
            for t in tasks {
                let _ = t.await;
            }
        })
    });
    wait_for(Duration::from_secs(600), || {
        shared.connected.load(Relaxed) + shared.failed.load(Relaxed) >= count
    });
    let secs = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(3));
    let after = ctx.rss();
    let n = shared.connected.load(Relaxed);
    let rss = match (before, after) {
        (Some(b), Some(a)) => format!(
            "server RSS {b} KiB → {a} KiB = {:.2} KiB/session",
            (a.saturating_sub(b)) as f64 / n.max(1) as f64
        ),
        _ => "server RSS unknown (pass --server-pid)".into(),
    };
    println!(
        "{:<12} {n:>9} sessions open in {secs:5.1} s  failed {}  {rss}",
        "connections",
        shared.failed.load(Relaxed)
    );
    if n < count {
        FAILED.store(true, Relaxed);
    }
    shared.done.store(true, Relaxed);
    join(workers);
    Ok(())
}
