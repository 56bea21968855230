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
    let base = vec![ctx.target.base.clone()];
    let f = fanout_phase(ctx, &base, &base, members, senders, rate)?;
    f.print("fanout", rate);
    Ok(())
}

/// What a fanout phase measured.
pub(super) struct Fanout {
    sent: Stats,
    secs: f64,
    delivered: Stats,
    members: usize,
    lost: u64,
    drained: bool,
}

impl Fanout {
    pub(super) fn print(&self, name: &str, rate: f64) {
        line(
            &format!("{name}-send"),
            &self.sent,
            self.secs,
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
        line(
            name,
            &self.delivered,
            self.secs,
            "dlv",
            &format!(
                "  ({} members, lost {}, {}drained; latency send→receive)",
                self.members,
                self.lost,
                if self.drained { "" } else { "NOT " }
            ),
        );
    }
}

/// One thread of `members` WebSocket members, connected round-robin to `receive_on`, and
/// `senders` send loops posting round-robin through `send_on`, at `rate` in all (0 = as fast as
/// they can) for the duration.
pub(super) fn fanout_phase(
    ctx: &Ctx,
    send_on: &[String],
    receive_on: &[String],
    members: usize,
    senders: usize,
    rate: f64,
) -> Result<Fanout, String> {
    let us = users(ctx, members.max(2))?;
    let thread = block(async {
        let c = client(None);
        ctx.target.thread(&c, &us[0], &us[1..]).await
    })?;
    let shared = Arc::new(Shared::default());
    let deadline = Arc::new(std::sync::OnceLock::new());
    let (receive_on, threads) = (receive_on.to_vec(), ctx.threads);
    let (tokens, sh, dl) = (
        us.iter().map(|u| u.token.clone()).collect::<Vec<_>>(),
        shared.clone(),
        deadline.clone(),
    );
    let receivers = spawn(threads, move |w| {
        let (receive_on, tokens, shared, deadline) =
            (receive_on.clone(), tokens.clone(), sh.clone(), dl.clone());
        Box::pin(async move {
            let c = client(None);
            let mut tasks = Vec::new();
            for i in share(tokens.len(), w, threads) {
                let base = &receive_on[i % receive_on.len()];
                match open_ws(&c, base, &tokens[i]).await {
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
    let send_on = send_on.to_vec();
    let started = Instant::now();
    deadline.set(now_us() + dur.as_micros() as u64).ok();
    let sent = join(spawn(1, move |_| {
        let (target, token, thread) = (target.clone(), token.clone(), thread.clone());
        let send_on = send_on.clone();
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
                    crate::client::Target {
                        base: send_on[i % send_on.len()].clone(),
                        ..target.clone()
                    },
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
    let delivered = Stats {
        ok: shared.in_window.load(Relaxed),
        ..got
    };
    Ok(Fanout {
        sent,
        secs,
        delivered,
        members: shared.connected.load(Relaxed),
        lost: lost(expected, received),
        drained,
    })
}
