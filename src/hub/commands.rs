//! Commands a request handler sends to a thread's actor, one struct per operation. Each is
//! answered only after its change has committed.

use actix::Message;

use crate::error::ApiError;
use crate::ids::UserId;
use crate::model::{
    InvalidParticipant, MessageKind, MetaPatch, Metadata, Priority, RetentionPolicy,
};

/// A participant to add, with its identifier already resolved.
#[derive(Debug, Clone)]
pub struct NewParticipant {
    pub raw_id: UserId,
    pub is_communication_user: bool,
    pub display_name: Option<String>,
    pub metadata: Metadata,
    /// `None` = all history.
    pub share_history_time: Option<i64>,
}

/// Where to store the outcome of a request that carried `repeatability-request-id`.
#[derive(Debug, Clone)]
pub struct IdemSlot {
    pub user: UserId,
    pub request_id: String,
    pub body_hash: String,
}

/// A response as sent, and as stored for an idempotent replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
}

/// POST /chat/threads → the new thread's actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Replay, ApiError>")]
pub struct CreateThread {
    /// The originating request's `x-ms-request-id` (webhook `transactionId`).
    pub request_id: String,
    pub creator: UserId,
    pub topic: String,
    pub participants: Vec<NewParticipant>,
    pub metadata: Metadata,
    pub retention: Option<RetentionPolicy>,
    /// Absolute URL of the new thread (the `Location` header).
    pub location: String,
    pub idem: Option<IdemSlot>,
}

/// PATCH /chat/threads/{t} → thread actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct UpdateThread {
    /// The originating request's `x-ms-request-id` (webhook `transactionId`).
    pub request_id: String,
    pub user: UserId,
    pub topic: Option<String>,
    pub metadata: MetaPatch,
    /// `Some(RetentionPolicy::None)` for `"retentionPolicy": null`.
    pub retention: Option<RetentionPolicy>,
}

impl UpdateThread {
    pub fn is_empty(&self) -> bool {
        self.topic.is_none() && self.metadata == MetaPatch::Keep && self.retention.is_none()
    }
}

/// DELETE /chat/threads/{t} (or the retention sweeper) → thread actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct DeleteThread {
    /// The originating request's `x-ms-request-id` (webhook `transactionId`).
    pub request_id: String,
    /// The deleting user, or [`crate::model::SYSTEM_ACTOR`] for the sweeper.
    pub user: UserId,
}

/// POST /chat/threads/{t}/messages → thread actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Replay, ApiError>")]
pub struct SendMessage {
    /// The originating request's `x-ms-request-id` (webhook `transactionId`).
    pub request_id: String,
    pub user: UserId,
    /// Already sanitized when `kind` is html.
    pub content: String,
    pub kind: MessageKind,
    pub display_name: Option<String>,
    pub metadata: Metadata,
    pub priority: Priority,
    /// Thousandths of the content's sentiment score (`None` when sentiment is off).
    pub sentiment: Option<i64>,
    /// `…/chat/threads/{t}/messages/`; the new id is appended for `Location`.
    pub location_prefix: String,
    pub idem: Option<IdemSlot>,
}

/// PATCH /chat/threads/{t}/messages/{m} → thread actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct EditMessage {
    /// The originating request's `x-ms-request-id` (webhook `transactionId`).
    pub request_id: String,
    pub user: UserId,
    pub message_id: i64,
    /// Raw content; sanitized in the transaction if the message is html.
    pub content: Option<String>,
    pub metadata: MetaPatch,
    pub priority: Option<Priority>,
}

impl EditMessage {
    pub fn is_empty(&self) -> bool {
        self.content.is_none() && self.metadata == MetaPatch::Keep && self.priority.is_none()
    }
}

/// DELETE /chat/threads/{t}/messages/{m} → thread actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct DeleteMessage {
    /// The originating request's `x-ms-request-id` (webhook `transactionId`).
    pub request_id: String,
    pub user: UserId,
    pub message_id: i64,
}

/// POST /chat/threads/{t}/participants/:add → thread actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<InvalidParticipant>, ApiError>")]
pub struct AddParticipants {
    /// The originating request's `x-ms-request-id` (webhook `transactionId`).
    pub request_id: String,
    pub user: UserId,
    pub participants: Vec<NewParticipant>,
}

/// POST /chat/threads/{t}/participants/:remove → thread actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct RemoveParticipant {
    /// The originating request's `x-ms-request-id` (webhook `transactionId`).
    pub request_id: String,
    pub user: UserId,
    pub target: UserId,
}

/// POST /chat/threads/{t}/readReceipts → thread actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct SendReceipt {
    pub user: UserId,
    pub message_id: i64,
}

/// POST /chat/threads/{t}/typing → thread actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct Typing {
    /// The originating request's `x-ms-request-id` (webhook `transactionId`).
    pub request_id: String,
    pub user: UserId,
    pub display_name: Option<String>,
}
