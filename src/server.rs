//! Composition: opens the store, starts the hub, builds each layer's state from its own
//! handles, binds the public and admin listeners (the API's routes on both, the dashboard's on
//! the admin one), and prints the banner.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix::Actor;
use actix_web::{middleware, web, App, HttpServer};

use crate::auth::hmac::AccessKeys;
use crate::auth::token::{derive_secret, Tokens};
use crate::auth::Auth;
use crate::cluster::{self, Cluster};
use crate::config::{self, Config};
use crate::dashboard::DashboardState;
use crate::hub::registry::{HubConfig, HubCtx, Registry};
use crate::request_log::RecentErrors;
use crate::state::AppState;
use crate::store::connection::SqliteSync;
use crate::store::Store;
use crate::{api, dashboard, events, housekeeping, hub, metrics, ratelimit, store, tls};

/// How long in-flight requests may take to finish at shutdown.
const SHUTDOWN_TIMEOUT_SECS: u64 = 30;
/// Dashboard points kept (one hour at the default 10 s sample interval).
const DASHBOARD_POINTS: usize = 360;

/// A started server: its bound addresses and the handles to stop or await it.
pub struct Running {
    /// The plain HTTP listener (`None` with `--no-http`).
    pub http_addr: Option<SocketAddr>,
    /// The HTTPS listener (`None` with `--no-tls`).
    pub https_addr: Option<SocketAddr>,
    /// The development CA clients must trust, when confab made its own certificate.
    pub ca_path: Option<std::path::PathBuf>,
    /// The admin listener (dashboard, `/metrics`).
    pub admin_addr: SocketAddr,
    /// Stops the admin listener (it runs on its own task).
    pub admin: actix_web::dev::ServerHandle,
    pub server: actix_web::dev::Server,
    pub state: web::Data<AppState>,
    pub dashboard: web::Data<DashboardState>,
    /// Where the data lives, for the banner (`./confab-data (sqlite)`).
    pub data_location: String,
    /// Kept alive for `--in-memory`; removed when the server is dropped.
    _temp_dir: Option<tempfile::TempDir>,
}

/// Storage, hub and shared state, before any listener is bound.
pub struct Opened {
    pub state: web::Data<AppState>,
    pub dashboard: web::Data<DashboardState>,
    pub data_location: String,
    /// Where files of this instance live (`--data-dir`, or the temporary one of `--in-memory`).
    pub files_dir: std::path::PathBuf,
    temp_dir: Option<tempfile::TempDir>,
}

/// Opens storage (applying migrations), starts the hub and builds the shared state, for a
/// standalone process (`token create`). Must run inside an actix system.
pub async fn open(config: Config) -> Result<Opened, String> {
    open_with(config, None).await
}

/// [`open`], for a node of the cluster `cluster` when it has one.
async fn open_with(config: Config, cluster: Option<Arc<Cluster>>) -> Result<Opened, String> {
    config.validate()?;
    // The webhook client's TLS uses the process default provider (ring, like the server).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sync = match config.sqlite_synchronous {
        config::SqliteSynchronous::Full => SqliteSync::Full,
        config::SqliteSynchronous::Normal => SqliteSync::Normal,
    };
    let (url, sync, data_location, temp_dir) = if let Some(db) = &config.database_url {
        let backend = store::Backend::from_url(db.expose())?;
        (
            db.expose().to_string(),
            sync,
            format!("database ({})", backend.name()),
            None,
        )
    } else if config.in_memory {
        let dir = tempfile::Builder::new()
            .prefix("confab-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let url = Store::sqlite_url(dir.path());
        let location = format!(
            "{} (sqlite, in-memory: removed at exit)",
            dir.path().display()
        );
        // Nothing is meant to survive: no fsync at all.
        (url, SqliteSync::Off, location, Some(dir))
    } else {
        if let Some(warning) = crate::datadir::prepare(&config.data_dir)? {
            tracing::warn!("{warning}");
        }
        let url = Store::sqlite_url(&config.data_dir);
        (
            url,
            sync,
            format!("{} (sqlite)", config.data_dir.display()),
            None,
        )
    };
    let pg_writers = match (config.pg_writers, config.nats_url.is_some()) {
        (Some(n), _) => usize::from(n),
        (None, false) => crate::store::PG_WRITERS,
        (None, true) => crate::store::PG_WRITERS_CLUSTER,
    };
    let gather = config.pg_commit_gather.0;
    let store = web::block(move || Store::open_with(&url, sync, pg_writers, gather))
        .await
        .map_err(|e| e.to_string())??;
    let resource_id = store.resource_id(config.resource_id.clone()).await?;
    let keys = AccessKeys::new(
        std::iter::once(config.primary_key())
            .chain(config.secondary_access_key.as_ref().map(|k| k.expose())),
    );
    let secret = match &config.token_secret {
        Some(s) => s.expose().as_bytes().to_vec(),
        None => derive_secret(keys.primary()),
    };
    let ring = hub::users::RingLimits {
        events: config.realtime_ring_events,
        ttl: config.realtime_ring_ttl.0,
        bytes: config.realtime_ring_bytes,
    };
    let users = Arc::new(match &cluster {
        Some(c) => hub::users::Users::cluster(ring, c.epoch.clone()),
        None => hub::users::Users::new(ring),
    });
    let activity = Arc::new(hub::activity::Activity::default());
    let webhooks = Arc::new(events::Webhooks::new(store.clone()));
    let subscriptions = store
        .read(|c| Ok(store::webhooks::subscriptions(c)?))
        .await
        .map_err(|e| format!("cannot read webhook subscriptions: {e}"))?;
    webhooks.load(&subscriptions);
    let directory = Arc::new(hub::registry::Directory::default());
    let worker_loops = Arc::new(hub::registry::WorkerLoops::default());
    let registry = Registry::new(
        HubCtx {
            store: store.clone(),
            users: users.clone(),
            activity: activity.clone(),
            webhooks: webhooks.clone(),
            config: HubConfig {
                max_participants: config.max_participants as usize,
                receipts_max_participants: config.receipts_max_participants as usize,
                sentiment: config.sentiment.on(),
                idle_timeout: config.thread_idle_timeout.0,
                cluster: cluster.is_some(),
            },
            resource_id: resource_id.clone(),
            relay_kick: cluster.as_ref().map(|c| c.relay_kick()),
            own_loops: Vec::new(),
        },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        directory.clone(),
        worker_loops.clone(),
    )
    .start();
    let prometheus = metrics::install();
    let config = Arc::new(config);
    let hub = hub::Hub {
        registry,
        directory,
        workers: worker_loops,
    };
    let recent_errors = Arc::new(RecentErrors::default());
    let dashboard = web::Data::new(DashboardState {
        config: config.clone(),
        prometheus: prometheus.clone(),
        sampler: Arc::new(dashboard::sampler::Sampler::new(DASHBOARD_POINTS)),
        sessions: Default::default(),
        login_throttle: Default::default(),
        recent_errors: recent_errors.clone(),
        store: store.clone(),
        hub: hub.clone(),
        activity: activity.clone(),
        webhooks: webhooks.clone(),
        cluster: cluster.clone(),
    });
    let state = web::Data::new(AppState {
        prometheus,
        limiter: ratelimit::RateLimiter::new(config.rate_limit_profile),
        auth: Auth::new(
            keys,
            Tokens::new(secret, resource_id.clone()),
            store.clone(),
            config.public_url.as_deref(),
        ),
        resource_id,
        store,
        hub,
        inflight: Default::default(),
        users,
        activity,
        webhooks,
        recent_errors,
        draining: AtomicBool::new(false),
        cluster,
        translator: crate::cognitive::translate::Translator::from_config(&config).map(Arc::new),
        transcriber: crate::cognitive::speech::Transcriber::from_config(&config).map(Arc::new),
        config,
    });
    if let Some(t) = &state.translator {
        crate::cognitive::live::start(t.clone(), &state.users);
    }
    let files_dir = match &temp_dir {
        Some(t) => t.path().to_path_buf(),
        None => state.config.data_dir.clone(),
    };
    Ok(Opened {
        state,
        dashboard,
        data_location,
        files_dir,
        temp_dir,
    })
}

/// Opens everything and binds the listeners. Must run inside an actix system.
pub async fn start(config: Config) -> Result<Running, String> {
    // checked before NATS is tried: a flag that can never work must not wait 30 s to say so
    config.validate()?;
    let cluster = match &config.nats_url {
        Some(url) => {
            let id = config
                .node_id
                .clone()
                .unwrap_or_else(cluster::default_node_id);
            let bus = cluster::Bus::connect(url, &config.nats_prefix, &id).await?;
            let keep = config.realtime_ring_ttl.0;
            Some(Arc::new(Cluster::new(Arc::new(bus), keep).await?))
        }
        None => None,
    };
    let Opened {
        state,
        dashboard,
        data_location,
        files_dir,
        temp_dir,
    } = open_with(config, cluster).await?;
    // A node (not `token create`, which opens the same database beside a running node) keeps
    // a PostgreSQL database to itself, or shares it with its cluster only.
    #[cfg(feature = "postgres")]
    if let (store::Backend::Postgres, Some(url)) =
        (state.store.backend(), state.config.database_url.as_ref())
    {
        let mode = match state.cluster {
            Some(_) => store::hold::Mode::Shared,
            None => store::hold::Mode::Exclusive,
        };
        state
            .store
            .hold_database(url.expose().to_string(), mode)
            .await?;
        if let Some(cluster) = &state.cluster {
            cluster
                .run_events(state.users.clone(), url.expose().to_string(), {
                    let state = state.clone();
                    Arc::new(move |u| state.auth.identities.invalidate(u))
                })
                .await?;
        }
    }
    housekeeping::spawn(state.clone(), dashboard.sampler.clone());
    events::dispatcher::spawn(
        state.webhooks.clone(),
        events::dispatcher::DispatcherConfig {
            allow_private: state.config.webhook_allow_private,
            retry_scale: state.config.webhook_retry_scale,
            event_topic: state.config.event_topic.clone(),
            cluster: state.cluster.is_some(),
        },
    );
    let app_state = state.clone();
    let mut server = HttpServer::new(move || {
        // (on the worker's own thread: thread actors may live on this loop)
        app_state.hub.workers.register();
        App::new()
            .app_data(app_state.clone())
            .wrap(middleware::from_fn(api::prelude))
            // outermost: preflights are answered before routing
            .wrap(api::cors(app_state.config.allowed_origins.clone()))
            .configure(api::routes)
            .default_service(web::to(api::not_found))
    })
    .on_connect(api::limits::on_connect(api::limits::Connections::new(
        state.config.max_connections_per_address,
    )))
    .max_connections(
        state
            .config
            .max_connections
            .div_ceil(match state.config.workers {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            })
            .max(1),
    )
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS);
    if state.config.workers > 0 {
        server = server.workers(state.config.workers);
    }
    let c = &state.config;
    let host = c
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let mut http_addr = None;
    if !c.no_http {
        server = server
            .bind((host.as_str(), c.http_port))
            .map_err(|e| format!("cannot listen on {host}:{}: {e}", c.http_port))?;
        http_addr = server.addrs().last().copied();
    }
    let (mut https_addr, mut ca_path) = (None, None);
    if !c.no_tls {
        if !files_dir.exists() {
            std::fs::create_dir_all(&files_dir)
                .map_err(|e| format!("cannot create {}: {e}", files_dir.display()))?;
        }
        let sans = tls::dev_sans(&c.host, &c.tls_san);
        let t = tls::load(
            c.cert.as_deref(),
            c.key.as_deref(),
            &files_dir.join("tls"),
            &sans,
        )?;
        server = server
            .bind_rustls_0_23((host.as_str(), c.https_port), t.config)
            .map_err(|e| format!("cannot listen on {host}:{}: {e}", c.https_port))?;
        https_addr = server.addrs().last().copied();
        ca_path = t.ca_path;
    }
    let admin_state = state.clone();
    let admin_dashboard = dashboard.clone();
    // The admin listener: the dashboard's pages beside the API's /metrics and health checks.
    let admin_server = HttpServer::new(move || {
        App::new()
            .app_data(admin_state.clone())
            .app_data(admin_dashboard.clone())
            .wrap(middleware::from_fn(api::prelude))
            .wrap(dashboard::security_headers())
            .configure(dashboard::routes)
            .configure(api::admin::routes)
            .default_service(web::to(api::not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .bind(c.admin_addr.as_str())
    .map_err(|e| format!("cannot listen on {} (admin): {e}", c.admin_addr))?;
    let admin_addr = *admin_server
        .addrs()
        .first()
        .ok_or_else(|| "no admin address".to_string())?;
    let admin_server = admin_server.run();
    let admin = admin_server.handle();
    actix_web::rt::spawn(admin_server);
    if let Some(cluster) = &state.cluster {
        cluster.sync_webhooks(state.webhooks.clone()).await?;
        let address = https_addr
            .map(|a| format!("https://{a}"))
            .or(http_addr.map(|a| format!("http://{a}")))
            .unwrap_or_default();
        let counts = state.clone();
        cluster
            .join(address, move || {
                (
                    counts.users.sessions_total(),
                    counts.hub.directory.read().len(),
                )
            })
            .await?;
    }
    Ok(Running {
        http_addr,
        https_addr,
        ca_path,
        admin_addr,
        admin,
        server: server.run(),
        state,
        dashboard,
        data_location,
        _temp_dir: temp_dir,
    })
}

/// The start-up banner (contract §8.1).
pub fn banner(r: &Running) -> String {
    let c = &r.state.config;
    let http = r.http_addr.map(|a| format!("http://{a}/"));
    let https = r.https_addr.map(|a| format!("https://{a}/"));
    let endpoint = https
        .as_ref()
        .or(http.as_ref())
        .cloned()
        .unwrap_or_default();
    // The well-known development key is printed in full; an operator's own key never is,
    // since the banner ends up in logs (contract §8.1).
    let key = if c.uses_dev_key() {
        c.primary_key()
    } else {
        "<your --access-key>"
    };
    let mut b = format!(
        "confab {} ready\n  connection string : endpoint={endpoint};accesskey={key}\n",
        env!("CARGO_PKG_VERSION"),
    );
    match (&https, &http) {
        (Some(s), Some(h)) => b.push_str(&format!("  https             : {s}      http: {h}\n")),
        (Some(s), None) => b.push_str(&format!("  https             : {s}\n")),
        (None, Some(h)) => b.push_str(&format!("  http              : {h}\n")),
        (None, None) => {}
    }
    b.push_str(&format!(
        "  dashboard         : http://{0}/       metrics: http://{0}/metrics\n",
        r.admin_addr
    ));
    b.push_str(&format!(
        "  data              : {}        resourceId: {}\n",
        r.data_location, r.state.resource_id
    ));
    if let Some(cluster) = &r.state.cluster {
        b.push_str(&format!(
            "  cluster           : {} on {}, {} nodes live\n",
            cluster.bus.node_id,
            cluster.bus.url,
            cluster.live_nodes().len()
        ));
    }
    if let Some(ca) = &r.ca_path {
        let ca = ca.display();
        b.push_str(&format!(
            "  dev CA            : {ca}\n    export REQUESTS_CA_BUNDLE={ca}\n    export NODE_EXTRA_CA_CERTS={ca}\n"
        ));
    }
    if c.uses_dev_key() {
        b.push_str("  WARNING: using the well-known development access key (not for production)\n");
    }
    b
}
