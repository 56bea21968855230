//! Threads on the wire: create/update bodies, properties, retention, list items.

use serde::{Deserialize, Serialize};

use super::{Cim, InvalidParticipant, Metadata, ParticipantIn};
use crate::error::ApiError;

/// `ChatRetentionPolicy`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum RetentionPolicy {
    #[serde(rename_all = "camelCase")]
    ThreadCreationDate {
        delete_thread_after_days: i32,
    },
    None,
}

impl RetentionPolicy {
    pub fn validate(&self) -> Result<(), ApiError> {
        if let RetentionPolicy::ThreadCreationDate {
            delete_thread_after_days: d,
        } = self
        {
            if !(30..=90).contains(d) {
                return Err(ApiError::invalid(
                    "retentionPolicy.deleteThreadAfterDays",
                    format!("deleteThreadAfterDays must be between 30 and 90, got {d}."),
                ));
            }
        }
        Ok(())
    }

    /// When the sweeper deletes a thread created at `created_at` (epoch ms).
    pub fn delete_after(&self, created_at: i64) -> Option<i64> {
        match self {
            RetentionPolicy::ThreadCreationDate {
                delete_thread_after_days: d,
            } => Some(created_at + i64::from(*d) * 86_400_000),
            RetentionPolicy::None => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateThreadRequest {
    pub topic: Option<String>,
    pub participants: Option<Vec<ParticipantIn>>,
    pub metadata: Option<Metadata>,
    pub retention_policy: Option<RetentionPolicy>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadProperties {
    pub id: String,
    pub topic: String,
    pub created_on: String,
    pub created_by_communication_identifier: Cim,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_policy: Option<RetentionPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_on: Option<String>,
    /// confab extension (CONTRACT §10.1): the caller's unread messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_count: Option<i64>,
    /// confab extension (CONTRACT §10.1): the newest visible text/html message, as a preview.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateThreadResult {
    pub chat_thread: ThreadProperties,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_participants: Vec<InvalidParticipant>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadItem {
    pub id: String,
    pub topic: String,
    pub last_message_received_on: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_on: Option<String>,
    /// confab extension (CONTRACT §10.1): the caller's unread messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_count: Option<i64>,
    /// confab extension (CONTRACT §10.1): the newest visible text/html message, as a preview.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct AddParticipantsRequest {
    pub participants: Option<Vec<ParticipantIn>>,
}
