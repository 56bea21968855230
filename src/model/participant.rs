//! Participants on the wire (`ChatParticipant`), in events, and in `invalidParticipants`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{Cim, CimIn, CimOut, Metadata};
use crate::ids::fmt_ms;

/// `ChatParticipant` in a request.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantIn {
    pub communication_identifier: CimIn,
    pub display_name: Option<String>,
    pub share_history_time: Option<String>,
    pub metadata: Option<Metadata>,
}

/// `ChatParticipant` in a response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantOut {
    pub communication_identifier: CimOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub share_history_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

pub fn participant_out(
    raw: &str,
    display_name: Option<String>,
    share_history_time: i64,
    metadata: Metadata,
) -> ParticipantOut {
    ParticipantOut {
        communication_identifier: CimOut::from_raw(raw),
        display_name,
        share_history_time: fmt_ms(share_history_time),
        metadata: (!metadata.is_empty()).then_some(metadata),
    }
}

/// `CommunicationError` inside `invalidParticipants`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InvalidParticipant {
    pub target: String,
    pub code: &'static str,
    pub message: &'static str,
}

impl InvalidParticipant {
    pub fn not_found(raw: &str) -> Self {
        InvalidParticipant {
            target: raw.to_string(),
            code: "404",
            message: "Not found",
        }
    }
    pub fn forbidden(raw: &str) -> Self {
        InvalidParticipant {
            target: raw.to_string(),
            code: "403",
            message: "Permissions check failed",
        }
    }
}

/// A participant as real-time and webhook events carry it: `{"id", "displayName"?, "shareHistoryTime"?, "metadata"?}`.
#[derive(Debug, Clone)]
pub struct EventParticipant {
    pub raw_id: String,
    pub display_name: Option<String>,
    pub share_history_time: Option<i64>,
    pub metadata: Metadata,
}

impl EventParticipant {
    /// The acting identity with nothing else known (the retention sweeper's `system`).
    pub fn bare(raw: &str) -> EventParticipant {
        EventParticipant {
            raw_id: raw.to_string(),
            display_name: None,
            share_history_time: None,
            metadata: Metadata::new(),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(Cim::from_raw(&self.raw_id)));
        if let Some(d) = &self.display_name {
            m.insert("displayName".into(), json!(d));
        }
        if let Some(t) = self.share_history_time {
            m.insert("shareHistoryTime".into(), json!(fmt_ms(t)));
        }
        if !self.metadata.is_empty() {
            m.insert("metadata".into(), json!(self.metadata));
        }
        Value::Object(m)
    }
}
