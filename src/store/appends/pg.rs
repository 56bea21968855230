//! PostgreSQL: a group is one statement ([`WriteGroup`]; a send written at once, its two
//! parts) taking one array per column (`unnest`), so its text is fixed whatever the group's
//! size, and each connection prepares it once: no parse and plan per batch, as `VALUES` lists
//! of varying length would cost. The move names its rows with `id = ANY($1)` as well as
//! joining on them, so that the planner can reach them through the primary key: a prepared
//! statement's generic plan cannot see how few rows `unnest` gives, and with the join alone it
//! hashed them against a sequential scan of every thread row, once per batch (12 million rows
//! read in a 10 s bench run of 1,000 threads; since, most batches use the index; on a table
//! this small the planner still picks the scan for some).

use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Nullable, Text};

use super::{Append, NewClusterEvent};

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
    /// The INSERT; with `only_moved`, of the rows whose thread is in the CTE `moved`.
    fn walk<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>, only_moved: bool) -> QueryResult<()> {
        out.push_sql("INSERT INTO messages (");
        out.push_sql(super::MESSAGE_COLUMNS);
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
        out.push_sql(super::MESSAGE_COLUMNS);
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
///
/// Written [`WriteGroup::alone`] (the batch's only statement, run with no BEGIN and COMMIT of
/// its own: PostgreSQL commits it as an implicit transaction, two round trips fewer), the
/// statement itself fails when fewer rows moved (`confab_group_moved`, a migration), so that
/// nothing of it commits; [`MOVED`] names that error. The text is the same either way (one
/// prepared statement): in a transaction the expected count is -1, which checks nothing.
pub struct WriteGroup {
    moves: MoveThreads,
    messages: InsertMessages,
    event_kind: Vec<String>,
    event_body: Vec<String>,
    event_recipients: Vec<String>,
    event_created_at: Vec<i64>,
    /// how many rows must move (the group's size), or -1 for no check
    expect: i64,
}

/// The start of the error `confab_group_moved` raises.
pub const MOVED: &str = "confab: a thread moved";

impl WriteGroup {
    /// The statement run inside the batch's transaction.
    pub fn of(group: &[Append], events: Vec<NewClusterEvent>) -> WriteGroup {
        let mut q = WriteGroup {
            expect: -1,
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

    /// The statement run as a transaction of its own: it fails unless every row moved.
    pub fn alone(group: &[Append], events: Vec<NewClusterEvent>) -> WriteGroup {
        WriteGroup {
            expect: group.len() as i64,
            ..WriteGroup::of(group, events)
        }
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
        out.push_sql(
            ") WHERE (SELECT count(*) FROM moved) >= 0) \
             SELECT confab_group_moved(count(*), ",
        );
        out.push_bind_param::<BigInt, _>(&self.expect)?;
        out.push_sql(") FROM moved");
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for WriteGroup {}
