//! Cluster mode (contract §9) with real nodes: `confab serve` processes on one PostgreSQL
//! schema and one NATS. Each test uses its own schema and its own `--nats-prefix`, so tests
//! run side by side on the shared servers. They skip (and say so) unless both
//! `CONFAB_TEST_DATABASE_URL` and `CONFAB_TEST_NATS_URL` are set; CI sets both.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_confab");

/// PostgreSQL and NATS for a cluster test: a fresh schema's URL, the NATS URL and a fresh
/// prefix; `None` (the test skips) unless both are configured.
fn services(test: &str) -> Option<(String, String, String)> {
    let db = std::env::var("CONFAB_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let nats = std::env::var("CONFAB_TEST_NATS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    match (db, nats) {
        (Some(db), Some(nats)) => {
            let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            Some((postgres_schema(&db), nats, prefix))
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
    let Some((db, _nats, prefix)) = services("unreachable_nats_at_start_exits_2_after_30_s") else {
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
    let Some((db, nats, prefix)) = services("start_up_rules_and_the_node_table") else {
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
    drop_streams(&nats, &prefix).await;
}
