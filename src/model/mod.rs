//! The domain and wire types of the ACS Chat and Identity REST APIs (contract §2.2, §4.1), with
//! their exact JSON names and the limits they are checked against.
//!
//! Every layer uses this module (handlers, actors, webhooks, storage) and it uses none of them:
//! it depends only on [`crate::error`] and [`crate::ids`]. Request types ignore unknown fields;
//! `null` means absent except in merge-patch bodies, which are read through [`MetaPatch`] and
//! `api::patch_object`.

mod identifier;
mod message;
mod participant;
mod subscription;
mod thread;

pub use identifier::*;
pub use message::*;
pub use participant::*;
pub use subscription::*;
pub use thread::*;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;

pub type Metadata = BTreeMap<String, String>;

/// A page of a collection: `{"value":[…],"nextLink"?}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub value: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
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

/// The first character not allowed in a topic or display name: C0 controls but tab, line feed
/// and carriage return, DEL, C1 controls, and the bidirectional embeddings, overrides and
/// isolates (U+202A–U+202E, U+2066–U+2069) that make text display other than it reads.
pub fn forbidden_char(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    })
}

fn check_chars(text: &str, target: &str, what: &str) -> Result<(), ApiError> {
    match forbidden_char(text) {
        Some(c) => Err(ApiError::invalid(
            target,
            format!(
                "{what} contains U+{:04X}; control characters and bidirectional overrides are \
                 not accepted.",
                c as u32
            ),
        )),
        None => Ok(()),
    }
}

pub fn check_display_name(name: &Option<String>, target: &str) -> Result<(), ApiError> {
    if let Some(n) = name {
        check_chars(n, target, "Display name")?;
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
    check_chars(topic, "topic", "topic")?;
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

/// A merge-patch of a metadata map (RFC 7396), as PATCH bodies carry it.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum MetaPatch {
    #[default]
    Keep,
    /// `"metadata": null`
    Clear,
    /// `null` values remove keys.
    Merge(BTreeMap<String, Option<String>>),
}

impl MetaPatch {
    /// Reads the `metadata` member of a merge-patch body (absent, `null`, or an object of
    /// strings and `null`s); `field` names it in errors.
    pub fn from_member(v: Option<&Value>, field: &str) -> Result<MetaPatch, ApiError> {
        match v {
            None => Ok(MetaPatch::Keep),
            Some(Value::Null) => Ok(MetaPatch::Clear),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), Some(s.clone()))),
                    Value::Null => Ok((k.clone(), None)),
                    _ => Err(ApiError::invalid(
                        format!("{field}.{k}"),
                        "Metadata values must be strings.",
                    )),
                })
                .collect::<Result<_, _>>()
                .map(MetaPatch::Merge),
            Some(_) => Err(ApiError::invalid(field, "metadata must be an object.")),
        }
    }

    /// Checks the values the patch sets against `limit` before the patch is applied (the
    /// merged result is checked again where it is applied).
    pub fn check_sets(&self, limit: usize, what: &str) -> Result<(), ApiError> {
        if let MetaPatch::Merge(m) = self {
            let sets: Metadata = m
                .iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                .collect();
            check_metadata(&sets, limit, what)?;
        }
        Ok(())
    }

    pub fn apply(&self, current: &Metadata) -> Metadata {
        match self {
            MetaPatch::Keep => current.clone(),
            MetaPatch::Clear => Metadata::new(),
            MetaPatch::Merge(m) => {
                let mut out = current.clone();
                for (k, v) in m {
                    match v {
                        Some(v) => out.insert(k.clone(), v.clone()),
                        None => out.remove(k),
                    };
                }
                out
            }
        }
    }
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
