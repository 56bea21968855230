//! The ten real-time event types (contract §6.4), built from committed rows. Each `data` is
//! serialized once; the per-recipient `recipient` member is added by the frame header.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::ids::fmt_ms;
use crate::model::{Cim, EventParticipant, Metadata, RetentionPolicy};
use crate::store::models::Message;

/// A committed change as the real-time protocol carries it.
#[derive(Debug)]
pub struct Event {
    /// `chatMessageReceived`, `participantsAdded`, …
    pub kind: &'static str,
    /// The `data` members except `recipient`, serialized once: `"threadId":…,"id":…`.
    pub body: String,
    /// Only for the sessions that asked for this language (`?lang=`, CONTRACT §10.3):
    /// `chatMessageTranslated`. `None`: for every session.
    pub lang: Option<Arc<str>>,
}

impl Event {
    /// Builds an event from its data object (which must not contain `recipient`).
    pub fn new(kind: &'static str, data: Value) -> Arc<Event> {
        let text = data.to_string();
        let inner = text
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or_default()
            .to_string();
        Arc::new(Event {
            kind,
            body: inner,
            lang: None,
        })
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
        let mut s = String::with_capacity(self.body.len() + recipient_json.len() + 64);
        s.push_str("{\"type\":\"");
        s.push_str(self.kind);
        s.push_str("\",\"cursor\":\"");
        s.push_str(cursor);
        s.push_str("\",\"data\":{\"recipient\":");
        s.push_str(recipient_json);
        if !self.body.is_empty() {
            s.push(',');
            s.push_str(&self.body);
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

/// The fields shared by the three message events.
fn message_fields(m: &Message) -> Map<String, Value> {
    let mut d = Map::new();
    d.insert("threadId".into(), json!(m.thread_id));
    d.insert(
        "sender".into(),
        json!(Cim::from_raw(m.sender_id.as_deref().unwrap_or_default())),
    );
    d.insert(
        "senderDisplayName".into(),
        json!(m.sender_display_name.clone().unwrap_or_default()),
    );
    d.insert("id".into(), json!(m.id.to_string()));
    d.insert("createdOn".into(), json!(fmt_ms(m.created_at)));
    d.insert("version".into(), json!(m.version.to_string()));
    d.insert("type".into(), json!(m.kind));
    d.insert("sequenceId".into(), json!(m.seq.to_string()));
    d.insert("priority".into(), json!(m.priority));
    d
}

fn with_body(mut d: Map<String, Value>, m: &Message) -> Map<String, Value> {
    d.insert(
        "message".into(),
        json!(m.content.clone().unwrap_or_default()),
    );
    d.insert(
        "metadata".into(),
        json!(crate::store::parse_metadata(&m.metadata)),
    );
    if let Some(s) = m.sentiment {
        d.insert("sentiment".into(), crate::sentiment::to_json(s));
    }
    d
}

pub fn message_received(m: &Message) -> Arc<Event> {
    Event::new(
        "chatMessageReceived",
        Value::Object(with_body(message_fields(m), m)),
    )
}

pub fn message_edited(m: &Message) -> Arc<Event> {
    let mut d = with_body(message_fields(m), m);
    d.insert("editedOn".into(), json!(m.edited_at.map(fmt_ms)));
    Event::new("chatMessageEdited", Value::Object(d))
}

pub fn message_deleted(m: &Message) -> Arc<Event> {
    let mut d = message_fields(m);
    d.insert("deletedOn".into(), json!(m.deleted_at.map(fmt_ms)));
    Event::new("chatMessageDeleted", Value::Object(d))
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
