//! Every setting of confab: its flag, environment variable, TOML key and default.
//!
//! Precedence: CLI flags, then `CONFAB_*` environment variables, then the TOML file named by
//! `--config`, then defaults. The TOML key is the flag without `--`. Secrets are wrapped in [`Secret`], whose
//! `Debug` and `Display` never show the value.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use serde::{Deserialize, Serialize};

mod values;
pub use values::{
    HumanDuration, RateLimitProfile, Secret, SpeechKind, SqliteSynchronous, Switch, TranslatorKind,
};

/// The published development access key (contract §4.3), identical in every install.
pub const DEV_ACCESS_KEY: &str =
    "GiHYTbr7Hthx7jH3sJUozAx8YxlDVfFRbDNOPvbIzRmDiWvlMHr1Wy90vwSk1VbWlMqhqOfmSHJbHCuIImtqrA==";

/// The default webhook `topic` (contract §7.3).
pub const DEFAULT_EVENT_TOPIC: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/confab/providers/Microsoft.Communication/communicationServices/confab";

/// Server settings. Each field is one flag; `--help` lists its environment variable.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// TOML file with settings (keys are the flag names without `--`)
    #[arg(long, env = "CONFAB_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address the public listeners bind to
    #[arg(long, env = "CONFAB_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port of the public HTTP listener (0 picks a free port)
    #[arg(long, env = "CONFAB_HTTP_PORT", default_value_t = 8080)]
    pub http_port: u16,

    /// Port of the public HTTPS listener (0 picks a free port)
    #[arg(long, env = "CONFAB_HTTPS_PORT", default_value_t = 8443)]
    pub https_port: u16,

    /// Serve no plain HTTP (HTTPS only)
    #[arg(long, env = "CONFAB_NO_HTTP")]
    pub no_http: bool,

    /// Serve no HTTPS (plain HTTP only; the Azure SDKs need HTTPS for chat)
    #[arg(long, env = "CONFAB_NO_TLS")]
    pub no_tls: bool,

    /// PEM certificate chain for HTTPS (with --key); a development CA is made when unset
    #[arg(long, env = "CONFAB_CERT")]
    pub cert: Option<PathBuf>,

    /// PEM private key for HTTPS (with --cert)
    #[arg(long, env = "CONFAB_KEY")]
    pub key: Option<PathBuf>,

    /// Extra subject names of the development certificate (comma-separated)
    #[arg(long, env = "CONFAB_TLS_SAN", value_delimiter = ',')]
    pub tls_san: Vec<String>,

    /// Address of the admin listener (dashboard, /metrics); port 0 picks a free port
    #[arg(long, env = "CONFAB_ADMIN_ADDR", default_value = "127.0.0.1:8090")]
    pub admin_addr: String,

    /// Bearer token required on the admin listener (mandatory when it is not on loopback)
    #[arg(long, env = "CONFAB_METRICS_TOKEN")]
    pub metrics_token: Option<Secret>,

    /// How often the dashboard samples the metrics registry (it keeps 360 points)
    #[arg(long, env = "CONFAB_DASHBOARD_SAMPLE_INTERVAL", default_value = "10s")]
    pub dashboard_sample_interval: HumanDuration,

    /// Directory of the SQLite database and the stored resource id
    #[arg(long, env = "CONFAB_DATA_DIR", default_value = "./confab-data")]
    pub data_dir: PathBuf,

    /// Keep nothing: a throw-away database in a temporary directory and a new resource id
    #[arg(long, env = "CONFAB_IN_MEMORY")]
    pub in_memory: bool,

    /// PostgreSQL URL (postgres://…); SQLite in --data-dir when unset
    #[arg(long, env = "CONFAB_DATABASE_URL")]
    pub database_url: Option<Secret>,

    /// PostgreSQL writer connections: each thread's changes go to one of them, in order;
    /// different threads commit in parallel (SQLite always has one). Default 2, or 1 per node
    /// in cluster mode
    #[arg(long, env = "CONFAB_PG_WRITERS", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub pg_writers: Option<u16>,

    /// PostgreSQL: how long a writer under load (its last batch held two changes or more)
    /// waits for more changes before running its next batch; fuller commits cost PostgreSQL
    /// less per change. 0s: never waits
    #[arg(long, env = "CONFAB_PG_COMMIT_GATHER", default_value = "2ms")]
    pub pg_commit_gather: HumanDuration,

    /// NATS server(s) of a cluster, nats://host:port (comma-separated for a NATS cluster); turns
    /// cluster mode on (needs a PostgreSQL --database-url)
    #[arg(long, env = "CONFAB_NATS_URL")]
    pub nats_url: Option<String>,

    /// This node's name in logs, metrics and the dashboard (cluster mode); default
    /// <hostname>-<6 random [a-z0-9]>, new each start
    #[arg(long, env = "CONFAB_NODE_ID")]
    pub node_id: Option<String>,

    /// Prefix of every NATS subject, stream and bucket confab creates (cluster mode)
    #[arg(long, env = "CONFAB_NATS_PREFIX", default_value = "confab")]
    pub nats_prefix: String,

    /// SQLite durability: full (fsync every commit) or normal
    #[arg(long, env = "CONFAB_SQLITE_SYNCHRONOUS", value_enum, default_value_t = SqliteSynchronous::Full)]
    pub sqlite_synchronous: SqliteSynchronous,

    /// Resource id (GUID) in user ids and tokens; generated once per data directory when unset
    #[arg(long, env = "CONFAB_RESOURCE_ID")]
    pub resource_id: Option<String>,

    /// Primary access key (base64); the well-known development key when unset
    #[arg(long, env = "CONFAB_ACCESS_KEY")]
    pub access_key: Option<Secret>,

    /// Secondary access key (base64), also accepted for HMAC
    #[arg(long, env = "CONFAB_SECONDARY_ACCESS_KEY")]
    pub secondary_access_key: Option<Secret>,

    /// Allow the development access key on a non-loopback address
    #[arg(long, env = "CONFAB_ALLOW_DEV_KEY")]
    pub allow_dev_key: bool,

    /// Secret that signs user tokens; derived from the primary access key when unset
    #[arg(long, env = "CONFAB_TOKEN_SECRET")]
    pub token_secret: Option<Secret>,

    /// Accept any api-version value, or none
    #[arg(long, env = "CONFAB_SKIP_API_VERSION_CHECK")]
    pub skip_api_version_check: bool,

    /// Rate limits: acs (ACS service limits), default (generous token buckets) or off
    #[arg(long, env = "CONFAB_RATE_LIMIT_PROFILE", value_enum, default_value_t = RateLimitProfile::Default)]
    pub rate_limit_profile: RateLimitProfile,

    /// Most participants a thread may have
    #[arg(long, env = "CONFAB_MAX_PARTICIPANTS", default_value_t = 250)]
    pub max_participants: u32,

    /// Read receipts and typing stop above this many participants (0 = unlimited)
    #[arg(long, env = "CONFAB_RECEIPTS_MAX_PARTICIPANTS", default_value_t = 20)]
    pub receipts_max_participants: u32,

    /// Score every text/html message and edit for sentiment (built-in English model, offline)
    #[arg(long, env = "CONFAB_SENTIMENT", value_enum, default_value_t = Switch::On)]
    pub sentiment: Switch,

    /// Largest message content in UTF-8 bytes
    #[arg(long, env = "CONFAB_MAX_MESSAGE_BYTES", default_value_t = 28672)]
    pub max_message_bytes: u32,

    /// How long a repeatability-request-id is remembered
    #[arg(long, env = "CONFAB_IDEMPOTENCY_WINDOW", default_value = "5m")]
    pub idempotency_window: HumanDuration,

    /// Scheme and host used in Location, nextLink and as an HMAC host (e.g. https://chat.example.com)
    #[arg(long, env = "CONFAB_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Origins allowed to open real-time connections (comma-separated; `*` = any); the
    /// loopback hosts on any scheme and port when unset
    #[arg(long, env = "CONFAB_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Events kept per user for resume
    #[arg(long, env = "CONFAB_REALTIME_RING_EVENTS", default_value_t = 1000)]
    pub realtime_ring_events: usize,

    /// How long events are kept per user for resume
    #[arg(long, env = "CONFAB_REALTIME_RING_TTL", default_value = "10m")]
    pub realtime_ring_ttl: HumanDuration,

    /// Bytes of events kept per user for resume: each event counts its entry and this user's
    /// share of its body (shared by all its recipients), so rings take at most users × this
    #[arg(long, env = "CONFAB_REALTIME_RING_BYTES", default_value_t = 64 * 1024)]
    pub realtime_ring_bytes: usize,

    /// Most real-time connections (WebSocket + SSE) per user
    #[arg(
        long,
        env = "CONFAB_REALTIME_MAX_CONNECTIONS_PER_USER",
        default_value_t = 16
    )]
    pub realtime_max_connections_per_user: usize,

    /// Allow webhook endpoints on loopback, private and link-local addresses, and plain http://
    #[arg(long, env = "CONFAB_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,

    /// Translation service (base URL); translation is off without it
    #[arg(long, env = "CONFAB_TRANSLATOR_URL")]
    pub translator_url: Option<String>,

    /// The translator's API shape
    #[arg(long, env = "CONFAB_TRANSLATOR_KIND", value_enum, default_value_t = TranslatorKind::Libretranslate)]
    pub translator_kind: TranslatorKind,

    /// The translator's key (LibreTranslate api_key, or Azure's Ocp-Apim-Subscription-Key)
    #[arg(long, env = "CONFAB_TRANSLATOR_KEY")]
    pub translator_key: Option<Secret>,

    /// Azure Translator region (Ocp-Apim-Subscription-Region)
    #[arg(long, env = "CONFAB_TRANSLATOR_REGION")]
    pub translator_region: Option<String>,

    /// Allow a translator on loopback or private addresses, and plain http://
    #[arg(long, env = "CONFAB_TRANSLATOR_ALLOW_PRIVATE")]
    pub translator_allow_private: bool,

    /// Transcription service (base URL); speech to text is off without it
    #[arg(long, env = "CONFAB_SPEECH_URL")]
    pub speech_url: Option<String>,

    /// The transcriber's API shape
    #[arg(long, env = "CONFAB_SPEECH_KIND", value_enum, default_value_t = SpeechKind::Openai)]
    pub speech_kind: SpeechKind,

    /// The transcriber's key (Bearer for openai, Ocp-Apim-Subscription-Key for azure)
    #[arg(long, env = "CONFAB_SPEECH_KEY")]
    pub speech_key: Option<Secret>,

    /// Azure Speech region (Ocp-Apim-Subscription-Region)
    #[arg(long, env = "CONFAB_SPEECH_REGION")]
    pub speech_region: Option<String>,

    /// Allow a transcriber on loopback or private addresses, and plain http://
    #[arg(long, env = "CONFAB_SPEECH_ALLOW_PRIVATE")]
    pub speech_allow_private: bool,

    /// The `topic` (Event Grid) / `source` (CloudEvents) of every webhook event
    #[arg(long, env = "CONFAB_EVENT_TOPIC", default_value = DEFAULT_EVENT_TOPIC)]
    pub event_topic: String,

    /// Multiplies the webhook retry schedule (10s, 30s, 1m … 12h); below 1 for tests
    #[arg(long, env = "CONFAB_WEBHOOK_RETRY_SCALE", default_value_t = 1.0)]
    pub webhook_retry_scale: f64,

    /// HTTP worker threads (0 = one per core)
    #[arg(long, env = "CONFAB_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// A request body must arrive within this time, plus the time --body-min-rate allows for
    /// what has arrived; otherwise 408 and the connection is closed
    #[arg(long, env = "CONFAB_BODY_TIMEOUT", default_value = "10s")]
    pub body_timeout: HumanDuration,

    /// Slowest average rate of a request body, in bytes per second, after --body-timeout
    #[arg(long, env = "CONFAB_BODY_MIN_RATE", default_value_t = 8192)]
    pub body_min_rate: u64,

    /// Most open connections per public listener (connections beyond wait in the accept queue)
    #[arg(long, env = "CONFAB_MAX_CONNECTIONS", default_value_t = 25000)]
    pub max_connections: usize,

    /// Most open connections from one client address on the public listeners (0 = no limit, the
    /// default: behind a proxy all clients share its address);
    /// a request on a connection beyond it is answered 503 TooManyConnections and closed
    #[arg(long, env = "CONFAB_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 0)]
    pub max_connections_per_address: usize,

    /// How long an idle thread actor stays in memory
    #[arg(long, env = "CONFAB_THREAD_IDLE_TIMEOUT", default_value = "5m")]
    pub thread_idle_timeout: HumanDuration,

    /// How often the retention sweeper looks for threads to delete
    #[arg(long, env = "CONFAB_RETENTION_SWEEP_INTERVAL", default_value = "1m")]
    pub retention_sweep_interval: HumanDuration,

    /// Log filter (tracing EnvFilter syntax, e.g. info or confab=debug)
    #[arg(long, env = "CONFAB_LOG", default_value = "info")]
    pub log: String,
}

/// The shortest access key accepted, in bytes (ACS keys are 64).
pub const MIN_ACCESS_KEY_BYTES: usize = 32;

impl Config {
    /// Fills every setting that neither a flag nor an environment variable gave from the TOML
    /// file named by `--config`, if any.
    pub fn apply_config_file(&mut self, matches: &ArgMatches) -> Result<(), String> {
        let Some(path) = self.config.clone() else {
            return Ok(());
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| format!("invalid TOML in {}: {e}", path.display()))?;
        let mut current = serde_json::to_value(&*self).map_err(|e| e.to_string())?;
        let obj = current
            .as_object_mut()
            .ok_or_else(|| "config is not an object".to_string())?;
        for (key, value) in table {
            let field = key.replace('-', "_");
            if !obj.contains_key(&field) {
                return Err(format!(
                    "unknown setting {key:?} in {} (keys are the flag names without --)",
                    path.display()
                ));
            }
            let explicit = matches!(
                matches.value_source(&field),
                Some(ValueSource::CommandLine) | Some(ValueSource::EnvVariable)
            );
            if !explicit {
                let json = serde_json::to_value(&value).map_err(|e| e.to_string())?;
                obj.insert(field, json);
            }
        }
        let config_path = self.config.take();
        *self = serde_json::from_value(current)
            .map_err(|e| format!("invalid value in {}: {e}", path.display()))?;
        self.config = config_path;
        Ok(())
    }

    /// The primary access key in use (the development key when none is configured).
    pub fn primary_key(&self) -> &str {
        self.access_key
            .as_ref()
            .map(Secret::expose)
            .unwrap_or(DEV_ACCESS_KEY)
    }

    pub fn uses_dev_key(&self) -> bool {
        self.access_key.is_none()
    }

    /// Checks values that the types alone do not.
    pub fn validate(&self) -> Result<(), String> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        for (flag, key) in [
            ("--access-key", self.access_key.as_ref()),
            ("--secondary-access-key", self.secondary_access_key.as_ref()),
        ] {
            if let Some(k) = key {
                match b64.decode(k.expose()) {
                    Ok(bytes) if bytes.len() >= MIN_ACCESS_KEY_BYTES => {}
                    Ok(bytes) => {
                        return Err(format!(
                            "{flag} must be at least {MIN_ACCESS_KEY_BYTES} bytes of key (ACS keys \
                             are 64), got {}; make one with: openssl rand -base64 64",
                            bytes.len()
                        ))
                    }
                    Err(_) => return Err(format!("{flag} must be base64")),
                }
            }
        }
        if !(self.webhook_retry_scale > 0.0 && self.webhook_retry_scale <= 1000.0) {
            return Err(format!(
                "--webhook-retry-scale must be in (0, 1000], got {}",
                self.webhook_retry_scale
            ));
        }
        if let Some(r) = &self.resource_id {
            uuid::Uuid::parse_str(r)
                .map_err(|_| format!("--resource-id must be a GUID, got {r:?}"))?;
        }
        if let Some(u) = &self.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(format!(
                    "--public-url must start with http:// or https://, got {u:?}"
                ));
            }
        }
        let admin_host = self
            .admin_addr
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(&self.admin_addr);
        if !is_loopback_host(admin_host) && self.metrics_token.is_none() {
            return Err(format!(
                "the admin listener on {} is not loopback: set --metrics-token to protect it",
                self.admin_addr
            ));
        }
        if self.no_http && self.no_tls {
            return Err("--no-http and --no-tls together leave nothing to serve".into());
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err("--cert and --key go together".into());
        }
        if self.max_participants == 0 {
            return Err("--max-participants must be at least 1".into());
        }
        if let Some(nats) = &self.nats_url {
            let postgres = self.database_url.as_ref().is_some_and(|u| {
                u.expose().starts_with("postgres://") || u.expose().starts_with("postgresql://")
            });
            if !postgres {
                return Err(format!(
                    "--nats-url {nats} (cluster mode) needs --database-url postgres://…: the nodes \
                     of a cluster share one PostgreSQL database, and SQLite belongs to one process"
                ));
            }
            crate::cluster::check_prefix(&self.nats_prefix)?;
            if let Some(id) = &self.node_id {
                crate::cluster::check_node_id(id)?;
            }
        }
        if self.uses_dev_key() && !self.allow_dev_key && !is_loopback_host(&self.host) {
            return Err(format!(
                "refusing to listen on {} with the well-known development access key: set --access-key, \
                 or pass --allow-dev-key to accept the risk",
                self.host
            ));
        }
        Ok(())
    }
}

/// Whether `host` is a loopback name or address.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    fn parse(args: &[&str]) -> (Config, ArgMatches) {
        let m = Cli::command().try_get_matches_from(args).unwrap();
        (Cli::from_arg_matches(&m).unwrap().config, m)
    }

    /// Secrets never show in Debug output.
    #[test]
    fn debug_redacts_secrets() {
        let (c, _) = parse(&[
            "confab",
            "--access-key",
            "c2VjcmV0LWtleQ==",
            "--token-secret",
            "hunter2",
        ]);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("c2VjcmV0LWtleQ=="), "{dbg}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    /// The TOML file fills what flags did not set, and flags win over it.
    #[test]
    fn toml_below_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "http-port = 9999\nmax-participants = 7\nidempotency-window = \"2m\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let (mut c, m) = parse(&["confab", "--config", p, "--http-port", "1234"]);
        c.apply_config_file(&m).unwrap();
        assert_eq!(c.http_port, 1234);
        assert_eq!(c.max_participants, 7);
        assert_eq!(c.idempotency_window.0, Duration::from_secs(120));
    }

    #[test]
    fn unknown_toml_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "no-such-flag = 1\n").unwrap();
        let (mut c, m) = parse(&["confab", "--config", path.to_str().unwrap()]);
        assert!(c
            .apply_config_file(&m)
            .unwrap_err()
            .contains("no-such-flag"));
    }

    #[test]
    fn dev_key_refused_off_loopback() {
        let (c, _) = parse(&["confab", "--host", "0.0.0.0"]);
        assert!(c.validate().unwrap_err().contains("--allow-dev-key"));
        let (c, _) = parse(&["confab", "--host", "0.0.0.0", "--allow-dev-key"]);
        assert!(c.validate().is_ok());
        let (c, _) = parse(&["confab", "--host", "::1"]);
        assert!(c.validate().is_ok());
    }

    /// Finding 6 of the hardening issue: `--access-key YQ==` (one byte) started.
    #[test]
    fn access_keys_need_32_bytes() {
        for (key, ok) in [
            ("YQ==", false),
            ("c2hvcnQta2V5LTMxLWJ5dGVzLWxvbmctLS0tLS0t", false), // 30 bytes
            ("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=", true), // 32 bytes
            ("not base64!", false),
        ] {
            for flag in ["--access-key", "--secondary-access-key"] {
                let (c, _) = parse(&["confab", flag, key]);
                assert_eq!(c.validate().is_ok(), ok, "{flag} {key}: {:?}", c.validate());
            }
        }
        let (c, _) = parse(&["confab", "--access-key", "YQ=="]);
        assert!(c.validate().unwrap_err().contains("at least 32 bytes"));
    }
}
