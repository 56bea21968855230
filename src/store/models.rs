//! Row structs (what queries load) and insert forms, one per table.

use diesel::prelude::*;

use super::schema::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = identities)]
pub struct Identity {
    pub id: String,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
    pub tokens_revoked_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = threads)]
pub struct Thread {
    pub id: String,
    pub topic: String,
    pub created_by: String,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
    pub metadata: String,
    pub retention: Option<String>,
    pub delete_after: Option<i64>,
    pub last_seq: i64,
    pub last_message_id: i64,
    pub last_message_at: i64,
    /// Moved on by every change of membership (see `store::threads::bump_members`).
    pub members_version: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = participants)]
pub struct Participant {
    pub thread_id: String,
    pub user_id: String,
    pub display_name: Option<String>,
    pub metadata: String,
    pub share_history_time: i64,
    pub added_at: i64,
    pub added_seq: i64,
    pub add_index: i32,
    pub removed_at: Option<i64>,
}

impl Participant {
    pub fn is_current(&self) -> bool {
        self.removed_at.is_none()
    }

    /// Contract §3.2: visible when `createdOn >= shareHistoryTime` and (current or
    /// `createdOn <= removedOn`).
    pub fn can_see(&self, created_at: i64) -> bool {
        created_at >= self.share_history_time && self.removed_at.is_none_or(|r| created_at <= r)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = messages)]
pub struct Message {
    pub thread_id: String,
    pub seq: i64,
    pub id: i64,
    pub kind: String,
    pub content: Option<String>,
    pub system: Option<String>,
    pub sender_id: Option<String>,
    pub sender_display_name: Option<String>,
    pub metadata: String,
    pub priority: String,
    pub created_at: i64,
    pub version: i64,
    pub edited_at: Option<i64>,
    pub deleted_at: Option<i64>,
    /// Thousandths of the content's sentiment score (see `sentiment`); `None` on system
    /// messages and where sentiment is off.
    pub sentiment: Option<i64>,
}

impl Message {
    pub fn is_system(&self) -> bool {
        !matches!(self.kind.as_str(), "text" | "html")
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = read_receipts)]
pub struct Receipt {
    pub thread_id: String,
    pub user_id: String,
    pub message_id: i64,
    pub seq: i64,
    pub read_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency)]
pub struct IdempotencyRecord {
    pub user_id: String,
    pub request_id: String,
    pub body_hash: String,
    pub status: i32,
    pub response: String,
    pub location: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = event_subscriptions, treat_none_as_null = true)]
pub struct Subscription {
    pub key: String,
    pub name: String,
    pub endpoint_url: String,
    pub event_types: String,
    pub delivery_schema: String,
    pub secret: Option<String>,
    pub old_secret: Option<String>,
    pub old_secret_until: Option<i64>,
    pub max_attempts: i32,
    pub ttl_minutes: i32,
    pub provisioning_state: String,
    pub status: String,
    pub validation_code: Option<String>,
    pub validation_expires: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries)]
pub struct Delivery {
    pub seq: i64,
    pub subscription: String,
    pub event_id: String,
    pub event_type: String,
    pub subject: String,
    pub data: String,
    pub event_time: i64,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub last_status_code: Option<i32>,
    pub last_latency_ms: Option<i64>,
    pub dead_letter_reason: Option<String>,
    pub created_at: i64,
}

/// An outbox row as the thread actor's transaction writes it (status `Pending`, due now).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct NewDelivery<'a> {
    pub subscription: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub subject: &'a str,
    pub data: &'a str,
    pub event_time: i64,
    pub status: &'a str,
    pub attempts: i32,
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
}

/// What one attempt changes on a delivery row.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = webhook_deliveries, treat_none_as_null = true)]
pub struct AttemptOutcome {
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub last_status_code: Option<i32>,
    pub last_latency_ms: Option<i64>,
    pub dead_letter_reason: Option<String>,
}
