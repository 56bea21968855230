//! What a write job produces besides its rows: the webhook events of its outbox, and the
//! real-time events of the change with their recipients (membership as of the commit).
//!
//! Both are built inside the job, from what it wrote and what the actor checked under the
//! thread row's lock (except a standalone node's `chatMessageReceived` events, which the thread
//! actor builds after the commit, where it publishes the others: sends are most of the writer's
//! jobs, and their events cost it a tenth of its time). After the commit a standalone node publishes the real-time events to its
//! users' streams, in order; a cluster node has written them in the same transaction to
//! `cluster_events`, from which they reach every node (see `cluster::events`).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::events::Outbox;
use crate::hub::realtime::Event;
use crate::ids::UserId;
use crate::store::cluster_events::NewClusterEvent;

/// Real-time events with their recipients, in commit order.
pub(super) type Realtime = Vec<(Arc<[UserId]>, Arc<Event>)>;

#[derive(Clone)]
pub struct Effects {
    outbox: Outbox,
    pub(super) realtime: Realtime,
}

impl Effects {
    pub(super) fn new(outbox: Outbox) -> Effects {
        Effects {
            outbox,
            realtime: Vec::new(),
        }
    }

    /// Whether the job's outbox writes no row for events of `types` (no active subscription
    /// includes any of them).
    pub(super) fn writes_no_webhooks(&self, types: &[&str]) -> bool {
        types.iter().all(|t| !self.outbox.wants(t))
    }

    /// Publishes `event` to `recipients` once the job has committed.
    pub fn publish(&mut self, recipients: impl Into<Arc<[UserId]>>, event: Arc<Event>) {
        self.realtime.push((recipients.into(), event));
    }

    pub(super) fn into_parts(self) -> (Outbox, Realtime) {
        (self.outbox, self.realtime)
    }
}

/// Webhook builders take the outbox: `chat::message(fx, …)`.
impl Deref for Effects {
    type Target = Outbox;

    fn deref(&self) -> &Outbox {
        &self.outbox
    }
}

impl DerefMut for Effects {
    fn deref_mut(&mut self) -> &mut Outbox {
        &mut self.outbox
    }
}

/// Cluster mode: the rows of `cluster_events` that carry `realtime`.
pub(super) fn rows(realtime: &[(Arc<[UserId]>, Arc<Event>)]) -> Vec<NewClusterEvent> {
    let now = crate::ids::now_ms();
    realtime
        .iter()
        .map(|(to, e)| NewClusterEvent {
            kind: e.kind.to_string(),
            body: e.body().to_string(),
            recipients: serde_json::to_string(&to[..]).unwrap_or_else(|_| "[]".into()),
            created_at: now,
        })
        .collect()
}
