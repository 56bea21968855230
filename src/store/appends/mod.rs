//! Sends written together: the new messages of many threads in one write batch, written
//! after the batch's other jobs have run, with no savepoint and no read of a thread row.
//!
//! A thread's sends claim their sequence ids by moving the thread's row from one [`Position`]
//! to the next. The thread actor knows where its thread stands (it saw its last commit), so an
//! appending job in a batch's first attempt trusts that hint and hands its rows to the group
//! ([`Appends::grouped`]). The writer writes the group (each thread row moves only from the
//! position its job trusted, and only if the thread is live; then the messages go in) before
//! the next job that is not an append and before the commit: on PostgreSQL with two statements
//! for the whole group, on SQLite with two prepared statements run once per row (see the
//! backends' modules below). If a row did not match (a stale hint), the group fails and the
//! writer runs the batch again with every job on its own ([`Appends::immediate`]), where each
//! claim reads the thread row.

use diesel::prelude::*;

use super::cluster_events::NewClusterEvent;
use super::models::Message;
use super::schema::threads;
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

/// The end of a batch's first attempt: writes `group` as [`write_group`] does, and the
/// batch's real-time `events` (cluster mode). On PostgreSQL both are one statement.
pub fn write_group_and_events(
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
            if !write_group(c, group)? {
                return Ok(false);
            }
            super::cluster_events::insert(c, events)?;
            Ok(true)
        }
    }
}

/// Moves every thread row of `group` from its `from` to its `to` position, only where it is
/// still at `from` and live; how many moved.
fn update_threads(c: &mut DbConn, group: &[Append]) -> QueryResult<usize> {
    match c {
        #[cfg(feature = "postgres")]
        DbConn::Pg(pg) => pg::MoveThreads::of(group).execute(pg),
        DbConn::Sqlite(s) => sqlite::move_threads(s, group),
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
    use diesel::sql_types::{BigInt, Text};
    use diesel::sqlite::{Sqlite, SqliteConnection};

    use super::{Append, Message};
    use crate::store::schema::messages;

    pub fn move_threads(c: &mut SqliteConnection, group: &[Append]) -> QueryResult<usize> {
        let mut moved = 0;
        for a in group {
            debug_assert!(
                a.members_version.is_none(),
                "cluster mode is PostgreSQL only"
            );
            moved += MoveThread(a).execute(c)?;
        }
        Ok(moved)
    }

    /// One thread row's guarded move, as a statement type of its own: diesel never caches the
    /// statements its UPDATE builder makes, and would parse this one for every row.
    struct MoveThread<'a>(&'a Append);

    impl QueryId for MoveThread<'_> {
        type QueryId = MoveThread<'static>;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl QueryFragment<Sqlite> for MoveThread<'_> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
            let Append {
                thread, from, to, ..
            } = self.0;
            out.push_sql("UPDATE threads SET last_seq = ");
            out.push_bind_param::<BigInt, _>(&to.0)?;
            out.push_sql(", last_message_id = ");
            out.push_bind_param::<BigInt, _>(&to.1)?;
            out.push_sql(", last_message_at = ");
            out.push_bind_param::<BigInt, _>(&to.2)?;
            out.push_sql(" WHERE id = ");
            out.push_bind_param::<Text, _>(thread.as_str())?;
            out.push_sql(" AND last_seq = ");
            out.push_bind_param::<BigInt, _>(&from.0)?;
            out.push_sql(" AND last_message_id = ");
            out.push_bind_param::<BigInt, _>(&from.1)?;
            out.push_sql(" AND last_message_at = ");
            out.push_bind_param::<BigInt, _>(&from.2)?;
            out.push_sql(" AND deleted_at IS NULL");
            Ok(())
        }
    }

    impl RunQueryDsl<SqliteConnection> for MoveThread<'_> {}

    pub fn insert_messages(c: &mut SqliteConnection, group: &[Append]) -> QueryResult<()> {
        let rows: Vec<&Message> = group.iter().flat_map(|a| &a.messages).collect();
        for m in &rows {
            diesel::insert_into(messages::table).values(*m).execute(c)?;
        }
        count_sent(c, &rows)
    }

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

/// PostgreSQL: the group's two statements take one array per column (`unnest`), so their text
/// is fixed whatever the group's size, and each connection prepares them once: no parse and
/// plan per batch, as `VALUES` lists of varying length would cost. The move names its rows
/// with `id = ANY($1)` as well as joining on them, so that the planner can reach them through
/// the primary key: a prepared statement's generic plan cannot see how few rows `unnest`
/// gives, and with the join alone it hashed them against a sequential scan of every thread
/// row, once per batch (12 million rows read in a 10 s bench run of 1,000 threads; since, most
/// batches use the index; on a table this small the planner still picks the scan for some).
#[cfg(feature = "postgres")]
mod pg {
    use diesel::pg::{Pg, PgConnection};
    use diesel::prelude::*;
    use diesel::query_builder::{AstPass, QueryFragment, QueryId};
    use diesel::sql_types::{Array, BigInt, Nullable, Text};

    use super::{Append, NewClusterEvent};

    /// Pushes each bind parameter, separated by commas.
    macro_rules! binds {
        ($out:ident, $ty0:ty => $v0:expr $(, $ty:ty => $v:expr)* $(,)?) => {{
            $out.push_bind_param::<$ty0, _>($v0)?;
            $(
                $out.push_sql(", ");
                $out.push_bind_param::<$ty, _>($v)?;
            )*
        }};
    }

    pub struct MoveThreads {
        id: Vec<String>,
        from: [Vec<i64>; 3],
        to: [Vec<i64>; 3],
        /// the `members_version` each row must have, -1 for none (the row is locked)
        version: Vec<i64>,
    }

    impl MoveThreads {
        pub fn of(group: &[Append]) -> MoveThreads {
            let mut q = MoveThreads {
                id: Vec::with_capacity(group.len()),
                from: Default::default(),
                to: Default::default(),
                version: Vec::with_capacity(group.len()),
            };
            for a in group {
                q.id.push(a.thread.to_string());
                q.version.push(a.members_version.unwrap_or(-1));
                for (col, (f, t)) in [(a.from.0, a.to.0), (a.from.1, a.to.1), (a.from.2, a.to.2)]
                    .into_iter()
                    .enumerate()
                {
                    q.from[col].push(f);
                    q.to[col].push(t);
                }
            }
            q
        }
    }

    impl QueryId for MoveThreads {
        type QueryId = MoveThreads;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl MoveThreads {
        /// The UPDATE; its id array must be the statement's first bind (`$1`).
        fn walk<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql(
                "UPDATE threads SET last_seq = v.to_seq, last_message_id = v.to_id, \
                 last_message_at = v.to_at FROM unnest(",
            );
            binds!(out,
                Array<Text> => &self.id,
                Array<BigInt> => &self.from[0],
                Array<BigInt> => &self.from[1],
                Array<BigInt> => &self.from[2],
                Array<BigInt> => &self.to[0],
                Array<BigInt> => &self.to[1],
                Array<BigInt> => &self.to[2],
                Array<BigInt> => &self.version,
            );
            out.push_sql(
                ") AS v(id, from_seq, from_id, from_at, to_seq, to_id, to_at, version) \
                 WHERE threads.id = ANY($1) AND threads.id = v.id AND threads.last_seq = v.from_seq \
                 AND threads.last_message_id = v.from_id AND threads.last_message_at = v.from_at \
                 AND (v.version < 0 OR threads.members_version = v.version) \
                 AND threads.deleted_at IS NULL",
            );
            Ok(())
        }
    }

    impl QueryFragment<Pg> for MoveThreads {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            self.walk(&mut out)
        }
    }

    impl RunQueryDsl<PgConnection> for MoveThreads {}

    #[derive(Default)]
    pub struct InsertMessages {
        thread_id: Vec<String>,
        seq: Vec<i64>,
        id: Vec<i64>,
        kind: Vec<String>,
        content: Vec<Option<String>>,
        system: Vec<Option<String>>,
        sender_id: Vec<Option<String>>,
        sender_display_name: Vec<Option<String>>,
        metadata: Vec<String>,
        priority: Vec<String>,
        created_at: Vec<i64>,
        version: Vec<i64>,
        edited_at: Vec<Option<i64>>,
        deleted_at: Vec<Option<i64>>,
        sentiment: Vec<Option<i64>>,
    }

    impl InsertMessages {
        pub fn of(group: &[Append]) -> InsertMessages {
            let mut q = InsertMessages::default();
            for m in group.iter().flat_map(|a| &a.messages) {
                q.thread_id.push(m.thread_id.clone());
                q.seq.push(m.seq);
                q.id.push(m.id);
                q.kind.push(m.kind.clone());
                q.content.push(m.content.clone());
                q.system.push(m.system.clone());
                q.sender_id.push(m.sender_id.clone());
                q.sender_display_name.push(m.sender_display_name.clone());
                q.metadata.push(m.metadata.clone());
                q.priority.push(m.priority.clone());
                q.created_at.push(m.created_at);
                q.version.push(m.version);
                q.edited_at.push(m.edited_at);
                q.deleted_at.push(m.deleted_at);
                q.sentiment.push(m.sentiment);
            }
            q
        }
    }

    impl QueryId for InsertMessages {
        type QueryId = InsertMessages;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl InsertMessages {
        const COLUMNS: &'static str = "thread_id, seq, id, kind, content, system, sender_id, \
             sender_display_name, metadata, priority, created_at, version, edited_at, \
             deleted_at, sentiment";

        /// The INSERT; with `only_moved`, of the rows whose thread is in the CTE `moved`.
        fn walk<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>, only_moved: bool) -> QueryResult<()> {
            out.push_sql("INSERT INTO messages (");
            out.push_sql(Self::COLUMNS);
            out.push_sql(") SELECT * FROM unnest(");
            binds!(out,
                Array<Text> => &self.thread_id,
                Array<BigInt> => &self.seq,
                Array<BigInt> => &self.id,
                Array<Text> => &self.kind,
                Array<Nullable<Text>> => &self.content,
                Array<Nullable<Text>> => &self.system,
                Array<Nullable<Text>> => &self.sender_id,
                Array<Nullable<Text>> => &self.sender_display_name,
                Array<Text> => &self.metadata,
                Array<Text> => &self.priority,
                Array<BigInt> => &self.created_at,
                Array<BigInt> => &self.version,
                Array<Nullable<BigInt>> => &self.edited_at,
                Array<Nullable<BigInt>> => &self.deleted_at,
                Array<Nullable<BigInt>> => &self.sentiment,
            );
            out.push_sql(") AS u(");
            out.push_sql(Self::COLUMNS);
            out.push_sql(")");
            if only_moved {
                out.push_sql(" WHERE u.thread_id IN (SELECT id FROM moved)");
            }
            Ok(())
        }
    }

    impl QueryFragment<Pg> for InsertMessages {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            self.walk(&mut out, false)
        }
    }

    impl RunQueryDsl<PgConnection> for InsertMessages {}

    /// A group and the batch's real-time events in one statement (one round trip instead of
    /// three): the thread rows move, the messages of the rows that moved go in, and the events
    /// rows go in; it returns how many rows moved. Fewer than the group's size leaves the
    /// messages of the others out (no duplicate-key error to tell apart from a moved row), and
    /// the caller rolls the whole transaction back.
    pub struct WriteGroup {
        moves: MoveThreads,
        messages: InsertMessages,
        event_kind: Vec<String>,
        event_body: Vec<String>,
        event_recipients: Vec<String>,
        event_created_at: Vec<i64>,
    }

    impl WriteGroup {
        pub fn of(group: &[Append], events: Vec<NewClusterEvent>) -> WriteGroup {
            let mut q = WriteGroup {
                moves: MoveThreads::of(group),
                messages: InsertMessages::of(group),
                event_kind: Vec::with_capacity(events.len()),
                event_body: Vec::with_capacity(events.len()),
                event_recipients: Vec::with_capacity(events.len()),
                event_created_at: Vec::with_capacity(events.len()),
            };
            for e in events {
                q.event_kind.push(e.kind);
                q.event_body.push(e.body);
                q.event_recipients.push(e.recipients);
                q.event_created_at.push(e.created_at);
            }
            q
        }
    }

    impl QueryId for WriteGroup {
        type QueryId = WriteGroup;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl diesel::query_builder::Query for WriteGroup {
        type SqlType = BigInt;
    }

    impl QueryFragment<Pg> for WriteGroup {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql("WITH moved AS (");
            self.moves.walk(&mut out)?;
            out.push_sql(" RETURNING threads.id), written AS (");
            self.messages.walk(&mut out, true)?;
            out.push_sql("), events AS (INSERT INTO cluster_events (kind, body, recipients, created_at) SELECT * FROM unnest(");
            binds!(out,
                Array<Text> => &self.event_kind,
                Array<Text> => &self.event_body,
                Array<Text> => &self.event_recipients,
                Array<BigInt> => &self.event_created_at,
            );
            // (the condition makes the UPDATE finish, taking its row locks, before the first
            // event row takes its id: a thread's event rows keep commit order, which the
            // relay publishes in; sub-statements of a WITH otherwise run in no set order)
            out.push_sql(") WHERE (SELECT count(*) FROM moved) >= 0) SELECT count(*) FROM moved");
            Ok(())
        }
    }

    impl RunQueryDsl<PgConnection> for WriteGroup {}
}
