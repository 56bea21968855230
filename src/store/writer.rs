//! A group-commit writer: one dedicated thread owns one writing connection (the store runs one
//! on SQLite, several on PostgreSQL; see the `store` module).
//!
//! Each job runs in its own savepoint inside a batch transaction, so one failing job (a
//! validation error found in the transaction) rolls back alone. The batch commits once and only
//! then is every job answered: a client is told success only after its change is durable, and
//! with SQLite in WAL mode many changes share one fsync.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;

use diesel::connection::SimpleConnection;
use diesel::Connection;
use tokio::sync::oneshot;

use super::connection::DbConn;
use crate::error::ApiError;

/// Most jobs queued for the writer before callers are told to retry (503).
pub const WRITER_QUEUE: usize = 16_384;
/// Most jobs committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// Pause between reconnection attempts while the database is unreachable.
const RECONNECT_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

/// Answers a job once its batch has committed (Ok) or failed to commit (Err).
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&mut DbConn) -> Completion + Send>;
/// Opens a fresh writing connection after the old one broke.
pub type Reconnect = Box<dyn Fn() -> Result<DbConn, String> + Send>;

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: SyncSender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`; `reconnect` replaces it if it breaks.
    pub fn start(conn: DbConn, reconnect: Reconnect) -> Writer {
        let (tx, rx) = mpsc::sync_channel::<Job>(WRITER_QUEUE);
        thread::Builder::new()
            .name("confab-writer".into())
            .spawn(move || run(conn, rx, reconnect))
            .expect("spawn writer thread");
        Writer { tx }
    }

    /// Runs `f` in the next batch transaction; resolves after the batch has committed.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConn) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, ApiError>>();
        let job: Job = Box::new(move |conn: &mut DbConn| {
            let result = conn.transaction(f);
            Box::new(move |commit: Result<(), String>| {
                let out = match commit {
                    Ok(()) => result,
                    // The job's own error stands; a success that failed to commit is transient.
                    Err(e) => result
                        .and_then(|_| Err(ApiError::unavailable(format!("commit failed: {e}")))),
                };
                let _ = tx.send(out);
            })
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

fn run(mut conn: DbConn, rx: Receiver<Job>, reconnect: Reconnect) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut completions: Vec<Completion> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let size = batch.len();
        let started = std::time::Instant::now();
        let mut panicked = false;
        let commit = conn.transaction::<_, diesel::result::Error, _>(|c| {
            for job in batch.drain(..) {
                // A panicking job is a bug; it must neither kill the writer nor leave half of
                // its changes in the batch's commit.
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(c))) {
                    Ok(done) => completions.push(done),
                    Err(_) => {
                        panicked = true;
                        return Err(diesel::result::Error::RollbackTransaction);
                    }
                }
            }
            Ok(())
        });
        // Jobs not run (the transaction could not begin, or a job panicked) are dropped, and
        // their callers answered with a retryable 503.
        batch.clear();
        let status = if panicked {
            Err("a write job panicked; its batch was rolled back".to_string())
        } else {
            commit.map_err(|e| e.to_string())
        };
        if let Err(e) = &status {
            tracing::error!(error = %e, size, "write batch failed to commit");
        }
        crate::metrics::record_write_batch(size, started.elapsed());
        for done in completions.drain(..) {
            done(status.clone());
        }
        // After a panic the connection's transaction state is unknown: replace it (closing it
        // makes the database roll back whatever it held).
        if panicked || (status.is_err() && conn.batch_execute("SELECT 1").is_err()) {
            match reconnect_loop(&rx, &reconnect) {
                Some(c) => conn = c,
                None => break,
            }
        }
    }
    tracing::debug!("writer stopped");
}

/// Reopens the connection, failing queued jobs fast (503) instead of letting callers hang
/// while the database is down. `None` when every sender is gone.
fn reconnect_loop(rx: &Receiver<Job>, reconnect: &Reconnect) -> Option<DbConn> {
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
mod tests {
    use diesel::prelude::*;

    use crate::store::connection::SqliteSync;
    use crate::store::schema::meta;
    use crate::store::Store;

    fn count(c: &mut crate::store::DbConn, key: &str) -> i64 {
        meta::table
            .filter(meta::key.eq(key))
            .count()
            .get_result(c)
            .unwrap()
    }

    /// A panicking job is answered with a retryable 503, leaves nothing behind, and the writer
    /// keeps committing afterwards.
    #[tokio::test]
    async fn a_panicking_job_rolls_back_and_the_writer_survives() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Store::sqlite_url(dir.path()), SqliteSync::Normal).unwrap();
        let r = store
            .write(|c| {
                diesel::insert_into(meta::table)
                    .values((meta::key.eq("half"), meta::value.eq("x")))
                    .execute(c)?;
                panic!("a bug in a job");
            })
            .await
            .map(|_: ()| ());
        assert_eq!(r.unwrap_err().status, 503);
        store
            .write(|c| {
                diesel::insert_into(meta::table)
                    .values((meta::key.eq("after"), meta::value.eq("y")))
                    .execute(c)?;
                Ok(())
            })
            .await
            .unwrap();
        let (half, after) = store
            .read(|c| Ok((count(c, "half"), count(c, "after"))))
            .await
            .unwrap();
        assert_eq!((half, after), (0, 1));
    }

    /// One failing job in a batch fails alone: its caller gets its own error, the jobs before
    /// and after it in the same batch commit.
    #[tokio::test]
    async fn a_failing_job_fails_alone_in_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Store::sqlite_url(dir.path()), SqliteSync::Normal).unwrap();
        let insert = |key: &'static str| {
            move |c: &mut crate::store::DbConn| -> Result<(), crate::error::ApiError> {
                diesel::insert_into(meta::table)
                    .values((meta::key.eq(key), meta::value.eq("x")))
                    .execute(c)?;
                Ok(())
            }
        };
        // Holds the writer so that the next three jobs queue up and go in one batch.
        let blocker = store.write(|_| {
            std::thread::sleep(std::time::Duration::from_millis(300));
            Ok(())
        });
        let a = store.write(insert("a"));
        let insert_b = insert("b");
        let b = store.write(move |c| {
            insert_b(c)?;
            Err::<(), _>(crate::error::ApiError::invalid(
                "b",
                "refused inside the transaction",
            ))
        });
        let c = store.write(insert("c"));
        let (blocked, a, b, c) = tokio::join!(blocker, a, b, c);
        blocked.unwrap();
        a.unwrap();
        let e = b.unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.message, "refused inside the transaction");
        c.unwrap();
        let rows = store
            .read(|c| Ok((count(c, "a"), count(c, "b"), count(c, "c"))))
            .await
            .unwrap();
        assert_eq!(
            rows,
            (1, 0, 1),
            "b's insert rolled back with its savepoint only"
        );
    }
}
