//! Cluster mode (contract §9): several nodes on one PostgreSQL database and one NATS with
//! JetStream. PostgreSQL stays the source of truth; NATS carries what crosses nodes.
//!
//! This module is the bus side of it:
//! - [`Bus::connect`]: the NATS connection (retried for 30 s at start, then exit 2), kept up by
//!   the client, which reconnects on its own;
//! - the node table ([`nodes`]): a JetStream key-value bucket `<prefix>_nodes` in which each
//!   node puts its entry every [`nodes::HEARTBEAT`]; entries expire after [`nodes::EXPIRY`], so a
//!   node that died leaves the table, and its id is free again, within 10 s.
//!
//! Standalone mode has no bus: every caller holds an `Option<Arc<Bus>>`.

pub mod events;
mod log;
pub mod nodes;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_nats::jetstream;

/// How often a cluster node rereads the webhook subscriptions regardless of announcements.
pub const WEBHOOK_RESYNC: Duration = Duration::from_secs(2);

/// How long a start keeps trying to reach NATS before giving up (exit 2).
pub const CONNECT_FOR: Duration = Duration::from_secs(30);

/// A revoke or delete of an identity between its start and its answer (see
/// [`Cluster::closing`]).
pub struct Closing {
    /// Goes in the body of the change's `closeUser` event.
    pub nonce: String,
    confirmations: Option<async_nats::Subscriber>,
}

/// A cluster node's handles: its bus, and its place in the node table once it has joined
/// (after its listeners are bound, so that its entry carries its address).
pub struct Cluster {
    pub bus: Arc<Bus>,
    pub nodes: OnceLock<Arc<nodes::Nodes>>,
    /// The epoch of the cluster's event log (cursors' first part).
    pub epoch: String,
    /// Where this node starts reading the event log.
    pub origin: u64,
}

impl Cluster {
    /// Joins the bus's event log (made if new), keeping events for `keep`.
    pub async fn new(bus: Arc<Bus>, keep: Duration) -> Result<Cluster, String> {
        let (epoch, origin) = bus.event_log(keep).await?;
        Ok(Cluster {
            bus,
            nodes: OnceLock::new(),
            epoch,
            origin,
        })
    }

    /// Starts delivering the event log to this node's users, and this node's share of relaying
    /// committed events to it.
    pub async fn run_events(
        &self,
        users: Arc<crate::hub::users::Users>,
        db_url: String,
        on_close: events::OnClose,
    ) -> Result<(), String> {
        events::consume(self.bus.clone(), users, self.origin, on_close).await?;
        // (cluster mode needs PostgreSQL: configuration refuses it otherwise)
        #[cfg(feature = "postgres")]
        events::spawn_relay(self.bus.clone(), db_url);
        #[cfg(not(feature = "postgres"))]
        let _ = db_url;
        Ok(())
    }

    /// Wakes the event relay after a commit (see `events`).
    pub fn relay_kick(&self) -> Arc<dyn Fn() + Send + Sync> {
        let bus = self.bus.clone();
        Arc::new(move || bus.kick())
    }

    /// Starts a revoke or delete of an identity (contract §9.2.4): listens for the other
    /// nodes' confirmations before the change commits. The nonce goes in the `closeUser` row.
    pub async fn closing(&self) -> Closing {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let confirmations = match self
            .bus
            .client
            .subscribe(self.bus.closed_subject(&nonce))
            .await
        {
            Ok(s) => {
                let _ = self.bus.client.flush().await;
                Some(s)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for closeUser confirmations");
                None
            }
        };
        Closing {
            nonce,
            confirmations,
        }
    }

    /// After the commit of `closing`'s change at `committed`: waits until every other live
    /// node has applied its `closeUser` event (and so forgotten the identity's cached state),
    /// or until no node can still hold a state read before the commit (the identity cache's
    /// TTL), whichever is first. The 2xx goes out after this.
    pub async fn closed(&self, closing: Closing, committed: Instant) {
        use futures_util::StreamExt;
        let deadline = committed + crate::auth::cache::TTL;
        let Some(mut confirmations) = closing.confirmations else {
            actix_web::rt::time::sleep_until(deadline.into()).await;
            return;
        };
        if let Some(table) = self.nodes.get() {
            // a node that joined since the last heartbeat counts too
            table.refresh().await;
        }
        let mut confirmed = std::collections::HashSet::new();
        loop {
            let waiting: Vec<String> = self
                .live_nodes()
                .into_iter()
                .map(|n| n.id)
                .filter(|id| *id != self.bus.node_id && !confirmed.contains(id))
                .collect();
            if waiting.is_empty() {
                return;
            }
            tokio::select! {
                m = confirmations.next() => match m {
                    Some(m) => {
                        confirmed.insert(String::from_utf8_lossy(&m.payload).into_owned());
                    }
                    None => {
                        actix_web::rt::time::sleep_until(deadline.into()).await;
                        return;
                    }
                },
                _ = actix_web::rt::time::sleep_until(deadline.into()) => {
                    tracing::warn!(
                        nodes = ?waiting,
                        "no confirmation of a revoke from these nodes; answering after the \
                         identity cache's TTL"
                    );
                    return;
                }
                // the table changes: a node that left need not confirm
                _ = actix_web::rt::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    /// Live nodes this node sees (itself at least, once joined).
    pub fn live_nodes(&self) -> Vec<nodes::NodeEntry> {
        self.nodes.get().map(|n| n.live()).unwrap_or_default()
    }

    /// Joins the node table as the node serving at `address`, and keeps its entry fresh every
    /// heartbeat with the counts `stats` gives (live sessions, thread actors).
    pub async fn join(
        &self,
        address: String,
        stats: impl Fn() -> (usize, usize) + 'static,
    ) -> Result<(), String> {
        let now = crate::ids::now_ms();
        let (sessions, thread_actors) = stats();
        let me = nodes::NodeEntry {
            id: self.bus.node_id.clone(),
            address,
            started_at: now,
            sessions,
            thread_actors,
            heartbeat_at: now,
            reads: log::READS.iter().map(|f| f.to_string()).collect(),
        };
        let table = nodes::Nodes::join(self.bus.clone(), me).await?;
        let _ = self.nodes.set(table.clone());
        actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(nodes::HEARTBEAT);
            loop {
                tick.tick().await;
                let (sessions, actors) = stats();
                table.beat(sessions, actors).await;
            }
        });
        Ok(())
    }

    /// Keeps this node's webhook subscriptions in step with the other nodes': a node that
    /// changes one announces it on `<prefix>.webhooks.changed`, and every node reloads on the
    /// announcement, and every [`WEBHOOK_RESYNC`] in case one was missed (NATS down).
    pub async fn sync_webhooks(
        &self,
        webhooks: Arc<crate::events::Webhooks>,
    ) -> Result<(), String> {
        let subject = format!("{}.webhooks.changed", self.bus.prefix);
        let client = self.bus.client.clone();
        let announce_to = subject.clone();
        webhooks.announce_changes_with(Box::new(move || {
            let (client, subject) = (client.clone(), announce_to.clone());
            actix_web::rt::spawn(async move {
                if let Err(e) = client.publish(subject, bytes::Bytes::new()).await {
                    tracing::warn!(error = %e, "cannot announce a webhook subscription change");
                }
            });
        }));
        let mut changes = self
            .bus
            .client
            .subscribe(subject)
            .await
            .map_err(|e| format!("cannot subscribe on NATS: {e}"))?;
        actix_web::rt::spawn(async move {
            use futures_util::StreamExt;
            let mut tick = actix_web::rt::time::interval(WEBHOOK_RESYNC);
            loop {
                tokio::select! {
                    m = changes.next() => if m.is_none() { break },
                    _ = tick.tick() => {}
                }
                webhooks.reload().await;
            }
        });
        Ok(())
    }

    /// A clean stop: leaves the node table.
    pub async fn leave(&self) {
        if let Some(n) = self.nodes.get() {
            n.leave().await;
        }
    }
}

/// A node's connection to the cluster's NATS.
pub struct Bus {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    /// `--nats-prefix`: of every subject, stream and bucket confab creates.
    pub prefix: String,
    pub node_id: String,
    /// `--nats-url`, as the operator gave it (for the banner and errors).
    pub url: String,
    /// Signalled each time the connection is made again after a loss.
    pub reconnected: Arc<tokio::sync::Notify>,
    /// A kick of the relay is on its way (see `Bus::kick`).
    kick_pending: std::sync::atomic::AtomicBool,
    /// When the last kick was sent.
    last_kick: std::sync::Mutex<Option<Instant>>,
    /// Every live node reads compressed log messages (`log::LZ4_FORMAT`): the relay writes
    /// them. Set from the node table at each heartbeat; false until this node has joined it.
    pub(crate) log_lz4: std::sync::atomic::AtomicBool,
}

impl Bus {
    /// Connects to `url` (comma-separated servers of one NATS cluster), retrying for
    /// [`CONNECT_FOR`]; an error naming the URL after that.
    pub async fn connect(url: &str, prefix: &str, node_id: &str) -> Result<Bus, String> {
        let servers = servers(url)?;
        let deadline = Instant::now() + CONNECT_FOR;
        let mut tries = 0u32;
        let reconnected = Arc::new(tokio::sync::Notify::new());
        let client = loop {
            tries += 1;
            let options = async_nats::ConnectOptions::new()
                .name(format!("confab {node_id}"))
                .connection_timeout(Duration::from_secs(2))
                // after the first connection, reconnect for ever (the node stays up without it)
                .max_reconnects(None)
                .event_callback({
                    let reconnected = reconnected.clone();
                    move |event| {
                        let reconnected = reconnected.clone();
                        async move {
                            match event {
                                async_nats::Event::Connected => {
                                    tracing::info!("connected to NATS again");
                                    reconnected.notify_one();
                                }
                                async_nats::Event::Disconnected => {
                                    tracing::warn!("lost the connection to NATS; reconnecting");
                                }
                                _ => {}
                            }
                        }
                    }
                });
            match async_nats::connect_with_options(servers.clone(), options).await {
                Ok(c) => break c,
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "cannot reach NATS at {url} (tried for {} s): {e}",
                        CONNECT_FOR.as_secs()
                    ))
                }
                Err(e) => {
                    // once at first, then every 5 s
                    if tries % 10 == 1 {
                        tracing::warn!(%url, error = %e, "NATS not reachable yet; retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        let jetstream = jetstream::new(client.clone());
        Ok(Bus {
            client,
            jetstream,
            prefix: prefix.to_string(),
            node_id: node_id.to_string(),
            url: url.to_string(),
            reconnected,
            kick_pending: Default::default(),
            last_kick: Default::default(),
            log_lz4: Default::default(),
        })
    }

    /// Whether the connection to NATS is up right now.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// A stream or bucket name of this deployment: `<prefix>_<name>`.
    pub fn name(&self, name: &str) -> String {
        named(&self.prefix, name)
    }
}

/// The servers of a `--nats-url` (comma-separated servers of one NATS cluster).
pub fn servers(url: &str) -> Result<Vec<async_nats::ServerAddr>, String> {
    url.split(',')
        .map(|s| s.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--nats-url {url:?} is not a NATS URL: {e}"))
}

/// The name of the event log (see `events`) and of the node table's bucket (see `nodes`).
pub(crate) const EVENTS: &str = "events";
pub(crate) const NODES: &str = "nodes";

/// A stream or bucket name under `--nats-prefix`: `<prefix>_<name>`.
fn named(prefix: &str, name: &str) -> String {
    format!("{prefix}_{name}")
}

/// The JetStream streams a deployment with `prefix` keeps: its event log, and the stream of its
/// node table's key-value bucket. Nodes leave both when they stop (they outlive any node).
pub fn streams(prefix: &str) -> [String; 2] {
    [
        named(prefix, EVENTS),
        nodes::bucket_stream(&named(prefix, NODES)),
    ]
}

/// `--nats-prefix`: letters, digits, `-` and `_` (it names streams and buckets), 1–32 chars.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--nats-prefix must be 1 to 32 letters, digits, '-' or '_', got {prefix:?}"
        ))
    }
}

/// `--node-id`: letters, digits, `-`, `_` and `.`, 1–64 chars (it is a key of the node table).
pub fn check_node_id(id: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&id.len())
        && !id.starts_with('.')
        && !id.ends_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--node-id must be 1 to 64 letters, digits, '-', '_' or '.', got {id:?}"
        ))
    }
}

/// The default node id: `<hostname>-<6 random [a-z0-9]>`, new each start.
pub fn default_node_id() -> String {
    use rand::Rng;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(48)
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "confab".to_string());
    let mut rng = rand::thread_rng();
    let tail: String = (0..6)
        .map(|_| {
            let i = rng.gen_range(0..36u8);
            (if i < 10 { b'0' + i } else { b'a' + i - 10 }) as char
        })
        .collect();
    format!("{host}-{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_and_prefixes() {
        let id = default_node_id();
        assert!(check_node_id(&id).is_ok(), "{id}");
        assert_eq!(id.rsplit('-').next().unwrap().len(), 6);
        assert_ne!(default_node_id(), id, "new each start");
        for bad in ["", "a b", "a*", "a>", ".a", &"x".repeat(65)] {
            assert!(check_node_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_prefix("confab").is_ok());
        assert!(check_prefix("team-1_chat").is_ok());
        for bad in ["", "a.b", "a b", "a*", &"x".repeat(33)] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
        // (what confab-bench and CI delete after their runs)
        assert_eq!(streams("ci42"), ["ci42_events", "KV_ci42_nodes"]);
        assert_eq!(servers("nats://a:4222, nats://b:4223").unwrap().len(), 2);
        assert!(servers("nats://a:4222,nats://b:port").is_err());
    }
}
