//! Real-time events across nodes (contract §9.2.3, §9.2.8).
//!
//! ```text
//!  commit (any node) ── same transaction ──► cluster_events (PostgreSQL)
//!        └─ kick (NATS core) ──► relay (one node at a time) ── id order ──► JetStream <prefix>_events
//!                                                                          │ ordered consumer, every node
//!                                                                          ▼
//!                                                              Users::publish_at(recipients, event, seq)
//! ```
//!
//! - **Never lost**: an event is a row of the change's own transaction, so it exists exactly
//!   when the change does; the relay deletes rows only after JetStream acknowledged them.
//! - **In order**: a thread's writers take turns on its row lock before writing their events,
//!   so a thread's rows have increasing ids in commit order, and the relay publishes rows in id
//!   order (a row still uncommitted is published when it commits: it belongs to another
//!   thread). One relay at a time (a PostgreSQL advisory lock elects it); a second one during a
//!   hand-over publishes the same rows with the same `Nats-Msg-Id`, which JetStream drops.
//! - **Never invented**: nothing but committed rows is published.
//! - **Cursors**: an event's `n` is its JetStream stream sequence, so it is the same on every
//!   node; the epoch names the stream (from its creation time), so it survives node restarts.
//! - **NATS down**: commits go on (rows wait in PostgreSQL); the relay publishes them in order
//!   when NATS is back, and each node's ordered consumer resumes where it stopped.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};

use super::Bus;
use crate::hub::realtime::{self, Event};
use crate::hub::users::Users;
use crate::ids::UserId;
use crate::store::{cluster_events, Store};

/// Rows the relay publishes per round.
const BATCH: i64 = 512;
/// How often the relay looks without being kicked (and a non-leader tries to lead).
const POLL: Duration = Duration::from_millis(200);
/// JetStream's window for dropping a republished row (`Nats-Msg-Id`).
const DEDUP_WINDOW: Duration = Duration::from_secs(120);
/// The kind of the control event that closes a user's sessions (revoke, delete identity).
pub const CLOSE_USER: &str = "closeUser";

/// An event as it travels on JetStream.
#[derive(Serialize, Deserialize)]
struct Wire {
    kind: String,
    body: String,
    recipients: Vec<String>,
}

impl Bus {
    fn events_stream(&self) -> String {
        self.name("events")
    }

    fn events_subject(&self) -> String {
        format!("{}.events", self.prefix)
    }

    fn kick_subject(&self) -> String {
        format!("{}.relay", self.prefix)
    }

    /// Makes (or finds) the event log, keeping events for `keep` (the resume window); returns
    /// its epoch and the position the log starts at now.
    pub async fn event_log(&self, keep: Duration) -> Result<(String, u64), String> {
        let keep = keep.max(Duration::from_secs(60));
        let config = stream::Config {
            name: self.events_stream(),
            description: Some("confab: committed real-time events of a deployment".into()),
            subjects: vec![self.events_subject()],
            storage: stream::StorageType::File,
            max_age: keep,
            duplicate_window: DEDUP_WINDOW.min(keep),
            discard: stream::DiscardPolicy::Old,
            num_replicas: 1,
            ..Default::default()
        };
        let mut stream = self
            .jetstream
            .get_or_create_stream(config)
            .await
            .map_err(|e| format!("cannot make the event log on NATS: {e}"))?;
        let info = stream
            .info()
            .await
            .map_err(|e| format!("cannot read the event log on NATS: {e}"))?;
        Ok((
            epoch_of(info.created.unix_timestamp_nanos()),
            info.state.first_sequence.saturating_sub(1),
        ))
    }

    /// Tells the relay (on whichever node leads) that events were committed.
    pub fn kick(self: &Arc<Self>) {
        if !self.connected() {
            return;
        }
        let bus = self.clone();
        actix_web::rt::spawn(async move {
            let _ = bus
                .client
                .publish(bus.kick_subject(), bytes::Bytes::new())
                .await;
        });
    }
}

/// The epoch of a log made at `nanos`: base 36, 8 to 16 characters [a-z0-9].
fn epoch_of(nanos: i128) -> String {
    let mut n = nanos.unsigned_abs();
    let mut s = Vec::new();
    while n > 0 {
        let d = (n % 36) as u8;
        s.push(if d < 10 { b'0' + d } else { b'a' + d - 10 });
        n /= 36;
    }
    while s.len() < 8 {
        s.push(b'0');
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

/// Every node: applies the event log to its users' streams, in log order, from `origin` on.
/// The ordered consumer is made again from the last applied position whenever the connection
/// to NATS comes back (a restarted server has forgotten it).
pub async fn consume(bus: Arc<Bus>, users: Arc<Users>, origin: u64) -> Result<(), String> {
    users.set_origin(origin);
    // the first one is made now, so that a start fails if it cannot be
    let mut messages = Some(reader(&bus, origin).await?);
    actix_web::rt::spawn(async move {
        loop {
            let mut current = match messages.take() {
                Some(m) => m,
                None => match reader(&bus, users.applied()).await {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the event log; retrying");
                        actix_web::rt::time::sleep(POLL).await;
                        continue;
                    }
                },
            };
            loop {
                tokio::select! {
                    m = current.next() => match m {
                        Some(Ok(m)) => {
                            if let Ok(seq) = m.info().map(|i| i.stream_sequence) {
                                // (a reader made again may repeat what was applied)
                                if seq > users.applied() {
                                    apply(&users, &m.payload, seq);
                                }
                            }
                        }
                        Some(Err(e)) => tracing::warn!(error = %e, "event log consumer"),
                        None => break,
                    },
                    _ = bus.reconnected.notified() => break,
                }
            }
        }
    });
    Ok(())
}

/// An ordered reader of the event log after position `after`.
async fn reader(bus: &Bus, after: u64) -> Result<consumer::pull::Ordered, String> {
    let stream = bus
        .jetstream
        .get_stream(bus.events_stream())
        .await
        .map_err(|e| format!("cannot open the event log on NATS: {e}"))?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cannot read the event log on NATS: {e}"))?;
    consumer
        .messages()
        .await
        .map_err(|e| format!("cannot read the event log on NATS: {e}"))
}

/// Applies one event of the log at position `seq`.
fn apply(users: &Users, payload: &[u8], seq: u64) {
    let Ok(w) = serde_json::from_slice::<Wire>(payload) else {
        tracing::warn!(seq, "unreadable event in the log");
        users.skip_to(seq);
        return;
    };
    let recipients: Vec<UserId> = w.recipients.iter().map(UserId::new).collect();
    if w.kind == CLOSE_USER {
        for u in &recipients {
            users.close_user(u, crate::hub::queue::CloseReason::Revoked);
        }
        users.skip_to(seq);
        return;
    }
    match realtime::kind_of(&w.kind) {
        Some(kind) => {
            let event = Arc::new(Event { kind, body: w.body });
            users.publish_at(&recipients, &event, seq);
        }
        None => {
            tracing::warn!(kind = %w.kind, seq, "unknown event kind in the log");
            users.skip_to(seq);
        }
    }
}

/// Every node runs the relay; the node holding the relay lock publishes.
pub fn spawn_relay(bus: Arc<Bus>, store: Store, db_url: String) {
    actix_web::rt::spawn(async move {
        let mut kicks = match bus.client.subscribe(bus.kick_subject()).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to relay kicks; polling only");
                None
            }
        };
        let lead = Arc::new(std::sync::Mutex::new(crate::store::hold::Lead::new(
            db_url, "relay",
        )));
        loop {
            let l = lead.clone();
            let leading = actix_web::web::block(move || {
                l.lock().unwrap_or_else(|p| p.into_inner()).try_lead()
            })
            .await
            .unwrap_or(false);
            let mut full = false;
            if leading && bus.connected() {
                match relay_once(&bus, &store).await {
                    Ok(n) => full = n as i64 == BATCH,
                    Err(e) => tracing::warn!(error = %e, "relay round failed"),
                }
            }
            if full {
                continue;
            }
            match &mut kicks {
                Some(k) => {
                    tokio::select! {
                        _ = k.next() => {
                            // one round for every kick that arrived meanwhile
                            while let Some(Some(_)) = k.next().now_or_never() {}
                        }
                        _ = actix_web::rt::time::sleep(POLL) => {}
                    }
                }
                None => actix_web::rt::time::sleep(POLL).await,
            }
        }
    });
}

/// Publishes the oldest committed events in id order and deletes them once acknowledged;
/// how many.
async fn relay_once(bus: &Bus, store: &Store) -> Result<usize, String> {
    let rows = store
        .read(|c| Ok(cluster_events::oldest(c, BATCH)?))
        .await
        .map_err(|e| e.message)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut acks = Vec::with_capacity(rows.len());
    for r in &rows {
        let wire = Wire {
            kind: r.kind.clone(),
            body: r.body.clone(),
            recipients: serde_json::from_str(&r.recipients).unwrap_or_default(),
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", r.id.to_string().as_str());
        let ack = bus
            .jetstream
            .publish_with_headers(
                bus.events_subject(),
                headers,
                serde_json::to_vec(&wire).unwrap_or_default().into(),
            )
            .await
            .map_err(|e| format!("publish: {e}"))?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await
            .map_err(|e| format!("publish acknowledgement: {e}"))?;
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let n = ids.len();
    // one autocommit statement on a pool connection: it need not queue behind thread writes
    store
        .read(move |c| Ok(cluster_events::delete(c, &ids)?))
        .await
        .map_err(|e| e.message)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_cursor_epochs() {
        for nanos in [0_i128, 1, 1_733_300_000_000_000_000, i64::MAX as i128] {
            let e = epoch_of(nanos);
            assert!(
                crate::hub::users::Cursor::parse(&format!("{e}.1")).is_some(),
                "{e}"
            );
        }
        assert_ne!(epoch_of(1), epoch_of(2));
    }
}
