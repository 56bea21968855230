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
//!   hand-over may publish rows again: every node remembers the ids of the rows it applied and
//!   applies a row once (JetStream itself drops a message whose very set of rows it has seen).
//! - **Never invented**: nothing but committed rows is published.
//! - **Packed**: a transaction's events are one row (a big one's, rows of up to
//!   `cluster_events::PACK_BYTES`), and a relay round publishes consecutive rows together, up
//!   to 16 a log message (a JetStream message costs the server a write and every node a
//!   delivery, whatever it carries), compressed while every live node reads that
//!   (`log::LZ4_FORMAT`). Under load rounds are spaced ([`RELAY_SPACING`]) and follow each
//!   other without kicks; a node kicks the relay (NATS core, heard by the leader only) at most
//!   once per spacing.
//! - **Cursors**: the `i`-th event of the log message at stream sequence `seq` has `n` =
//!   `seq << 16 | i` ([`position`]), so it is the same on every node and increases along every
//!   user's stream (not consecutively, as §9.2.3 allows); the epoch names the stream (from its
//!   creation time), so it survives node restarts.
//! - **NATS down**: commits go on (rows wait in PostgreSQL); the relay publishes them in order
//!   when NATS is back, and each node's ordered consumer resumes where it stopped.

// Without PostgreSQL there is no cluster mode (configuration refuses it) and no relay.
#![cfg_attr(not(feature = "postgres"), allow(unused_imports, dead_code))]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{consumer, stream};
use futures_util::{FutureExt, StreamExt};

use super::log::{
    compress, packs, uncompress, unseen, Rows, Seen, FORMAT_HEADER, LZ4_FORMAT, ROWS_FORMAT,
};
use super::Bus;
use crate::hub::realtime::{self, Event};
use crate::hub::users::Users;
use crate::ids::UserId;
use crate::store::cluster_events;
#[cfg(feature = "postgres")]
use crate::store::hold::Lead;

/// Rows the relay publishes per round.
const BATCH: i64 = 512;
/// How often the relay looks without being kicked (and a non-leader tries to lead).
const POLL: Duration = Duration::from_millis(200);
/// Rounds of the relay that publish something start at least this far apart: a kick after a
/// quiet spell is served at once, and under load a round gathers the rows of the interval
/// into few log messages (each costs JetStream a write and every node a delivery).
const RELAY_SPACING: Duration = Duration::from_millis(5);
/// A node's kicks of the relay are at least this far apart (see `Bus::kick`).
const KICK_SPACING: Duration = RELAY_SPACING;
/// JetStream's window for dropping a republished row (`Nats-Msg-Id`).
const DEDUP_WINDOW: Duration = Duration::from_secs(120);
/// The kind of the control event that closes a user's sessions and forgets their cached
/// identity (revoke, delete identity). Its body is a nonce: a node that applied it says so on
/// `<prefix>.closed.<nonce>` (see `Cluster::closing`).
pub const CLOSE_USER: &str = "closeUser";

/// What a node does, besides closing their sessions, for each user of a `closeUser` event.
pub type OnClose = Arc<dyn Fn(&UserId) + Send + Sync>;

/// Bits of `n` that number the events of one log message.
pub(super) const SHIFT: u32 = 16;

/// The `n` of the `i`-th event of the log message at `seq`.
fn position(seq: u64, i: usize) -> u64 {
    (seq << SHIFT) | i as u64
}

/// The last `n` the log message at `seq` may use.
fn end_of(seq: u64) -> u64 {
    (seq << SHIFT) | ((1 << SHIFT) - 1)
}

/// The log message an `n` belongs to.
fn message_of(n: u64) -> u64 {
    n >> SHIFT
}

impl Bus {
    fn events_stream(&self) -> String {
        self.name(super::EVENTS)
    }

    fn events_subject(&self) -> String {
        format!("{}.events", self.prefix)
    }

    fn kick_subject(&self) -> String {
        format!("{}.relay", self.prefix)
    }

    /// Where nodes confirm that they applied the `closeUser` event with this nonce.
    pub(crate) fn closed_subject(&self, nonce: &str) -> String {
        format!("{}.closed.{nonce}", self.prefix)
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

    /// Tells the relay (on whichever node leads) that events were committed. Kicks of commits
    /// made while one is on its way are that one: it is sent after they committed. A node
    /// spaces its kicks [`KICK_SPACING`] apart: under load one kick covers the commits of the
    /// interval (each commit kicked on its own, the kicks outnumbered the log's messages three
    /// to one), and a commit after a quiet spell is kicked at once.
    pub fn kick(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if !self.connected() || self.kick_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let bus = self.clone();
        actix_web::rt::spawn(async move {
            let last = *bus.last_kick.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(wait) = last.and_then(|t| KICK_SPACING.checked_sub(t.elapsed())) {
                actix_web::rt::time::sleep(wait).await;
            }
            *bus.last_kick.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            bus.kick_pending.store(false, Ordering::Release);
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
pub async fn consume(
    bus: Arc<Bus>,
    users: Arc<Users>,
    origin: u64,
    on_close: OnClose,
) -> Result<(), String> {
    users.set_origin(end_of(origin));
    // the first one is made now, so that a start fails if it cannot be
    let mut messages = Some(reader(&bus, origin).await?);
    actix_web::rt::spawn(async move {
        let mut seen = Seen::default();
        loop {
            let mut current = match messages.take() {
                Some(m) => m,
                None => match reader(&bus, message_of(users.applied())).await {
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
                                if position(seq, 0) > users.applied() {
                                    let header = |name: &str| {
                                        m.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str())
                                    };
                                    let unpacked;
                                    let (payload, rows) = match header(FORMAT_HEADER) {
                                        Some(ROWS_FORMAT) => (Ok(&m.payload[..]), Rows::Packed),
                                        Some(LZ4_FORMAT) => {
                                            unpacked = uncompress(&m.payload);
                                            (unpacked.as_deref(), Rows::Packed)
                                        }
                                        _ => (
                                            Ok(&m.payload[..]),
                                            Rows::One(header("Nats-Msg-Id").and_then(|v| v.parse().ok())),
                                        ),
                                    };
                                    match payload {
                                        Ok(payload) => {
                                            let read = apply(&users, &on_close, &mut seen, payload, rows, seq);
                                            for nonce in read {
                                                confirm_closed(&bus, &nonce);
                                            }
                                        }
                                        Err(e) => {
                                            tracing::warn!(seq, error = %e, "unreadable event in the log");
                                            users.skip_to(end_of(seq));
                                        }
                                    }
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

/// Tells the node waiting on a `closeUser` event that this one applied it.
fn confirm_closed(bus: &Arc<Bus>, nonce: &str) {
    if nonce.is_empty() || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return;
    }
    let (bus, subject) = (bus.clone(), bus.closed_subject(nonce));
    actix_web::rt::spawn(async move {
        let me = bytes::Bytes::from(bus.node_id.clone());
        if let Err(e) = bus.client.publish(subject, me).await {
            tracing::warn!(error = %e, "cannot confirm a closeUser event");
        }
    });
}

/// Applies the events of the log message at `seq` (those of rows not applied before); the
/// nonces of its `closeUser` events.
fn apply(
    users: &Users,
    on_close: &OnClose,
    seen: &mut Seen,
    payload: &[u8],
    rows: Rows,
    seq: u64,
) -> Vec<String> {
    let mut closed = Vec::new();
    match unseen(seen, payload, rows) {
        Ok(events) => {
            for (i, w) in events.into_iter().enumerate() {
                if w.kind == CLOSE_USER {
                    for u in &w.recipients {
                        on_close(&UserId::new(&**u));
                        users.close_user(u, crate::hub::queue::CloseReason::Revoked);
                    }
                    closed.push(serde_json::from_str(w.body.get()).unwrap_or_default());
                    continue;
                }
                match realtime::kind_of(&w.kind) {
                    Some(kind) if w.body.get().starts_with('"') => {
                        let event = Event::from_literal(kind, w.body.get());
                        users.publish_at(&w.recipients, &event, position(seq, i));
                    }
                    Some(_) => tracing::warn!(kind = %w.kind, seq, "event body is not a string"),
                    None => tracing::warn!(kind = %w.kind, seq, "unknown event kind in the log"),
                }
            }
        }
        Err(e) => tracing::warn!(seq, error = %e, "unreadable event in the log"),
    }
    users.skip_to(end_of(seq));
    closed
}

/// The relay's connection commits without waiting for its WAL flush. Its only writes delete
/// rows the log has acknowledged; should PostgreSQL lose the last of them in a crash, those
/// rows are published again, and dropped again (JetStream drops a pack it has seen, and every
/// node applies a row once). Each round's transaction then costs PostgreSQL no flush of its
/// own (the WAL writer's next flush, or a writer's commit, carries it).
#[cfg(feature = "postgres")]
const RELAY_SESSION: &str = "SET synchronous_commit = off";

/// Every node runs the relay; the node holding the relay lock publishes. Its rounds run on the
/// lock's own connection, one statement each (forget what the last round published, read the
/// next rows).
#[cfg(feature = "postgres")]
pub fn spawn_relay(bus: Arc<Bus>, db_url: String) {
    actix_web::rt::spawn(async move {
        // kicks are for the leader: only the leading node listens to them (a round follows
        // the subscription, so kicks sent before it are not missed)
        let mut kicks: Option<async_nats::Subscriber> = None;
        let lead = Lead::new(db_url, "relay").with_setup(RELAY_SESSION);
        let lead = Arc::new(std::sync::Mutex::new(lead));
        // rows the log has acknowledged, deleted at the start of the next round
        let mut published: Vec<i64> = Vec::new();
        loop {
            let surely = lock(&lead).surely_leading();
            let leading = surely || {
                let l = lead.clone();
                actix_web::web::block(move || lock(&l).try_lead())
                    .await
                    .unwrap_or(false)
            };
            if !leading || !bus.connected() {
                // a follower only looks whether it may lead
                if let Some(mut k) = kicks.take() {
                    let _ = k.unsubscribe().await;
                }
                published.clear();
                actix_web::rt::time::sleep(POLL).await;
                continue;
            }
            if kicks.is_none() {
                match bus.client.subscribe(bus.kick_subject()).await {
                    Ok(s) => kicks = Some(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot subscribe to relay kicks; polling only")
                    }
                }
            }
            let round = Instant::now();
            let full = match relay_once(&bus, &lead, std::mem::take(&mut published)).await {
                Ok(ids) => {
                    let full = ids.len() as i64 == BATCH;
                    published = ids;
                    full
                }
                Err(e) => {
                    tracing::warn!(error = %e, "relay round failed");
                    false
                }
            };
            if full {
                continue;
            }
            if !published.is_empty() {
                // Under load, rounds follow each other without waiting for kicks, spaced so
                // that each gathers several rows. (The next round also deletes these rows.)
                if let Some(rest) = RELAY_SPACING.checked_sub(round.elapsed()) {
                    actix_web::rt::time::sleep(rest).await;
                }
                if let Some(k) = &mut kicks {
                    while let Some(Some(_)) = k.next().now_or_never() {}
                }
                continue;
            }
            match &mut kicks {
                Some(k) => {
                    tokio::select! {
                        kick = k.next() => match kick {
                            // one round for every kick that arrived meanwhile
                            Some(_) => while let Some(Some(_)) = k.next().now_or_never() {},
                            // (closed: subscribe again next round)
                            None => kicks = None,
                        },
                        _ = actix_web::rt::time::sleep(POLL) => {}
                    }
                }
                None => actix_web::rt::time::sleep(POLL).await,
            }
        }
    });
}

#[cfg(feature = "postgres")]
fn lock(lead: &std::sync::Mutex<Lead>) -> std::sync::MutexGuard<'_, Lead> {
    lead.lock().unwrap_or_else(|p| p.into_inner())
}

/// One relay round: forgets the rows `published` by the last round, publishes the oldest
/// committed ones in id order and waits for the log's acknowledgements; the ids published.
#[cfg(feature = "postgres")]
async fn relay_once(
    bus: &Bus,
    lead: &Arc<std::sync::Mutex<Lead>>,
    published: Vec<i64>,
) -> Result<Vec<i64>, String> {
    let l = lead.clone();
    let rows = actix_web::web::block(move || {
        lock(&l).with_conn(|c| cluster_events::take(c, &published, BATCH))
    })
    .await
    .map_err(|e| e.to_string())?
    .ok_or("no longer leading")?
    .map_err(|e| format!("cannot read committed events: {e}"))?;
    let mut acks = Vec::new();
    // compressed only while every live node reads it (see `nodes::Nodes::refresh`)
    let lz4 = bus.log_lz4.load(std::sync::atomic::Ordering::Relaxed);
    for pack in packs(&rows) {
        let mut headers = async_nats::HeaderMap::new();
        let payload = if lz4 {
            headers.insert(FORMAT_HEADER, LZ4_FORMAT);
            compress(pack.payload.as_bytes()).into()
        } else {
            headers.insert(FORMAT_HEADER, ROWS_FORMAT);
            pack.payload.into()
        };
        headers.insert("Nats-Msg-Id", pack.id.as_str());
        let ack = bus
            .jetstream
            .publish_with_headers(bus.events_subject(), headers, payload)
            .await
            .map_err(|e| format!("publish: {e}"))?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await
            .map_err(|e| format!("publish acknowledgement: {e}"))?;
    }
    Ok(rows.iter().map(|r| r.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_increase_across_and_within_log_messages() {
        assert!(position(1, 0) > end_of(0));
        assert!(position(7, 1) > position(7, 0));
        assert!(end_of(7) >= position(7, 4095));
        assert!(position(8, 0) > end_of(7));
        assert_eq!(message_of(position(9, 3)), 9);
        assert_eq!(message_of(end_of(9)), 9);
    }

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
