//! `confab-bench`: confab's load tool. Each scenario creates its own identities and threads
//! through the API, drives load from worker threads (one actix system and awc client each),
//! measures throughput and latency (HDR histograms) and prints one summary line per phase.
//!
//! Without `--url` it starts a confab of its own (the `confab` binary next to this one) on a
//! fresh SQLite data directory with `synchronous=FULL`, rate limits off, and measures that
//! process's RSS.

mod client;
mod scenarios;
mod stats;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "confab-bench",
    about = "Load scenarios for confab; one summary line per phase"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args, Clone)]
pub struct Common {
    /// confab's HTTP base URL; without it a confab is started for the run
    #[arg(long, global = true)]
    url: Option<String>,
    /// Access key (base64) for identity requests
    #[arg(long, global = true, default_value = confab::config::DEV_ACCESS_KEY)]
    key: String,
    /// PID of the server, for RSS sampling (known when the tool starts confab itself)
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Print the server's RSS every this many seconds during the run, and its growth after
    /// warm-up at the end (a soak: `--duration 1800 --rss-every 60 mixed …`)
    #[arg(long, global = true)]
    rss_every: Option<f64>,
    /// Seconds each measured phase runs
    #[arg(long, global = true, default_value_t = 10.0)]
    duration: f64,
    /// Load-generator worker threads
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,
    /// Extra flags for the confab the tool starts (repeatable), e.g. --server-arg=--workers=1
    #[arg(long = "server-arg", global = true, allow_hyphen_values = true)]
    server_args: Vec<String>,
}

#[derive(Subcommand, Clone)]
pub enum Scenario {
    /// PostgreSQL's own single-row commit rate (no confab): the anchor for `send` with
    /// `--server-arg=--database-url=…`
    #[cfg(feature = "postgres")]
    PgCeiling {
        /// PostgreSQL URL; a table `confab_pg_ceiling` is created there and dropped after
        #[arg(long)]
        database_url: String,
        /// Concurrent clients, one connection each
        #[arg(long, default_value_t = 16)]
        clients: usize,
    },
    /// Several nodes on one PostgreSQL and one NATS (started here): cross-node latency at a
    /// light rate, the delivery rate at saturation, and sends spread over the nodes.
    #[cfg(feature = "postgres")]
    Cluster {
        /// PostgreSQL database the nodes share (use a fresh one)
        #[arg(long)]
        database_url: String,
        /// NATS server with JetStream the nodes share
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        /// nodes started, each its own process
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// members of the fanout thread (spread over the nodes)
        #[arg(long, default_value_t = 30)]
        members: usize,
        /// send loops of the saturation phase
        #[arg(long, default_value_t = 8)]
        senders: usize,
        /// messages per second of the latency phase
        #[arg(long, default_value_t = 20.0)]
        light_rate: f64,
        /// senders of the send phase
        #[arg(long = "send-senders", default_value_t = 64)]
        send_senders: usize,
        /// two-member threads of the send phase
        #[arg(long = "chat-threads", default_value_t = 1000)]
        chat_threads: usize,
        /// The send phase alone, on nodes that share nothing but the PostgreSQL server: each a
        /// standalone confab on a schema of its own (`apart0`, `apart1`, …, made afresh), no
        /// NATS, each sender's identity and threads on the node it sends through. What that
        /// many processes reach on this machine when they coordinate nothing: with the same
        /// flags, the ceiling of any cluster design here
        #[arg(long)]
        apart: bool,
    },
    /// GET /livez over keep-alive: the HTTP stack's ceiling
    Noop {
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Persisted sends: POST messages, 201 after commit, spread over many threads; preceded by
    /// a noop phase of the same concurrency for the ratio
    Send {
        #[arg(long, default_value_t = 64)]
        senders: usize,
        #[arg(long = "chat-threads", default_value_t = 1000)]
        chat_threads: usize,
    },
    /// One thread, N WebSocket members, senders posting; counts deliveries and losses
    Fanout {
        #[arg(long, default_value_t = 250)]
        members: usize,
        /// Concurrent sending loops
        #[arg(long, default_value_t = 8)]
        senders: usize,
        /// Messages per second in total (0 = as fast as confab accepts them)
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
    },
    /// Many idle WebSocket sessions; server RSS growth per session
    Connections {
        #[arg(long, default_value_t = 50_000)]
        count: usize,
        /// Sessions per identity
        #[arg(long, default_value_t = 1)]
        per_user: usize,
    },
    /// Parked long-polls; a message per thread every interval; delivery latency
    Longpoll {
        #[arg(long, default_value_t = 10_000)]
        pollers: usize,
        /// Seconds between rounds of sends
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
    /// One user in many threads lists them (unread counts, previews), page by page
    Inbox {
        #[arg(long = "chat-threads", default_value_t = 1000)]
        chat_threads: usize,
        #[arg(long = "page-size", default_value_t = 100)]
        page_size: usize,
        /// Concurrent listing loops
        #[arg(long, default_value_t = 4)]
        readers: usize,
    },
    /// The admin dashboard's pages with many threads and 30 days of usage: time per page
    /// (the confab started here samples every 100 ms; with --url give --admin-url and
    /// --database-url)
    Dashboard {
        #[arg(long = "chat-threads", default_value_t = 10_000)]
        chat_threads: usize,
        /// Requests per page
        #[arg(long, default_value_t = 200)]
        rounds: usize,
        /// The dashboard's base URL (known when the tool starts confab itself)
        #[arg(long)]
        admin_url: Option<String>,
        /// The database confab uses (known when the tool starts confab itself)
        #[arg(long)]
        database_url: Option<String>,
        /// Seconds after the start to wait, so that the charts draw a full history (360
        /// samples 100 ms apart)
        #[arg(long, default_value_t = 37.0)]
        history_wait: f64,
    },
    /// Sends, WebSocket and long-poll receivers and reads together, at a moderate rate
    Mixed {
        #[arg(long = "chat-threads", default_value_t = 100)]
        chat_threads: usize,
        /// Messages per second per thread
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
    },
}

/// A confab started for the run, stopped when dropped.
struct OwnServer {
    child: Child,
    dir: tempfile::TempDir,
    /// The dashboard's base URL, from the banner.
    admin: Option<String>,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(extra: &[String]) -> Result<(OwnServer, String), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let confab = exe.with_file_name("confab");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut child = Command::new(&confab)
        .arg("serve")
        .args([
            "--http-port",
            "0",
            "--no-tls",
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .args(["--rate-limit-profile", "off", "--log", "warn"])
        .args(["--realtime-max-connections-per-user", "1000000"])
        .arg("--data-dir")
        .arg(dir.path())
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {}: {e} (build it: cargo build --release)",
                confab.display()
            )
        })?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut base = None;
    for line in lines.by_ref() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim_start().starts_with("http ") {
            base = line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(|u| u.trim_end_matches('/').to_string());
            break;
        }
    }
    // `  dashboard : http://…/   metrics: http://…/metrics` follows
    let mut admin = None;
    for line in lines.by_ref().take(4) {
        let line = line.map_err(|e| e.to_string())?;
        if let Some(m) = line.split("metrics: ").nth(1) {
            admin = m.trim().strip_suffix("/metrics").map(str::to_string);
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let base = base.ok_or("confab printed no http address")?;
    Ok((OwnServer { child, dir, admin }, base))
}

/// Deletes what the `cluster` run's nodes made on NATS: their event log (`<prefix>_events`) and
/// node table (`KV_<prefix>_nodes`). Each run has a prefix of its own and a log keeps its
/// events for the resume window, so runs against a shared NATS would otherwise pile up
/// streams (20 runs left 451 MB on one).
#[cfg(feature = "postgres")]
fn forget_streams(nats_url: &str, prefix: &str) {
    let servers = confab::cluster::servers(nats_url);
    let names = confab::cluster::streams(prefix);
    let gone = actix_web::rt::System::new().block_on(async move {
        let client = async_nats::connect(servers?)
            .await
            .map_err(|e| e.to_string())?;
        let js = async_nats::jetstream::new(client);
        for name in &names {
            js.delete_stream(name)
                .await
                .map_err(|e| format!("{name}: {e}"))?;
        }
        Ok::<_, String>(names)
    });
    match gone {
        Ok(names) => eprintln!(
            "confab-bench: deleted {} on {nats_url}",
            names.join(" and ")
        ),
        Err(e) => eprintln!("confab-bench: cannot delete the run's streams on {nats_url}: {e}"),
    }
}

/// Raises the open-file limit as far as allowed (the server started here inherits it).
fn raise_nofile() {
    let want = 1 << 20;
    if rlimit::setrlimit(rlimit::Resource::NOFILE, want, want).is_err() {
        let _ = rlimit::increase_nofile_limit(want);
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    raise_nofile();
    let mut common = cli.common.clone();
    #[cfg(feature = "postgres")]
    if let Scenario::PgCeiling {
        database_url,
        clients,
    } = &cli.scenario
    {
        let took = Duration::from_secs_f64(common.duration);
        return match scenarios::pg_ceiling(database_url, *clients, took) {
            Ok(()) if !scenarios::failed() => std::process::ExitCode::SUCCESS,
            Ok(()) => std::process::ExitCode::FAILURE,
            Err(e) => {
                eprintln!("confab-bench: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    #[cfg(feature = "postgres")]
    if let Scenario::Cluster {
        database_url,
        nats_url,
        nodes,
        members,
        senders,
        light_rate,
        send_senders,
        chat_threads,
        apart,
    } = &cli.scenario
    {
        let prefix = format!("bench{}", std::process::id());
        let mut own = Vec::new();
        let mut bases = Vec::new();
        for i in 0..*nodes {
            let mut args = common.server_args.clone();
            if *apart {
                match scenarios::apart_schema(database_url, i) {
                    Ok(url) => args.extend(["--database-url".to_string(), url]),
                    Err(e) => {
                        eprintln!("confab-bench: {e}");
                        return std::process::ExitCode::FAILURE;
                    }
                }
            } else {
                let id = format!("bench-{i}");
                args.extend(
                    [
                        "--database-url",
                        database_url,
                        "--nats-url",
                        nats_url,
                        "--nats-prefix",
                        &prefix,
                        "--node-id",
                        &id,
                    ]
                    .map(String::from),
                );
            }
            match start_server(&args) {
                Ok((s, base)) => {
                    own.push(s);
                    bases.push(base);
                }
                Err(e) => {
                    eprintln!("confab-bench: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
        eprintln!(
            "confab-bench: {} nodes {} {}",
            bases.len(),
            bases.join(" "),
            if *apart {
                "apart (a schema each, no NATS)".to_string()
            } else {
                format!("on {nats_url}")
            }
        );
        common.url = Some(bases[0].clone());
        let ctx = scenarios::Ctx::new(&common);
        let load = scenarios::ClusterLoad {
            members: *members,
            senders: *senders,
            light_rate: *light_rate,
            send_senders: *send_senders,
            chat_threads: *chat_threads,
        };
        let r = if *apart {
            scenarios::apart(&ctx, &bases, &load)
        } else {
            scenarios::cluster(&ctx, &bases, &load)
        };
        drop(own);
        if !*apart {
            forget_streams(nats_url, &prefix);
        }
        return match r {
            Ok(()) if !scenarios::failed() => std::process::ExitCode::SUCCESS,
            Ok(()) => {
                eprintln!("confab-bench: errors or lost events (see above)");
                std::process::ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("confab-bench: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if matches!(cli.scenario, Scenario::Dashboard { .. }) {
        common
            .server_args
            .insert(0, "--dashboard-sample-interval=100ms".to_string());
    }
    let started_at = std::time::Instant::now();
    let _own = match &common.url {
        Some(_) => None,
        None => match start_server(&common.server_args) {
            Ok((s, base)) => {
                common.server_pid = Some(s.child.id());
                common.url = Some(base);
                Some(s)
            }
            Err(e) => {
                eprintln!("confab-bench: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
    };
    let (files, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((0, 0));
    eprintln!(
        "confab-bench: {} (server pid {:?}, {} load threads, open-file limit {files})",
        common.url.as_deref().unwrap_or_default(),
        common.server_pid,
        common.threads
    );
    let ctx = scenarios::Ctx::new(&common);
    let watch = match (common.rss_every, common.server_pid) {
        (Some(every), Some(pid)) => Some(stats::RssWatch::start(
            pid,
            Duration::from_secs_f64(every.max(1.0)),
        )),
        (Some(_), None) => {
            eprintln!("confab-bench: --rss-every needs the server's pid (--server-pid)");
            None
        }
        _ => None,
    };
    let r = match cli.scenario {
        Scenario::Noop { concurrency } => scenarios::noop(&ctx, concurrency),
        Scenario::Send {
            senders,
            chat_threads,
        } => scenarios::send(&ctx, senders, chat_threads),
        Scenario::Fanout {
            members,
            senders,
            rate,
        } => scenarios::fanout(&ctx, members, senders, rate),
        Scenario::Connections { count, per_user } => scenarios::connections(&ctx, count, per_user),
        Scenario::Longpoll { pollers, interval } => {
            scenarios::longpoll(&ctx, pollers, Duration::from_secs_f64(interval))
        }
        Scenario::Mixed { chat_threads, rate } => scenarios::mixed(&ctx, chat_threads, rate),
        Scenario::Inbox {
            chat_threads,
            page_size,
            readers,
        } => scenarios::inbox(&ctx, chat_threads, page_size, readers),
        Scenario::Dashboard {
            chat_threads,
            rounds,
            admin_url,
            database_url,
            history_wait,
        } => {
            let own = _own.as_ref();
            let admin = admin_url.or_else(|| own.and_then(|s| s.admin.clone()));
            // the server's --database-url, else its SQLite file
            let database = database_url
                .or_else(|| {
                    common
                        .server_args
                        .iter()
                        .find_map(|a| a.strip_prefix("--database-url=").map(str::to_string))
                })
                .or_else(|| own.map(|s| confab::store::Store::sqlite_url(s.dir.path())));
            match (admin, database) {
                (Some(admin), Some(database)) => scenarios::dashboard(
                    &ctx,
                    &scenarios::DashboardLoad {
                        admin: &admin,
                        database: &database,
                        chat_threads,
                        rounds,
                        sampled_by: started_at + Duration::from_secs_f64(history_wait),
                    },
                ),
                _ => Err("dashboard: give --admin-url and --database-url with --url".into()),
            }
        }
        #[cfg(feature = "postgres")]
        Scenario::PgCeiling { .. } | Scenario::Cluster { .. } => {
            unreachable!("run before any server is started")
        }
    };
    if let Some(w) = watch {
        w.finish();
    }
    match r {
        Ok(()) if scenarios::failed() => {
            eprintln!("confab-bench: errors or lost events (see above)");
            std::process::ExitCode::FAILURE
        }
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("confab-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
