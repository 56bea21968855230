//! The `Microsoft.Communication.Chat*` events (contract §7.4): subjects and `data`, built in
//! the thread actor's write job from what the transaction and the actor's cache know.
//!
//! User-level (U) events go to each recipient except the actor; thread-level (T) events once.

use serde_json::{json, Map, Value};

use super::Outbox;
use crate::ids::fmt_ms;
use crate::ids::UserId;
use crate::model::EventParticipant;
use crate::model::{Cim, Metadata};
use crate::store::models::{Message, Thread};

/// What every event of one change shares.
pub struct Change<'a> {
    pub thread: &'a str,
    /// The originating request's `x-ms-request-id`.
    pub transaction_id: &'a str,
    /// The thread's `createdOn` (epoch ms).
    pub create_time: i64,
    /// The change's time (epoch ms): `eventTime`, and `version` of thread events.
    pub at: i64,
}

impl<'a> Change<'a> {
    /// A change at `at` to the stored thread `t`.
    pub fn of(t: &'a Thread, transaction_id: &'a str, at: i64) -> Change<'a> {
        Change {
            thread: &t.id,
            transaction_id,
            create_time: t.created_at,
            at,
        }
    }
}

fn cim(raw: &str) -> Value {
    json!(Cim::from_raw(raw))
}

fn t(name: &str) -> String {
    format!("{}{name}", super::TYPE_PREFIX)
}

/// PA: `{"displayName"?, "participantCommunicationIdentifier", "metadata"?}`.
fn pa(p: &EventParticipant) -> Value {
    let mut m = Map::new();
    if let Some(d) = &p.display_name {
        m.insert("displayName".into(), json!(d));
    }
    m.insert("participantCommunicationIdentifier".into(), cim(&p.raw_id));
    if !p.metadata.is_empty() {
        m.insert("metadata".into(), json!(p.metadata));
    }
    Value::Object(m)
}

/// TH: `threadId`, `transactionId`, `createTime`, `version`.
fn th(c: &Change) -> Map<String, Value> {
    let mut d = Map::new();
    d.insert("threadId".into(), json!(c.thread));
    d.insert("transactionId".into(), json!(c.transaction_id));
    d.insert("createTime".into(), json!(fmt_ms(c.create_time)));
    d.insert("version".into(), json!(c.at));
    d
}

fn wire_type(kind: &str) -> &'static str {
    if kind == "html" {
        "RichText/Html"
    } else {
        "Text"
    }
}

/// Emits the U event to each recipient but `actor`, then the T event, with one subject.
fn pair(
    ob: &mut Outbox,
    at: i64,
    types: (&str, &str),
    subject: &str,
    recipients: &[UserId],
    actor: &str,
    data: &Map<String, Value>,
) {
    emit_split(ob, at, types, (subject, subject), recipients, actor, data);
}

/// Which of the three message events.
#[derive(Debug, Clone, Copy)]
pub enum MessageChange {
    Received,
    Edited,
    Deleted,
}

/// The webhook event types a send emits (full names): [`message`] with
/// [`MessageChange::Received`].
pub const SEND_EVENT_TYPES: [&str; 2] = [
    "Microsoft.Communication.ChatMessageReceived",
    "Microsoft.Communication.ChatMessageReceivedInThread",
];

/// ChatMessageReceived / Edited / Deleted (and `…InThread`) for a committed message row.
pub fn message(
    ob: &mut Outbox,
    change: MessageChange,
    m: &Message,
    tx: &str,
    recipients: &[UserId],
) {
    let (names, at) = match change {
        MessageChange::Received => (
            ("ChatMessageReceived", "ChatMessageReceivedInThread"),
            m.created_at,
        ),
        MessageChange::Edited => (
            ("ChatMessageEdited", "ChatMessageEditedInThread"),
            m.edited_at.unwrap_or(m.version),
        ),
        MessageChange::Deleted => (
            ("ChatMessageDeleted", "ChatMessageDeletedInThread"),
            m.deleted_at.unwrap_or(m.version),
        ),
    };
    if !ob.wants(&t(names.0)) && !ob.wants(&t(names.1)) {
        return;
    }
    let sender = m.sender_id.as_deref().unwrap_or_default();
    let mut d = Map::new();
    d.insert("threadId".into(), json!(m.thread_id));
    d.insert("transactionId".into(), json!(tx));
    d.insert("messageId".into(), json!(m.id.to_string()));
    d.insert("senderCommunicationIdentifier".into(), cim(sender));
    d.insert(
        "senderDisplayName".into(),
        json!(m.sender_display_name.clone().unwrap_or_default()),
    );
    d.insert("composeTime".into(), json!(fmt_ms(m.created_at)));
    d.insert("type".into(), json!(wire_type(&m.kind)));
    d.insert("version".into(), json!(m.version));
    d.insert("priority".into(), json!(m.priority));
    match change {
        MessageChange::Received | MessageChange::Edited => {
            d.insert(
                "messageBody".into(),
                json!(m.content.clone().unwrap_or_default()),
            );
            let meta: Metadata = crate::store::parse_metadata(&m.metadata);
            d.insert("metadata".into(), json!(meta));
            if let Some(s) = m.sentiment {
                d.insert("sentiment".into(), crate::sentiment::to_json(s));
            }
            if let MessageChange::Edited = change {
                d.insert("editTime".into(), json!(fmt_ms(at)));
            }
        }
        MessageChange::Deleted => {
            d.insert("deleteTime".into(), json!(fmt_ms(at)));
        }
    }
    let subject = format!("thread/{}/sender/{sender}", m.thread_id);
    pair(ob, at, names, &subject, recipients, sender, &d);
}

/// The full name of the typing event (the only one not tied to a stored change).
pub const TYPING: &str = "Microsoft.Communication.ChatTypingIndicatorReceivedInThread";

/// ChatTypingIndicatorReceivedInThread (T only; confab fills the SDK-required M fields).
pub fn typing(ob: &mut Outbox, c: &Change, sender: &str, display_name: &str) {
    ob.emit(TYPING, c.at, || {
        let d = json!({
            "threadId": c.thread,
            "transactionId": c.transaction_id,
            "messageId": c.at.to_string(),
            "senderCommunicationIdentifier": cim(sender),
            "senderDisplayName": display_name,
            "composeTime": fmt_ms(c.at),
            "type": "Text",
            "version": c.at,
            "priority": "normal",
            "messageBody": "",
            "metadata": {},
        });
        (format!("thread/{}/sender/{sender}", c.thread), d)
    });
}

/// ChatThreadCreatedWithUser / ChatThreadCreated; recipients are the initial participants.
pub fn thread_created(
    ob: &mut Outbox,
    c: &Change,
    creator: &str,
    topic: &str,
    metadata: &Metadata,
    participants: &[EventParticipant],
) {
    let names = ("ChatThreadCreatedWithUser", "ChatThreadCreated");
    if !ob.wants(&t(names.0)) && !ob.wants(&t(names.1)) {
        return;
    }
    let mut d = th(c);
    d.insert("createdByCommunicationIdentifier".into(), cim(creator));
    d.insert("properties".into(), json!({ "topic": topic }));
    if !metadata.is_empty() {
        d.insert("metadata".into(), json!(metadata));
    }
    d.insert(
        "participants".into(),
        Value::Array(participants.iter().map(pa).collect()),
    );
    let recipients: Vec<UserId> = participants
        .iter()
        .map(|p| UserId::new(p.raw_id.as_str()))
        .collect();
    let subject = format!("thread/{}/createdBy/{creator}", c.thread);
    pair(ob, c.at, names, &subject, &recipients, creator, &d);
}

/// ChatThreadWithUserDeleted / ChatThreadDeleted; recipients are the participants at deletion.
pub fn thread_deleted(ob: &mut Outbox, c: &Change, by: &str, recipients: &[UserId]) {
    let names = ("ChatThreadWithUserDeleted", "ChatThreadDeleted");
    let mut d = th(c);
    d.insert("deletedByCommunicationIdentifier".into(), cim(by));
    d.insert("deleteTime".into(), json!(fmt_ms(c.at)));
    let subject = format!("thread/{}/deletedBy/{by}", c.thread);
    pair(ob, c.at, names, &subject, recipients, by, &d);
}

/// ChatThreadPropertiesUpdatedPerUser / ChatThreadPropertiesUpdated.
pub fn properties_updated(
    ob: &mut Outbox,
    c: &Change,
    by: &str,
    topic: &str,
    metadata: &Metadata,
    recipients: &[UserId],
) {
    let names = (
        "ChatThreadPropertiesUpdatedPerUser",
        "ChatThreadPropertiesUpdated",
    );
    let mut d = th(c);
    d.insert("editedByCommunicationIdentifier".into(), cim(by));
    d.insert("editTime".into(), json!(fmt_ms(c.at)));
    d.insert("properties".into(), json!({ "topic": topic }));
    d.insert("metadata".into(), json!(metadata));
    let subject = format!("thread/{}/editedBy/{by}", c.thread);
    pair(ob, c.at, names, &subject, recipients, by, &d);
}

/// One ChatParticipantAddedToThreadWithUser / ChatThreadParticipantAdded pair per added
/// participant; recipients are the participants after the add.
pub fn participants_added(
    ob: &mut Outbox,
    c: &Change,
    by: &str,
    added: &[EventParticipant],
    recipients: &[UserId],
) {
    for p in added {
        let mut d = th(c);
        d.insert("time".into(), json!(fmt_ms(c.at)));
        d.insert("addedByCommunicationIdentifier".into(), cim(by));
        d.insert("participantAdded".into(), pa(p));
        let (u, tt) = (
            format!("thread/{}/participantAdded/{}", c.thread, p.raw_id),
            format!("thread/{}/participantadded/{}", c.thread, p.raw_id),
        );
        emit_split(
            ob,
            c.at,
            (
                "ChatParticipantAddedToThreadWithUser",
                "ChatThreadParticipantAdded",
            ),
            (&u, &tt),
            recipients,
            by,
            &d,
        );
    }
}

/// ChatParticipantRemovedFromThreadWithUser / ChatThreadParticipantRemoved; recipients are
/// the participants before the removal, the removed one included.
pub fn participant_removed(
    ob: &mut Outbox,
    c: &Change,
    by: &str,
    removed: &EventParticipant,
    recipients: &[UserId],
) {
    let mut d = th(c);
    d.insert("time".into(), json!(fmt_ms(c.at)));
    d.insert("removedByCommunicationIdentifier".into(), cim(by));
    d.insert("participantRemoved".into(), pa(removed));
    let (u, tt) = (
        format!("thread/{}/participantRemoved/{}", c.thread, removed.raw_id),
        format!("thread/{}/participantremoved/{}", c.thread, removed.raw_id),
    );
    emit_split(
        ob,
        c.at,
        (
            "ChatParticipantRemovedFromThreadWithUser",
            "ChatThreadParticipantRemoved",
        ),
        (&u, &tt),
        recipients,
        by,
        &d,
    );
}

/// Emits the U event (`{user_subject}/recipient/{r}`) to each recipient but `actor`, then the
/// T event. The participant events' T subjects differ in case from the U ones, as in ACS.
fn emit_split(
    ob: &mut Outbox,
    at: i64,
    (user_type, thread_type): (&str, &str),
    (user_subject, thread_subject): (&str, &str),
    recipients: &[UserId],
    actor: &str,
    data: &Map<String, Value>,
) {
    let user_type = t(user_type);
    if ob.wants(&user_type) {
        for r in recipients.iter().filter(|r| r.as_str() != actor) {
            ob.emit(&user_type, at, || {
                let mut d = data.clone();
                d.insert("recipientCommunicationIdentifier".into(), cim(r));
                (format!("{user_subject}/recipient/{r}"), Value::Object(d))
            });
        }
    }
    ob.emit(&t(thread_type), at, || {
        (thread_subject.to_string(), Value::Object(data.clone()))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A send's purity (see `hub::thread`) rests on these being all it emits.
    #[test]
    fn a_received_message_emits_the_send_event_types_only() {
        let mut ob = Outbox {
            active: std::sync::Arc::new(vec![super::super::Active {
                key: "all".into(),
                types: None,
            }]),
            events: Vec::new(),
        };
        let m = Message {
            thread_id: "19:t@thread.v2".into(),
            seq: 3,
            id: 1_700_000_000_000,
            kind: "text".into(),
            content: Some("hi".into()),
            system: None,
            sender_id: Some("8:acs:a".into()),
            sender_display_name: None,
            metadata: "{}".into(),
            priority: "normal".into(),
            created_at: 1_700_000_000_000,
            version: 1_700_000_000_000,
            edited_at: None,
            deleted_at: None,
            sentiment: None,
        };
        let to = [UserId::new("8:acs:a"), UserId::new("8:acs:b")];
        message(&mut ob, MessageChange::Received, &m, "tx", &to);
        let mut types: Vec<&str> = ob.events.iter().map(|e| e.event_type.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        assert_eq!(types, SEND_EVENT_TYPES);
    }
}
