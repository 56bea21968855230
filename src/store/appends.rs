//! Sends written together: the new messages of many threads in one write batch, with two
//! statements for the whole group instead of two per thread.
//!
//! A thread's sends claim their sequence ids by moving the thread's row from one [`Position`]
//! to the next. The thread actor knows where its thread stands (it saw its last commit), so an
//! appending job in a batch's first attempt trusts that hint and hands its rows to the group
//! ([`Appends::grouped`]). The writer writes the group with one guarded UPDATE of every thread
//! row (each moves only from the position its job trusted, and only if the thread is live) and
//! one multi-row INSERT, before the next job that is not an append and before the commit. If a
//! row did not match (a stale hint), the group fails and the writer runs the batch again with
//! every job on its own ([`Appends::immediate`]), where each claim reads the thread row.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::models::Message;
use super::schema::{messages, threads};
use super::DbConn;
use crate::error::ApiError;
use crate::ids::ThreadId;

/// Where a thread's messages stand: its last (sequenceId, message id, createdOn).
pub type Position = (i64, i64, i64);

/// One thread's new messages and the move of its row that hands out their ids.
#[derive(Debug, Clone)]
pub struct Append {
    pub thread: ThreadId,
    pub from: Position,
    pub to: Position,
    pub messages: Vec<Message>,
}

/// Where an appending job's messages go.
pub struct Appends<'g> {
    /// The batch's group (first attempt), or `None` to write at once (the retry).
    group: Option<&'g mut Vec<Append>>,
}

/// Most rows in one INSERT (14 parameters each: under SQLite's and PostgreSQL's limits).
const INSERT_CHUNK: usize = 1_000;
/// Most thread rows in one UPDATE (7 parameters each).
const UPDATE_CHUNK: usize = 2_000;

impl<'g> Appends<'g> {
    /// Trusted hints; rows go to `group`, written by [`write_group`].
    pub fn grouped(group: &'g mut Vec<Append>) -> Appends<'g> {
        Appends { group: Some(group) }
    }

    /// Every claim reads the thread row; rows are written at once.
    pub fn immediate() -> Appends<'static> {
        Appends { group: None }
    }

    /// Where `thread`'s messages stand: the actor's `hint` when grouping (checked when the
    /// group is written), else the thread row as it is now (`None` if the thread is missing or
    /// deleted).
    pub fn claim(
        &mut self,
        c: &mut DbConn,
        thread: &ThreadId,
        hint: Option<Position>,
    ) -> QueryResult<Option<Position>> {
        if let (Some(_), Some(hint)) = (&self.group, hint) {
            return Ok(Some(hint));
        }
        threads::table
            .find(thread.as_str())
            .filter(threads::deleted_at.is_null())
            .select((
                threads::last_seq,
                threads::last_message_id,
                threads::last_message_at,
            ))
            .get_result(c)
            .optional()
    }

    /// Writes `append` (claimed with [`Appends::claim`]), or hands it to the group.
    pub fn push(&mut self, c: &mut DbConn, append: Append) -> Result<(), ApiError> {
        match &mut self.group {
            Some(group) => group.push(append),
            None => {
                let one = std::slice::from_ref(&append);
                if update_threads(c, one)? != 1 {
                    // claimed in this same transaction, by the thread's only writer
                    return Err(ApiError::unavailable("the thread changed under its writer"));
                }
                insert_messages(c, one)?;
            }
        }
        Ok(())
    }
}

/// Writes a group: `Ok(false)` if a thread row had moved from its trusted position (or the
/// thread is gone), in which case the caller must roll back and write each append on its own.
pub fn write_group(c: &mut DbConn, group: &[Append]) -> QueryResult<bool> {
    if group.is_empty() {
        return Ok(true);
    }
    if update_threads(c, group)? != group.len() {
        return Ok(false);
    }
    insert_messages(c, group)?;
    Ok(true)
}

/// Moves every thread row of `group` from its `from` to its `to` position, only where it is
/// still at `from` and live; how many moved.
fn update_threads(c: &mut DbConn, group: &[Append]) -> QueryResult<usize> {
    let mut moved = 0;
    for chunk in group.chunks(UPDATE_CHUNK) {
        let sql = update_sql(c, chunk.len());
        macro_rules! run {
            ($conn:expr) => {{
                let mut q = diesel::sql_query(sql).into_boxed();
                for a in chunk {
                    q = q
                        .bind::<Text, _>(a.thread.to_string())
                        .bind::<BigInt, _>(a.from.0)
                        .bind::<BigInt, _>(a.from.1)
                        .bind::<BigInt, _>(a.from.2)
                        .bind::<BigInt, _>(a.to.0)
                        .bind::<BigInt, _>(a.to.1)
                        .bind::<BigInt, _>(a.to.2);
                }
                q.execute($conn)?
            }};
        }
        moved += match c {
            #[cfg(feature = "postgres")]
            DbConn::Pg(pg) => run!(pg),
            DbConn::Sqlite(s) => run!(s),
        };
    }
    Ok(moved)
}

/// `WITH v(…) AS (VALUES …) UPDATE threads … FROM v`, in the backend's placeholder style.
fn update_sql(c: &DbConn, rows: usize) -> String {
    let mut sql =
        String::from("WITH v(id, from_seq, from_id, from_at, to_seq, to_id, to_at) AS (VALUES ");
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..7 {
            if col > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match c {
                #[cfg(feature = "postgres")]
                DbConn::Pg(_) => sql.push_str(&format!("${n}")),
                DbConn::Sqlite(_) => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql.push_str(
        ") UPDATE threads SET last_seq = v.to_seq, last_message_id = v.to_id, \
         last_message_at = v.to_at FROM v WHERE threads.id = v.id \
         AND threads.last_seq = v.from_seq AND threads.last_message_id = v.from_id \
         AND threads.last_message_at = v.from_at AND threads.deleted_at IS NULL",
    );
    sql
}

/// Inserts every message of `group` with multi-row INSERTs.
fn insert_messages(c: &mut DbConn, group: &[Append]) -> QueryResult<()> {
    let rows: Vec<&Message> = group.iter().flat_map(|a| &a.messages).collect();
    for chunk in rows.chunks(INSERT_CHUNK) {
        // diesel's `MultiConnection` writes one row per statement: use each backend's own
        // multi-row INSERT
        match c {
            #[cfg(feature = "postgres")]
            DbConn::Pg(pg) => diesel::insert_into(messages::table)
                .values(chunk.to_vec())
                .execute(pg)?,
            DbConn::Sqlite(s) => diesel::insert_into(messages::table)
                .values(chunk.to_vec())
                .execute(s)?,
        };
    }
    Ok(())
}
