//! Faults on purpose (issue: break it on purpose): a full disk under SQLite.

use serde_json::json;

use crate::binary::*;
use crate::common::*;

/// Sends `content` as an SDK would while storage comes back: a 503 is retried after `pause_ms`
/// (any other failure fails the test), at most `tries` times; the message id once it is 201.
async fn send_retrying(
    app: &TestApp,
    user: &User,
    thread: &str,
    content: &str,
    tries: usize,
    pause_ms: u64,
) -> Option<String> {
    for _ in 0..tries {
        let r = app
            .chat(
                user,
                reqwest::Method::POST,
                &format!("/chat/threads/{}/messages", enc(thread)),
                Some(json!({ "content": content })),
            )
            .await;
        if r.status() == 201 {
            let v: serde_json::Value = r.json().await.unwrap();
            return Some(v["id"].as_str().unwrap().to_string());
        }
        assert_eq!(r.status(), 503);
        tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
    }
    None
}

/// A tmpfs of `size` mounted on `dir` (root only), unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> Option<SmallDisk> {
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {size}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// SQLite on a disk that fills up: writes answer 503 with `Retry-After` (never a 500, which
/// would read as a bug), reads keep working, every acknowledged message is still there, and
/// writes succeed again once there is space.
#[tokio::test]
async fn a_full_disk_answers_503_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let Some(disk) = SmallDisk::mount(&data, "3m") else {
        eprintln!("cannot mount a tmpfs (not root?): disk-full test skipped");
        return;
    };
    let (server, base) = serve(&[
        "--rate-limit-profile",
        "off",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let app = app_for(&base, tempfile::tempdir().unwrap());
    let a = app.user().await;
    let t = app.thread(&a, &[]).await;
    let body = "x".repeat(20_000);
    let mut acked = Vec::new();
    let mut refused = None;
    for _ in 0..2000 {
        let r = app
            .chat(
                &a,
                reqwest::Method::POST,
                &format!("/chat/threads/{}/messages", enc(&t)),
                Some(json!({ "content": body })),
            )
            .await;
        if r.status() == 201 {
            acked.push(
                r.json::<serde_json::Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        } else {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("3 MiB never filled up");
    assert!(acked.len() > 10, "only {} messages fit", acked.len());
    assert_eq!(r.status(), 503, "a full disk is a retryable 503");
    assert_eq!(r.headers()["retry-after"], "1");
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "ServiceUnavailable");
    // reads still work, and nothing acknowledged is missing
    let seen = app.all_messages(&a, &t, 200).await;
    for id in &acked {
        assert!(
            seen.iter().any(|m| m["id"] == *id),
            "acknowledged message {id} is gone"
        );
    }
    // space returns: writes work again (within a few retries, as an SDK would make)
    disk.resize("64m");
    assert!(
        send_retrying(&app, &a, &t, "back", 20, 500).await.is_some(),
        "writes did not resume once there was space"
    );
    let seen = app.all_messages(&a, &t, 200).await;
    for id in &acked {
        assert!(
            seen.iter().any(|m| m["id"] == *id),
            "acknowledged message {id} is gone"
        );
    }
    drop(server);
    drop(disk);
}

/// kill -9 during a burst of sends, with webhook deliveries pending (the receiver answers 503)
/// and a WebSocket session open: after a restart every acknowledged message is there, every
/// committed message reaches the webhook, and the session resumes with `recovered: false`
/// (the ring was in memory), re-syncs over REST without a gap and receives new events.
#[tokio::test]
async fn kill_9_in_a_burst_loses_no_message_delivery_or_session() {
    use crate::realtime::Ws;
    use crate::webhooks::Receiver;
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = [
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--rate-limit-profile",
        "off",
        "--webhook-allow-private",
        "--webhook-retry-scale",
        "0.01",
    ]
    .map(String::from)
    .to_vec();
    if let Some(url) = test_database() {
        args.extend(["--database-url".to_string(), url]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rx = Receiver::start();
    rx.set_default(503);
    let (mut child, base) = serve(&args);
    let mut app = app_for(&base, dir);
    crate::webhooks::subscribe(
        &app,
        "burst",
        json!({ "endpointUrl": rx.url, "includedEventTypes": ["ChatMessageReceivedInThread"] }),
        201,
    )
    .await;
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[&b]).await;
    // b listens over WebSocket until the connection drops
    let mut ws = Ws::connect(&app, &b, None).await;
    let listener = tokio::spawn(async move {
        let (mut seen, mut cursor) = (Vec::new(), None);
        while let Some(f) = ws.next_frame().await {
            if f["type"] == "chatMessageReceived" {
                seen.push(f["data"]["id"].as_str().unwrap().to_string());
                cursor = f["cursor"].as_str().map(String::from);
            }
        }
        (seen, cursor)
    });
    const KILL_AFTER: usize = 100;
    let acked_so_far = std::sync::Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..8)
        .map(|w| {
            let (base, token, t, count) = (
                base.clone(),
                a.token.clone(),
                t.clone(),
                acked_so_far.clone(),
            );
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut acked = Vec::new();
                for i in 0.. {
                    let sent = client
                        .post(format!(
                            "{base}/chat/threads/{}/messages?api-version={CHAT_V}",
                            enc(&t)
                        ))
                        .bearer_auth(&token)
                        .json(&json!({ "content": format!("w{w} m{i}") }))
                        .send()
                        .await;
                    let Ok(r) = sent else { break };
                    if r.status() != 201 {
                        break;
                    }
                    let Ok(v) = r.json::<serde_json::Value>().await else {
                        break;
                    };
                    acked.push(v["id"].as_str().unwrap().to_string());
                    count.fetch_add(1, SeqCst);
                }
                acked
            })
        })
        .collect();
    while acked_so_far.load(SeqCst) < KILL_AFTER {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    child.kill(); // SIGKILL, sends in flight, deliveries pending, a session open
    let mut acked = BTreeSet::new();
    for s in senders {
        acked.extend(s.await.unwrap());
    }
    let (seen, cursor) = listener.await.unwrap();
    assert!(acked.len() >= KILL_AFTER);

    let restarted = std::time::Instant::now();
    rx.set_default(200);
    let (mut child, base) = serve(&args);
    app.base = base;
    // the session comes back: not recovered (a new epoch), so it re-syncs over REST
    let mut ws = Ws::connect(&app, &b, cursor.as_deref()).await;
    assert_eq!(ws.connected["data"]["recovered"], false, "{}", ws.connected);
    let stored: BTreeSet<String> = app
        .all_messages(&b, &t, 200)
        .await
        .iter()
        .filter(|m| m["type"] == "text")
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but gone: {lost:?}");
    let phantom: Vec<_> = seen.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        phantom.is_empty(),
        "pushed but never committed: {phantom:?}"
    );
    // every committed message reaches the webhook
    rx.wait("a delivery of every committed message", |h| {
        let got: BTreeSet<String> = h
            .iter()
            .filter(|x| x.at >= restarted)
            .map(|x| x.event()["data"]["messageId"].as_str().unwrap().to_string())
            .collect();
        stored.is_subset(&got)
    })
    .await;
    // and the session carries new events
    let id = app.send(&a, &t, "after the restart").await;
    let f = ws.event().await;
    assert_eq!(f["type"], "chatMessageReceived");
    assert_eq!(f["data"]["id"], id);
    eprintln!(
        "{} acknowledged before SIGKILL ({} committed), {} pushed to the session",
        acked.len(),
        stored.len(),
        seen.len()
    );
    child.kill();
}

/// A PostgreSQL server of this test's own (never the shared one): `initdb` and `pg_ctl` from
/// the machine's PostgreSQL, run as the `postgres` user, on a free port; stopped when dropped.
struct OwnPostgres {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnPostgres {
    fn start() -> Option<OwnPostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("pg_ctl").exists())?;
        let dir = tempfile::tempdir().ok()?;
        let ok = std::process::Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let pg = OwnPostgres { bin, dir, port };
        pg.as_postgres(
            "initdb",
            &["-A", "trust", "-U", "postgres", "-D", &pg.data()],
        )
        .then_some(())?;
        pg.ctl("start").then_some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    fn as_postgres(&self, tool: &str, args: &[&str]) -> bool {
        std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn ctl(&self, action: &str) -> bool {
        let opts = format!(
            "-p {} -h 127.0.0.1 -k {}",
            self.port,
            self.dir.path().display()
        );
        let data = self.data();
        let mut args = vec!["-D", &data, "-w", "-m", "fast", "-o", &opts];
        let log = self.dir.path().join("log");
        let log = log.to_string_lossy();
        if action != "stop" {
            args.extend(["-l", &log]);
        }
        args.push(action);
        self.as_postgres("pg_ctl", &args)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.ctl("stop");
    }
}

/// PostgreSQL stopped and started again under a steady stream of sends: while it is down
/// writes answer 503 with `Retry-After` (never a 500), nothing acknowledged is lost, and the
/// pool and the writer recover without a restart of confab.
#[tokio::test]
async fn postgres_restarted_under_load_loses_nothing_and_recovers() {
    let Some(pg) = OwnPostgres::start() else {
        eprintln!("cannot start a PostgreSQL of the test's own (not root, or no server binaries): test skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url();
    let (mut child, base) = serve(&[
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--rate-limit-profile",
        "off",
        "--database-url",
        &url,
    ]);
    let app = app_for(&base, dir);
    let a = app.user().await;
    let t = app.thread(&a, &[]).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|w| {
            let (base, token, t, stop) = (base.clone(), a.token.clone(), t.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let (mut acked, mut unavailable) = (Vec::new(), 0);
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    i += 1;
                    let r = client
                        .post(format!(
                            "{base}/chat/threads/{}/messages?api-version={CHAT_V}",
                            enc(&t)
                        ))
                        .bearer_auth(&token)
                        .json(&json!({ "content": format!("w{w} m{i}") }))
                        .send()
                        .await
                        .expect("confab itself stays up");
                    match r.status().as_u16() {
                        201 => acked.push(
                            r.json::<serde_json::Value>().await.unwrap()["id"]
                                .as_str()
                                .unwrap()
                                .to_string(),
                        ),
                        503 => {
                            assert!(r.headers().contains_key("retry-after"));
                            unavailable += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                        s => panic!("{s} while PostgreSQL restarts: {}", r.text().await.unwrap()),
                    }
                }
                (acked, unavailable)
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(pg.ctl("stop"), "pg_ctl stop");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(pg.ctl("start"), "pg_ctl start");
    // a while after it is back, sends must be succeeding again
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let before_end = senders.len();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut acked, mut unavailable) = (Vec::new(), 0);
    for s in senders {
        let (a, u) = s.await.unwrap();
        acked.extend(a);
        unavailable += u;
    }
    assert!(unavailable > 0, "no 503 while PostgreSQL was down");
    // the pool is back: a send succeeds (retrying a 503 as an SDK would)
    let after = send_retrying(&app, &a, &t, "after the restart", 40, 250)
        .await
        .expect("writes work again after PostgreSQL is back");
    let stored = app.all_messages(&a, &t, 200).await;
    for id in acked.iter().chain([&after]) {
        assert!(
            stored.iter().any(|m| m["id"] == *id),
            "acknowledged message {id} is gone"
        );
    }
    eprintln!(
        "{before_end} senders: {} acknowledged, {unavailable} answered 503 while PostgreSQL was down",
        acked.len()
    );
    child.kill();
}
