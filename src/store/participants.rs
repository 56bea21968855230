//! Queries on `participants` and `read_receipts`.

use diesel::prelude::*;

use crate::ids::{ThreadId, UserId};

use super::models::{Participant, Receipt};
use super::schema::{participants, read_receipts};
use super::DbConn;

/// Every participant row of a thread, current and former.
pub fn all(c: &mut DbConn, thread: &ThreadId) -> QueryResult<Vec<Participant>> {
    participants::table
        .filter(participants::thread_id.eq(thread.as_str()))
        .select(Participant::as_select())
        .load(c)
}

pub fn get(c: &mut DbConn, thread: &ThreadId, user: &UserId) -> QueryResult<Option<Participant>> {
    participants::table
        .find((thread.as_str(), user.as_str()))
        .select(Participant::as_select())
        .first(c)
        .optional()
}

/// Inserts or replaces the participant row (re-adding a former participant).
pub fn upsert(c: &mut DbConn, p: &Participant) -> QueryResult<()> {
    let n = diesel::update(participants::table.find((&p.thread_id, &p.user_id)))
        .set((
            participants::display_name.eq(&p.display_name),
            participants::metadata.eq(&p.metadata),
            participants::share_history_time.eq(p.share_history_time),
            participants::added_at.eq(p.added_at),
            participants::added_seq.eq(p.added_seq),
            participants::add_index.eq(p.add_index),
            participants::removed_at.eq(p.removed_at),
        ))
        .execute(c)?;
    if n == 0 {
        diesel::insert_into(participants::table)
            .values(p)
            .execute(c)?;
    }
    Ok(())
}

pub fn mark_removed(c: &mut DbConn, thread: &ThreadId, user: &UserId, at: i64) -> QueryResult<()> {
    diesel::update(participants::table.find((thread.as_str(), user.as_str())))
        .set(participants::removed_at.eq(at))
        .execute(c)
        .map(drop)
}

/// Current participants in the order added, one page.
pub fn current_page(
    c: &mut DbConn,
    thread: &ThreadId,
    skip: i64,
    limit: i64,
) -> QueryResult<Vec<Participant>> {
    participants::table
        .filter(participants::thread_id.eq(thread.as_str()))
        .filter(participants::removed_at.is_null())
        .order((participants::added_seq.asc(), participants::add_index.asc()))
        .offset(skip)
        .limit(limit)
        .select(Participant::as_select())
        .load(c)
}

pub fn receipt(c: &mut DbConn, thread: &ThreadId, user: &UserId) -> QueryResult<Option<Receipt>> {
    read_receipts::table
        .find((thread.as_str(), user.as_str()))
        .select(Receipt::as_select())
        .first(c)
        .optional()
}

pub fn upsert_receipt(c: &mut DbConn, r: &Receipt) -> QueryResult<()> {
    let n = diesel::update(read_receipts::table.find((&r.thread_id, &r.user_id)))
        .set((
            read_receipts::message_id.eq(r.message_id),
            read_receipts::seq.eq(r.seq),
            read_receipts::read_at.eq(r.read_at),
        ))
        .execute(c)?;
    if n == 0 {
        diesel::insert_into(read_receipts::table)
            .values(r)
            .execute(c)?;
    }
    Ok(())
}

/// Receipts of a thread, newest first then by user id, one page.
pub fn receipts_page(
    c: &mut DbConn,
    thread: &ThreadId,
    skip: i64,
    limit: i64,
) -> QueryResult<Vec<Receipt>> {
    read_receipts::table
        .filter(read_receipts::thread_id.eq(thread.as_str()))
        .order((read_receipts::read_at.desc(), read_receipts::user_id.asc()))
        .offset(skip)
        .limit(limit)
        .select(Receipt::as_select())
        .load(c)
}

/// How many current participants a thread has.
pub fn current_count(c: &mut DbConn, thread: &ThreadId) -> QueryResult<i64> {
    participants::table
        .filter(participants::thread_id.eq(thread.as_str()))
        .filter(participants::removed_at.is_null())
        .count()
        .get_result(c)
}
