//! Cluster mode (contract §9) with real nodes: `confab serve` processes on one PostgreSQL
//! schema and one NATS. Each test uses its own schema and its own `--nats-prefix`, so tests
//! run side by side on the shared servers. They skip (and say so) unless both
//! `CONFAB_TEST_DATABASE_URL` and `CONFAB_TEST_NATS_URL` are set; CI sets both.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_confab");

/// PostgreSQL and NATS for a cluster test: a fresh schema's URL, the NATS URL, a fresh prefix
/// and the guard that deletes that prefix's streams when the test ends (passed or failed; bind
/// it to a named variable declared before the nodes, so that it is dropped after them); `None`
/// (the test skips) unless both are configured.
fn services(test: &str) -> Option<(String, String, String, Streams)> {
    let db = std::env::var("CONFAB_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let nats = std::env::var("CONFAB_TEST_NATS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    match (db, nats) {
        (Some(db), Some(nats)) => {
            let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            let streams = Streams {
                nats: nats.clone(),
                prefix: prefix.clone(),
            };
            Some((postgres_schema(&db), nats, prefix, streams))
        }
        _ => {
            eprintln!(
                "{test}: CONFAB_TEST_DATABASE_URL and CONFAB_TEST_NATS_URL not both set: \
                 cluster test skipped"
            );
            None
        }
    }
}

/// A node process, killed (SIGKILL) when dropped.
pub struct Node {
    child: Child,
    pub base: String,
    pub admin: String,
    pub banner: String,
    _dir: tempfile::TempDir,
}

impl Node {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn command(args: &[&str]) -> (Command, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args([
            "--http-port",
            "0",
            "--no-tls",
            "--admin-addr",
            "127.0.0.1:0",
            "--log",
            "warn",
            "--rate-limit-profile",
            "off",
            "--data-dir",
        ])
        .arg(dir.path())
        .args(args);
    (cmd, dir)
}

/// Starts a node and waits for its banner; `Err(stderr)` if it exits instead.
pub fn start(args: &[&str]) -> Result<Node, (i32, String)> {
    let (mut cmd, dir) = command(args);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("resourceId:") {
            break;
        }
    }
    if !banner.contains("resourceId:") {
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        return Err((status.code().unwrap_or(-1), err));
    }
    for line in lines.by_ref() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("cluster") || line.contains("WARNING") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let mut stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let find = |key: &str| {
        banner
            .lines()
            .find_map(|l| l.split(key).nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(|u| u.trim_end_matches('/').to_string())
    };
    Ok(Node {
        base: find("http              : ").expect("http address in the banner"),
        admin: find("dashboard         : ").expect("admin address in the banner"),
        banner,
        child,
        _dir: dir,
    })
}

/// Runs a node that must refuse to start: its exit status and what it said.
fn refused(args: &[&str]) -> (i32, String) {
    match start(args) {
        Ok(n) => panic!("the node started:\n{}", n.banner),
        Err(e) => e,
    }
}

/// The flags of a cluster node.
fn cluster_args<'a>(db: &'a str, nats: &'a str, prefix: &'a str, id: &'a str) -> Vec<&'a str> {
    vec![
        "--database-url",
        db,
        "--nats-url",
        nats,
        "--nats-prefix",
        prefix,
        "--node-id",
        id,
    ]
}

/// A cluster node that may deliver webhooks to loopback, retrying at once.
fn hook_node(db: &str, nats: &str, prefix: &str, id: &str) -> Node {
    let mut args = cluster_args(db, nats, prefix, id);
    args.extend(["--webhook-allow-private", "--webhook-retry-scale", "0.001"]);
    start(&args).expect("cluster node")
}

/// One sample of a metric on a node's `/metrics`.
pub async fn metric(node: &Node, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", node.admin))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Removes what a test made on NATS (best effort).
/// Deletes a test's stream and node bucket from the shared NATS when dropped, so that a test
/// that fails leaves nothing behind either.
pub struct Streams {
    nats: String,
    prefix: String,
}

impl Drop for Streams {
    fn drop(&mut self) {
        let (nats, prefix) = (self.nats.clone(), self.prefix.clone());
        // (on a thread and a runtime of its own: the test's runtime may be ending, or absent)
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), drop_streams(&nats, &prefix))
                            .await;
                });
            }
        })
        .join();
    }
}

async fn drop_streams(nats: &str, prefix: &str) {
    let Ok(client) = async_nats::connect(nats).await else {
        return;
    };
    let js = async_nats::jetstream::new(client);
    for name in [format!("KV_{prefix}_nodes"), format!("{prefix}_events")] {
        let _ = js.delete_stream(name).await;
    }
}

/// `--nats-url` needs PostgreSQL: with SQLite the node exits 2 naming both flags. No services
/// needed: it must refuse before trying NATS.
#[test]
fn cluster_mode_needs_postgres() {
    let started = Instant::now();
    let (code, err) = refused(&["--nats-url", "nats://127.0.0.1:9"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--nats-url") && err.contains("--database-url"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused at once"
    );
}

/// NATS unreachable at start: retried for 30 s, then exit 2 naming the URL.
#[test]
fn unreachable_nats_at_start_exits_2_after_30_s() {
    let Some((db, _nats, prefix, _streams)) =
        services("unreachable_nats_at_start_exits_2_after_30_s")
    else {
        return;
    };
    // a port nothing listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let started = Instant::now();
    let (code, err) = refused(&cluster_args(&db, &url, &prefix, "lonely"));
    let took = started.elapsed();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&url), "{err}");
    assert!(
        took >= Duration::from_secs(29) && took < Duration::from_secs(45),
        "{took:?}"
    );
}

/// §9.1's start-up rules: a second live node with the same id exits 2; a standalone node on a
/// database cluster nodes use exits 2, and so does a cluster node on a standalone node's
/// database; a crashed node's id is free again within 10 s. And §9.3: the banner's cluster
/// line, `confab_cluster_nodes`, `confab_cluster_bus_connected`, `/readyz`.
#[tokio::test]
async fn start_up_rules_and_the_node_table() {
    let Some((db, nats, prefix, _streams)) = services("start_up_rules_and_the_node_table") else {
        return;
    };
    let mut a = start(&cluster_args(&db, &nats, &prefix, "node-a")).expect("node a");
    assert!(
        a.banner.contains(&format!(
            "cluster           : node-a on {nats}, 1 nodes live"
        )),
        "{}",
        a.banner
    );
    let b = start(&cluster_args(&db, &nats, &prefix, "node-b")).expect("node b");
    assert!(b.banner.contains("2 nodes live"), "{}", b.banner);
    // a's heartbeat sees b
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&a, "confab_cluster_nodes").await != Some(2.0) {
        assert!(Instant::now() < deadline, "node a never saw node b");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(&b, "confab_cluster_bus_connected").await, Some(1.0));
    let r = reqwest::get(format!("{}/readyz", b.base)).await.unwrap();
    assert_eq!(r.status(), 200);

    // the same id twice
    let (code, err) = refused(&cluster_args(&db, &nats, &prefix, "node-a"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--node-id") && err.contains("node-a"), "{err}");
    // a standalone node on the cluster's database
    let (code, err) = refused(&["--database-url", &db]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cluster nodes") && err.contains("--nats-url"),
        "{err}"
    );

    // node a dies: its id is free again within 10 s, and b counts one node
    a.kill();
    let died = Instant::now();
    let a2 = loop {
        match start(&cluster_args(&db, &nats, &prefix, "node-a")) {
            Ok(n) => break n,
            Err((2, e)) if e.contains("--node-id") => {
                assert!(died.elapsed() < Duration::from_secs(10), "{e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    let freed = died.elapsed();
    assert!(freed < Duration::from_secs(10), "{freed:?}");
    drop(a2);
    drop(b);

    // a cluster node on a standalone node's database
    let Ok(base) = std::env::var("CONFAB_TEST_DATABASE_URL") else {
        return;
    };
    let own = postgres_schema(&base);
    let solo = start(&["--database-url", &own]).expect("standalone node");
    let (code, err) = refused(&cluster_args(&own, &nats, &prefix, "node-c"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("without --nats-url holds"), "{err}");
    drop(solo);
}

/// Three nodes started at the same moment on a new database (a deployment's first boot, or
/// every unit of `deploy/cluster` starting at once) all start: one applies the migrations while
/// the others wait for it, and all report the one resource id stored. Unserialized, two of the
/// three exited with "duplicate key value violates unique constraint".
#[tokio::test]
async fn nodes_started_together_on_a_new_database() {
    let Some((db, nats, prefix, _streams)) = services("nodes_started_together_on_a_new_database")
    else {
        return;
    };
    let starts: Vec<_> = ["t1", "t2", "t3"]
        .into_iter()
        .map(|id| {
            let args: Vec<String> = cluster_args(&db, &nats, &prefix, id)
                .into_iter()
                .map(String::from)
                .collect();
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                start(&args)
            })
        })
        .collect();
    let nodes: Vec<Node> = starts
        .into_iter()
        .map(|h| h.join().unwrap().expect("every node starts"))
        .collect();
    let resource = |n: &Node| {
        n.banner
            .lines()
            .find_map(|l| l.split("resourceId:").nth(1))
            .map(|r| r.trim().to_string())
            .expect("resourceId in the banner")
    };
    let first = resource(&nodes[0]);
    assert!(!first.is_empty());
    for n in &nodes[1..] {
        assert_eq!(resource(n), first, "{}", n.banner);
    }
    // and they serve as one: created on the last node, read on the first
    let apps: Vec<TestApp> = nodes.iter().map(client_of).collect();
    let owner = apps[2].user().await;
    let t = apps[2].thread(&owner, &[]).await;
    let r = apps[0]
        .chat(
            &owner,
            reqwest::Method::GET,
            &format!("/chat/threads/{}", enc(&t)),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    drop(nodes);
}

/// A client of one node (the same keys everywhere: a token from one node works on all).
fn client_of(node: &Node) -> TestApp {
    TestApp {
        base: node.base.clone(),
        https: None,
        ca: None,
        admin: node.admin.clone(),
        client: reqwest::Client::new(),
        key: DEV_KEY.to_string(),
        resource_id: String::new(),
        db_url: String::new(),
        _dir: tempfile::tempdir().unwrap(),
        stop: None,
    }
}

/// Three nodes on one schema and one NATS, with fresh ids.
fn three_nodes(db: &str, nats: &str, prefix: &str) -> Vec<Node> {
    ["n1", "n2", "n3"]
        .iter()
        .map(|id| start(&cluster_args(db, nats, prefix, id)).expect("cluster node"))
        .collect()
}

/// Every one of `senders` posts `per` messages ("s<k> m<i>") into `thread` at once, each moving
/// from node to node; every send must be acknowledged with 201.
async fn burst(apps: &[TestApp], senders: &[User], thread: &str, per: usize) {
    let bases: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
    let mut tasks = Vec::new();
    for (s, user) in senders.iter().enumerate() {
        let (bases, user, t) = (bases.clone(), user.clone(), thread.to_string());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0..per {
                let base = &bases[(s + i) % bases.len()];
                let r = client
                    .post(format!(
                        "{base}/chat/threads/{}/messages?api-version={CHAT_V}",
                        enc(&t)
                    ))
                    .bearer_auth(&user.token)
                    .json(&serde_json::json!({ "content": format!("s{s} m{i}") }))
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                assert_eq!(status, 201, "{}", r.text().await.unwrap());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// §9.2.1, 2, 4 and 5 over REST: what one node acknowledged, the next request on any other
/// node sees; 4 senders spread over 3 nodes into one thread get gapless, unique sequenceIds
/// with each sender's order kept; a removal, an add and a revocation act on the other nodes'
/// very next request, although their thread actors had the old membership cached; an
/// idempotent send replayed on another node gets the stored response.
#[tokio::test]
async fn three_nodes_answer_as_one() {
    use reqwest::Method;
    use serde_json::{json, Value};
    let Some((db, nats, prefix, _streams)) = services("three_nodes_answer_as_one") else {
        return;
    };
    let nodes = three_nodes(&db, &nats, &prefix);
    let apps: Vec<TestApp> = nodes.iter().map(client_of).collect();
    let (a, b, c) = (&apps[0], &apps[1], &apps[2]);
    let owner = a.user().await;
    let senders = [b.user().await, c.user().await, a.user().await];
    let all: Vec<&User> = senders.iter().collect();
    let t = b.thread(&owner, &all).await;
    // read-your-writes: created on b, read on c and a
    for app in [c, a] {
        let r = app
            .chat(
                &owner,
                Method::GET,
                &format!("/chat/threads/{}", enc(&t)),
                None,
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    // every node's actor loads the thread now, so the caches below are really warm
    for (i, app) in apps.iter().enumerate() {
        app.send(&senders[i], &t, &format!("warm {i}")).await;
    }

    // 4 senders on 3 nodes, 25 messages each, all at once
    let per = 25;
    let mut everyone = senders.to_vec();
    everyone.push(owner.clone());
    burst(&apps, &everyone, &t, per).await;
    let msgs = c.all_messages(&owner, &t, 200).await;
    let mut seqs: Vec<i64> = msgs
        .iter()
        .map(|m| m["sequenceId"].as_str().unwrap().parse().unwrap())
        .collect();
    seqs.sort();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "gapless and unique"
    );
    let texts: Vec<&Value> = msgs.iter().filter(|m| m["type"] == "text").collect();
    assert_eq!(texts.len(), 3 + everyone.len() * per);
    let mut ids: Vec<&str> = msgs.iter().map(|m| m["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), msgs.len(), "message ids are unique");
    for s in 0..everyone.len() {
        // oldest first: each sender's messages in the order sent
        let mut mine: Vec<(i64, usize)> = texts
            .iter()
            .filter_map(|m| {
                let text = m["content"]["message"].as_str()?;
                let (who, i) = text.split_once(' ')?;
                (who == format!("s{s}")).then(|| {
                    (
                        m["sequenceId"].as_str().unwrap().parse().unwrap(),
                        i[1..].parse().unwrap(),
                    )
                })
            })
            .collect();
        mine.sort();
        let order: Vec<usize> = mine.iter().map(|(_, i)| *i).collect();
        assert_eq!(order, (0..per).collect::<Vec<_>>(), "sender {s}'s order");
    }

    // remove on a: the removed user's next send on b (whose actor cached them) is refused
    let gone = &senders[0];
    let r = a
        .chat(
            &owner,
            Method::POST,
            &format!("/chat/threads/{}/participants/:remove", enc(&t)),
            Some(json!({"communicationUser": {"id": gone.id}})),
        )
        .await;
    assert_eq!(r.status(), 204);
    for app in [b, c] {
        let r = app
            .chat(
                gone,
                Method::POST,
                &format!("/chat/threads/{}/messages", enc(&t)),
                Some(json!({"content": "still here?"})),
            )
            .await;
        assert_error(r, 403, "Forbidden").await;
    }
    // add on c: the new member's first send on b (whose cache does not have them) is accepted
    let newcomer = c.user().await;
    let r = c
        .chat(
            &owner,
            Method::POST,
            &format!("/chat/threads/{}/participants/:add", enc(&t)),
            Some(json!({"participants": [participant(&newcomer.id)]})),
        )
        .await;
    assert_eq!(r.status(), 201);
    b.send(&newcomer, &t, "hello from the newcomer").await;

    // idempotent send on a, replayed on c
    let h = [("repeatability-request-id", "across-nodes")];
    let body = json!({"content": "exactly once"}).to_string();
    let p = format!("/chat/threads/{}/messages", enc(&t));
    let first = a
        .chat_raw(&owner.token, Method::POST, &p, Some(body.clone()), &h)
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = c
        .chat_raw(&owner.token, Method::POST, &p, Some(body), &h)
        .await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    let once = b
        .all_messages(&owner, &t, 200)
        .await
        .into_iter()
        .filter(|m| m["content"]["message"] == "exactly once")
        .count();
    assert_eq!(once, 1);

    // revoke on b: the next request with the old token is refused on a and c, although both
    // have just cached the identity as live
    let user = &senders[1];
    for app in [a, c] {
        let r = app
            .chat(
                user,
                Method::GET,
                &format!("/chat/threads/{}", enc(&t)),
                None,
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let r = b
        .signed(
            Method::POST,
            &format!(
                "/identities/{}/:revokeAccessTokens?api-version={IDENTITY_V}",
                enc(&user.id)
            ),
            "",
        )
        .await;
    assert_eq!(r.status(), 204);
    for app in [a, c] {
        let r = app
            .chat(
                user,
                Method::GET,
                &format!("/chat/threads/{}", enc(&t)),
                None,
            )
            .await;
        assert_eq!(r.status(), 401);
    }
    // the same for deleting an identity, on c, after a and b cached it
    let user = &senders[2];
    for app in [a, b] {
        let r = app
            .chat(
                user,
                Method::GET,
                &format!("/chat/threads/{}", enc(&t)),
                None,
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let r = c
        .signed(
            Method::DELETE,
            &format!("/identities/{}?api-version={IDENTITY_V}", enc(&user.id)),
            "",
        )
        .await;
    assert_eq!(r.status(), 204);
    for app in [a, b] {
        let r = app
            .chat(
                user,
                Method::GET,
                &format!("/chat/threads/{}", enc(&t)),
                None,
            )
            .await;
        assert_eq!(r.status(), 401);
    }
    drop(nodes);
}

/// §9.2.7: every node dispatches, yet each event reaches a subscription once in normal
/// operation; a subscription made on one node is used by the others (events sent there are
/// delivered too).
#[tokio::test]
async fn webhooks_are_delivered_once_by_a_cluster() {
    use serde_json::json;
    let Some((db, nats, prefix, _streams)) = services("webhooks_are_delivered_once_by_a_cluster")
    else {
        return;
    };
    let nodes: Vec<Node> = ["w1", "w2", "w3"]
        .iter()
        .map(|id| hook_node(&db, &nats, &prefix, id))
        .collect();
    let apps: Vec<TestApp> = nodes.iter().map(client_of).collect();
    let rx = crate::webhooks::Receiver::start();
    crate::webhooks::subscribe(
        &apps[0],
        "cluster-hook",
        json!({ "endpointUrl": rx.url, "includedEventTypes": ["ChatMessageReceivedInThread"] }),
        201,
    )
    .await;
    // the other nodes hear of it at once (and reread every 2 s anyway)
    tokio::time::sleep(Duration::from_millis(500)).await;
    let owner = apps[1].user().await;
    let t = apps[2].thread(&owner, &[]).await;
    let n = 30;
    for i in 0..n {
        apps[i % 3].send(&owner, &t, &format!("m{i}")).await;
    }
    rx.events_of("ChatMessageReceivedInThread", n).await;
    // time for any second attempt to show up
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let hits = rx.notifications();
    let mut ids: Vec<String> = hits
        .iter()
        .map(|h| h.event()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), n, "one notification per message");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "event ids are unique");
    drop(nodes);
}

/// §9.2.4 on the fast path of sends: a node's actor that wrote the thread last trusts where it
/// left it and its cached membership, and moves the thread's row without locking it first
/// (`Appends::trust_version`). A removal on another node moved both on; the removed user's
/// send on the trusting node must still be refused (403), found by the guarded move (its batch
/// ran again with reason `moved`), and the thread stays gapless for the others.
#[tokio::test]
async fn a_send_trusting_a_moved_membership_is_refused() {
    use reqwest::Method;
    use serde_json::json;
    let Some((db, nats, prefix, _streams)) =
        services("a_send_trusting_a_moved_membership_is_refused")
    else {
        return;
    };
    let nodes: Vec<Node> = ["trust-a", "trust-b"]
        .iter()
        .map(|id| start(&cluster_args(&db, &nats, &prefix, id)).expect("cluster node"))
        .collect();
    let (a, b) = (client_of(&nodes[0]), client_of(&nodes[1]));
    let owner = a.user().await;
    let gone = a.user().await;
    let t = a.thread(&owner, &[&gone]).await;
    // b's actor loads the thread and commits a send: it now trusts its hint
    b.send(&gone, &t, "warm").await;
    b.send(&owner, &t, "warm too").await;
    const RETRIES: &str = "confab_writer_batch_retries_total{reason=\"moved\"}";
    let before = metric(&nodes[1], RETRIES).await.unwrap_or(0.0);
    let r = a
        .chat(
            &owner,
            Method::POST,
            &format!("/chat/threads/{}/participants/:remove", enc(&t)),
            Some(json!({"communicationUser": {"id": gone.id}})),
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = b
        .chat(
            &gone,
            Method::POST,
            &format!("/chat/threads/{}/messages", enc(&t)),
            Some(json!({"content": "still here?"})),
        )
        .await;
    assert_error(r, 403, "Forbidden").await;
    assert!(
        metric(&nodes[1], RETRIES).await.unwrap_or(0.0) > before,
        "the trusting send's group was not refused by its guarded move"
    );
    b.send(&owner, &t, "after").await;
    let msgs = a.all_messages(&owner, &t, 50).await;
    let mut seqs: Vec<i64> = msgs
        .iter()
        .map(|m| m["sequenceId"].as_str().unwrap().parse().unwrap())
        .collect();
    seqs.sort();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert!(!msgs
        .iter()
        .any(|m| m["content"]["message"] == "still here?"));
    drop(nodes);
}

/// §9.2.7, a dead node's attempt: node A's attempt hangs at the endpoint and A is killed with
/// it in flight. Node B attempts the same delivery (same event id) once A's claim has ended:
/// not before the 30 s attempt timeout (A could still have been answered), soon after its
/// 35 s lease, and only once.
#[tokio::test]
async fn a_dead_nodes_webhook_attempt_is_taken_over() {
    use serde_json::json;
    let Some((db, nats, prefix, _streams)) = services("a_dead_nodes_webhook_attempt_is_taken_over")
    else {
        return;
    };
    let mut a = hook_node(&db, &nats, &prefix, "hook-a");
    let app_a = client_of(&a);
    let rx = crate::webhooks::Receiver::start();
    // every notification is held (A's attempt hangs) until told otherwise
    rx.delay(Duration::from_secs(600));
    crate::webhooks::subscribe(
        &app_a,
        "takeover-hook",
        json!({ "endpointUrl": rx.url, "includedEventTypes": ["ChatMessageReceivedInThread"] }),
        201,
    )
    .await;
    let owner = app_a.user().await;
    let t = app_a.thread(&owner, &[]).await;
    app_a.send(&owner, &t, "held").await;
    let first = rx
        .events_of("ChatMessageReceivedInThread", 1)
        .await
        .remove(0);
    let id = first.event()["id"].as_str().unwrap().to_string();

    let b = hook_node(&db, &nats, &prefix, "hook-b");
    rx.delay(Duration::ZERO);
    a.kill();
    let deadline = first.at + Duration::from_secs(60);
    let second = loop {
        let hits = rx.notifications();
        if let Some(h) = hits.get(1) {
            break h.clone();
        }
        assert!(
            Instant::now() < deadline,
            "node B never took the attempt over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(second.event()["id"], id.as_str(), "the same delivery");
    let after = second.at - first.at;
    assert!(
        after >= Duration::from_secs(30),
        "attempted again after {after:?}, while A's attempt could still be answered"
    );
    assert!(
        after < Duration::from_secs(45),
        "taken over after {after:?}"
    );
    eprintln!("node A's attempt taken over by node B after {after:?}");
    // and no third attempt: B's succeeded
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rx.notifications().len(), 2, "{:#?}", rx.notifications());
    drop(b);
}

/// §9.2.3 and 4: 4 senders on 3 nodes into one thread; each member has a WebSocket on every
/// node, and every one of those sessions receives every message once, in sequenceId order.
/// A cursor issued by node A resumes on node C with exactly what was missed. A revoke on one
/// node closes the user's sessions on the others with 4003 within 2 s.
#[tokio::test]
async fn events_reach_every_node_once_in_order() {
    use crate::realtime::Ws;
    use serde_json::Value;
    let Some((db, nats, prefix, _streams)) = services("events_reach_every_node_once_in_order")
    else {
        return;
    };
    let nodes = three_nodes(&db, &nats, &prefix);
    let apps: Vec<TestApp> = nodes.iter().map(client_of).collect();
    let owner = apps[0].user().await;
    let members = [
        apps[0].user().await,
        apps[1].user().await,
        apps[2].user().await,
    ];
    let t = apps[1]
        .thread(&owner, &members.iter().collect::<Vec<_>>())
        .await;
    // every member on every node
    let mut sessions = Vec::new();
    for m in &members {
        for app in &apps {
            sessions.push(Ws::connect(app, m, None).await);
        }
    }
    let per = 15;
    let mut senders: Vec<User> = members.to_vec();
    senders.push(owner.clone());
    burst(&apps, &senders, &t, per).await;
    let total = senders.len() * per;
    let mut last_cursor = String::new();
    for (k, ws) in sessions.iter_mut().enumerate() {
        let mut seqs = Vec::new();
        while seqs.len() < total {
            let e = ws.event().await;
            if e["type"] != "chatMessageReceived" {
                continue;
            }
            assert_eq!(e["data"]["threadId"], t.as_str(), "{e}");
            seqs.push(
                e["data"]["sequenceId"]
                    .as_str()
                    .unwrap()
                    .parse::<i64>()
                    .unwrap(),
            );
            if k == 0 {
                last_cursor = e["cursor"].as_str().unwrap().to_string();
            }
        }
        let mut sorted = seqs.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(seqs, sorted, "session {k}: once each, in sequenceId order");
        ws.nothing_for(300).await;
    }

    // member 0's cursor from node A (sessions[0]), resumed on node C after 3 sends on node B
    drop(sessions);
    let mut missed = Vec::new();
    for i in 0..3 {
        missed.push(apps[1].send(&owner, &t, &format!("missed {i}")).await);
    }
    let mut ws = Ws::connect(&apps[2], &members[0], Some(&last_cursor)).await;
    assert_eq!(ws.connected["data"]["recovered"], true, "{}", ws.connected);
    let mut got = Vec::new();
    while got.len() < missed.len() {
        let e: Value = ws.event().await;
        assert_eq!(e["type"], "chatMessageReceived", "{e}");
        got.push(e["data"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(got, missed);
    ws.nothing_for(300).await;

    // revoke on node A closes member 0's session on node C
    let started = std::time::Instant::now();
    let r = apps[0]
        .signed(
            reqwest::Method::POST,
            &format!(
                "/identities/{}/:revokeAccessTokens?api-version={IDENTITY_V}",
                enc(&members[0].id)
            ),
            "",
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(ws.close_code().await, 4003);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(nodes);
}

/// A batch of big messages reaches the other nodes: the events of one commit are split over
/// log messages that NATS accepts (1 MiB each at most by default), where one row of them all
/// could never be published and held up every event after it.
#[tokio::test]
async fn a_batch_of_big_messages_crosses_nodes() {
    use crate::realtime::Ws;
    let Some((db, nats, prefix, _streams)) = services("a_batch_of_big_messages_crosses_nodes")
    else {
        return;
    };
    let nodes = three_nodes(&db, &nats, &prefix);
    let apps: Vec<TestApp> = nodes.iter().map(client_of).collect();
    let owner = apps[0].user().await;
    let reader = apps[0].user().await;
    let t = apps[0].thread(&owner, &[&reader]).await;
    let mut ws = Ws::connect(&apps[1], &reader, None).await;
    // 96 sends of 28,000 bytes at once through one node: its thread actor and writer commit
    // most of them together, 2.6 MB of events
    let n = 96;
    let contents: Vec<String> = (0..n)
        .map(|i| format!("{i:02} {}", "x".repeat(27_997)))
        .collect();
    futures_util::future::join_all(contents.iter().map(|c| apps[0].send(&owner, &t, c))).await;
    let mut got = std::collections::BTreeSet::new();
    while got.len() < n {
        let e = ws.event().await;
        if e["type"] != "chatMessageReceived" {
            continue;
        }
        let content = e["data"]["message"].as_str().unwrap_or_default();
        assert_eq!(
            content.len(),
            28_000,
            "{}",
            &content[..content.len().min(80)]
        );
        got.insert(content[..2].to_string());
    }
    assert_eq!(got.len(), n);
    ws.nothing_for(300).await;
    drop(nodes);
}

/// The event log's messages are compressed only while every live node reads them: with a
/// node of an earlier version in the node table (an entry without `reads`, as such a node puts
/// it) the relay publishes plain rows, and compressed ones again once that node has left. A
/// member on another node gets every message either way.
#[tokio::test]
async fn the_log_is_compressed_only_when_every_node_reads_it() {
    use crate::realtime::Ws;
    let Some((db, nats, prefix, _streams)) =
        services("the_log_is_compressed_only_when_every_node_reads_it")
    else {
        return;
    };
    let n1 = start(&cluster_args(&db, &nats, &prefix, "n1")).expect("node n1");
    let n2 = start(&cluster_args(&db, &nats, &prefix, "n2")).expect("node n2");
    let apps = [client_of(&n1), client_of(&n2)];
    let owner = apps[0].user().await;
    let reader = apps[0].user().await;
    let t = apps[0].thread(&owner, &[&reader]).await;
    let mut ws = Ws::connect(&apps[1], &reader, None).await;
    let js = async_nats::jetstream::new(async_nats::connect(&nats).await.unwrap());
    let table = js.get_key_value(format!("{prefix}_nodes")).await.unwrap();
    let log = js.get_stream(format!("{prefix}_events")).await.unwrap();
    let subject = format!("{prefix}.events");
    // what the relay publishes a send as, once both nodes see `nodes` entries
    async fn format_of_a_send(
        app: &TestApp,
        ws: &mut Ws,
        nodes: &[&Node],
        live: f64,
        who: (&User, &str),
        log: &async_nats::jetstream::stream::Stream,
        subject: &str,
    ) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        for node in nodes {
            while metric(node, "confab_cluster_nodes").await != Some(live) {
                assert!(
                    Instant::now() < deadline,
                    "the node table never showed {live}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // (a heartbeat reads the table after the metric's: let both pass)
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let id = app.send(who.0, who.1, &format!("{live} nodes")).await;
        loop {
            let e = ws.event().await;
            if e["type"] == "chatMessageReceived" {
                assert_eq!(e["data"]["id"], id.as_str(), "{e}");
                break;
            }
        }
        let m = log.get_last_raw_message_by_subject(subject).await.unwrap();
        let format = m
            .headers
            .get("Confab-Format")
            .map(|v| v.as_str().to_string());
        format.unwrap_or_default()
    }
    let nodes = [&n1, &n2];
    let with_two = format_of_a_send(&apps[0], &mut ws, &nodes, 2.0, (&owner, &t), &log, &subject);
    assert_eq!(with_two.await, "rows-lz4");
    // a node of an earlier version joins: its entry, put every heartbeat as it would
    let old = serde_json::json!({
        "id": "old", "address": "http://127.0.0.1:9", "startedAt": 1, "sessions": 0,
        "threadActors": 0, "heartbeatAt": 1
    });
    let beating = {
        let table = table.clone();
        tokio::spawn(async move {
            loop {
                let body = serde_json::to_vec(&old).unwrap();
                table.put("old", body.into()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let with_old = format_of_a_send(&apps[0], &mut ws, &nodes, 3.0, (&owner, &t), &log, &subject);
    assert_eq!(with_old.await, "rows");
    // it leaves
    beating.abort();
    let _ = beating.await;
    table.purge("old").await.unwrap();
    let after = format_of_a_send(&apps[0], &mut ws, &nodes, 2.0, (&owner, &t), &log, &subject);
    assert_eq!(after.await, "rows-lz4");
    ws.nothing_for(300).await;
    drop((n1, n2));
}

/// §10 in cluster mode: read markers, unread counts, previews and translations behave the same
/// on every node. A reader on two nodes sees what was sent on a third; its read receipt on one
/// node moves the marker for every node (`readMarkerUpdated` on both sessions, the counts on
/// the third); a `?lang=` session on one node gets `chatMessageTranslated` for a message sent on
/// another; an edit on one node makes another node translate the new version, not serve the
/// old one from its cache.
#[tokio::test]
async fn extensions_behave_the_same_on_every_node() {
    use crate::extensions::{listed, next_of, read, translate, translator_args};
    use crate::realtime::Ws;
    use crate::standins::{Mode, Standin};
    use serde_json::{json, Value};
    let Some((db, nats, prefix, _streams)) = services("extensions_behave_the_same_on_every_node")
    else {
        return;
    };
    let s = Standin::start(Mode::Libre);
    let translator = translator_args(&s, "libretranslate");
    let nodes: Vec<Node> = ["x1", "x2", "x3"]
        .iter()
        .map(|id| {
            let mut args = cluster_args(&db, &nats, &prefix, id);
            args.extend(translator.iter().map(String::as_str));
            start(&args).expect("cluster node")
        })
        .collect();
    let apps: Vec<TestApp> = nodes.iter().map(client_of).collect();
    let (owner, reader) = (apps[0].user().await, apps[0].user().await);
    let t = apps[0].thread(&owner, &[&owner, &reader]).await;
    let mut on_a = Ws::connect(&apps[0], &reader, None).await;
    let mut german_on_b = Ws::connect_with(&apps[1], &reader, "lang=de")
        .await
        .unwrap();

    // three messages sent on node C
    let mut ids = Vec::new();
    for text in ["first", "second", "third"] {
        ids.push(apps[2].send(&owner, &t, text).await);
    }
    for app in &apps {
        let item = listed(app, &reader, &t).await;
        assert_eq!(item["unreadCount"], 3, "{item}");
        assert_eq!(item["lastMessage"]["id"], ids[2].as_str(), "{item}");
        assert_eq!(item["lastMessage"]["preview"], "third", "{item}");
        assert_eq!(listed(app, &owner, &t).await["unreadCount"], 0);
    }
    // node B's German session: the originals in order, each translation after its original
    // (§10.3: an original never waits for a translation, so the next originals may come
    // first, e.g. when the sends arrive in one log message)
    let mut originals = Vec::new();
    let mut translated = std::collections::HashMap::new();
    while originals.len() < 3 || translated.len() < 3 {
        let e = german_on_b.event().await;
        let id = e["data"]["id"].as_str().unwrap_or_default().to_string();
        match e["type"].as_str() {
            Some("chatMessageReceived") => originals.push(id),
            Some("chatMessageTranslated") => {
                assert!(
                    originals.contains(&id),
                    "translation before its original: {e}"
                );
                assert_eq!(e["data"]["to"], "de");
                translated.insert(id, e["data"]["text"].clone());
            }
            _ => {}
        }
    }
    assert_eq!(originals, ids);
    for (id, text) in ids.iter().zip(["first", "second", "third"]) {
        assert_eq!(translated[id], format!("[de] {text}"));
    }

    // the reader reads up to the second message on node A
    read(&apps[0], &reader, &t, &ids[1]).await;
    for ws in [&mut on_a, &mut german_on_b] {
        let e = next_of(ws, "readMarkerUpdated").await;
        assert_eq!(e["data"]["threadId"], t.as_str(), "{e}");
        assert_eq!(e["data"]["chatMessageId"], ids[1].as_str(), "{e}");
    }
    for app in &apps {
        assert_eq!(listed(app, &reader, &t).await["unreadCount"], 1);
    }
    // a read of an older message on node C does not move the marker back, on any node
    read(&apps[2], &reader, &t, &ids[0]).await;
    for app in &apps {
        assert_eq!(listed(app, &reader, &t).await["unreadCount"], 1);
    }

    // translation on demand: node B translates and caches; an edit on node A; node B (and C)
    // translate the new version
    let asked = |n: usize| {
        s.seen()
            .iter()
            .filter(|h| h.json()["target"] == "fr")
            .count()
            == n
    };
    for _ in 0..2 {
        let r = translate(&apps[1], &reader, &t, &ids[0], "fr").await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["text"], "[fr] first");
    }
    assert!(asked(1), "node B's second request came from its cache");
    let r = apps[0]
        .chat(
            &owner,
            reqwest::Method::PATCH,
            &format!("/chat/threads/{}/messages/{}", enc(&t), ids[0]),
            Some(json!({"content": "premier"})),
        )
        .await;
    assert_eq!(r.status(), 204);
    for app in [&apps[1], &apps[2]] {
        let r = translate(app, &reader, &t, &ids[0], "fr").await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["text"], "[fr] premier", "{v}");
    }
    assert!(asked(3), "each node translated the edited version once");
    drop(nodes);
}

/// §9.2.6: a node is killed (SIGKILL) during a burst. Its sender moves to another node (the
/// send whose answer was lost is retried with its repeatability-request-id); the thread is
/// writable there at once; its client resumes on a third node with its cursor; nothing is lost
/// or duplicated, and a session on a surviving node gets every message once, in order,
/// including those the dead node committed (whether or not it was the relay).
#[tokio::test]
async fn a_node_dies_during_a_burst() {
    use crate::realtime::Ws;
    use std::time::Instant;
    let Some((db, nats, prefix, _streams)) = services("a_node_dies_during_a_burst") else {
        return;
    };
    // the first node is the relay's leader (it started first)
    let mut nodes = three_nodes(&db, &nats, &prefix);
    let apps: Vec<TestApp> = nodes.iter().map(client_of).collect();
    let owner = apps[1].user().await;
    let (m, w) = (apps[1].user().await, apps[1].user().await);
    let t = apps[1].thread(&owner, &[&m, &w]).await;
    let mut on_dead = Ws::connect(&apps[0], &m, None).await;
    let mut watcher = Ws::connect(&apps[1], &w, None).await;
    let mut cursor = on_dead.connected["cursor"].as_str().unwrap().to_string();

    let total = 60;
    let kill_at = 20;
    let client = reqwest::Client::new();
    let mut acked = Vec::new();
    let mut base = apps[0].base.clone();
    let mut killed_at = None;
    let mut writable_after = None;
    let mut parallel = Vec::new();
    for i in 0..total {
        if i == kill_at {
            // sends in flight on the node as it dies; each retries elsewhere with its key
            for k in 0..8 {
                let (bases, owner, t) = (
                    [apps[0].base.clone(), apps[1].base.clone()],
                    owner.clone(),
                    t.clone(),
                );
                parallel.push(tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    for base in bases.iter().cycle().take(200) {
                        let r = client
                            .post(format!(
                                "{base}/chat/threads/{}/messages?api-version={CHAT_V}",
                                enc(&t)
                            ))
                            .bearer_auth(&owner.token)
                            .header("repeatability-request-id", format!("in-flight-{k}"))
                            .json(&serde_json::json!({ "content": format!("p{k}") }))
                            .send()
                            .await;
                        if let Ok(r) = r {
                            if r.status() == 201 {
                                let v: serde_json::Value = r.json().await.unwrap();
                                return v["id"].as_str().unwrap().to_string();
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    panic!("in-flight send {k} never acknowledged");
                }));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            nodes[0].kill();
            killed_at = Some(Instant::now());
        }
        loop {
            let r = client
                .post(format!(
                    "{base}/chat/threads/{}/messages?api-version={CHAT_V}",
                    enc(&t)
                ))
                .bearer_auth(&owner.token)
                .header("repeatability-request-id", format!("burst-{i}"))
                .json(&serde_json::json!({ "content": format!("m{i}") }))
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 201 => {
                    let v: serde_json::Value = r.json().await.unwrap();
                    acked.push(v["id"].as_str().unwrap().to_string());
                    if let (Some(k), None) = (killed_at, writable_after) {
                        writable_after = Some(k.elapsed());
                    }
                    break;
                }
                Ok(r) if r.status() == 503 => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(r) => panic!("{}: {}", r.status(), r.text().await.unwrap()),
                // the node is gone: go to another one
                Err(_) => base = apps[1].base.clone(),
            }
        }
        if i < kill_at {
            // the session on the doomed node reads as it goes, keeping its cursor
            loop {
                let e = on_dead.event().await;
                if e["type"] == "chatMessageReceived" {
                    cursor = e["cursor"].as_str().unwrap().to_string();
                    break;
                }
            }
        }
    }
    let writable_after = writable_after.unwrap();
    assert!(
        writable_after < Duration::from_secs(10),
        "{writable_after:?}"
    );
    assert_eq!(acked.len(), total);
    let mut in_flight = Vec::new();
    for p in parallel {
        in_flight.push(p.await.unwrap());
    }
    let total = total + in_flight.len();
    // every message after the doomed session's cursor, and every message
    let after: std::collections::BTreeSet<String> =
        acked[kill_at..].iter().chain(&in_flight).cloned().collect();
    let all: std::collections::BTreeSet<String> = acked.iter().chain(&in_flight).cloned().collect();

    // the client of the dead node resumes on the third node
    let mut resumed = Ws::connect(&apps[2], &m, Some(&cursor)).await;
    assert_eq!(
        resumed.connected["data"]["recovered"], true,
        "{}",
        resumed.connected
    );
    // each session: message events once each, in sequenceId order
    async fn read(ws: &mut Ws, n: usize) -> std::collections::BTreeSet<String> {
        let (mut ids, mut seqs) = (Vec::new(), Vec::new());
        while ids.len() < n {
            let e = ws.event().await;
            if e["type"] == "chatMessageReceived" {
                ids.push(e["data"]["id"].as_str().unwrap().to_string());
                seqs.push(
                    e["data"]["sequenceId"]
                        .as_str()
                        .unwrap()
                        .parse::<i64>()
                        .unwrap(),
                );
            }
        }
        ws.nothing_for(300).await;
        assert!(seqs.windows(2).all(|p| p[0] < p[1]), "in order: {seqs:?}");
        let set: std::collections::BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(set.len(), ids.len(), "once each");
        set
    }
    assert_eq!(
        read(&mut resumed, after.len()).await,
        after,
        "the rest, resumed"
    );
    // the watcher on a surviving node saw all of them
    assert_eq!(read(&mut watcher, total).await, all);
    // and the thread has exactly those messages, gapless
    let msgs = apps[2].all_messages(&owner, &t, 200).await;
    let texts = msgs.iter().filter(|m| m["type"] == "text").count();
    assert_eq!(texts, total);
    let mut seqs: Vec<i64> = msgs
        .iter()
        .map(|m| m["sequenceId"].as_str().unwrap().parse().unwrap())
        .collect();
    seqs.sort();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    drop(nodes);
}

/// A NATS server of the test's own, on a free port, with JetStream in a temporary directory;
/// stopped (SIGKILL) when dropped.
struct OwnNats {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl OwnNats {
    fn start() -> Option<OwnNats> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut n = OwnNats {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
        };
        n.resume().then_some(n)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, on the same port and store); false if there is no nats-server.
    fn resume(&mut self) -> bool {
        let Ok(child) = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            return false;
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// §9.2.8: NATS goes away under two nodes. `/readyz` says `nats`; REST keeps working; the
/// events committed meanwhile reach the other node's session, in order, once NATS is back.
#[tokio::test]
async fn nats_goes_away_and_comes_back() {
    use crate::realtime::Ws;
    let Some((db, _shared, prefix, _streams)) = services("nats_goes_away_and_comes_back") else {
        return;
    };
    let Some(mut nats) = OwnNats::start() else {
        eprintln!("nats_goes_away_and_comes_back: no nats-server binary: skipped");
        return;
    };
    let url = nats.url();
    let nodes: Vec<Node> = ["o1", "o2"]
        .iter()
        .map(|id| start(&cluster_args(&db, &url, &prefix, id)).expect("cluster node"))
        .collect();
    let apps: Vec<TestApp> = nodes.iter().map(client_of).collect();
    let owner = apps[0].user().await;
    let m = apps[0].user().await;
    let t = apps[0].thread(&owner, &[&m]).await;
    let mut ws = Ws::connect(&apps[1], &m, None).await;
    let before = apps[0].send(&owner, &t, "before").await;
    loop {
        let e = ws.event().await;
        if e["type"] == "chatMessageReceived" {
            assert_eq!(e["data"]["id"], before.as_str());
            break;
        }
    }

    nats.stop();
    let readyz = |n: &Node| {
        let base = n.base.clone();
        async move {
            let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v) = readyz(&nodes[0]).await;
        if s == 503 {
            assert_eq!(v["reason"], "nats", "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "/readyz never said nats");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // REST goes on against PostgreSQL
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(apps[0].send(&owner, &t, &format!("while away {i}")).await);
    }
    assert_eq!(
        apps[1]
            .all_messages(&m, &t, 50)
            .await
            .iter()
            .filter(|x| x["type"] == "text")
            .count(),
        6
    );

    assert!(nats.resume());
    let back = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while readyz(&nodes[1]).await.0 != 200 {
        assert!(Instant::now() < deadline, "/readyz stayed 503");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("reconnected after {:?}", back.elapsed());
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let e = ws.event().await;
        if e["type"] == "chatMessageReceived" {
            got.push(e["data"]["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(got, sent, "delivered in order once NATS is back");
    let deadline = Instant::now() + Duration::from_secs(15);
    while readyz(&nodes[0]).await.0 != 200 {
        assert!(Instant::now() < deadline, "/readyz stayed 503");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = apps[0].send(&owner, &t, "after").await;
    loop {
        let e = ws.event().await;
        if e["type"] == "chatMessageReceived" {
            assert_eq!(e["data"]["id"], after.as_str());
            break;
        }
    }
    drop(nodes);
}
