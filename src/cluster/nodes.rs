//! The node table: a JetStream key-value bucket `<prefix>_nodes`, one entry per live node.
//!
//! A node creates its entry when it starts (create fails if the key exists: a second live node
//! with the same `--node-id` exits 2), puts it again every [`HEARTBEAT`] with its counts, and
//! deletes it when it stops. The bucket's entries expire [`EXPIRY`] after their last put, so a
//! node that died (kill -9, power loss) leaves the table, and frees its id, within 10 s
//! (contract §9.1, §9.2.6).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::Bus;

/// How often a node puts its entry.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long an entry lives after its last put.
pub const EXPIRY: Duration = Duration::from_secs(5);

/// What a node says about itself (the dashboard's Cluster page shows it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeEntry {
    pub id: String,
    /// Where clients reach it (its public listener).
    pub address: String,
    /// Epoch ms.
    pub started_at: i64,
    pub sessions: usize,
    pub thread_actors: usize,
    /// Epoch ms of this put.
    pub heartbeat_at: i64,
    /// Formats of the event log this node reads beyond the first ones (`log::READS`); none
    /// for a node of an earlier version, whose entry has no such field.
    #[serde(default)]
    pub reads: Vec<String>,
}

/// Whether `nodes` (not none) all read the event log's `format`.
pub fn all_read(nodes: &[NodeEntry], format: &str) -> bool {
    !nodes.is_empty() && nodes.iter().all(|n| n.reads.iter().any(|f| f == format))
}

/// This node's view of the table.
pub struct Nodes {
    bus: Arc<Bus>,
    kv: kv::Store,
    me: RwLock<NodeEntry>,
    /// The live entries as of the last heartbeat, this node's included, sorted by id.
    live: RwLock<Vec<NodeEntry>>,
}

/// The stream JetStream keeps a key-value bucket in.
pub(super) fn bucket_stream(bucket: &str) -> String {
    format!("KV_{bucket}")
}

impl Nodes {
    /// Joins the table as `me`; an error if a live node already has its id.
    pub async fn join(bus: Arc<Bus>, me: NodeEntry) -> Result<Arc<Nodes>, String> {
        let bucket = bus.name(super::NODES);
        // The bucket's stream, made here rather than by `create_key_value`, which first asks
        // for account details in a form NATS 2.9 does not send.
        let stream = jetstream::stream::Config {
            name: bucket_stream(&bucket),
            description: Some("confab: the live nodes of a deployment".into()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: EXPIRY,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: jetstream::stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        };
        bus.jetstream
            .get_or_create_stream(stream)
            .await
            .map_err(|e| format!("cannot make the node table on NATS: {e}"))?;
        let store = bus
            .jetstream
            .get_key_value(bucket)
            .await
            .map_err(|e| format!("cannot open the node table on NATS: {e}"))?;
        let body = serde_json::to_vec(&me).unwrap_or_default();
        match store.create(&me.id, body.into()).await {
            Ok(_) => {}
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                return Err(format!(
                    "a live node of this cluster already has --node-id {:?}: give each node its \
                     own id (a crashed node's id is free again within {} s)",
                    me.id,
                    EXPIRY.as_secs() + HEARTBEAT.as_secs()
                ))
            }
            Err(e) => return Err(format!("cannot join the node table on NATS: {e}")),
        }
        let nodes = Arc::new(Nodes {
            bus,
            kv: store,
            live: RwLock::new(vec![me.clone()]),
            me: RwLock::new(me),
        });
        nodes.refresh().await;
        Ok(nodes)
    }

    pub fn me(&self) -> NodeEntry {
        self.me.read().clone()
    }

    /// The live nodes as of the last heartbeat.
    pub fn live(&self) -> Vec<NodeEntry> {
        self.live.read().clone()
    }

    /// One heartbeat: puts this node's entry with its current counts, then reads the table.
    pub async fn beat(&self, sessions: usize, thread_actors: usize) {
        let entry = {
            let mut me = self.me.write();
            me.sessions = sessions;
            me.thread_actors = thread_actors;
            me.heartbeat_at = crate::ids::now_ms();
            me.clone()
        };
        let body = serde_json::to_vec(&entry).unwrap_or_default();
        if let Err(e) = self.kv.put(&entry.id, body.into()).await {
            tracing::warn!(error = %e, "cannot put this node's heartbeat");
        }
        self.refresh().await;
    }

    /// Reads every live entry of the table.
    pub async fn refresh(&self) {
        let connected = self.bus.connected();
        metrics::gauge!(crate::metrics::CLUSTER_BUS).set(if connected { 1.0 } else { 0.0 });
        if !connected {
            return;
        }
        let mut found = Vec::new();
        match self.kv.keys().await {
            Ok(mut keys) => {
                while let Some(Ok(key)) = keys.next().await {
                    if let Ok(Some(v)) = self.kv.get(&key).await {
                        if let Ok(e) = serde_json::from_slice::<NodeEntry>(&v) {
                            found.push(e);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the node table");
                return;
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        metrics::gauge!(crate::metrics::CLUSTER_NODES).set(found.len() as f64);
        // a node of an earlier version in the table: the relay writes what it reads
        let lz4 = all_read(&found, super::log::LZ4_FORMAT);
        self.bus
            .log_lz4
            .store(lz4, std::sync::atomic::Ordering::Relaxed);
        *self.live.write() = found;
    }

    /// Leaves the table (a clean stop): the other nodes stop counting this one at once.
    pub async fn leave(&self) {
        let id = self.me.read().id.clone();
        let _ = self.kv.purge(&id).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_of_an_earlier_version_keeps_the_log_uncompressed() {
        // an entry as a node before compressed log messages puts it
        let old: NodeEntry = serde_json::from_str(
            r#"{"id":"n1","address":"http://a","startedAt":1,"sessions":0,"threadActors":0,"heartbeatAt":2}"#,
        )
        .unwrap();
        assert!(old.reads.is_empty());
        let new = NodeEntry {
            id: "n2".into(),
            reads: vec!["rows-lz4".into()],
            ..old.clone()
        };
        // and an earlier version reads a new entry (unknown fields are ignored)
        let back: serde_json::Value = serde_json::to_value(&new).unwrap();
        assert_eq!(back["reads"][0], "rows-lz4");
        assert!(all_read(&[new.clone(), new.clone()], "rows-lz4"));
        assert!(!all_read(&[new.clone(), old], "rows-lz4"));
        assert!(!all_read(&[], "rows-lz4"), "no table read yet");
    }
}
