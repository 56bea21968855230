//! The group-commit writer: one dedicated thread owns the only writing connection.
//!
//! Each job runs in its own savepoint inside a batch transaction, so one failing job (a
//! validation error found in the transaction) rolls back alone. The batch commits once and only
//! then is every job answered: a client is told success only after its change is durable, and
//! with SQLite in WAL mode many changes share one fsync.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;

use diesel::Connection;
use tokio::sync::oneshot;

use super::connection::DbConn;
use crate::error::ApiError;

/// Most jobs queued for the writer before callers are told to retry (503).
pub const WRITER_QUEUE: usize = 16_384;
/// Most jobs committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// Answers a job once its batch has committed (Ok) or failed to commit (Err).
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&mut DbConn) -> Completion + Send>;

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: SyncSender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub fn start(conn: DbConn) -> Writer {
        let (tx, rx) = mpsc::sync_channel::<Job>(WRITER_QUEUE);
        thread::Builder::new()
            .name("confab-writer".into())
            .spawn(move || run(conn, rx))
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
        rx.await
            .unwrap_or_else(|_| Err(ApiError::internal("writer dropped a job")))
    }
}

fn run(mut conn: DbConn, rx: Receiver<Job>) {
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
        let commit = conn.transaction::<_, diesel::result::Error, _>(|c| {
            for job in batch.drain(..) {
                completions.push(job(c));
            }
            Ok(())
        });
        // Jobs not run because the transaction could not begin are answered as failed.
        batch.clear();
        let status = commit.map_err(|e| e.to_string());
        if let Err(e) = &status {
            tracing::error!(error = %e, size, "write batch failed to commit");
        }
        crate::metrics::record_write_batch(size, started.elapsed());
        for done in completions.drain(..) {
            done(status.clone());
        }
    }
    tracing::debug!("writer stopped");
}
