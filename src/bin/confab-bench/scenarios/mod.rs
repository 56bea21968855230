//! The scenarios, one file each, and the harness they share. Each worker thread runs its
//! own actix system with its own awc client; shared counters are atomics, latencies are
//! merged HDR histograms.

#[cfg(feature = "postgres")]
mod cluster;
mod connections;
mod dashboard;
mod fanout;
mod inbox;
mod longpoll;
mod mixed;
#[cfg(feature = "postgres")]
mod pg_ceiling;
mod sessions;
mod throughput;

#[cfg(feature = "postgres")]
pub use cluster::{apart, apart_schema, cluster, ClusterLoad};
pub use connections::connections;
pub use dashboard::{dashboard, DashboardLoad};
pub use fanout::fanout;
pub use inbox::inbox;
pub use longpoll::longpoll;
pub use mixed::mixed;
#[cfg(feature = "postgres")]
pub use pg_ceiling::pg_ceiling;
pub use throughput::{noop, send};

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{join_all, LocalBoxFuture};
use futures_util::StreamExt;

use crate::client::{client, now_us, Target, User};
use crate::stats::{rss_kib, Stats};
use crate::Common;

/// Connections per loopback source address (the ephemeral port range holds ~28k).
pub(super) const PER_SOURCE_ADDRESS: usize = 20_000;

pub struct Ctx {
    pub target: Target,
    pub duration: Duration,
    pub threads: usize,
    pub server_pid: Option<u32>,
}

impl Ctx {
    pub fn new(c: &Common) -> Ctx {
        use base64::Engine;
        Ctx {
            target: Target {
                base: c.url.clone().unwrap_or_default(),
                key: base64::engine::general_purpose::STANDARD
                    .decode(&c.key)
                    .unwrap_or_default(),
            },
            duration: Duration::from_secs_f64(c.duration),
            threads: c.threads.max(1),
            server_pid: c.server_pid,
        }
    }

    fn rss(&self) -> Option<u64> {
        self.server_pid.and_then(rss_kib)
    }
}

/// Runs `f(i)` on `n` threads, each in its own actix system; returns their outputs.
pub(super) fn spawn<T, F>(n: usize, f: F) -> Vec<std::thread::JoinHandle<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> LocalBoxFuture<'static, T> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    (0..n)
        .map(|i| {
            let f = f.clone();
            std::thread::spawn(move || actix_web::rt::System::new().block_on(f(i)))
        })
        .collect()
}

pub(super) fn join<T>(handles: Vec<std::thread::JoinHandle<T>>) -> Vec<T> {
    handles
        .into_iter()
        .map(|h| h.join().expect("worker thread"))
        .collect()
}

pub(super) fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    actix_web::rt::System::new().block_on(f)
}

/// Items `i` of `0..n` that worker `w` of `threads` handles.
pub(super) fn share(n: usize, w: usize, threads: usize) -> impl Iterator<Item = usize> {
    (w..n).step_by(threads)
}

pub(super) fn merge(all: Vec<Stats>) -> Stats {
    all.iter().fold(Stats::default(), |acc, s| acc.merge(s))
}

pub(super) fn source(i: usize) -> Option<IpAddr> {
    let k = i / PER_SOURCE_ADDRESS;
    (k > 0).then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + k as u8)))
}

/// Creates `n` identities with chat tokens, 64 requests in flight per worker.
pub(super) fn users(ctx: &Ctx, n: usize) -> Result<Vec<User>, String> {
    let started = Instant::now();
    let (target, threads) = (ctx.target.clone(), ctx.threads);
    let parts = join(spawn(threads, move |w| {
        let target = target.clone();
        Box::pin(async move {
            let c = client(None);
            futures_util::stream::iter(share(n, w, threads))
                .map(|i| {
                    let (c, target) = (c.clone(), target.clone());
                    async move { (i, target.user(&c).await) }
                })
                .buffer_unordered(64)
                .collect::<Vec<_>>()
                .await
        })
    }));
    let mut all: Vec<(usize, Result<User, String>)> = parts.into_iter().flatten().collect();
    all.sort_by_key(|(i, _)| *i);
    let users = all
        .into_iter()
        .map(|(_, u)| u)
        .collect::<Result<Vec<_>, _>>()?;
    eprintln!(
        "  setup: {n} identities in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(users)
}

/// Runs `concurrency` request loops against GET /livez for the duration.
pub(super) fn noop_phase(ctx: &Ctx, concurrency: usize) -> (Stats, f64) {
    let (base, threads, dur) = (ctx.target.base.clone(), ctx.threads, ctx.duration);
    let started = Instant::now();
    let out = join(spawn(threads, move |w| {
        let base = base.clone();
        Box::pin(async move {
            let deadline = Instant::now() + dur;
            let loops = share(concurrency, w, threads).map(|_| {
                let mut conn = crate::client::Conn::new(&base);
                async move {
                    let mut s = Stats::default();
                    while Instant::now() < deadline {
                        let t0 = now_us();
                        match conn.get("/livez").await {
                            Ok(200) => s.record(now_us() - t0),
                            _ => s.errors += 1,
                        }
                    }
                    s
                }
            });
            merge(join_all(loops).await)
        })
    }));
    (merge(out), started.elapsed().as_secs_f64())
}

/// Set when a phase had errors, lost events or no samples: the tool then exits non-zero,
/// which is what the CI smoke run checks.
static FAILED: AtomicBool = AtomicBool::new(false);

pub fn failed() -> bool {
    FAILED.load(Relaxed)
}

/// Marks the run as failed.
pub(super) fn note_failure() {
    FAILED.store(true, Relaxed);
}

/// Counts `expected - got` as lost (and the run as failed when any is).
pub(super) fn lost(expected: u64, got: u64) -> u64 {
    let n = expected.saturating_sub(got);
    if n > 0 {
        FAILED.store(true, Relaxed);
    }
    n
}

pub(super) fn line(name: &str, s: &Stats, secs: f64, unit: &str, extra: &str) {
    if s.errors > 0 || s.ok == 0 {
        FAILED.store(true, Relaxed);
    }
    println!(
        "{name:<12} {:>9} {unit} in {secs:5.1} s = {:>9.0} {unit}/s  {}  errors {}{extra}",
        s.ok,
        s.ok as f64 / secs,
        s.latency(),
        s.errors
    );
}
