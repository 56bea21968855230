//! The binary as an operator runs it: banner, `/livez`, `--help`, graceful stop, and
//! durability across SIGKILL.

use std::process::Command;

use serde_json::{json, Value};

use crate::binary::*;
use crate::common::*;

/// `confab serve --http-port 0` prints the chosen port, /livez answers, SIGTERM exits 0.
#[tokio::test]
async fn serve_banner_livez_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (child, base) = serve(&["--data-dir", dir.path().to_str().unwrap()]);
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0);
    let r = reqwest::get(format!("{base}/livez")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);
    child.terminate();
    let status = child.exited().await;
    assert!(status.success(), "{status:?}");
}

/// A SIGTERM sent the moment the banner is out still stops the server gracefully (exit 0): the
/// handler is installed before the banner is printed. Before, a supervisor quick to stop a
/// fresh node killed it outright (20 of 20 tries with the signal right after the banner).
#[tokio::test]
async fn sigterm_right_after_the_banner_exits_0() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let (child, _) = serve(&["--data-dir", dir.path().to_str().unwrap()]);
        child.terminate();
        let status = child.exited().await;
        assert!(status.success(), "{status:?}");
    }
}

/// The banner shows the well-known development key in full, but never an operator's own key
/// (it ends up in logs): the connection string names the flag instead.
#[tokio::test]
async fn the_banner_hides_an_operators_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let (_dev, _, banner) = serve_with_banner(&["--data-dir", &d]);
    assert!(
        banner.contains(&format!(";accesskey={DEV_KEY}\n")),
        "{banner}"
    );
    drop(_dev);
    // an operator's key: 64 random bytes, base64
    let own =
        "b3BlcmF0b3Itb3duLWtleS0wMTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ=";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let (_own, base, banner) = serve_with_banner(&["--data-dir", &d, "--access-key", own]);
    assert!(!banner.contains(own), "{banner}");
    assert!(!banner.contains(&own[..12]), "{banner}");
    assert!(
        banner.contains(";accesskey=<your --access-key>\n"),
        "{banner}"
    );
    assert!(!banner.contains("development access key"), "{banner}");
    // and the key it hides is the one it serves with
    let mut app = app_for(&base, dir);
    app.key = own.to_string();
    let user = app.user().await;
    assert!(user.id.starts_with("8:acs:"), "{user:?}");
}

/// `confab --help` lists every flag with its environment variable.
#[test]
fn help_lists_env_vars() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for env in [
        "CONFAB_HOST",
        "CONFAB_HTTP_PORT",
        "CONFAB_DATA_DIR",
        "CONFAB_IN_MEMORY",
        "CONFAB_DATABASE_URL",
        "CONFAB_ACCESS_KEY",
        "CONFAB_SECONDARY_ACCESS_KEY",
        "CONFAB_TOKEN_SECRET",
        "CONFAB_RESOURCE_ID",
        "CONFAB_ALLOW_DEV_KEY",
        "CONFAB_SKIP_API_VERSION_CHECK",
        "CONFAB_RATE_LIMIT_PROFILE",
        "CONFAB_MAX_PARTICIPANTS",
        "CONFAB_RECEIPTS_MAX_PARTICIPANTS",
        "CONFAB_MAX_MESSAGE_BYTES",
        "CONFAB_IDEMPOTENCY_WINDOW",
        "CONFAB_SQLITE_SYNCHRONOUS",
        "CONFAB_PUBLIC_URL",
        "CONFAB_CONFIG",
    ] {
        assert!(text.contains(env), "--help does not mention {env}:\n{text}");
    }
    // the dev key is refused on a non-loopback address
    let out = Command::new(BIN)
        .args([
            "serve",
            "--host",
            "0.0.0.0",
            "--in-memory",
            "--http-port",
            "0",
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-dev-key"));
}

/// `confab token create` prints an id and a token that works against a server on the same
/// data directory.
#[tokio::test]
async fn token_create_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let out = Command::new(BIN)
        .args([
            "token",
            "create",
            "--scopes",
            "chat",
            "--name",
            "alice",
            "--data-dir",
            &d,
            "--log",
            "warn",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .map(|r| r.trim_start_matches([' ', ':']).trim().to_string())
            })
            .unwrap()
    };
    let user = User {
        id: field("id"),
        token: field("token"),
    };
    let (mut child, base) = serve(&["--data-dir", &d]);
    let app = app_for(&base, dir);
    let r = app
        .chat(
            &user,
            reqwest::Method::POST,
            "/chat/threads",
            Some(json!({"topic": "cli"})),
        )
        .await;
    assert_eq!(r.status(), 201);
    child.kill();
}

/// Every message acknowledged with 201 survives SIGKILL sent while sends are still in flight,
/// with its sequenceId and id, and each thread's sequenceIds stay gapless. Several threads and
/// concurrent senders make each write batch a group of several threads' sends.
#[tokio::test]
async fn durable_across_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let mut args = vec![
        "--data-dir".to_string(),
        d,
        "--rate-limit-profile".into(),
        "off".into(),
    ];
    if let Some(url) = test_database() {
        args.extend(["--database-url".to_string(), url]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Rate limits off: this test is about durability, not throttling.
    let (mut child, base) = serve(&args);
    let app = app_for(&base, dir);
    let u = app.user().await;
    let mut threads = Vec::new();
    for _ in 0..4 {
        threads.push(app.thread(&u, &[]).await);
    }
    // the kill comes once this many sends are acknowledged, while the senders go on
    const KILL_AFTER: usize = 200;
    let acked_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (killed_tx, killed_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for w in 0..16 {
        let t = threads[w % threads.len()].clone();
        let (base, token) = (base.clone(), u.token.clone());
        let (count, killed) = (acked_so_far.clone(), killed_rx.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut acked = Vec::new();
            for i in 0.. {
                let sent = client
                    .post(format!(
                        "{base}/chat/threads/{}/messages?api-version={CHAT_V}",
                        enc(&t)
                    ))
                    .bearer_auth(&token)
                    .json(&json!({"content": format!("w{w} m{i}")}))
                    .send()
                    .await;
                let r = match sent {
                    Ok(r) => r,
                    // the server is gone: only after the kill
                    Err(_) => {
                        assert!(*killed.borrow(), "a send failed before the kill");
                        break;
                    }
                };
                assert_eq!(r.status(), 201);
                match r.json::<Value>().await {
                    Ok(v) => acked.push((t.clone(), v["id"].as_str().unwrap().to_string())),
                    Err(_) => break,
                }
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            acked
        }));
    }
    while acked_so_far.load(std::sync::atomic::Ordering::SeqCst) < KILL_AFTER {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    killed_tx.send(true).unwrap();
    child.kill(); // SIGKILL, with sends in flight
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    assert!(acked.len() >= KILL_AFTER);

    let (mut child, base) = serve(&args);
    let mut app = app;
    app.base = base;
    let mut stored = std::collections::HashSet::new();
    for t in &threads {
        let msgs = app.all_messages(&u, t, 200).await;
        for m in msgs.iter().filter(|m| m["type"] == "text") {
            stored.insert((t.clone(), m["id"].as_str().unwrap().to_string()));
        }
        let mut seqs: Vec<u64> = msgs
            .iter()
            .map(|m| m["sequenceId"].as_str().unwrap().parse().unwrap())
            .collect();
        seqs.sort();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "gapless in {t}"
        );
    }
    let lost: Vec<_> = acked.iter().filter(|a| !stored.contains(*a)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    // Where each thread stands survived too (SQLite keeps it in the thread's last message, not
    // in its row, which trails by up to a second): the next send continues the sequence, and
    // the thread list says when that last message came.
    for t in &threads {
        let before = app.all_messages(&u, t, 200).await.len() as u64;
        let id = app.send(&u, t, "after the restart").await;
        let path = format!("/chat/threads/{}/messages/{id}", enc(t));
        let m: Value = app
            .chat(&u, reqwest::Method::GET, &path, None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(m["sequenceId"], (before + 1).to_string(), "in {t}");
        let list: Value = app
            .chat(&u, reqwest::Method::GET, "/chat/threads", None)
            .await
            .json()
            .await
            .unwrap();
        let item = list["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == t.as_str())
            .unwrap();
        assert_eq!(item["lastMessageReceivedOn"], m["createdOn"], "in {t}");
    }
    eprintln!(
        "{} sends acknowledged before the kill, {} messages stored",
        acked.len(),
        stored.len()
    );
    child.kill();
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A member that never reads does not make the server buffer without bound: after the resume
/// ring is full, ~30 MB more of events go to it while another member reads them all; its
/// connection is closed with 4008 and the server's resident memory stays flat.
#[tokio::test]
async fn slow_consumer_memory_is_bounded() {
    use crate::realtime::Ws;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let (mut child, base) = serve(&[
        "--data-dir",
        &d,
        "--rate-limit-profile",
        "off",
        "--sqlite-synchronous",
        "normal",
        // a small ring, full after the warm-up, so that growth after it is buffering only
        "--realtime-ring-events",
        "100",
    ]);
    let app = app_for(&base, dir);
    let a = app.user().await;
    let b = app.user().await;
    let t = app.thread(&a, &[&b]).await;
    let mut fast = Ws::connect(&app, &a, None).await;
    let mut slow = Ws::connect(&app, &b, None).await;
    let big = "x".repeat(20_000);
    let mut send = async |n: usize| {
        for _ in 0..n {
            app.send(&a, &t, &big).await;
            assert_eq!(fast.event().await["type"], "chatMessageReceived");
        }
    };
    // warm up caches (20 MB: more than the SQLite writer's 16 MiB page cache holds), fill the
    // ring and the slow client's buffers
    send(1000).await;
    let before = rss_kib(child.id());
    send(1500).await; // 30 MB more
    let after = rss_kib(child.id());
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!(
        "server RSS {before} KiB -> {after} KiB (+{grown_mib} MiB) after 30 MB to a stalled reader"
    );
    assert!(grown_mib < 8, "server memory grew by {grown_mib} MiB");
    assert_eq!(slow.close_code().await, 4008);
    child.kill();
}

/// The `/metrics` URL a banner prints (`  dashboard : …   metrics: http://…/metrics`).
fn metrics_url(banner: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.split("metrics: ").nth(1))
        .map(|u| u.trim().to_string())
        .expect("banner prints the metrics URL")
}

/// A series name, its labels and its expected value.
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// The value of the series `name{labels}` in Prometheus text (labels in any order).
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (key, value) = l.rsplit_once(' ')?;
        let (n, rest) = key
            .split_once('{')
            .map(|(n, r)| (n, r.trim_end_matches('}')))
            .unwrap_or((key, ""));
        if n != name {
            return None;
        }
        let have: Vec<(String, String)> = rest
            .split("\",")
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                p.split_once("=\"")
                    .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
            })
            .collect();
        let all = labels
            .iter()
            .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v));
        (all && have.len() == labels.len()).then(|| value.parse().ok())?
    })
}

/// After a scripted workload `/metrics` on the admin listener shows the exact usage counts and
/// per-route request counts, and every series is described.
#[tokio::test]
async fn metrics_count_the_workload() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let (mut child, base, banner) = serve_with_banner(&[
        "--data-dir",
        &d,
        "--rate-limit-profile",
        "off",
        "--webhook-allow-private",
        "--webhook-retry-scale",
        "0.001",
    ]);
    let metrics_url = metrics_url(&banner);
    let app = app_for(&base, dir);
    // webhooks: 7 messages received and 1 edit; the first attempt fails once
    let rx = crate::webhooks::Receiver::start();
    rx.respond(&[(500, None)]);
    crate::webhooks::subscribe(
        &app,
        "metered",
        json!({ "endpointUrl": rx.url, "includedEventTypes":
            ["ChatMessageReceivedInThread", "ChatMessageEditedInThread"] }),
        201,
    )
    .await;
    let a = app.user().await;
    let b = app.user().await;
    let c = app.user().await;
    let t = app.thread(&a, &[&b]).await;
    let p = format!("/chat/threads/{}", enc(&t));
    for i in 0..5 {
        app.send(&a, &t, &format!("text {i}")).await;
    }
    let mut html = Vec::new();
    for _ in 0..2 {
        let r = app
            .chat(
                &a,
                reqwest::Method::POST,
                &format!("{p}/messages"),
                Some(json!({"content": "<b>x</b>", "type": "html", "priority": "high"})),
            )
            .await;
        html.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    app.chat(
        &a,
        reqwest::Method::PATCH,
        &format!("{p}/messages/{}", html[0]),
        Some(json!({"content": "y"})),
    )
    .await;
    app.chat(
        &a,
        reqwest::Method::DELETE,
        &format!("{p}/messages/{}", html[1]),
        None,
    )
    .await;
    app.chat(
        &a,
        reqwest::Method::POST,
        &format!("{p}/participants/:add"),
        Some(json!({"participants": [participant(&c.id)]})),
    )
    .await;
    app.chat(
        &a,
        reqwest::Method::POST,
        &format!("{p}/participants/:remove"),
        Some(json!({"rawId": c.id})),
    )
    .await;
    app.chat(
        &b,
        reqwest::Method::POST,
        &format!("{p}/readReceipts"),
        Some(json!({"chatMessageId": html[0]})),
    )
    .await;
    app.chat(&b, reqwest::Method::POST, &format!("{p}/typing"), None)
        .await;
    let t2 = app.thread(&a, &[]).await;
    app.chat(
        &a,
        reqwest::Method::DELETE,
        &format!("/chat/threads/{}", enc(&t2)),
        None,
    )
    .await;
    let r = app
        .chat_raw(
            "bad-token",
            reqwest::Method::GET,
            "/chat/threads",
            None,
            &[],
        )
        .await;
    assert_eq!(r.status(), 401);
    rx.wait("8 events, one retried", |h| h.len() >= 9).await;
    // the attempt is counted after the receiver answered: let the last one land
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let text = reqwest::get(&metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let want: &[Expected] = &[
        (
            "confab_messages_sent_total",
            &[("type", "text"), ("priority", "normal")],
            5.0,
        ),
        (
            "confab_messages_sent_total",
            &[("type", "html"), ("priority", "high")],
            2.0,
        ),
        ("confab_messages_edited_total", &[], 1.0),
        ("confab_messages_deleted_total", &[], 1.0),
        ("confab_threads_created_total", &[], 2.0),
        ("confab_threads_deleted_total", &[], 1.0),
        ("confab_participants_added_total", &[], 1.0),
        ("confab_participants_removed_total", &[], 1.0),
        ("confab_read_receipts_total", &[], 1.0),
        ("confab_typing_notifications_total", &[], 1.0),
        ("confab_identities_created_total", &[], 3.0),
        ("confab_tokens_issued_total", &[], 3.0),
        (
            "confab_auth_failures_total",
            &[("reason", "invalid_token")],
            1.0,
        ),
        (
            "confab_http_requests_total",
            &[
                ("route", "/chat/threads/{t}/messages"),
                ("method", "POST"),
                ("status_class", "2xx"),
            ],
            7.0,
        ),
        (
            "confab_http_requests_total",
            &[
                ("route", "/chat/threads"),
                ("method", "GET"),
                ("status_class", "4xx"),
            ],
            1.0,
        ),
        ("confab_webhook_events_total", &[], 8.0),
        (
            "confab_webhook_deliveries_total",
            &[("result", "delivered")],
            8.0,
        ),
        (
            "confab_webhook_deliveries_total",
            &[("result", "retrying")],
            1.0,
        ),
        ("confab_webhook_delivery_duration_seconds_count", &[], 9.0),
        (
            "confab_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        ),
    ];
    for (name, labels, value) in want {
        assert_eq!(
            series(&text, name, labels),
            Some(*value),
            "{name} {labels:?} in\n{text}"
        );
    }
    assert!(
        text.contains("confab_http_request_duration_seconds_bucket{"),
        "histograms have buckets"
    );
    for line in text.lines().filter(|l| l.starts_with("confab_")) {
        let name = line.split(['{', ' ']).next().unwrap();
        let base_name = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            text.contains(&format!("# HELP {base_name} ")),
            "{base_name} has no HELP"
        );
    }
    // for promtool in CI
    if let Ok(path) = std::env::var("CONFAB_METRICS_DUMP") {
        std::fs::write(path, &text).unwrap();
    }
    child.kill();
}

/// During a graceful stop `/readyz` answers 503 "shutting down" on the admin listener while an
/// in-flight request finishes; the process then exits 0.
#[tokio::test]
async fn readyz_is_503_while_draining() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let (child, base, banner) = serve_with_banner(&["--data-dir", &d]);
    let admin = metrics_url(&banner)
        .trim_end_matches("/metrics")
        .to_string();
    assert_eq!(
        reqwest::get(format!("{admin}/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );
    let app = app_for(&base, dir);
    let u = app.user().await;
    // an in-flight long-poll keeps the graceful stop waiting
    let head = {
        let r = app
            .client
            .get(format!("{base}/realtime/poll?timeout=0"))
            .bearer_auth(&u.token)
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["cursor"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let poll = {
        let (base, token) = (base.clone(), u.token.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(format!("{base}/realtime/poll?timeout=3&cursor={head}"))
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    child.terminate();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = reqwest::get(format!("{admin}/readyz")).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "unavailable", "reason": "shutting down"})
    );
    assert_eq!(
        poll.await.unwrap().unwrap(),
        200,
        "the in-flight poll finishes"
    );
    let status = child.exited().await;
    assert!(status.success(), "{status:?}");
}

/// Webhook deliveries still waiting when the process is SIGKILLed are delivered after a
/// restart: the outbox is in the database, written with the messages.
#[tokio::test]
async fn pending_webhooks_survive_sigkill() {
    use crate::webhooks::Receiver;
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = [
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--rate-limit-profile",
        "off",
        "--webhook-allow-private",
        // 10 s → 100 ms: a few retries happen before the kill, none are used up
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
    let app = app_for(&base, dir);
    crate::webhooks::subscribe(
        &app,
        "durable",
        json!({ "endpointUrl": rx.url, "includedEventTypes": ["ChatMessageReceivedInThread"] }),
        201,
    )
    .await;
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[&b]).await;
    const N: usize = 20;
    let mut sent = std::collections::BTreeSet::new();
    for i in 0..N {
        sent.insert(app.send(&a, &t, &format!("m{i}")).await);
    }
    child.kill(); // SIGKILL, with every delivery still waiting
    let failed_before = rx.notifications().len();
    assert!(
        rx.notifications().iter().all(
            |h| h.event()["eventType"] == "Microsoft.Communication.ChatMessageReceivedInThread"
        ),
        "nothing else was sent"
    );

    rx.set_default(200);
    let (mut child, _base) = serve(&args);
    let hits = rx
        .wait("every message after the restart", |h| {
            let got: std::collections::BTreeSet<String> = h[failed_before..]
                .iter()
                .map(|x| x.event()["data"]["messageId"].as_str().unwrap().to_string())
                .collect();
            got == sent
        })
        .await;
    eprintln!(
        "{N} messages: {failed_before} failed attempts before SIGKILL, {} deliveries after restart",
        hits.len() - failed_before
    );
    child.kill();
}

/// A standalone node on PostgreSQL keeps its database to itself: a second one on the same
/// database exits 2 saying why, and starts once the first is gone (even killed, without a
/// chance to clean up). A `--resource-id` other than the stored one exits 2 too.
#[tokio::test]
async fn a_postgres_database_serves_one_standalone_node() {
    let Some(url) = test_database() else {
        eprintln!("CONFAB_TEST_DATABASE_URL not set: PostgreSQL-only test skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let args = ["--data-dir", &d, "--database-url", &url];
    let (mut first, _base, banner) = serve_with_banner(&args);
    let stored = banner
        .lines()
        .find_map(|l| l.split("resourceId:").nth(1))
        .map(|r| r.split_whitespace().next().unwrap_or_default().to_string())
        .expect("the banner prints the resource id");

    let refused = |extra: &[&str]| {
        let out = Command::new(BIN)
            .arg("serve")
            .args(["--http-port", "0", "--https-port", "0"])
            .args(["--admin-addr", "127.0.0.1:0", "--log", "warn"])
            .args(args)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // `token create` is no node: it works beside the running one
    let out = Command::new(BIN)
        .args(["token", "create", "--scopes", "chat", "--log", "warn"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, err) = refused(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("another confab node without --nats-url holds schema"),
        "{err}"
    );
    assert!(err.contains("keeps its database to itself"), "{err}");

    first.kill(); // SIGKILL: the lock goes with the connection
    let (mut second, base) = serve(&args);
    let r = reqwest::get(format!("{base}/livez")).await.unwrap();
    assert_eq!(r.status(), 200);
    second.kill();

    let other = "00000000-0000-4000-8000-000000000001";
    assert_ne!(stored, other);
    let (code, err) = refused(&["--resource-id", other]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("differs from the resource id"), "{err}");
    assert!(err.contains(&stored), "{err}");
}

/// A WebSocket frame header declaring more than the 4 KiB limit is refused as it arrives: a
/// client that declares a text frame of 2^63−1 bytes and streams data gets close 1009 at once,
/// and the server buffers nothing beyond the header (its resident memory stays flat while the
/// client tries to push 256 MiB).
#[tokio::test]
async fn an_oversized_websocket_frame_is_refused_at_its_header() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let (child, base) = serve(&["--data-dir", &d, "--rate-limit-profile", "off"]);
    let app = app_for(&base, dir);
    let u = app.user().await;
    let addr = base.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let handshake = format!(
        "GET /realtime?access_token={} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        u.token
    );
    sock.write_all(handshake.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        sock.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let before = rss_kib(child.id());

    let (mut rd, mut wr) = sock.into_split();
    // The server's frames: skip data frames, return the close frame's code.
    let reader = tokio::spawn(async move {
        loop {
            let mut h = [0u8; 2];
            rd.read_exact(&mut h).await.ok()?;
            let mut len = (h[1] & 0x7f) as u64;
            if len == 126 {
                len = rd.read_u16().await.ok()? as u64;
            } else if len == 127 {
                len = rd.read_u64().await.ok()?;
            }
            let mut payload = vec![0u8; len as usize];
            rd.read_exact(&mut payload).await.ok()?;
            if h[0] & 0x0f == 0x8 {
                return Some(u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
    });
    let mut header = vec![0x81u8, 0x80 | 127];
    header.extend_from_slice(&(i64::MAX as u64).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    wr.write_all(&header).await.unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let pushed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut sent = 0usize;
        while sent < 256 << 20 {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    })
    .await;
    let code = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
        .await
        .expect("the server answered the header")
        .unwrap();
    let after = rss_kib(child.id());
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!(
        "client pushed {:?} bytes; server RSS {before} KiB -> {after} KiB (+{grown_mib} MiB)",
        pushed.ok()
    );
    assert_eq!(code, Some(1009));
    assert!(grown_mib < 8, "server memory grew by {grown_mib} MiB");
}

/// Finding 4: the data directory holds every message and webhook secret. A new one is made
/// 0700, and the database and its `-wal` (made by SQLite as it runs) are 0600, whatever the umask.
#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let base = tempfile::tempdir().unwrap();
    let data = base.path().join("new/data");
    let d = data.to_str().unwrap().to_string();
    let (child, url) = serve(&["--data-dir", &d, "--rate-limit-profile", "off"]);
    let app = app_for(&url, tempfile::tempdir().unwrap());
    let u = app.user().await;
    let t = app.thread(&u, &[]).await;
    app.send(&u, &t, "secret").await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for f in ["confab.db", "confab.db-wal"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    drop(child);
}

/// PostgreSQL: a send whose events no webhook subscription includes is still committed as one
/// statement with no transaction block, even while subscriptions for other events are active;
/// once a subscription includes its events, sends take a transaction again, and their
/// deliveries are written and sent.
#[tokio::test]
async fn sends_no_subscription_wants_commit_as_one_statement() {
    use crate::webhooks::{subscribe, Receiver};
    let Some(url) = test_database() else {
        eprintln!("CONFAB_TEST_DATABASE_URL not set: PostgreSQL-only test skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let (mut child, base, banner) = serve_with_banner(&[
        "--data-dir",
        &d,
        "--database-url",
        &url,
        "--rate-limit-profile",
        "off",
        "--webhook-allow-private",
    ]);
    let metrics_url = metrics_url(&banner);
    let statement_batches = || async {
        let text = reqwest::get(&metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        series(&text, "confab_writer_statement_batches_total", &[]).unwrap_or(0.0)
    };
    let app = app_for(&base, dir);
    let rx = Receiver::start();
    subscribe(
        &app,
        "threads",
        json!({ "endpointUrl": rx.url, "includedEventTypes": ["ChatThreadCreated"] }),
        201,
    )
    .await;
    let a = app.user().await;
    let b = app.user().await;
    let t = app.thread(&a, &[&b]).await;
    for i in 0..5 {
        app.send(&a, &t, &format!("quiet {i}")).await;
    }
    let quiet = statement_batches().await;
    // the first send may load the thread's position; each later one is pure
    assert!(quiet >= 4.0, "{quiet} statement batches for 5 sends");
    rx.events_of("ChatThreadCreated", 1).await;

    subscribe(
        &app,
        "messages",
        json!({ "endpointUrl": rx.url, "includedEventTypes": ["ChatMessageReceivedInThread"] }),
        201,
    )
    .await;
    for i in 0..3 {
        app.send(&a, &t, &format!("wanted {i}")).await;
    }
    let hits = rx.events_of("ChatMessageReceivedInThread", 3).await;
    let mut bodies: Vec<String> = hits
        .iter()
        .filter(|h| h.event()["eventType"] == "Microsoft.Communication.ChatMessageReceivedInThread")
        .map(|h| {
            h.event()["data"]["messageBody"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["wanted 0", "wanted 1", "wanted 2"]);
    assert_eq!(
        statement_batches().await,
        quiet,
        "a send with a delivery row to write is not committed as a bare statement"
    );
    child.kill();
}
