//! Storage: diesel over SQLite (default) or PostgreSQL, one code path for both.
//!
//! Storage conventions, the same on both backends:
//! - every time is epoch **milliseconds** in a BIGINT column (`tokens_revoked_at`: seconds);
//! - metadata maps and system-message content are JSON text;
//! - only the types diesel's `MultiConnection` supports (BigInt, Integer, Text) and no
//!   RETURNING clauses; the one exception is the group write of sends (`appends`), which uses
//!   each backend's own connection for multi-row statements (arrays on PostgreSQL).
//!
//! Writes go through [`Writer`]s (a thread each, group commit); reads take a pooled connection
//! on actix's blocking pool via [`Store::read`], never on an actor's or worker's event loop.
//!
//! SQLite has one writer (the database allows one writing transaction at a time). PostgreSQL
//! has [`PG_WRITERS`], each with its own connection: a thread's changes always go to the same
//! one ([`Store::thread_job`]), so they stay in order, while different threads commit in
//! parallel and PostgreSQL group-commits them. Changes that belong to no thread (identities,
//! subscriptions, deliveries, purges) go to the first.

pub mod appends;
pub mod cluster_events;
pub mod connection;
#[cfg(feature = "postgres")]
pub mod hold;
pub mod identities;
pub mod messages;
pub mod models;
pub mod participants;
pub mod schema;
pub mod threads;
pub mod usage;
pub mod webhooks;
pub mod writer;

use std::path::Path;

use diesel::prelude::*;

pub use connection::{Backend, DbConn, DbPool};
pub use writer::Writer;

use crate::error::ApiError;

/// Read pool size.
const POOL_SIZE: u32 = 8;
/// Writer connections on PostgreSQL by default (SQLite has one): with sends grouped per batch,
/// two keep a commit in flight while the next batch runs, and beat more on a two-core machine
/// (see the README's performance section); `--pg-writers` changes it.
pub const PG_WRITERS: usize = 2;
/// Writer connections per node in cluster mode by default: the nodes' writers share one
/// database, and one per node keeps each node's batches large enough to pay for their extra
/// statements (lock, events) and their relay (see the README's performance section).
pub const PG_WRITERS_CLUSTER: usize = 1;
/// How long a PostgreSQL writer under load gathers its next batch by default
/// (`--pg-commit-gather`; see `writer`).
pub const PG_COMMIT_GATHER: std::time::Duration = std::time::Duration::from_millis(2);

/// The database: a read pool and the writers.
#[derive(Clone)]
pub struct Store {
    pool: DbPool,
    writers: std::sync::Arc<[Writer]>,
    backend: Backend,
    /// SQLite: the messages rowid up to which thread rows hold their positions, published by
    /// the writer after each pass commits (-1 until the first; see `threads::settle_rows`).
    settled: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// PostgreSQL, a running node: the lock that keeps the database to it (see `hold`), and
    /// why it is not held when it is not.
    #[cfg(feature = "postgres")]
    hold: std::sync::Arc<std::sync::Mutex<Option<hold::Hold>>>,
    #[cfg(feature = "postgres")]
    hold_lost: std::sync::Arc<std::sync::RwLock<Option<String>>>,
}

impl Store {
    /// Opens the database named by `url`, applies the embedded migrations and starts the
    /// writers ([`PG_WRITERS`] on PostgreSQL).
    pub fn open(url: &str, sync: connection::SqliteSync) -> Result<Store, String> {
        Store::open_with_writers(url, sync, PG_WRITERS)
    }

    /// As [`Store::open`], with `pg_writers` writer connections on PostgreSQL (at least one).
    pub fn open_with_writers(
        url: &str,
        sync: connection::SqliteSync,
        pg_writers: usize,
    ) -> Result<Store, String> {
        Store::open_with(url, sync, pg_writers, PG_COMMIT_GATHER)
    }

    /// As [`Store::open_with_writers`], with PostgreSQL's writers gathering a batch under load
    /// for `pg_gather` (see `writer`; SQLite's writer never waits).
    pub fn open_with(
        url: &str,
        sync: connection::SqliteSync,
        pg_writers: usize,
        pg_gather: std::time::Duration,
    ) -> Result<Store, String> {
        let backend = Backend::from_url(url)?;
        let setup = connection::ConnSetup {
            sync,
            writer: false,
        };
        let writer_setup = connection::ConnSetup {
            writer: true,
            ..setup
        };
        // the migrations run with the plain session, then the connection becomes a writer
        let mut conn = connection::connect(url, setup)?;
        connection::migrate(&mut conn)?;
        writer_setup.apply(&mut conn).map_err(|e| e.to_string())?;
        let pool = connection::pool(url, POOL_SIZE, setup)?;
        let (count, gather) = match backend {
            Backend::Sqlite => (1, std::time::Duration::ZERO),
            _ => (pg_writers.max(1), pg_gather),
        };
        let mut writers = Vec::with_capacity(count);
        let settled = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(-1));
        // the first writer keeps the connection that ran the migrations
        let mut first = Some(conn);
        for _ in 0..count {
            let conn = match first.take() {
                Some(c) => c,
                None => connection::connect(url, writer_setup)?,
            };
            let reopen = url.to_string();
            writers.push(Writer::start(
                conn,
                Box::new(move || connection::connect(&reopen, writer_setup)),
                gather,
                settled.clone(),
            ));
        }
        Ok(Store {
            pool,
            writers: writers.into(),
            backend,
            settled,
            #[cfg(feature = "postgres")]
            hold: Default::default(),
            #[cfg(feature = "postgres")]
            hold_lost: Default::default(),
        })
    }

    /// SQLite: the messages rowid up to which every thread row holds its position (-1: not
    /// known yet). Read it before the query that relies on it.
    pub fn settled_rowid(&self) -> i64 {
        self.settled.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The SQLite URL for a file in `dir`.
    pub fn sqlite_url(dir: &Path) -> String {
        dir.join("confab.db").to_string_lossy().into_owned()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs a read on the blocking pool with a pooled connection.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConn) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(ApiError::internal)?
    }

    /// Runs a change that belongs to no thread in the first writer's next batch; resolves
    /// once it is committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConn) -> Result<T, ApiError> + Clone + Send + 'static,
        T: Send + 'static,
    {
        self.may_write()?;
        self.writers[0].run(f).await
    }

    /// A change to `thread` in the next batch of the writer that owns that thread (the same
    /// one every time, so a thread's changes commit in order); resolves once committed. An
    /// `appending` job writes its messages through [`appends::Appends`], which join the batch's
    /// group; in cluster mode (`locks`) the batch locks the thread's row (see
    /// `appends::Appends::lock_row`). A `pure` append promises to run no statement in a batch's
    /// first attempt (see `writer`).
    pub async fn thread_job<T, F>(
        &self,
        thread: &crate::ids::ThreadId,
        appending: bool,
        locks: bool,
        pure: bool,
        f: F,
    ) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConn, &mut appends::Appends) -> Result<T, ApiError>
            + Clone
            + Send
            + 'static,
        T: Send + 'static,
    {
        self.may_write()?;
        self.writers[self.writer_of(thread)]
            .run_thread_job(appending, locks.then(|| thread.clone()), pure, f)
            .await
    }

    /// PostgreSQL: while another node holds this node's database (see `hold`), it writes
    /// nothing: two writers of one thread would corrupt it. A retryable 503 until the lock is
    /// back.
    fn may_write(&self) -> Result<(), ApiError> {
        #[cfg(feature = "postgres")]
        if let Some(lost) = self
            .hold_lost
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Err(ApiError::unavailable(format!(
                "this node does not hold its database ({lost})"
            )));
        }
        Ok(())
    }

    /// The writer that owns `thread`'s changes.
    fn writer_of(&self, thread: &crate::ids::ThreadId) -> usize {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let n = self.writers.len();
        if n == 1 {
            0
        } else {
            let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .hash_one(thread.as_str());
            (h % n as u64) as usize
        }
    }

    /// SQLite: copies committed WAL frames into the database file (PASSIVE: never waits for,
    /// nor blocks, the writer or readers). The writer's own automatic checkpoints are off so
    /// that this work stays off the write path; housekeeping calls this every second.
    pub async fn checkpoint(&self) -> Result<(), ApiError> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        self.read(|c| {
            use diesel::connection::SimpleConnection;
            Ok(c.batch_execute("PRAGMA wal_checkpoint(PASSIVE);")?)
        })
        .await
    }

    /// Samples the read pool's connections in use into its gauge.
    pub fn record_pool_gauge(&self) {
        let s = self.pool.state();
        metrics::gauge!(crate::metrics::POOL_IN_USE)
            .set(f64::from(s.connections - s.idle_connections));
    }

    /// PostgreSQL: keeps the database to this node while it runs (see `hold`): takes the lock
    /// now, waiting a few seconds for a node that just died, or says who holds it.
    #[cfg(feature = "postgres")]
    pub async fn hold_database(&self, url: String, mode: hold::Mode) -> Result<(), String> {
        let taken = actix_web::web::block(move || hold::Hold::take(&url, mode))
            .await
            .map_err(|e| e.to_string())??;
        *self.hold.lock().unwrap_or_else(|p| p.into_inner()) = Some(taken);
        Ok(())
    }

    /// PostgreSQL: checks the database lock, taking it again after its connection broke;
    /// while it is not held, `/readyz` says why. Housekeeping calls this every few seconds.
    #[cfg(feature = "postgres")]
    pub async fn keep_hold(&self) {
        let hold = self.hold.clone();
        let kept = actix_web::web::block(move || {
            match hold.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                Some(h) => h.keep().map(Some),
                None => Ok(None),
            }
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let lost = match kept {
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, "this node does not hold its database");
                Some(format!("database lock: {e}"))
            }
        };
        *self.hold_lost.write().unwrap_or_else(|p| p.into_inner()) = lost;
    }

    /// `/readyz`: storage reachable and every migration applied.
    pub async fn ready(&self) -> Result<(), String> {
        #[cfg(feature = "postgres")]
        if let Some(lost) = self
            .hold_lost
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(lost);
        }
        let pool = self.pool.clone();
        actix_web::web::block(move || {
            let mut conn = pool
                .get()
                .map_err(|e| format!("database unreachable: {e}"))?;
            if connection::migrations_applied(&mut conn) {
                Ok(())
            } else {
                Err("database migrations are not applied".to_string())
            }
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// The resource id stored in this database, stored now if there is none yet. On SQLite a
    /// different `wanted` one replaces it; on PostgreSQL, where every node of a deployment must
    /// report the same one, a different `wanted` one is refused.
    pub async fn resource_id(&self, wanted: Option<String>) -> Result<String, String> {
        use schema::meta;
        let replace = self.backend == Backend::Sqlite;
        self.write(move |c| {
            let read = |c: &mut DbConn| {
                meta::table
                    .filter(meta::key.eq("resource_id"))
                    .select(meta::value)
                    .first::<String>(c)
                    .optional()
            };
            let stored = match read(c)? {
                Some(s) => s,
                None => {
                    // Nodes started together on a new database race here: the first one's id
                    // is stored, and every node goes on with that one, as after any first start.
                    let id = wanted
                        .clone()
                        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                    diesel::sql_query(
                        "INSERT INTO meta (key, value) VALUES ('resource_id', $1) \
                         ON CONFLICT (key) DO NOTHING",
                    )
                    .bind::<diesel::sql_types::Text, _>(&id)
                    .execute(c)?;
                    read(c)?.unwrap_or(id)
                }
            };
            match wanted {
                None => Ok(Ok(stored)),
                Some(w) if w == stored => Ok(Ok(stored)),
                Some(w) if !replace => Ok(Err(format!(
                    "--resource-id {w} differs from the resource id {stored} stored in this \
                     PostgreSQL database, which every node of the deployment reports; \
                     leave --resource-id unset or give the stored one"
                ))),
                Some(w) => {
                    diesel::update(meta::table.filter(meta::key.eq("resource_id")))
                        .set(meta::value.eq(&w))
                        .execute(c)?;
                    Ok(Ok(w))
                }
            }
        })
        .await
        .map_err(|e| format!("cannot read the resource id: {e}"))?
    }
}

/// Parses a stored JSON metadata map (empty on bad data rather than failing a read).
pub fn parse_metadata(s: &str) -> crate::model::Metadata {
    serde_json::from_str(s).unwrap_or_default()
}

pub fn metadata_json(m: &crate::model::Metadata) -> String {
    serde_json::to_string(m).unwrap_or_else(|_| "{}".into())
}
