//! Sends written together: the new messages of many threads in one write batch, written
//! after the batch's other jobs have run, with no savepoint and no read of a thread row.
//!
//! A thread's sends claim their sequence ids by moving the thread from one [`Position`] to the
//! next: on PostgreSQL its row moves; on SQLite the new messages are the move (a thread stands
//! where its last message does, see `store::threads::settle`), and the row catches up about
//! once a second. The thread actor knows where its thread stands (it saw its last commit), so an
//! appending job in a batch's first attempt trusts that hint and hands its rows to the group
//! ([`Appends::grouped`]). The writer writes the group (each thread moves only from the
//! position its job trusted, and only if the thread is live; then the messages go in) before
//! the next job that is not an append and before the commit (then with the batch's cluster
//! events): on PostgreSQL with one statement for the whole group, on SQLite with two prepared
//! statements run once per row (see the backends' modules). If a row did not match (a stale hint), the group fails and the
//! writer runs the batch again with every job on its own ([`Appends::immediate`]), where each
//! claim reads the thread row.

use diesel::prelude::*;

use super::cluster_events::NewClusterEvent;
use super::models::Message;
use super::schema::threads;
use super::DbConn;
use crate::error::ApiError;
use crate::ids::ThreadId;

/// Pushes each bind parameter of a hand-written statement, separated by commas (`pg`, `sqlite`).
macro_rules! binds {
    ($out:ident, $ty0:ty => $v0:expr $(, $ty:ty => $v:expr)* $(,)?) => {{
        $out.push_bind_param::<$ty0, _>($v0)?;
        $(
            $out.push_sql(", ");
            $out.push_bind_param::<$ty, _>($v)?;
        )*
    }};
}

/// The columns of a `messages` row, in the order both backends' inserts bind them.
const MESSAGE_COLUMNS: &str = "thread_id, seq, id, kind, content, system, sender_id, \
     sender_display_name, metadata, priority, created_at, version, edited_at, deleted_at, \
     sentiment";

/// Where a thread's messages stand: its last (sequenceId, message id, createdOn).
pub type Position = (i64, i64, i64);

/// One thread's new messages and the move of its row that hands out their ids.
#[derive(Debug, Clone)]
pub struct Append {
    pub thread: ThreadId,
    pub from: Position,
    pub to: Position,
    pub messages: Vec<Message>,
    /// Cluster mode, sends that trusted their hint instead of locking the row first: the row
    /// moves only if its `members_version` is still this one (set by [`Appends::push`]).
    /// PostgreSQL only (cluster mode is); SQLite's single writer never sets it.
    pub members_version: Option<i64>,
}

/// What a cluster node's batch shares in its first attempt: the thread rows it locked when it
/// started (one ordered statement), and the real-time events its jobs produced (one insert
/// before the commit).
#[derive(Default)]
pub struct Batch {
    /// Locked rows not yet claimed by a job: a thread's first job in the batch takes its row;
    /// a later job of the same thread reads the row again (an earlier job may have moved it).
    pub(super) locked: std::collections::HashMap<String, (i64, Position)>,
    pub(super) events: Vec<NewClusterEvent>,
}

/// Where a job's messages go, and (cluster mode) its thread's lock and real-time events.
pub struct Appends<'g> {
    /// The batch's group (first attempt), or `None` to write at once (the retry).
    group: Option<&'g mut Vec<Append>>,
    /// Where the thread stood when this transaction locked its row (cluster mode), which no
    /// other writer can have moved since.
    locked: Option<Position>,
    /// The batch's shared part (first attempt), or `None` to do everything at once.
    batch: Option<&'g mut Batch>,
    /// Cluster mode, an optimistic send (see [`Appends::trust_version`]).
    members_version: Option<i64>,
}

impl<'g> Appends<'g> {
    /// Trusted hints; rows go to `group`, written by [`write_group`].
    pub fn grouped(group: &'g mut Vec<Append>) -> Appends<'g> {
        Appends {
            group: Some(group),
            locked: None,
            batch: None,
            members_version: None,
        }
    }

    /// Every claim reads the thread row; rows are written at once.
    pub fn immediate() -> Appends<'static> {
        Appends {
            group: None,
            locked: None,
            batch: None,
            members_version: None,
        }
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
        if let Some(p) = self.locked {
            return Ok(Some(p));
        }
        if let (Some(_), Some(hint)) = (&self.group, hint) {
            return Ok(Some(hint));
        }
        let row: Option<Position> = threads::table
            .find(thread.as_str())
            .filter(threads::deleted_at.is_null())
            .select((
                threads::last_seq,
                threads::last_message_id,
                threads::last_message_at,
            ))
            .get_result(c)
            .optional()?;
        match row {
            Some(row) => super::threads::settled(c, thread.as_str(), row).map(Some),
            None => Ok(None),
        }
    }

    /// The first attempt of a batch: `group` for appending jobs (`None` for the others), and
    /// the batch's shared part.
    pub(super) fn in_batch(group: Option<&'g mut Vec<Append>>, batch: &'g mut Batch) -> Self {
        Appends {
            group,
            locked: None,
            batch: Some(batch),
            members_version: None,
        }
    }

    /// Cluster mode, a send with a hint: instead of locking its thread's row first (one more
    /// statement per batch), trust the hint and the membership cache, and move the row in the
    /// group only if it is still at the hint and at `version`. The group's UPDATE takes the row
    /// lock, held to the commit, so the check and the write are one step. `false` (lock the row
    /// instead) outside a first attempt's group. A row that moved makes the batch run again job
    /// by job, where the send locks the row (see `store::writer`).
    pub fn trust_version(&mut self, version: i64) -> bool {
        if self.group.is_none() || self.locked.is_some() {
            return false;
        }
        self.members_version = Some(version);
        true
    }

    /// Cluster mode: locks `thread`'s row for the transaction (taken when the batch started,
    /// or now) and returns its membership version and position, `None` if there is no such
    /// thread. Later claims of this job trust that position.
    pub fn lock_row(
        &mut self,
        c: &mut DbConn,
        thread: &ThreadId,
    ) -> QueryResult<Option<(i64, Position)>> {
        let taken = self
            .batch
            .as_mut()
            .and_then(|b| b.locked.remove(thread.as_str()));
        let row = match taken {
            Some(row) => Some(row),
            None => super::threads::lock(c, thread)?,
        };
        if let Some((_, p)) = row {
            self.locked = Some(p);
        }
        Ok(row)
    }

    /// Cluster mode: the job's real-time events, written with the batch's (or at once); how
    /// many.
    pub fn add_events(&mut self, c: &mut DbConn, rows: Vec<NewClusterEvent>) -> QueryResult<usize> {
        let n = rows.len();
        match &mut self.batch {
            Some(b) => b.events.extend(rows),
            None => {
                super::cluster_events::insert(c, &rows)?;
            }
        }
        Ok(n)
    }

    /// Writes `append` (claimed with [`Appends::claim`]), or hands it to the group.
    pub fn push(&mut self, c: &mut DbConn, mut append: Append) -> Result<(), ApiError> {
        match &mut self.group {
            Some(group) => {
                append.members_version = self.members_version;
                group.push(append)
            }
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

/// Writes a group and the batch's real-time `events` (cluster mode; none for a group written
/// before a job that is not an append): `Ok(false)` if a thread row had moved from its trusted
/// position (or the thread is gone), in which case the caller must roll back and write each
/// append on its own. On PostgreSQL all of it is one statement.
pub fn write_group(
    c: &mut DbConn,
    group: &[Append],
    events: &[NewClusterEvent],
) -> QueryResult<bool> {
    match c {
        #[cfg(feature = "postgres")]
        DbConn::Pg(pg) if !group.is_empty() => {
            let moved: i64 =
                pg::WriteGroup::of(group, super::cluster_events::packed(events)).get_result(pg)?;
            Ok(moved == group.len() as i64)
        }
        _ => {
            if !group.is_empty() {
                if update_threads(c, group)? != group.len() {
                    return Ok(false);
                }
                insert_messages(c, group)?;
            }
            super::cluster_events::insert(c, events)?;
            Ok(true)
        }
    }
}

/// PostgreSQL: writes a non-empty group and `events` as a statement of its own, outside any
/// transaction, which PostgreSQL commits on its own (durably, before it answers): for a batch
/// whose jobs ran no statement, two round trips (BEGIN, COMMIT) fewer. `Ok(false)` if a
/// thread row had moved, in which case nothing was written.
#[cfg(feature = "postgres")]
pub fn write_group_alone(
    pg: &mut diesel::pg::PgConnection,
    group: &[Append],
    events: &[NewClusterEvent],
) -> QueryResult<bool> {
    let statement = pg::WriteGroup::alone(group, super::cluster_events::packed(events));
    match statement.get_result::<i64>(pg) {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(_, info))
            if info.message().starts_with(pg::MOVED) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Claims `group`'s positions: each thread must still be live and at its `from` position; how
/// many were. PostgreSQL moves each row from `from` on to `to` (a send's row write). SQLite
/// rows do not follow sends: a thread stands where its last message does (see
/// `store::threads::settle`), the messages about to go in are the move, and the primary key
/// refuses a stale `from` (see `sqlite::live_threads`); only liveness is checked.
fn update_threads(c: &mut DbConn, group: &[Append]) -> QueryResult<usize> {
    match c {
        #[cfg(feature = "postgres")]
        DbConn::Pg(pg) => pg::MoveThreads::of(group).execute(pg),
        DbConn::Sqlite(s) => sqlite::live_threads(s, group),
    }
}

/// Inserts every message of `group`.
fn insert_messages(c: &mut DbConn, group: &[Append]) -> QueryResult<()> {
    match c {
        #[cfg(feature = "postgres")]
        DbConn::Pg(pg) => pg::InsertMessages::of(group).execute(pg).map(drop),
        DbConn::Sqlite(s) => sqlite::insert_messages(s, group),
    }
}

/// SQLite: one prepared statement per row, run again for each. SQLite is in-process, so a
/// statement costs no round trip, and diesel keeps these two prepared: nothing is parsed per
/// batch. Multi-row forms cost more here (measured, see the README's performance notes): a
/// `VALUES` list changes text with the group's size and is parsed and planned every batch, a
/// statement that writes many rows keeps a statement journal (a copy of every page it
/// touches, for its own rollback), and diesel writes a `Vec` of rows to SQLite one by one
/// inside a savepoint, which journals every page again. A failed row fails the group and the
/// batch is run again job by job (see `store::writer`), so no statement needs its own undo.
mod sqlite {
    use diesel::prelude::*;
    use diesel::query_builder::{AstPass, QueryFragment, QueryId};
    use diesel::sql_types::{BigInt, Nullable, Text};
    use diesel::sqlite::{Sqlite, SqliteConnection};

    use super::{Append, Message};
    use crate::store::schema::threads;

    /// How many of `group`'s threads are live. A thread's position needs no check here: its
    /// sequence ids have no gaps, so a stale `from` hands out a sequence id that a message
    /// already has, and the primary key (thread_id, seq) refuses the row.
    pub fn live_threads(c: &mut SqliteConnection, group: &[Append]) -> QueryResult<usize> {
        let mut live = 0;
        for a in group {
            debug_assert!(
                a.members_version.is_none(),
                "cluster mode is PostgreSQL only"
            );
            live += threads::table
                .find(a.thread.as_str())
                .filter(threads::deleted_at.is_null())
                .select(threads::members_version)
                .get_result::<i64>(c)
                .optional()?
                .map_or(0, |_| 1);
        }
        Ok(live)
    }

    pub fn insert_messages(c: &mut SqliteConnection, group: &[Append]) -> QueryResult<()> {
        let rows: Vec<&Message> = group.iter().flat_map(|a| &a.messages).collect();
        for m in &rows {
            InsertMessage(m).execute(c)?;
        }
        count_sent(c, &rows)
    }

    /// One message row, in SQL text that never changes, so that diesel finds its prepared
    /// statement by type. (`insert_into(messages).values(&Message)` leaves the `None` columns
    /// out of its text, so diesel wrote and hashed the text again for every row to find the
    /// statement: about a tenth of the writer's CPU per send.) The columns left out had no
    /// default but NULL, which is what a `None` binds here.
    struct InsertMessage<'a>(&'a Message);

    impl QueryId for InsertMessage<'_> {
        type QueryId = InsertMessage<'static>;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl QueryFragment<Sqlite> for InsertMessage<'_> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
            let m = self.0;
            out.push_sql("INSERT INTO messages (");
            out.push_sql(super::MESSAGE_COLUMNS);
            out.push_sql(") VALUES (");
            binds!(out,
                Text => &m.thread_id,
                BigInt => &m.seq,
                BigInt => &m.id,
                Text => &m.kind,
                Nullable<Text> => &m.content,
                Nullable<Text> => &m.system,
                Nullable<Text> => &m.sender_id,
                Nullable<Text> => &m.sender_display_name,
                Text => &m.metadata,
                Text => &m.priority,
                BigInt => &m.created_at,
                BigInt => &m.version,
                Nullable<BigInt> => &m.edited_at,
                Nullable<BigInt> => &m.deleted_at,
                Nullable<BigInt> => &m.sentiment,
            );
            out.push_sql(")");
            Ok(())
        }
    }

    impl RunQueryDsl<SqliteConnection> for InsertMessage<'_> {}

    /// The Usage page's count of messages sent (`usage_hours`), in the same transaction: one
    /// statement per hour the rows fall in. (PostgreSQL counts them with a statement-level
    /// trigger; SQLite has only per-row triggers, whose upsert per message cost 8 % of the
    /// send rate. Every text/html message is written here.)
    fn count_sent(c: &mut SqliteConnection, rows: &[&Message]) -> QueryResult<()> {
        let mut per_hour = std::collections::BTreeMap::<i64, i64>::new();
        for m in rows.iter().filter(|m| m.kind == "text" || m.kind == "html") {
            *per_hour
                .entry(crate::store::usage::hour_of(m.created_at))
                .or_default() += 1;
        }
        for (hour, n) in per_hour {
            diesel::sql_query(
                "INSERT INTO usage_hours (hour, slot, messages, threads, identities) \
                 VALUES (?, 0, ?, 0, 0) ON CONFLICT (hour, slot) \
                 DO UPDATE SET messages = messages + excluded.messages",
            )
            .bind::<BigInt, _>(hour)
            .bind::<BigInt, _>(n)
            .execute(c)?;
        }
        Ok(())
    }
}

#[cfg(feature = "postgres")]
mod pg;
