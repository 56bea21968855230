//! Messages, read receipts and typing on the wire.

use serde::{Deserialize, Serialize};

use super::{Cim, CimOut, Metadata, ParticipantOut};
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageRequest {
    pub content: Option<String>,
    pub sender_display_name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub metadata: Option<Metadata>,
    pub priority: Option<String>,
}

/// `ChatMessageContent`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MessageContent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participants: Option<Vec<ParticipantOut>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiator_communication_identifier: Option<CimOut>,
}

/// `ChatMessage`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub sequence_id: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_display_name: Option<String>,
    pub created_on: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_communication_identifier: Option<Cim>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    pub priority: String,
    /// confab extension (CONTRACT §10.2): `{"score","label"}` of a live text/html message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentiment: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadReceipt {
    pub sender_communication_identifier: Cim,
    pub chat_message_id: String,
    pub read_on: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendReadReceiptRequest {
    pub chat_message_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingRequest {
    pub sender_display_name: Option<String>,
}

/// Message priority (an extension from the 2020 preview API): `normal` unless sent as `high`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Priority {
    #[default]
    Normal,
    High,
}

impl Priority {
    /// Reads a client's value, in any letter case.
    pub fn parse(p: &str) -> Result<Priority, ApiError> {
        if p.eq_ignore_ascii_case("normal") {
            Ok(Priority::Normal)
        } else if p.eq_ignore_ascii_case("high") {
            Ok(Priority::High)
        } else {
            Err(ApiError::invalid(
                "priority",
                format!("Unknown priority {p:?}; expected normal or high."),
            ))
        }
    }

    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

/// The type of a message a client sends. System messages (`participantAdded`,
/// `participantRemoved`, `topicUpdated`) are written only by the thread actor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MessageKind {
    #[default]
    Text,
    /// Sanitized before it is stored.
    Html,
}

impl MessageKind {
    /// Reads a client's `type`, in any letter case; anything but text or html is refused.
    pub fn parse(k: &str) -> Result<MessageKind, ApiError> {
        if k.eq_ignore_ascii_case("text") {
            Ok(MessageKind::Text)
        } else if k.eq_ignore_ascii_case("html") {
            Ok(MessageKind::Html)
        } else {
            Err(ApiError::invalid(
                "type",
                format!("Message type {k:?} cannot be sent; use text or html."),
            ))
        }
    }

    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Html => "html",
        }
    }
}

/// The system message kinds, as stored and on the wire.
pub const PARTICIPANT_ADDED: &str = "participantAdded";
pub const PARTICIPANT_REMOVED: &str = "participantRemoved";
pub const TOPIC_UPDATED: &str = "topicUpdated";
