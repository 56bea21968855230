//! Wire models of the ACS Chat and Identity REST APIs (contract §2.2, §4.1), exact JSON names.
//!
//! Request types ignore unknown fields; `null` means absent except in merge-patch bodies, which
//! are read as raw JSON by their handlers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::ids::fmt_ms;

pub type Metadata = BTreeMap<String, String>;

/// `CommunicationIdentifierModel` as confab writes it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Cim {
    pub kind: &'static str,
    pub raw_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub communication_user: Option<CimId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CimId {
    pub id: String,
}

impl Cim {
    /// The identifier of a raw id: a communication user for `8:acs:…`, else `unknown`
    /// (the retention sweeper acts as `{"kind":"unknown","rawId":"system"}`).
    pub fn from_raw(raw: &str) -> Cim {
        if raw.starts_with("8:acs:") {
            Cim {
                kind: "communicationUser",
                raw_id: raw.to_string(),
                communication_user: Some(CimId {
                    id: raw.to_string(),
                }),
            }
        } else {
            Cim {
                kind: "unknown",
                raw_id: raw.to_string(),
                communication_user: None,
            }
        }
    }
}

/// The raw id under which the retention sweeper acts.
pub const SYSTEM_ACTOR: &str = "system";

/// `CommunicationIdentifierModel` as clients send it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CimIn {
    pub raw_id: Option<String>,
    pub kind: Option<String>,
    pub communication_user: Option<CimId>,
    pub phone_number: Option<PhoneIn>,
    pub microsoft_teams_user: Option<TeamsUserIn>,
    pub microsoft_teams_app: Option<TeamsAppIn>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PhoneIn {
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamsUserIn {
    pub user_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamsAppIn {
    pub app_id: String,
}

const KINDS: [&str; 6] = [
    "unknown",
    "communicationUser",
    "phoneNumber",
    "microsoftTeamsUser",
    "microsoftTeamsApp",
    "teamsExtensionUser",
];

/// An identifier resolved to its raw id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub raw_id: String,
    /// Only communication users can be participants.
    pub is_communication_user: bool,
}

impl CimIn {
    /// Resolves to a raw id; `target` names the field in errors.
    pub fn resolve(&self, target: &str) -> Result<Resolved, ApiError> {
        if let Some(kind) = &self.kind {
            if !KINDS.contains(&kind.as_str()) {
                return Err(ApiError::invalid(
                    format!("{target}.kind"),
                    format!(
                        "Unknown identifier kind {kind:?}; expected one of {}.",
                        KINDS.join(", ")
                    ),
                ));
            }
        }
        let user = self.communication_user.as_ref().map(|c| c.id.clone());
        let raw = match (&self.raw_id, &user) {
            (Some(r), Some(u)) if r != u => {
                return Err(ApiError::invalid(
                    target,
                    "rawId and communicationUser.id name different identities.",
                ))
            }
            (Some(r), _) => r.clone(),
            (None, Some(u)) => u.clone(),
            (None, None) => {
                if let Some(p) = &self.phone_number {
                    format!("4:{}", p.value)
                } else if let Some(t) = &self.microsoft_teams_user {
                    format!("8:orgid:{}", t.user_id)
                } else if let Some(a) = &self.microsoft_teams_app {
                    format!("28:orgid:{}", a.app_id)
                } else {
                    return Err(ApiError::invalid(
                        target,
                        "The identifier needs rawId or communicationUser.id.",
                    ));
                }
            }
        };
        if raw.is_empty() {
            return Err(ApiError::invalid(
                target,
                "The identifier's rawId is empty.",
            ));
        }
        let is_communication_user = raw.starts_with("8:acs:")
            && matches!(
                self.kind.as_deref(),
                None | Some("communicationUser") | Some("unknown")
            );
        Ok(Resolved {
            raw_id: raw,
            is_communication_user,
        })
    }
}

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

/// A CIM as stored inside system-message JSON (round-trips through serde).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CimOut {
    pub kind: String,
    pub raw_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub communication_user: Option<CimId>,
}

impl From<Cim> for CimOut {
    fn from(c: Cim) -> Self {
        CimOut {
            kind: c.kind.to_string(),
            raw_id: c.raw_id,
            communication_user: c.communication_user,
        }
    }
}

impl CimOut {
    pub fn from_raw(raw: &str) -> CimOut {
        Cim::from_raw(raw).into()
    }
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
}

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

#[derive(Debug, Deserialize)]
pub struct AddParticipantsRequest {
    pub participants: Option<Vec<ParticipantIn>>,
}

/// A page of a collection: `{"value":[…],"nextLink"?}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub value: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

/// Message priority (extension from the 2020 preview API).
pub fn parse_priority(p: &str) -> Result<&'static str, ApiError> {
    if p.eq_ignore_ascii_case("normal") {
        Ok("normal")
    } else if p.eq_ignore_ascii_case("high") {
        Ok("high")
    } else {
        Err(ApiError::invalid(
            "priority",
            format!("Unknown priority {p:?}; expected normal or high."),
        ))
    }
}

/// Σ key + value bytes of a metadata map.
pub fn metadata_bytes(m: &Metadata) -> usize {
    m.iter().map(|(k, v)| k.len() + v.len()).sum()
}

pub fn check_metadata(m: &Metadata, limit: usize, what: &str) -> Result<(), ApiError> {
    let n = metadata_bytes(m);
    if n > limit {
        return Err(ApiError::bad_request(
            "MetadataTooLarge",
            format!("{what} metadata is {n} bytes; the limit is {limit} bytes."),
        ));
    }
    Ok(())
}

/// Display names are at most 256 characters (confab choice).
pub const MAX_DISPLAY_NAME_CHARS: usize = 256;
/// Topics are at most 1 KiB (confab choice).
pub const MAX_TOPIC_BYTES: usize = 1024;
/// Thread and participant metadata: 1 KiB each.
pub const MAX_THREAD_METADATA_BYTES: usize = 1024;
/// Message metadata: 4 KiB.
pub const MAX_MESSAGE_METADATA_BYTES: usize = 4096;
/// Participants in one create or add request.
pub const MAX_PARTICIPANTS_PER_REQUEST: usize = 200;

pub fn check_display_name(name: &Option<String>, target: &str) -> Result<(), ApiError> {
    if let Some(n) = name {
        let chars = n.chars().count();
        if chars > MAX_DISPLAY_NAME_CHARS {
            return Err(ApiError::invalid(
                target,
                format!(
                    "Display name is {chars} characters; the limit is {MAX_DISPLAY_NAME_CHARS}."
                ),
            ));
        }
    }
    Ok(())
}

pub fn check_topic(topic: &str) -> Result<(), ApiError> {
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(ApiError::invalid(
            "topic",
            format!(
                "topic is {} bytes; the limit is {MAX_TOPIC_BYTES}.",
                topic.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cim_out_has_raw_id_and_user() {
        let c = serde_json::to_string(&Cim::from_raw("8:acs:r_u")).unwrap();
        assert_eq!(
            c,
            r#"{"kind":"communicationUser","rawId":"8:acs:r_u","communicationUser":{"id":"8:acs:r_u"}}"#
        );
        assert_eq!(
            serde_json::to_string(&Cim::from_raw(SYSTEM_ACTOR)).unwrap(),
            r#"{"kind":"unknown","rawId":"system"}"#
        );
    }

    #[test]
    fn cim_in_resolution() {
        let c: CimIn = serde_json::from_str(r#"{"communicationUser":{"id":"8:acs:x"}}"#).unwrap();
        assert_eq!(c.resolve("p").unwrap().raw_id, "8:acs:x");
        let c: CimIn =
            serde_json::from_str(r#"{"rawId":"8:acs:y","communicationUser":{"id":"8:acs:x"}}"#)
                .unwrap();
        assert_eq!(c.resolve("p").unwrap_err().status, 400);
        let c: CimIn = serde_json::from_str(r#"{"phoneNumber":{"value":"+1555"}}"#).unwrap();
        let r = c.resolve("p").unwrap();
        assert_eq!(r.raw_id, "4:+1555");
        assert!(!r.is_communication_user);
        let c: CimIn = serde_json::from_str(r#"{"kind":"alien","rawId":"8:acs:x"}"#).unwrap();
        assert_eq!(c.resolve("p").unwrap_err().status, 400);
    }

    #[test]
    fn retention_policy_json() {
        let p: RetentionPolicy =
            serde_json::from_str(r#"{"kind":"threadCreationDate","deleteThreadAfterDays":40}"#)
                .unwrap();
        assert_eq!(
            p,
            RetentionPolicy::ThreadCreationDate {
                delete_thread_after_days: 40
            }
        );
        assert!(serde_json::from_str::<RetentionPolicy>(r#"{"kind":"forever"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&RetentionPolicy::None).unwrap(),
            r#"{"kind":"none"}"#
        );
    }
}
