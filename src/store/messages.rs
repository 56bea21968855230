//! Queries on `messages` and `idempotency`.

use diesel::prelude::*;

use crate::ids::{ThreadId, UserId};

use super::models::{IdempotencyRecord, Message, Participant};
use super::schema::{idempotency, messages};
use super::DbConn;

pub fn insert(c: &mut DbConn, m: &Message) -> QueryResult<()> {
    diesel::insert_into(messages::table)
        .values(m)
        .execute(c)
        .map(drop)
}

pub fn get(c: &mut DbConn, thread: &ThreadId, id: i64) -> QueryResult<Option<Message>> {
    messages::table
        .filter(messages::thread_id.eq(thread.as_str()))
        .filter(messages::id.eq(id))
        .select(Message::as_select())
        .first(c)
        .optional()
}

/// Writes an edit or a delete of a message.
pub fn update(c: &mut DbConn, m: &Message) -> QueryResult<()> {
    diesel::update(messages::table.find((&m.thread_id, m.seq)))
        .set((
            messages::content.eq(&m.content),
            messages::metadata.eq(&m.metadata),
            messages::priority.eq(&m.priority),
            messages::version.eq(m.version),
            messages::edited_at.eq(m.edited_at),
            messages::deleted_at.eq(m.deleted_at),
            messages::sentiment.eq(m.sentiment),
        ))
        .execute(c)
        .map(drop)
}

/// One page of the messages `viewer` may see, newest first, strictly below `before_seq`.
pub fn visible_page(
    c: &mut DbConn,
    thread: &ThreadId,
    viewer: &Participant,
    before_seq: Option<i64>,
    start_time: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Message>> {
    let mut q = messages::table
        .filter(messages::thread_id.eq(thread.as_str()))
        .filter(messages::created_at.ge(viewer.share_history_time))
        .into_boxed();
    if let Some(removed) = viewer.removed_at {
        q = q.filter(messages::created_at.le(removed));
    }
    if let Some(seq) = before_seq {
        q = q.filter(messages::seq.lt(seq));
    }
    if let Some(t) = start_time {
        q = q.filter(messages::created_at.ge(t));
    }
    q.order(messages::seq.desc())
        .limit(limit)
        .select(Message::as_select())
        .load(c)
}

pub fn idempotency_get(
    c: &mut DbConn,
    user: &UserId,
    key: &str,
) -> QueryResult<Option<IdempotencyRecord>> {
    idempotency::table
        .find((user.as_str(), key))
        .select(IdempotencyRecord::as_select())
        .first(c)
        .optional()
}

/// Stores an outcome, replacing an expired record with the same key.
pub fn idempotency_put(c: &mut DbConn, r: &IdempotencyRecord) -> QueryResult<()> {
    diesel::delete(idempotency::table.find((&r.user_id, &r.request_id))).execute(c)?;
    diesel::insert_into(idempotency::table)
        .values(r)
        .execute(c)
        .map(drop)
}

/// Forgets records older than `before`.
pub fn idempotency_expire(c: &mut DbConn, before: i64) -> QueryResult<usize> {
    diesel::delete(idempotency::table.filter(idempotency::created_at.lt(before))).execute(c)
}
