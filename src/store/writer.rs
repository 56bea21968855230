//! A group-commit writer: one dedicated thread owns one writing connection (the store runs one
//! on SQLite, several on PostgreSQL; see the `store` module).
//!
//! Every job waiting when a batch starts runs in one transaction, which commits once; only then
//! is each job answered: a client is told success only after its change is durable, and many
//! changes share one commit (one fsync on SQLite, one WAL flush on PostgreSQL).
//!
//! Jobs run straight in the batch transaction, with no savepoint each: a savepoint and its
//! release are two more statements per job (two more round trips on PostgreSQL). If a job
//! fails (a validation error found in the transaction, or a failed statement, which aborts a
//! PostgreSQL transaction) the whole batch is rolled back and run again with a savepoint per
//! job, so that the failing job fails alone and the others commit. Jobs are therefore `Clone`
//! and free of side effects outside the connection: a retried batch runs each of them again.
//!
//! On PostgreSQL a writer under load gathers its batch for a moment (`--pg-commit-gather`,
//! 2 ms): when its last batch held two jobs or more, it sleeps that long after the first job
//! arrives, then takes every job queued meanwhile (PostgreSQL's `commit_delay`, on the
//! client's side). Each transaction costs PostgreSQL about as much CPU as a few of the
//! messages it carries (its statements' round trips, the commit's WAL flush and wake-ups), so
//! fuller batches leave more of the machine to everything else; measured on this two-core
//! machine, one node's sends +23 % with half of PostgreSQL's CPU per message. A writer whose
//! last batch held one job does not wait: at light load a send is not delayed. SQLite's
//! single writer never waits (its fsync-bound batches fill while it commits, and waiting only
//! idled it: -30 % measured).
//!
//! Appending jobs (sends) hand their messages to the batch's group in the first attempt, which
//! writes those of many threads with two statements (see `store::appends`); the group is written
//! before the next job that is not an append, and before the commit.
//!
//! On PostgreSQL a first attempt whose jobs are all *pure* appends (a send that trusts its
//! actor's hint, with no idempotency record and no webhook subscription that includes its
//! events: its whole change is its part of the group) sends no BEGIN and no COMMIT: the group's one statement is
//! the transaction, which PostgreSQL commits (durably, before it answers) on its own, and which
//! fails whole if a row had moved. One round trip per batch instead of three. While such jobs
//! run, a statement on the connection would commit on its own, outside the batch: the
//! connection refuses it (a job that was not pure after all panics before its statement is
//! sent; the batch fails with a 503 like any panicking job, and nothing of it is written).

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::Connection;
use tokio::sync::oneshot;

use super::appends::{self, Append, Appends};
use super::cluster_events::NewClusterEvent;
use super::connection::DbConn;
use crate::error::ApiError;

/// Most jobs queued for the writer before callers are told to retry (503).
pub const WRITER_QUEUE: usize = 16_384;
/// Most jobs committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// Pause between reconnection attempts while the database is unreachable.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// A queued change and its caller's answer.
trait Job: Send {
    /// Whether its messages may join the batch's group of appends.
    fn appending(&self) -> bool;
    /// Cluster mode: the thread whose row it locks (locked for the whole batch when it starts).
    fn locks(&self) -> Option<&str>;
    /// Whether, in a first attempt, it runs no statement: its change is all in the group.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    fn pure(&self) -> bool;
    /// Runs the change on `conn` (in a savepoint of its own if `savepoint`), keeping its
    /// outcome; whether it succeeded.
    fn attempt(&mut self, conn: &mut DbConn, savepoint: bool, appends: Appends<'_>) -> bool;
    /// Answers the caller once the batch has committed (Ok) or failed to commit (Err).
    fn answer(self: Box<Self>, commit: Result<(), String>);
}

struct Pending<T, F> {
    f: F,
    appending: bool,
    locks: Option<crate::ids::ThreadId>,
    pure: bool,
    outcome: Option<Result<T, ApiError>>,
    tx: oneshot::Sender<Result<T, ApiError>>,
}

impl<T, F> Job for Pending<T, F>
where
    F: FnOnce(&mut DbConn, &mut Appends) -> Result<T, ApiError> + Clone + Send,
    T: Send,
{
    fn appending(&self) -> bool {
        self.appending
    }

    fn locks(&self) -> Option<&str> {
        self.locks.as_ref().map(|t| t.as_str())
    }

    fn pure(&self) -> bool {
        self.pure
    }

    fn attempt(&mut self, conn: &mut DbConn, savepoint: bool, mut appends: Appends<'_>) -> bool {
        let f = self.f.clone();
        let outcome = if savepoint {
            conn.transaction(|c| f(c, &mut appends))
        } else {
            f(conn, &mut appends)
        };
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn answer(self: Box<Self>, commit: Result<(), String>) {
        let out = match (self.outcome, commit) {
            (Some(outcome), Ok(())) => outcome,
            // The job's own error stands; a success that failed to commit is transient.
            (Some(outcome), Err(e)) => {
                outcome.and_then(|_| Err(ApiError::unavailable(format!("commit failed: {e}"))))
            }
            (None, Err(e)) => Err(ApiError::unavailable(format!("not written: {e}"))),
            (None, Ok(())) => Err(ApiError::unavailable("not written")),
        };
        let _ = self.tx.send(out);
    }
}

/// Opens a fresh writing connection after the old one broke.
pub type Reconnect = Box<dyn Fn() -> Result<DbConn, String> + Send>;

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: SyncSender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on `conn`; `reconnect` replaces it if it breaks. Under load
    /// a batch is gathered for `gather` (see the module documentation; zero: never waits).
    /// SQLite: `settled` is where its passes have written thread rows up to (see
    /// `Store::settled_rowid`).
    pub fn start(
        conn: DbConn,
        reconnect: Reconnect,
        gather: Duration,
        settled: std::sync::Arc<std::sync::atomic::AtomicI64>,
    ) -> Writer {
        let (tx, rx) = mpsc::sync_channel::<Box<dyn Job>>(WRITER_QUEUE);
        thread::Builder::new()
            .name("confab-writer".into())
            .spawn(move || run(conn, rx, reconnect, gather, settled))
            .expect("spawn writer thread");
        Writer { tx }
    }

    /// Runs `f` in the next batch transaction; resolves after the batch has committed. `f` may
    /// run more than once (see the module documentation); only its last run is committed.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConn) -> Result<T, ApiError> + Clone + Send + 'static,
        T: Send + 'static,
    {
        self.queue(
            false,
            None,
            false,
            move |c: &mut DbConn, _: &mut Appends| f(c),
        )
        .await
    }

    /// A change to one thread: appending or not, (cluster mode) locking the thread's row for
    /// the batch (see `Appends::lock_row`), and whether it is a pure append (see the module
    /// documentation: it must then run no statement in a batch's first attempt).
    pub async fn run_thread_job<T, F>(
        &self,
        appending: bool,
        locks: Option<crate::ids::ThreadId>,
        pure: bool,
        f: F,
    ) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConn, &mut Appends) -> Result<T, ApiError> + Clone + Send + 'static,
        T: Send + 'static,
    {
        debug_assert!(!pure || (appending && locks.is_none()));
        self.queue(appending, locks, pure, f).await
    }

    async fn queue<T, F>(
        &self,
        appending: bool,
        locks: Option<crate::ids::ThreadId>,
        pure: bool,
        f: F,
    ) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConn, &mut Appends) -> Result<T, ApiError> + Clone + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, ApiError>>();
        let job = Box::new(Pending {
            f,
            appending,
            locks,
            pure,
            outcome: None,
            tx,
        });
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(ApiError::unavailable("writer queue is full"));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiError::unavailable("writer has stopped"));
            }
        }
        // A job is dropped unanswered only while the database is unreachable (see `run`).
        rx.await
            .unwrap_or_else(|_| Err(ApiError::unavailable("the database is unreachable")))
    }
}

/// Why a batch transaction did not commit.
enum BatchFailed {
    /// A job failed with no savepoint of its own: run the batch again, each job on its own
    /// with a savepoint.
    Job,
    /// The group of appends could not be written as trusted (a thread row had moved from the
    /// position, or in cluster mode the membership version, its actor trusted): run the batch
    /// again as for `Job`.
    Moved,
    /// A job panicked (a bug): it must neither kill the writer nor leave half of its changes in
    /// the batch's commit.
    Panic,
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for BatchFailed {
    fn from(e: diesel::result::Error) -> Self {
        BatchFailed::Db(e)
    }
}

/// Runs one job of a batch's attempt: a failure without a savepoint of its own (`safe`) or a
/// panic fails the attempt; with one, the job was rolled back alone and the batch goes on.
fn attempt(
    job: &mut dyn Job,
    c: &mut DbConn,
    safe: bool,
    appends: Appends<'_>,
) -> Result<(), BatchFailed> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        job.attempt(c, safe, appends)
    })) {
        Ok(true) => Ok(()),
        // rolled back alone, in its own savepoint
        Ok(false) if safe => Ok(()),
        Ok(false) => Err(BatchFailed::Job),
        Err(_) => Err(BatchFailed::Panic),
    }
}

/// Runs every job of the batch in one transaction and commits it: the first attempt (`safe`
/// false) with no savepoints and appends grouped, the retry with a savepoint per job and
/// appends written by each job.
fn run_batch(
    conn: &mut DbConn,
    batch: &mut [Box<dyn Job>],
    safe: bool,
    guard: &NoStatements,
) -> Result<(), BatchFailed> {
    #[cfg(feature = "postgres")]
    if !safe && matches!(conn, DbConn::Pg(_)) && batch.iter().all(|j| j.pure()) {
        return run_alone(conn, batch, guard);
    }
    #[cfg(not(feature = "postgres"))]
    let _ = guard;
    conn.transaction::<_, BatchFailed, _>(|c| {
        let mut group: Vec<Append> = Vec::new();
        let mut shared = appends::Batch::default();
        if !safe {
            // cluster mode: every thread row the batch writes, locked at once and in order
            let mut ids: Vec<&str> = batch.iter().filter_map(|j| j.locks()).collect();
            if !ids.is_empty() {
                ids.sort_unstable();
                ids.dedup();
                shared.locked = super::threads::lock_all(c, &ids)?;
            }
        }
        for job in batch.iter_mut() {
            if !job.appending() {
                write_group(c, &mut group, &[])?;
            }
            let appends = if safe {
                Appends::immediate()
            } else {
                Appends::in_batch(Some(&mut group), &mut shared)
            };
            attempt(job.as_mut(), c, safe, appends)?;
        }
        write_group(c, &mut group, &shared.events)
    })
}

/// PostgreSQL, a first attempt of pure appends only: runs the jobs with no transaction open (the
/// connection refusing any statement meanwhile), then writes their group and events as one
/// statement that is its own transaction (see `appends::write_group_alone`).
#[cfg(feature = "postgres")]
fn run_alone(
    conn: &mut DbConn,
    batch: &mut [Box<dyn Job>],
    guard: &NoStatements,
) -> Result<(), BatchFailed> {
    let mut group: Vec<Append> = Vec::new();
    let mut shared = appends::Batch::default();
    let ran: Result<(), BatchFailed> = guard.while_armed(|| {
        for job in batch.iter_mut() {
            let appends = Appends::in_batch(Some(&mut group), &mut shared);
            attempt(job.as_mut(), conn, false, appends)?;
        }
        Ok(())
    });
    ran?;
    if group.is_empty() && shared.events.is_empty() {
        return Ok(());
    }
    let DbConn::Pg(pg) = conn else {
        unreachable!("run_alone is for PostgreSQL connections")
    };
    match appends::write_group_alone(pg, &group, &shared.events) {
        Ok(true) => {
            metrics::counter!(crate::metrics::WRITER_STATEMENT_BATCHES).increment(1);
            Ok(())
        }
        Ok(false) => Err(BatchFailed::Moved),
        Err(_) => Err(BatchFailed::Job),
    }
}

/// PostgreSQL: makes the writer's connection refuse statements while armed (see the module
/// documentation). The refusal is a panic in diesel's first step of every statement, before
/// anything is sent: a job that runs a statement while it should not fails, with nothing of
/// it written.
#[derive(Clone, Default)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
struct NoStatements(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl NoStatements {
    /// Watches `conn` (a new writing connection, after each reconnection too).
    fn watch(&self, conn: &mut DbConn) {
        #[cfg(feature = "postgres")]
        if let DbConn::Pg(pg) = conn {
            let armed = self.0.clone();
            pg.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
                if matches!(
                    event,
                    diesel::connection::InstrumentationEvent::StartQuery { .. }
                ) && armed.load(std::sync::atomic::Ordering::Relaxed)
                {
                    panic!("a write job declared pure ran a statement outside a transaction");
                }
            });
        }
        #[cfg(not(feature = "postgres"))]
        let _ = conn;
    }

    /// Runs `f` with statements refused.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    fn while_armed<R>(&self, f: impl FnOnce() -> R) -> R {
        use std::sync::atomic::Ordering::Relaxed;
        self.0.store(true, Relaxed);
        let r = f();
        self.0.store(false, Relaxed);
        r
    }
}

/// Writes and empties the group of appends, with `events` (the batch's real-time events, at
/// its end); any failure sends the batch to its retry.
fn write_group(
    c: &mut DbConn,
    group: &mut Vec<Append>,
    events: &[NewClusterEvent],
) -> Result<(), BatchFailed> {
    let written = appends::write_group(c, group, events);
    group.clear();
    match written {
        Ok(true) => Ok(()),
        Ok(false) => Err(BatchFailed::Moved),
        Err(_) => Err(BatchFailed::Job),
    }
}

/// SQLite: how often the writer finishes the WAL checkpoint itself (see [`finish_checkpoint`]).
const WAL_RESET_EVERY: Duration = Duration::from_secs(1);

/// SQLite: the background checkpoint (on a reader, every second) copies committed frames into
/// the database file, but under a steady stream of commits it never catches up with the last
/// one, and the WAL is only rewound to its start when a writer begins after *every* frame was
/// copied. Without this the WAL grew without end under load (1.1 GB a minute at 1,000
/// messages/s, and its shared-memory index with it in the process's RSS). So, between
/// batches, at most once a second, the writer copies the few frames the background pass left
/// (PASSIVE: it waits for no reader); its next transaction then starts the WAL over.
fn finish_checkpoint(conn: &mut DbConn) {
    match conn {
        DbConn::Sqlite(c) => {
            if let Err(e) = c.batch_execute("PRAGMA wal_checkpoint(PASSIVE);") {
                tracing::warn!(error = %e, "WAL checkpoint on the writer failed");
            }
        }
        #[cfg(feature = "postgres")]
        DbConn::Pg(_) => {}
    }
}

/// SQLite: writes the positions of the threads that received messages since `after` into
/// their rows (see `store::threads::settle_rows`), in a transaction of its own; the next
/// `after`. On failure it stays where it was, and the next pass takes those threads again.
/// PostgreSQL's rows follow every send: nothing to do.
fn settle_rows(
    conn: &mut DbConn,
    after: Option<i64>,
    published: &std::sync::atomic::AtomicI64,
) -> Option<i64> {
    match conn {
        DbConn::Sqlite(c) => match c.transaction(|c| super::threads::settle_rows(c, after)) {
            Ok(next) => {
                // after the commit: a reader that sees this sees the rows
                published.store(next, std::sync::atomic::Ordering::Release);
                Some(next)
            }
            Err(e) => {
                tracing::warn!(error = %e, "writing thread positions into their rows failed");
                after
            }
        },
        #[cfg(feature = "postgres")]
        DbConn::Pg(_) => None,
    }
}

/// Takes the queued jobs of the next batch, up to [`MAX_BATCH`].
fn gather(rx: &Receiver<Box<dyn Job>>, batch: &mut Vec<Box<dyn Job>>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

fn run(
    mut conn: DbConn,
    rx: Receiver<Box<dyn Job>>,
    reconnect: Reconnect,
    wait: Duration,
    published: std::sync::Arc<std::sync::atomic::AtomicI64>,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let guard = NoStatements::default();
    guard.watch(&mut conn);
    let mut checkpointed = Instant::now();
    // SQLite: the messages rowid up to which thread rows hold their positions (`None`: a
    // full pass is due, as at start: the last run may have stopped up to a second behind)
    let sqlite = matches!(conn, DbConn::Sqlite(_));
    let mut settled = if sqlite {
        settle_rows(&mut conn, None, &published)
    } else {
        None
    };
    // whether the last batch held more than one job: the writer is under load
    let mut loaded = false;
    loop {
        let first = match rx.recv_timeout(WAL_RESET_EVERY) {
            Ok(job) => job,
            // idle: the last commits' threads get their rows now, not at the next batch
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if sqlite {
                    settled = settle_rows(&mut conn, settled, &published);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        batch.push(first);
        if loaded && !wait.is_zero() {
            // (a sleep, not a wait for each job: every job arriving would wake the writer)
            thread::sleep(wait);
        }
        gather(&rx, &mut batch);
        let size = batch.len();
        loaded = size > 1;
        let started = Instant::now();
        let mut outcome = run_batch(&mut conn, &mut batch, false, &guard);
        if let Err(why @ (BatchFailed::Job | BatchFailed::Moved)) = &outcome {
            crate::metrics::record_write_batch_retry(matches!(why, BatchFailed::Moved));
            outcome = run_batch(&mut conn, &mut batch, true, &guard);
        }
        let panicked = matches!(outcome, Err(BatchFailed::Panic));
        let status = match outcome {
            Ok(()) => Ok(()),
            Err(BatchFailed::Panic) => {
                Err("a write job panicked; its batch was rolled back".to_string())
            }
            Err(BatchFailed::Db(e)) => Err(e.to_string()),
            // (not returned when every job has its own savepoint)
            Err(BatchFailed::Job | BatchFailed::Moved) => {
                Err("a write job failed outside its savepoint".to_string())
            }
        };
        if let Err(e) = &status {
            tracing::error!(error = %e, size, "write batch failed to commit");
        }
        crate::metrics::record_write_batch(size, started.elapsed());
        for job in batch.drain(..) {
            job.answer(status.clone());
        }
        if checkpointed.elapsed() >= WAL_RESET_EVERY {
            if sqlite {
                settled = settle_rows(&mut conn, settled, &published);
            }
            finish_checkpoint(&mut conn);
            checkpointed = Instant::now();
        }
        // After a panic the connection's transaction state is unknown: replace it (closing it
        // makes the database roll back whatever it held).
        if panicked || (status.is_err() && conn.batch_execute("SELECT 1").is_err()) {
            match reconnect_loop(&rx, &reconnect) {
                Some(c) => {
                    conn = c;
                    guard.watch(&mut conn);
                }
                None => break,
            }
        }
    }
    if sqlite {
        settle_rows(&mut conn, settled, &published);
    }
    tracing::debug!("writer stopped");
}

/// Reopens the connection, failing queued jobs fast (503) instead of letting callers hang
/// while the database is down. `None` when every sender is gone.
fn reconnect_loop(rx: &Receiver<Box<dyn Job>>, reconnect: &Reconnect) -> Option<DbConn> {
    loop {
        match reconnect() {
            Ok(c) => {
                tracing::info!("database writer reconnected");
                return Some(c);
            }
            Err(e) => {
                tracing::warn!(error = %e, "database writer cannot reconnect; retrying");
                loop {
                    match rx.try_recv() {
                        Ok(job) => drop(job),
                        Err(mpsc::TryRecvError::Empty) => break,
                        Err(mpsc::TryRecvError::Disconnected) => return None,
                    }
                }
                thread::sleep(RECONNECT_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
