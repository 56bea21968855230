//! The scenarios. Each worker thread runs its own actix system with its own awc client;
//! shared counters are atomics, latencies are merged HDR histograms.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{join_all, LocalBoxFuture};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;

use crate::client::{client, now_us, sent_at, Target, User, CHAT_V};
use crate::stats::{rss_kib, Stats};
use crate::Common;

/// Connections per loopback source address (the ephemeral port range holds ~28k).
const PER_SOURCE_ADDRESS: usize = 20_000;

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
fn spawn<T, F>(n: usize, f: F) -> Vec<std::thread::JoinHandle<T>>
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

fn join<T>(handles: Vec<std::thread::JoinHandle<T>>) -> Vec<T> {
    handles
        .into_iter()
        .map(|h| h.join().expect("worker thread"))
        .collect()
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    actix_web::rt::System::new().block_on(f)
}

/// Items `i` of `0..n` that worker `w` of `threads` handles.
fn share(n: usize, w: usize, threads: usize) -> impl Iterator<Item = usize> {
    (w..n).step_by(threads)
}

fn merge(all: Vec<Stats>) -> Stats {
    all.iter().fold(Stats::default(), |acc, s| acc.merge(s))
}

fn source(i: usize) -> Option<IpAddr> {
    let k = i / PER_SOURCE_ADDRESS;
    (k > 0).then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + k as u8)))
}

/// Creates `n` identities with chat tokens, 64 requests in flight per worker.
fn users(ctx: &Ctx, n: usize) -> Result<Vec<User>, String> {
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
fn noop_phase(ctx: &Ctx, concurrency: usize) -> (Stats, f64) {
    let (base, threads, dur) = (ctx.target.base.clone(), ctx.threads, ctx.duration);
    let started = Instant::now();
    let out = join(spawn(threads, move |w| {
        let url = format!("{base}/livez");
        Box::pin(async move {
            let c = client(None);
            let deadline = Instant::now() + dur;
            let loops = share(concurrency, w, threads).map(|_| {
                let (c, url) = (c.clone(), url.clone());
                async move {
                    let mut s = Stats::default();
                    while Instant::now() < deadline {
                        let t0 = now_us();
                        match c.get(&url).send().await {
                            Ok(mut r) if r.status() == 200 => {
                                let _ = r.body().await;
                                s.record(now_us() - t0);
                            }
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

/// Counts `expected - got` as lost (and the run as failed when any is).
fn lost(expected: u64, got: u64) -> u64 {
    let n = expected.saturating_sub(got);
    if n > 0 {
        FAILED.store(true, Relaxed);
    }
    n
}

fn line(name: &str, s: &Stats, secs: f64, unit: &str, extra: &str) {
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

/// What receivers and senders share across worker threads.
#[derive(Default)]
struct Shared {
    connected: AtomicUsize,
    failed: AtomicUsize,
    received: AtomicU64,
    in_window: AtomicU64,
    done: AtomicBool,
}

/// Opens a WebSocket session for `token`; returns the framed stream after the connected frame.
async fn open_ws(
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
async fn receive(
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
async fn send_loop(
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
fn wait_for(limit: Duration, cond: impl Fn() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

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

/// One long-poll loop: head first, then parked polls, recording message latencies.
async fn poll_loop(
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
