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

/// What a user's inbox shows of one thread (CONTRACT §10.1).
#[derive(Debug, Clone)]
pub struct InboxEntry {
    /// Text/html messages of others, not deleted, visible to the user, above its read marker.
    pub unread: i64,
    /// The newest visible text/html message that is not deleted.
    pub last: Option<super::models::Message>,
}

#[derive(QueryableByName)]
struct InboxRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    thread_id: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    unread: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    last_seq: Option<i64>,
}

/// The select list of [`inbox`]: per participant row `p`, two correlated subqueries that each
/// walk the thread's primary key (thread_id, seq) from the read marker or from the end.
const INBOX_SELECT: &str = "SELECT p.thread_id AS thread_id, \
     (SELECT COUNT(*) FROM messages m WHERE m.thread_id = p.thread_id \
        AND m.seq > COALESCE((SELECT r.seq FROM read_receipts r \
              WHERE r.thread_id = p.thread_id AND r.user_id = p.user_id), 0) \
        AND m.kind IN ('text', 'html') AND m.deleted_at IS NULL \
        AND m.sender_id <> p.user_id \
        AND m.created_at >= p.share_history_time \
        AND (p.removed_at IS NULL OR m.created_at <= p.removed_at)) AS unread, \
     (SELECT m.seq FROM messages m WHERE m.thread_id = p.thread_id \
        AND m.kind IN ('text', 'html') AND m.deleted_at IS NULL \
        AND m.created_at >= p.share_history_time \
        AND (p.removed_at IS NULL OR m.created_at <= p.removed_at) \
        ORDER BY m.seq DESC LIMIT 1) AS last_seq \
     FROM participants p";

/// Unread counts and last messages of `user` in `threads` (one page of its thread list): two
/// queries for the whole page, whatever its size.
pub fn inbox(
    c: &mut DbConn,
    user: &UserId,
    threads: &[String],
) -> QueryResult<std::collections::HashMap<String, InboxEntry>> {
    use diesel::sql_types::Text;
    use std::collections::HashMap;
    if threads.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<InboxRow> = match c {
        #[cfg(feature = "postgres")]
        DbConn::Pg(pg) => diesel::sql_query(format!(
            "{INBOX_SELECT} WHERE p.user_id = $1 AND p.thread_id = ANY($2)"
        ))
        .bind::<Text, _>(user.as_str())
        .bind::<diesel::sql_types::Array<Text>, _>(threads)
        .load(pg)?,
        DbConn::Sqlite(s) => {
            let marks = vec!["?"; threads.len()].join(", ");
            let mut q = diesel::sql_query(format!(
                "{INBOX_SELECT} WHERE p.user_id = ? AND p.thread_id IN ({marks})"
            ))
            .into_boxed()
            .bind::<Text, _>(user.as_str());
            for t in threads {
                q = q.bind::<Text, _>(t.as_str());
            }
            q.load(s)?
        }
    };
    let wanted: Vec<(String, i64)> = rows
        .iter()
        .filter_map(|r| Some((r.thread_id.clone(), r.last_seq?)))
        .collect();
    let mut last: HashMap<String, super::models::Message> = HashMap::new();
    if !wanted.is_empty() {
        use super::schema::messages as m;
        let ids: Vec<&str> = wanted.iter().map(|(t, _)| t.as_str()).collect();
        let seqs: Vec<i64> = wanted.iter().map(|(_, s)| *s).collect();
        let found: Vec<super::models::Message> = m::table
            .filter(m::thread_id.eq_any(&ids))
            .filter(m::seq.eq_any(&seqs))
            .select(super::models::Message::as_select())
            .load(c)?;
        for msg in found {
            if wanted
                .iter()
                .any(|(t, s)| *t == msg.thread_id && *s == msg.seq)
            {
                last.insert(msg.thread_id.clone(), msg);
            }
        }
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let entry = InboxEntry {
                unread: r.unread,
                last: last.remove(&r.thread_id),
            };
            (r.thread_id, entry)
        })
        .collect())
}
