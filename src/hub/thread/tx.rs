//! What the commands share inside the write transaction: the thread's next sequence id,
//! loading the live thread, system messages, idempotency records, participant checks.

use std::collections::HashSet;

use super::{thread_not_found, Member};
use crate::error::ApiError;
use crate::hub::commands::*;
use crate::ids::{is_own_user_id, now_ms};
use crate::ids::{ThreadId, UserId};
use crate::model::{self, participant_out, InvalidParticipant, MessageContent};
use crate::store::appends::Position;
use crate::store::models::{IdempotencyRecord, Message, Participant, Thread};
use crate::store::{identities, messages, metadata_json, participants, threads, DbConn};

/// The last (sequenceId, message id, createdOn) handed out in a thread, advanced inside the
/// transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sequencer {
    pub(super) seq: i64,
    pub(super) id: i64,
    pub(super) at: i64,
}

impl Sequencer {
    pub(super) fn of(t: &Thread) -> Sequencer {
        Sequencer {
            seq: t.last_seq,
            id: t.last_message_id,
            at: t.last_message_at,
        }
    }

    /// Sequence ids have no gaps; ids increase strictly; createdOn never decreases.
    pub(super) fn next(&mut self, now: i64) -> (i64, i64, i64) {
        self.seq += 1;
        self.id = now.max(self.id + 1);
        self.at = now.max(self.at);
        (self.seq, self.id, self.at)
    }

    pub(super) fn save(&self, c: &mut DbConn, thread: &ThreadId) -> Result<(), ApiError> {
        Ok(threads::set_last_message(
            c, thread, self.seq, self.id, self.at,
        )?)
    }

    /// The sequencer of a thread whose messages stand at `p`.
    pub(super) fn at(p: Position) -> Sequencer {
        Sequencer {
            seq: p.0,
            id: p.1,
            at: p.2,
        }
    }

    pub(super) fn position(self) -> Position {
        (self.seq, self.id, self.at)
    }
}

/// Loads a live thread inside the transaction (404 if missing or deleted).
pub(super) fn live_thread(c: &mut DbConn, id: &ThreadId) -> Result<Thread, ApiError> {
    threads::get(c, id)?
        .filter(|t| t.deleted_at.is_none())
        .ok_or_else(thread_not_found)
}

pub(super) fn system_message(
    thread: &ThreadId,
    (seq, id, at): (i64, i64, i64),
    kind: &str,
    content: &MessageContent,
) -> Message {
    Message {
        sentiment: None,
        thread_id: thread.to_string(),
        seq,
        id,
        kind: kind.to_string(),
        content: None,
        system: Some(serde_json::to_string(content).unwrap_or_default()),
        sender_id: None,
        sender_display_name: None,
        metadata: "{}".into(),
        priority: model::Priority::Normal.as_str().into(),
        created_at: at,
        version: id,
        edited_at: None,
        deleted_at: None,
    }
}

pub(super) fn store_idem(
    c: &mut DbConn,
    slot: &Option<IdemSlot>,
    replay: &Replay,
) -> Result<(), ApiError> {
    if let Some(s) = slot {
        messages::idempotency_put(
            c,
            &IdempotencyRecord {
                user_id: s.user.to_string(),
                request_id: s.request_id.clone(),
                body_hash: s.body_hash.clone(),
                status: i32::from(replay.status),
                response: replay.body.clone(),
                location: replay.location.clone(),
                created_at: now_ms(),
            },
        )?;
    }
    Ok(())
}

/// Splits requested participants into those that may join and `invalidParticipants`.
/// Duplicates merge by raw id; the first wins.
pub(super) fn validate_participants(
    c: &mut DbConn,
    resource_id: &str,
    requested: Vec<NewParticipant>,
) -> Result<(Vec<NewParticipant>, Vec<InvalidParticipant>), ApiError> {
    let mut seen = HashSet::new();
    let requested: Vec<NewParticipant> = requested
        .into_iter()
        .filter(|p| seen.insert(p.raw_id.clone()))
        .collect();
    let own: Vec<UserId> = requested
        .iter()
        .filter(|p| p.is_communication_user && is_own_user_id(&p.raw_id, resource_id))
        .map(|p| p.raw_id.clone())
        .collect();
    let live: HashSet<UserId> = identities::live_among(c, &own)?.into_iter().collect();
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    for p in requested {
        if !(p.is_communication_user && is_own_user_id(&p.raw_id, resource_id)) {
            invalid.push(InvalidParticipant::forbidden(&p.raw_id));
        } else if !live.contains(&p.raw_id) {
            invalid.push(InvalidParticipant::not_found(&p.raw_id));
        } else {
            valid.push(p);
        }
    }
    Ok((valid, invalid))
}

pub(super) fn too_many(n: usize, max: usize) -> ApiError {
    ApiError::bad_request(
        "TooManyParticipants",
        format!("The thread would have {n} participants; the limit is {max}."),
    )
}

/// Writes participant rows for an add at `(seq, _, at)` and returns their wire form.
pub(super) fn write_added(
    c: &mut DbConn,
    thread: &ThreadId,
    added: &[NewParticipant],
    (seq, _, at): (i64, i64, i64),
) -> Result<Vec<model::ParticipantOut>, ApiError> {
    let mut out = Vec::with_capacity(added.len());
    for (index, p) in added.iter().enumerate() {
        // A time later than the add is clamped to it, so everyone sees their own add message.
        let sht = p.share_history_time.unwrap_or(0).min(at);
        participants::upsert(
            c,
            &Participant {
                thread_id: thread.to_string(),
                user_id: p.raw_id.to_string(),
                display_name: p.display_name.clone(),
                metadata: metadata_json(&p.metadata),
                share_history_time: sht,
                added_at: at,
                added_seq: seq,
                add_index: i32::try_from(index).unwrap_or(i32::MAX),
                removed_at: None,
            },
        )?;
        out.push(participant_out(
            &p.raw_id,
            p.display_name.clone(),
            sht,
            p.metadata.clone(),
        ));
    }
    Ok(out)
}

pub(super) fn added_members(added: &[model::ParticipantOut], at: i64) -> Vec<(UserId, Member)> {
    added
        .iter()
        .map(|p| {
            let sht = crate::ids::parse_time(&p.share_history_time)
                .unwrap_or(0)
                .min(at);
            (
                UserId::new(p.communication_identifier.raw_id.as_str()),
                Member {
                    display_name: p.display_name.clone(),
                    metadata: p.metadata.clone().unwrap_or_default(),
                    share_history_time: sht,
                    removed_at: None,
                },
            )
        })
        .collect()
}

/// Loads a message the caller may change: visible (else 404), not deleted (404), not a system
/// message (403), sent by the caller (403).
pub(super) fn own_message(
    c: &mut DbConn,
    thread: &ThreadId,
    id: i64,
    user: &UserId,
    member: &Member,
) -> Result<Message, ApiError> {
    let m = messages::get(c, thread, id)?
        .filter(|m| m.deleted_at.is_none() && m.created_at >= member.share_history_time)
        .ok_or_else(|| ApiError::not_found("Message"))?;
    if m.is_system() || m.sender_id.as_deref() != Some(user) {
        return Err(ApiError::forbidden());
    }
    Ok(m)
}
