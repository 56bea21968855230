//! The ten real-time event types (contract §6.4), built from committed rows. Each `data` is
//! serialized once; the per-recipient `recipient` member is added by the frame header.

use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::ids::fmt_ms;
use crate::model::{Cim, EventParticipant, Metadata, RetentionPolicy};
use crate::store::models::Message;

/// A committed change as the real-time protocol carries it.
#[derive(Debug)]
pub struct Event {
    /// `chatMessageReceived`, `participantsAdded`, …
    pub kind: &'static str,
    /// The `data` members except `recipient`, serialized once: `"threadId":…,"id":…`; see
    /// [`Event::body`].
    body: OnceLock<String>,
    /// Cluster mode: the body as the JSON string literal it travelled in on the event log,
    /// until it is decoded (then the decoded body takes its place). Every node keeps every
    /// user's events for resuming, but only a node where a recipient is connected writes
    /// frames of them: the others never decode it.
    literal: Mutex<Option<Box<str>>>,
    /// Only for the sessions that asked for this language (`?lang=`, CONTRACT §10.3):
    /// `chatMessageTranslated`. `None`: for every session.
    pub lang: Option<Arc<str>>,
}

impl Event {
    /// Builds an event from its data object (which must not contain `recipient`).
    pub fn new(kind: &'static str, data: Value) -> Arc<Event> {
        Self::from_data(kind, &data)
    }

    /// Builds an event from anything that serializes as a JSON object (without `recipient`),
    /// written straight into the body: no intermediate `Value`, no second copy.
    pub fn from_data(kind: &'static str, data: &impl Serialize) -> Arc<Event> {
        let mut body = serde_json::to_string(data).unwrap_or_default();
        // `{…}` → `…`: the frame header opens the object with `recipient`
        if body.len() >= 2 && body.starts_with('{') && body.ends_with('}') {
            body.pop();
            body.remove(0);
        } else {
            body.clear();
        }
        Arc::new(Event {
            kind,
            body: OnceLock::from(body),
            literal: Mutex::new(None),
            lang: None,
        })
    }

    /// An event whose body is the JSON string literal `literal` (quotes included), as the
    /// cluster's event log carries it; it is decoded when first needed.
    pub fn from_literal(kind: &'static str, literal: &str) -> Arc<Event> {
        Arc::new(Event {
            kind,
            body: OnceLock::new(),
            literal: Mutex::new(Some(literal.into())),
            lang: None,
        })
    }

    /// The `data` members except `recipient`: `"threadId":…,"id":…`.
    pub fn body(&self) -> &str {
        // (one initializer runs, once: the literal is taken and dropped once decoded)
        self.body.get_or_init(|| match self.literal.lock().take() {
            Some(literal) => serde_json::from_str(&literal).unwrap_or_else(|e| {
                tracing::warn!(kind = self.kind, error = %e, "unreadable event body");
                String::new()
            }),
            None => String::new(),
        })
    }

    /// The bytes the body takes (as decoded, or as its literal until then).
    pub fn size(&self) -> usize {
        match self.body.get() {
            Some(b) => b.len(),
            None => self.literal.lock().as_ref().map_or(0, |l| l.len()),
        }
    }

    /// An event only the recipient's sessions in language `lang` receive.
    pub fn for_language(kind: &'static str, data: Value, lang: Arc<str>) -> Arc<Event> {
        let mut e = Arc::into_inner(Self::new(kind, data)).expect("just made");
        e.lang = Some(lang);
        Arc::new(e)
    }

    /// Whether a session in language `session_lang` (if any) receives this event.
    pub fn is_for(&self, session_lang: Option<&str>) -> bool {
        match &self.lang {
            None => true,
            Some(l) => session_lang == Some(&**l),
        }
    }

    /// The frame for `recipient` at `cursor`: `{"type","cursor","data":{"recipient",…}}`.
    pub fn frame(&self, cursor: &str, recipient_json: &str) -> String {
        let body = self.body();
        let mut s = String::with_capacity(body.len() + recipient_json.len() + 64);
        s.push_str("{\"type\":\"");
        s.push_str(self.kind);
        s.push_str("\",\"cursor\":\"");
        s.push_str(cursor);
        s.push_str("\",\"data\":{\"recipient\":");
        s.push_str(recipient_json);
        if !body.is_empty() {
            s.push(',');
            s.push_str(body);
        }
        s.push_str("}}");
        s
    }
}

/// Every event type (contract §6.4).
pub const KINDS: [&str; 11] = [
    "chatMessageReceived",
    "chatMessageEdited",
    "chatMessageDeleted",
    "typingIndicatorReceived",
    "readReceiptReceived",
    "chatThreadCreated",
    "chatThreadPropertiesUpdated",
    "chatThreadDeleted",
    "participantsAdded",
    "participantsRemoved",
    "readMarkerUpdated",
];

/// The event type named `name` (cluster mode reads it back from the event log).
pub fn kind_of(name: &str) -> Option<&'static str> {
    KINDS.iter().copied().find(|k| *k == name)
}

/// One frame ready to send, with its cursor and type (SSE needs both).
#[derive(Debug, Clone)]
pub struct Frame {
    pub cursor: Arc<str>,
    pub kind: &'static str,
    pub json: Arc<str>,
}

fn ps(list: &[EventParticipant]) -> Value {
    Value::Array(list.iter().map(EventParticipant::to_json).collect())
}

/// The `data` of the three message events, borrowed from the committed row.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageData<'a> {
    thread_id: &'a str,
    sender: Cim,
    sender_display_name: &'a str,
    id: String,
    created_on: String,
    version: String,
    #[serde(rename = "type")]
    kind: &'a str,
    sequence_id: String,
    priority: &'a str,
    /// received and edited carry the body; deleted does not
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sentiment: Option<Value>,
    /// `Some(None)` is written as `null`
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_on: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_on: Option<Option<String>>,
}

impl<'a> MessageData<'a> {
    fn of(m: &'a Message) -> MessageData<'a> {
        MessageData {
            thread_id: &m.thread_id,
            sender: Cim::from_raw(m.sender_id.as_deref().unwrap_or_default()),
            sender_display_name: m.sender_display_name.as_deref().unwrap_or_default(),
            id: m.id.to_string(),
            created_on: fmt_ms(m.created_at),
            version: m.version.to_string(),
            kind: &m.kind,
            sequence_id: m.seq.to_string(),
            priority: &m.priority,
            message: None,
            metadata: None,
            sentiment: None,
            edited_on: None,
            deleted_on: None,
        }
    }

    /// With the body, metadata and sentiment (received and edited).
    fn with_body(m: &'a Message) -> MessageData<'a> {
        MessageData {
            message: Some(m.content.as_deref().unwrap_or_default()),
            metadata: Some(crate::store::parse_metadata(&m.metadata)),
            sentiment: m.sentiment.map(crate::sentiment::to_json),
            ..MessageData::of(m)
        }
    }
}

pub fn message_received(m: &Message) -> Arc<Event> {
    Event::from_data("chatMessageReceived", &MessageData::with_body(m))
}

pub fn message_edited(m: &Message) -> Arc<Event> {
    let d = MessageData {
        edited_on: Some(m.edited_at.map(fmt_ms)),
        ..MessageData::with_body(m)
    };
    Event::from_data("chatMessageEdited", &d)
}

pub fn message_deleted(m: &Message) -> Arc<Event> {
    let d = MessageData {
        deleted_on: Some(m.deleted_at.map(fmt_ms)),
        ..MessageData::of(m)
    };
    Event::from_data("chatMessageDeleted", &d)
}

pub fn typing(thread: &str, sender: &str, display_name: &str, at: i64) -> Arc<Event> {
    Event::new(
        "typingIndicatorReceived",
        json!({
            "threadId": thread, "sender": Cim::from_raw(sender), "senderDisplayName": display_name,
            "version": at.to_string(), "receivedOn": fmt_ms(at),
        }),
    )
}

pub fn read_receipt(
    thread: &str,
    reader: &str,
    display_name: &str,
    message_id: i64,
    at: i64,
) -> Arc<Event> {
    Event::new(
        "readReceiptReceived",
        json!({
            "threadId": thread, "sender": Cim::from_raw(reader), "senderDisplayName": display_name,
            "chatMessageId": message_id.to_string(), "readOn": fmt_ms(at),
        }),
    )
}

/// confab extension (CONTRACT §10.1): the reader's own read marker moved.
pub fn read_marker(thread: &str, seq: i64, message_id: i64, at: i64) -> Arc<Event> {
    Event::new(
        "readMarkerUpdated",
        json!({
            "threadId": thread, "sequenceId": seq.to_string(),
            "chatMessageId": message_id.to_string(), "readOn": fmt_ms(at),
        }),
    )
}

/// Thread properties as events carry them: `topic`, `metadata`?, `retentionPolicy`?.
pub fn properties(topic: &str, metadata: &Metadata, retention: &Option<RetentionPolicy>) -> Value {
    let mut m = Map::new();
    m.insert("topic".into(), json!(topic));
    if !metadata.is_empty() {
        m.insert("metadata".into(), json!(metadata));
    }
    if let Some(r) = retention {
        m.insert("retentionPolicy".into(), json!(r));
    }
    Value::Object(m)
}

pub fn thread_created(
    thread: &str,
    at: i64,
    properties: Value,
    participants: &[EventParticipant],
    by: &EventParticipant,
) -> Arc<Event> {
    Event::new(
        "chatThreadCreated",
        json!({
            "threadId": thread, "version": at.to_string(), "createdOn": fmt_ms(at),
            "properties": properties, "participants": ps(participants), "createdBy": by.to_json(),
        }),
    )
}

pub fn thread_updated(
    thread: &str,
    at: i64,
    properties: Value,
    by: &EventParticipant,
    sequence_id: Option<i64>,
) -> Arc<Event> {
    let mut d = json!({
        "threadId": thread, "version": at.to_string(), "properties": properties,
        "updatedOn": fmt_ms(at), "updatedBy": by.to_json(),
    });
    if let Some(s) = sequence_id {
        d["sequenceId"] = json!(s.to_string());
    }
    Event::new("chatThreadPropertiesUpdated", d)
}

pub fn thread_deleted(thread: &str, at: i64, by: &EventParticipant) -> Arc<Event> {
    Event::new(
        "chatThreadDeleted",
        json!({"threadId": thread, "version": at.to_string(), "deletedOn": fmt_ms(at), "deletedBy": by.to_json()}),
    )
}

pub fn participants_added(
    thread: &str,
    at: i64,
    added: &[EventParticipant],
    by: &EventParticipant,
    seq: i64,
) -> Arc<Event> {
    Event::new(
        "participantsAdded",
        json!({
            "threadId": thread, "version": at.to_string(), "addedOn": fmt_ms(at),
            "participantsAdded": ps(added), "addedBy": by.to_json(), "sequenceId": seq.to_string(),
        }),
    )
}

pub fn participants_removed(
    thread: &str,
    at: i64,
    removed: &[EventParticipant],
    by: &EventParticipant,
    seq: i64,
) -> Arc<Event> {
    Event::new(
        "participantsRemoved",
        json!({
            "threadId": thread, "version": at.to_string(), "removedOn": fmt_ms(at),
            "participantsRemoved": ps(removed), "removedBy": by.to_json(), "sequenceId": seq.to_string(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            thread_id: "19:t@thread.v2".into(),
            seq: 7,
            id: 1_700_000_000_123,
            kind: "html".into(),
            content: Some("<b>\"hi\"</b> ✓".into()),
            system: None,
            sender_id: Some("8:acs:r_u".into()),
            sender_display_name: Some("Ann".into()),
            metadata: r#"{"k":"v"}"#.into(),
            priority: "high".into(),
            created_at: 1_700_000_000_123,
            version: 1_700_000_000_456,
            edited_at: None,
            deleted_at: Some(1_700_000_000_789),
            sentiment: Some(-600),
        }
    }

    /// The event's data as a client parses it (the frame adds `recipient`).
    fn data(e: &Event) -> Value {
        let frame = e.frame("c", r#"{"rawId":"r"}"#);
        let mut v: Value = serde_json::from_str(&frame).expect("frame is JSON");
        assert_eq!(v["type"], e.kind);
        let mut d = v["data"].take();
        assert_eq!(d["recipient"], json!({"rawId": "r"}));
        d.as_object_mut().expect("object").remove("recipient");
        d
    }

    #[test]
    fn message_events_carry_every_field() {
        let m = message();
        let common = json!({
            "threadId": "19:t@thread.v2",
            "sender": {"kind": "communicationUser", "rawId": "8:acs:r_u",
                       "communicationUser": {"id": "8:acs:r_u"}},
            "senderDisplayName": "Ann",
            "id": "1700000000123",
            "createdOn": fmt_ms(1_700_000_000_123),
            "version": "1700000000456",
            "type": "html",
            "sequenceId": "7",
            "priority": "high",
        });
        let with = |extra: Value| {
            let mut v = common.clone();
            for (k, x) in extra.as_object().expect("object") {
                v[k] = x.clone();
            }
            v
        };
        let body = json!({
            "message": "<b>\"hi\"</b> ✓",
            "metadata": {"k": "v"},
            "sentiment": crate::sentiment::to_json(-600),
        });
        assert_eq!(data(&message_received(&m)), with(body.clone()));
        let mut edited = with(body);
        edited["editedOn"] = Value::Null;
        assert_eq!(data(&message_edited(&m)), edited);
        assert_eq!(
            data(&message_deleted(&m)),
            with(json!({"deletedOn": fmt_ms(1_700_000_000_789)}))
        );
        // no sentiment, no sender (a system actor), an edit time
        let m = Message {
            sentiment: None,
            sender_id: None,
            sender_display_name: None,
            edited_at: Some(1_700_000_000_500),
            ..m
        };
        let d = data(&message_edited(&m));
        assert!(d.get("sentiment").is_none(), "{d}");
        assert_eq!(d["senderDisplayName"], "");
        assert_eq!(d["sender"]["rawId"], "");
        assert_eq!(d["editedOn"], fmt_ms(1_700_000_000_500));
    }

    #[test]
    fn events_from_values_keep_their_members() {
        let e = typing("t", "8:acs:x", "X", 5);
        let d = data(&e);
        assert_eq!(d["threadId"], "t");
        assert_eq!(d["version"], "5");
        assert_eq!(Event::new("typingIndicatorReceived", json!({})).body(), "");
    }

    #[test]
    fn an_event_from_the_log_decodes_its_body_once_and_frames_as_the_original() {
        let made = message_received(&message());
        // the body as the cluster's event log carries it: a JSON string literal
        let literal = serde_json::to_string(made.body()).unwrap();
        let e = Event::from_literal("chatMessageReceived", &literal);
        assert_eq!(
            e.size(),
            literal.len(),
            "charged as the literal until decoded"
        );
        assert_eq!(
            e.frame("c.1", "{\"rawId\":\"8:acs:r\"}"),
            made.frame("c.1", "{\"rawId\":\"8:acs:r\"}")
        );
        assert_eq!(
            e.size(),
            made.body().len(),
            "the decoded body took its place"
        );
        assert!(e.literal.lock().is_none());
        // a literal that is not a string decodes to no members rather than failing a frame
        let bad = Event::from_literal("chatMessageReceived", "12");
        assert_eq!(bad.body(), "");
    }
}
