//! Queries on `threads`.

use diesel::prelude::*;

use crate::ids::{ThreadId, UserId};

use super::appends::Position;
use super::models::{Participant, Thread};
use super::schema::{participants, threads};
use super::DbConn;

pub fn get(c: &mut DbConn, id: &ThreadId) -> QueryResult<Option<Thread>> {
    threads::table
        .find(id.as_str())
        .select(Thread::as_select())
        // by primary key: no LIMIT, whose bound parameter would cost a re-prepare per call
        .get_result(c)
        .optional()
}

pub fn insert(c: &mut DbConn, t: &Thread) -> QueryResult<()> {
    diesel::insert_into(threads::table)
        .values(t)
        .execute(c)
        .map(drop)
}

/// Writes the mutable properties of a thread.
pub fn update_properties(c: &mut DbConn, t: &Thread) -> QueryResult<()> {
    diesel::update(threads::table.find(&t.id))
        .set((
            threads::topic.eq(&t.topic),
            threads::metadata.eq(&t.metadata),
            threads::retention.eq(&t.retention),
            threads::delete_after.eq(t.delete_after),
        ))
        .execute(c)
        .map(drop)
}

/// Records the last message handed out (sequence, id and time), in the writing transaction.
pub fn set_last_message(
    c: &mut DbConn,
    id: &ThreadId,
    seq: i64,
    message_id: i64,
    at: i64,
) -> QueryResult<()> {
    diesel::update(threads::table.find(id.as_str()))
        .set((
            threads::last_seq.eq(seq),
            threads::last_message_id.eq(message_id),
            threads::last_message_at.eq(at),
        ))
        .execute(c)
        .map(drop)
}

/// Deletes the thread (a change of membership too: nobody is in it any more).
pub fn mark_deleted(c: &mut DbConn, id: &ThreadId, at: i64) -> QueryResult<()> {
    diesel::update(threads::table.find(id.as_str()))
        .set((
            threads::deleted_at.eq(at),
            threads::members_version.eq(threads::members_version + 1),
        ))
        .execute(c)
        .map(drop)
}

/// Moves the thread's membership version on: every add and removal does, in its transaction.
pub fn bump_members(c: &mut DbConn, id: &ThreadId) -> QueryResult<()> {
    diesel::update(threads::table.find(id.as_str()))
        .set(threads::members_version.eq(threads::members_version + 1))
        .execute(c)
        .map(drop)
}

/// Cluster mode: locks the rows of `ids` (those that exist) for the rest of the transaction,
/// in id order, so that the batches of different nodes never wait for each other in a circle;
/// each with its membership version and where its messages stand.
pub fn lock_all(
    c: &mut DbConn,
    ids: &[&str],
) -> QueryResult<std::collections::HashMap<String, (i64, Position)>> {
    let q = threads::table
        .filter(threads::id.eq_any(ids))
        .order(threads::id.asc())
        .select((
            threads::id,
            threads::members_version,
            (
                threads::last_seq,
                threads::last_message_id,
                threads::last_message_at,
            ),
        ));
    let rows: Vec<(String, i64, Position)> = match c {
        #[cfg(feature = "postgres")]
        DbConn::Pg(pg) => q.for_update().load(pg)?,
        DbConn::Sqlite(s) => q.load(s)?,
    };
    Ok(rows.into_iter().map(|(id, v, p)| (id, (v, p))).collect())
}

/// Cluster mode: locks the thread's row for the rest of the transaction (so that the thread's
/// writers on all nodes take turns) and returns its membership version and where its messages
/// stand, `None` if there is no such thread. SQLite has one writer and needs no lock.
pub fn lock(c: &mut DbConn, id: &ThreadId) -> QueryResult<Option<(i64, Position)>> {
    let q = threads::table.find(id.as_str()).select((
        threads::members_version,
        (
            threads::last_seq,
            threads::last_message_id,
            threads::last_message_at,
        ),
    ));
    match c {
        #[cfg(feature = "postgres")]
        DbConn::Pg(pg) => q.for_update().get_result(pg).optional(),
        DbConn::Sqlite(s) => q.get_result(s).optional(),
    }
}

/// Every thread `user` is or was in, with the user's participant row. Deleted threads only where
/// the user was current at deletion.
pub fn for_user(c: &mut DbConn, user: &UserId) -> QueryResult<Vec<(Thread, Participant)>> {
    threads::table
        .inner_join(participants::table.on(participants::thread_id.eq(threads::id)))
        .filter(participants::user_id.eq(user.as_str()))
        .filter(
            threads::deleted_at
                .is_null()
                .or(participants::removed_at.is_null()),
        )
        .select((Thread::as_select(), Participant::as_select()))
        .load(c)
}

/// Ids of live threads whose retention time has come.
pub fn due_for_retention(c: &mut DbConn, now: i64, limit: i64) -> QueryResult<Vec<ThreadId>> {
    let due: Vec<String> = threads::table
        .filter(threads::delete_after.le(now))
        .filter(threads::deleted_at.is_null())
        .select(threads::id)
        .limit(limit)
        .load(c)?;
    Ok(due.into_iter().map(ThreadId::from).collect())
}

/// Threads that are not deleted.
pub fn count_live(c: &mut DbConn) -> QueryResult<i64> {
    threads::table
        .filter(threads::deleted_at.is_null())
        .count()
        .get_result(c)
}
