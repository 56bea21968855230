//! Webhooks (contract §7): Event Grid-shaped events, the outbox they are written to in the
//! transaction of the change they describe, and the dispatcher that delivers them.
//!
//! - [`Webhooks`] holds the active subscriptions in memory, so a thread actor's write job
//!   knows which event types anyone wants without a database read; only those are built.
//! - [`Outbox`] collects a job's events and inserts one delivery row per (event, matching
//!   subscription) before the job returns: the rows commit or roll back with the change.
//! - [`dispatcher`] delivers due rows (at least once, retries, dead letters, signatures) and
//!   [`ssrf`] keeps it off private addresses.

pub mod chat;
pub mod client;
pub mod dispatcher;
pub mod envelope;
pub mod signing;
pub mod ssrf;

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use crate::error::ApiError;
use crate::model::{ProvisioningState, SubscriptionStatus};
use crate::store::models::{NewDelivery, Subscription};
use crate::store::{webhooks, DbConn, Store};

/// Every event type confab emits, without the `Microsoft.Communication.` prefix.
pub const EVENT_TYPES: &[&str] = &[
    "ChatMessageReceived",
    "ChatMessageReceivedInThread",
    "ChatMessageEdited",
    "ChatMessageEditedInThread",
    "ChatMessageDeleted",
    "ChatMessageDeletedInThread",
    "ChatThreadCreatedWithUser",
    "ChatThreadCreated",
    "ChatThreadWithUserDeleted",
    "ChatThreadDeleted",
    "ChatThreadPropertiesUpdatedPerUser",
    "ChatThreadPropertiesUpdated",
    "ChatParticipantAddedToThreadWithUser",
    "ChatThreadParticipantAdded",
    "ChatParticipantRemovedFromThreadWithUser",
    "ChatThreadParticipantRemoved",
    "ChatTypingIndicatorReceivedInThread",
];

pub const TYPE_PREFIX: &str = "Microsoft.Communication.";

/// The full name of an event type (`Microsoft.Communication.<name>`), if confab emits it.
pub fn full_type(name: &str) -> Option<String> {
    let short = name.strip_prefix(TYPE_PREFIX).unwrap_or(name);
    EVENT_TYPES
        .iter()
        .find(|t| t.eq_ignore_ascii_case(short))
        .map(|t| format!("{TYPE_PREFIX}{t}"))
}

/// One event, before it is put in an envelope: `id` is fresh per (event, recipient) and shared
/// by every subscription.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    pub id: String,
    /// Full name, `Microsoft.Communication.…`.
    pub event_type: String,
    pub subject: String,
    pub data: Value,
    /// Epoch ms: the change's time (`eventTime`).
    pub time: i64,
}

/// A subscription as the write path needs it.
#[derive(Debug, Clone)]
struct Active {
    key: String,
    /// Full type names; `None` = every type.
    types: Option<HashSet<String>>,
}

impl Active {
    fn wants(&self, event_type: &str) -> bool {
        self.types.as_ref().is_none_or(|t| t.contains(event_type))
    }
}

/// The active subscriptions (validated and enabled), the dispatcher's wake-up, and the store
/// the subscriptions and deliveries live in.
pub struct Webhooks {
    store: Store,
    active: RwLock<Arc<Vec<Active>>>,
    wake: tokio::sync::Notify,
    /// Cluster mode: tells the other nodes that the subscriptions changed.
    announce: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Webhooks {
    /// Starts with no active subscription; [`Webhooks::reload`] reads them.
    pub fn new(store: Store) -> Webhooks {
        Webhooks {
            store,
            active: Default::default(),
            wake: Default::default(),
            announce: Default::default(),
        }
    }

    /// Cluster mode: `announce` tells the other nodes to [`Webhooks::reload`] after a change.
    pub fn announce_changes_with(&self, announce: Box<dyn Fn() + Send + Sync>) {
        let _ = self.announce.set(announce);
    }

    /// After this node changed a subscription: reloads, and has the other nodes reload.
    pub async fn changed(&self) {
        self.reload().await;
        if let Some(announce) = self.announce.get() {
            announce();
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reloads the active set from the store (after a subscription changed state).
    pub async fn reload(&self) {
        match self.store.read(|c| Ok(webhooks::subscriptions(c)?)).await {
            Ok(all) => {
                self.load(&all);
                // rows of a subscription that just became active may be due
                self.wake();
            }
            Err(e) => tracing::warn!(error = %e, "cannot reload webhook subscriptions"),
        }
    }

    /// Re-queues one delivery of a subscription (contract §7.7 `:replay`): attempts reset,
    /// the same event id. 404 if there is no such delivery.
    pub async fn replay(&self, key: String, event_id: String) -> Result<(), ApiError> {
        let n = self
            .store
            .write(move |c| Ok(webhooks::replay(c, &key, &event_id, crate::ids::now_ms())?))
            .await?;
        if n == 0 {
            return Err(ApiError::not_found("Delivery"));
        }
        self.wake();
        Ok(())
    }

    /// Replaces the active set from the stored subscriptions.
    pub fn load(&self, all: &[Subscription]) {
        let active = all
            .iter()
            .filter(|s| is_active(s))
            .map(|s| Active {
                key: s.key.clone(),
                types: parse_types(&s.event_types),
            })
            .collect();
        *self.active.write() = Arc::new(active);
    }

    /// An outbox for one write job, over the subscriptions active now.
    pub fn outbox(&self) -> Outbox {
        Outbox {
            active: self.active.read().clone(),
            events: Vec::new(),
        }
    }

    /// Whether any active subscription includes `event_type` (full name).
    pub fn wants(&self, event_type: &str) -> bool {
        self.active.read().iter().any(|a| a.wants(event_type))
    }

    /// Tells the dispatcher that new rows are committed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }
}

/// Whether new events are written for a subscription.
pub fn is_active(s: &Subscription) -> bool {
    s.provisioning_state == ProvisioningState::Succeeded.as_str()
        && s.status == SubscriptionStatus::Active.as_str()
}

/// The stored `includedEventTypes` (a JSON array; empty = all).
pub fn parse_types(json: &str) -> Option<HashSet<String>> {
    let list: Vec<String> = serde_json::from_str(json).unwrap_or_default();
    (!list.is_empty()).then(|| list.into_iter().collect())
}

/// The events of one write job. Builders ask [`Outbox::wants`] first, so nothing is built for
/// types no subscription includes.
#[derive(Clone)]
pub struct Outbox {
    active: Arc<Vec<Active>>,
    events: Vec<WebhookEvent>,
}

impl Outbox {
    pub fn wants(&self, event_type: &str) -> bool {
        self.active.iter().any(|a| a.wants(event_type))
    }

    /// Adds an event of a wanted type; `build` gives `(subject, data)`.
    pub fn emit(&mut self, event_type: &str, time: i64, build: impl FnOnce() -> (String, Value)) {
        if !self.wants(event_type) {
            return;
        }
        let (subject, data) = build();
        self.events.push(WebhookEvent {
            id: uuid::Uuid::new_v4().to_string(),
            event_type: event_type.to_string(),
            subject,
            data,
            time,
        });
    }

    /// Writes one delivery row per (event, subscription that includes it), in the caller's
    /// transaction. Returns the number of rows.
    pub fn flush(self, c: &mut DbConn) -> Result<usize, ApiError> {
        if self.events.is_empty() {
            return Ok(0);
        }
        let now = crate::ids::now_ms();
        let data: Vec<String> = self.events.iter().map(|e| e.data.to_string()).collect();
        let mut rows = Vec::new();
        for (e, data) in self.events.iter().zip(&data) {
            for a in self.active.iter().filter(|a| a.wants(&e.event_type)) {
                rows.push(NewDelivery {
                    subscription: &a.key,
                    event_id: &e.id,
                    event_type: &e.event_type,
                    subject: &e.subject,
                    data,
                    event_time: e.time,
                    status: webhooks::PENDING,
                    attempts: 0,
                    next_attempt_at: Some(now),
                    created_at: now,
                });
            }
        }
        Ok(webhooks::insert_deliveries(c, &rows)?)
    }
}
