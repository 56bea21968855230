//! Queries on `threads`.

use diesel::prelude::*;

use crate::ids::{ThreadId, UserId};

use super::appends::Position;
use super::models::{Participant, Thread};
use super::schema::{participants, threads};
use super::DbConn;

pub fn get(c: &mut DbConn, id: &ThreadId) -> QueryResult<Option<Thread>> {
    let mut t = threads::table
        .find(id.as_str())
        .select(Thread::as_select())
        // by primary key: no LIMIT, whose bound parameter would cost a re-prepare per call
        .get_result(c)
        .optional()?;
    if let Some(t) = &mut t {
        settle(c, t)?;
    }
    Ok(t)
}

/// SQLite: brings `t`'s position (`last_seq`, `last_message_id`, `last_message_at`) up to its
/// last message. On SQLite a send does not rewrite its thread's row, which would dirty one
/// more page per message in every commit (1,000 busy threads: about one page in two of the
/// WAL); the row keeps the position of the thread's last other change (creation, membership,
/// topic), and the thread's last message row, reached through the primary key
/// (thread_id, seq), says where it stands since. Every sequence id has its message row and
/// messages are never removed, so the later of the two is the position. PostgreSQL moves the
/// row with every send (cluster mode locks and checks it), so its rows are already settled.
pub fn settle(c: &mut DbConn, t: &mut Thread) -> QueryResult<()> {
    let last = last_message(c, &t.id)?;
    settle_at(t, last);
    Ok(())
}

/// Moves `t`'s position on to `last` (its last message's, if known) where that is later.
fn settle_at(t: &mut Thread, last: Option<Position>) {
    let row = (t.last_seq, t.last_message_id, t.last_message_at);
    (t.last_seq, t.last_message_id, t.last_message_at) = later(row, last);
}

/// The later of `row` and the position of the thread's last message (see [`settle`]).
pub fn settled(c: &mut DbConn, thread: &str, row: Position) -> QueryResult<Position> {
    Ok(later(row, last_message(c, thread)?))
}

/// The later of a thread row's position and its last message's.
fn later(row: Position, last: Option<Position>) -> Position {
    match last {
        Some(p) if p.0 > row.0 => p,
        _ => row,
    }
}

/// SQLite: writes into their rows where threads stand (see [`settle`]), for those that
/// received messages since the messages rowid `after` (`None`: every thread); returns the
/// rowid to pass next time. The writer runs it about once a second, so that a row is never
/// far behind its thread: for anyone reading the table directly, and for an older confab that
/// reads the rows alone. Messages are only ever written by that same writer, so none can be
/// inserted between the two statements.
pub fn settle_rows(c: &mut diesel::SqliteConnection, after: Option<i64>) -> QueryResult<i64> {
    use diesel::sql_types::{BigInt, Nullable};
    #[derive(QueryableByName)]
    struct Last {
        #[diesel(sql_type = Nullable<BigInt>)]
        rowid: Option<i64>,
    }
    let last = diesel::sql_query("SELECT MAX(rowid) AS rowid FROM messages")
        .get_result::<Last>(c)?
        .rowid
        .unwrap_or(0);
    const SET: &str = "UPDATE threads SET (last_seq, last_message_id, last_message_at) = \
         (SELECT m.seq, m.id, m.created_at FROM messages m WHERE m.thread_id = threads.id \
          ORDER BY m.seq DESC LIMIT 1) \
         WHERE last_seq < (SELECT MAX(m.seq) FROM messages m WHERE m.thread_id = threads.id)";
    match after {
        Some(after) if after >= last => {}
        Some(after) => {
            diesel::sql_query(format!(
                "{SET} AND id IN (SELECT thread_id FROM messages WHERE rowid > ?)"
            ))
            .bind::<BigInt, _>(after)
            .execute(c)?;
        }
        None => {
            diesel::sql_query(SET).execute(c)?;
        }
    }
    Ok(last)
}

/// SQLite: where the thread's last message stands (`None` on PostgreSQL, see [`settle`]).
fn last_message(c: &mut DbConn, thread: &str) -> QueryResult<Option<Position>> {
    match c {
        #[cfg(feature = "postgres")]
        DbConn::Pg(_) => Ok(None),
        DbConn::Sqlite(s) => sqlite_last_message(s, thread),
    }
}

/// Where the thread's last message stands, if it has one.
fn sqlite_last_message(
    s: &mut diesel::SqliteConnection,
    thread: &str,
) -> QueryResult<Option<Position>> {
    LastMessage(thread).get_result(s).optional()
}

/// `SELECT seq, id, created_at FROM messages WHERE thread_id = ? ORDER BY seq DESC LIMIT 1`,
/// as a statement type of its own: diesel keeps it prepared (a `sql_query`, or a bound
/// LIMIT, would be parsed again on every call, and the writer runs it for every send).
struct LastMessage<'a>(&'a str);

impl diesel::query_builder::QueryId for LastMessage<'_> {
    type QueryId = LastMessage<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::Query for LastMessage<'_> {
    type SqlType = (
        diesel::sql_types::BigInt,
        diesel::sql_types::BigInt,
        diesel::sql_types::BigInt,
    );
}

impl diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite> for LastMessage<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()> {
        out.push_sql("SELECT seq, id, created_at FROM messages WHERE thread_id = ");
        out.push_bind_param::<diesel::sql_types::Text, _>(self.0)?;
        out.push_sql(" ORDER BY seq DESC LIMIT 1");
        Ok(())
    }
}

impl RunQueryDsl<diesel::SqliteConnection> for LastMessage<'_> {}

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
    rows.into_iter()
        .map(|(id, v, p)| {
            let p = settled(c, &id, p)?;
            Ok((id, (v, p)))
        })
        .collect()
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
    let row: Option<(i64, Position)> = match c {
        #[cfg(feature = "postgres")]
        DbConn::Pg(pg) => q.for_update().get_result(pg).optional()?,
        DbConn::Sqlite(s) => q.get_result(s).optional()?,
    };
    match row {
        Some((v, p)) => Ok(Some((v, settled(c, id.as_str(), p)?))),
        None => Ok(None),
    }
}

/// Every thread `user` is or was in, with the user's participant row. Deleted threads only where
/// the user was current at deletion.
///
/// `settled`: `Store::settled_rowid`, read before this runs. On SQLite the rows hold their
/// threads' positions up to that messages rowid, so only the messages after it (the last
/// second's) are read to settle them, not every thread's last message.
pub fn for_user(
    c: &mut DbConn,
    user: &UserId,
    settled: i64,
) -> QueryResult<Vec<(Thread, Participant)>> {
    let mut rows: Vec<(Thread, Participant)> = threads::table
        .inner_join(participants::table.on(participants::thread_id.eq(threads::id)))
        .filter(participants::user_id.eq(user.as_str()))
        .filter(
            threads::deleted_at
                .is_null()
                .or(participants::removed_at.is_null()),
        )
        .select((Thread::as_select(), Participant::as_select()))
        .load(c)?;
    match c {
        DbConn::Sqlite(s) if settled >= 0 => {
            let last = last_messages_after(s, settled)?;
            for (t, _) in &mut rows {
                settle_at(t, last.get(&t.id).copied());
            }
        }
        _ => {
            for (t, _) in &mut rows {
                settle(c, t)?;
            }
        }
    }
    Ok(rows)
}

/// SQLite: the position of the last message of every thread with messages after the messages
/// rowid `after` (SQLite gives a `MAX()` query's other columns from the row with the maximum).
fn last_messages_after(
    s: &mut diesel::SqliteConnection,
    after: i64,
) -> QueryResult<std::collections::HashMap<String, Position>> {
    use diesel::sql_types::{BigInt, Text};
    #[derive(QueryableByName)]
    struct Last {
        #[diesel(sql_type = Text)]
        thread_id: String,
        #[diesel(sql_type = BigInt)]
        seq: i64,
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = BigInt)]
        created_at: i64,
    }
    let rows: Vec<Last> = diesel::sql_query(
        "SELECT thread_id, MAX(seq) AS seq, id, created_at FROM messages \
         WHERE rowid > ? GROUP BY thread_id",
    )
    .bind::<BigInt, _>(after)
    .load(s)?;
    Ok(rows
        .into_iter()
        .map(|r| (r.thread_id, (r.seq, r.id, r.created_at)))
        .collect())
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
