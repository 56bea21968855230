//! One connection type over both backends (diesel `MultiConnection`), the r2d2 pool and
//! per-connection set-up.
//!
//! The backend is chosen from the URL scheme here rather than by `MultiConnection::establish`,
//! which tries variants in order and lets SQLite accept almost any string as a file name.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

#[cfg(feature = "postgres")]
use diesel::pg::PgConnection;

/// A connection to whichever backend the operator configured.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    #[cfg(feature = "postgres")]
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

pub type DbPool = r2d2::Pool<Manager>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
#[cfg(feature = "postgres")]
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long a SQLite connection waits for a lock before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;
/// How long a request waits for a pooled connection (r2d2's default would be 30 s).
const POOL_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Which backend a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Backend, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if cfg!(feature = "postgres") {
                Ok(Backend::Postgres)
            } else {
                Err("this confab was built without the `postgres` feature".into())
            }
        } else if let Some(rest) = url.strip_prefix("sqlite://") {
            if rest.is_empty() {
                Err("sqlite:// URL has no file name".into())
            } else {
                Ok(Backend::Sqlite)
            }
        } else if url.contains("://") {
            Err(format!(
                "unsupported database URL scheme in {:?}: use postgres://… (or leave --database-url unset for SQLite)",
                url.split("://").next().unwrap_or_default()
            ))
        } else {
            Ok(Backend::Sqlite)
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }
}

/// SQLite `synchronous` setting: FULL makes every commit durable across power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSync {
    Full,
    Normal,
    /// Only for `--in-memory`, where nothing is meant to survive anyway.
    Off,
}

impl SqliteSync {
    fn pragma(self) -> &'static str {
        match self {
            SqliteSync::Full => "FULL",
            SqliteSync::Normal => "NORMAL",
            SqliteSync::Off => "OFF",
        }
    }
}

/// Per-connection set-up for SQLite (r2d2 `on_acquire` and the writer's own connection).
///
/// `temp_store = MEMORY`: a statement that writes several rows inside a transaction keeps a
/// statement journal, which SQLite spills to a new file in `/var/tmp` past 64 KiB. Under load
/// the writer created, wrote (about 480 KB) and unlinked one such file per batch; held in
/// memory it costs a copy and no system calls. Sorts and temporary b-trees of reads stay in
/// memory too.
#[derive(Debug, Clone, Copy)]
pub struct ConnSetup {
    pub sync: SqliteSync,
    /// The writer's connection: no automatic WAL checkpoints, which would run inside a commit
    /// on the write path ([`super::Store::checkpoint`] runs them on a reader instead, and the
    /// writer finishes them between batches); a WAL rewound to its start is cut to 64 MiB; a
    /// page cache of 16 MiB instead of SQLite's 2 MiB (each send writes its thread's leaf of
    /// the (thread, sequence) index: with 1,000 busy threads those leaves alone are 4 MiB, and
    /// reading them back from the file was a tenth of the writer's CPU).
    pub writer: bool,
}

impl ConnSetup {
    pub fn apply(&self, conn: &mut DbConn) -> diesel::QueryResult<()> {
        match conn {
            DbConn::Sqlite(c) => c.batch_execute(&format!(
                "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = {}; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;{}",
                self.sync.pragma(),
                if self.writer {
                    " PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864; PRAGMA cache_size = -16384;"
                } else {
                    ""
                }
            )),
            #[cfg(feature = "postgres")]
            DbConn::Pg(c) if self.writer => c.batch_execute(&format!("{PG_SESSION}; {PG_WRITER}")),
            #[cfg(feature = "postgres")]
            DbConn::Pg(c) => c.batch_execute(PG_SESSION),
        }
    }
}

/// PostgreSQL writers: no sequential scan where an index serves. A writer's statements find
/// their rows by key (thread rows by id, outbox and event rows by id), and each connection
/// keeps the generic plan of a prepared statement for its whole life. Planned while a table
/// is small, that plan scans it: a cluster whose first sends went to a handful of threads
/// kept scanning every thread row once per batch after there were 1,000 (9,121 scans reading
/// 3.5 million rows in a 10 s bench phase; a quarter of PostgreSQL's CPU, in the comparisons
/// of `= ANY($1)`), until an autoanalyze would replace the plan. Not for the migrations,
/// which run before this is set.
#[cfg(feature = "postgres")]
const PG_WRITER: &str = "SET enable_seqscan = off";

/// PostgreSQL: how soon the server notices that a node's connection is dead (the node lost
/// power, or its machine vanished from the network) when nothing is being sent: keepalive probes
/// from 3 s of silence, 1 s apart, 3 of them. The server then aborts that connection's
/// transaction and drops its locks (thread rows, the database and relay locks), so the other
/// nodes can serve its threads within 10 s (contract §9.2.6). Ignored on Unix sockets.
#[cfg(feature = "postgres")]
pub const PG_SESSION: &str =
    "SET tcp_keepalives_idle = 3; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 3";

/// Opens one connection, with a useful error (the derived `establish` swallows the real one).
pub fn connect(url: &str, setup: ConnSetup) -> Result<DbConn, String> {
    let backend = Backend::from_url(url)?;
    let mut conn = match backend {
        Backend::Sqlite => {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            DbConn::Sqlite(
                SqliteConnection::establish(path)
                    .map_err(|e| format!("cannot open SQLite database {path}: {e}"))?,
            )
        }
        #[cfg(feature = "postgres")]
        Backend::Postgres => DbConn::Pg(
            PgConnection::establish(url)
                .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?,
        ),
        #[cfg(not(feature = "postgres"))]
        Backend::Postgres => unreachable!("rejected by Backend::from_url"),
    };
    setup
        .apply(&mut conn)
        .map_err(|e| format!("cannot configure the database connection: {e}"))?;
    Ok(conn)
}

/// Applies the embedded migrations of the connection's backend.
pub fn migrate(conn: &mut DbConn) -> Result<(), String> {
    let result = match conn {
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
        #[cfg(feature = "postgres")]
        DbConn::Pg(c) => {
            super::hold::migrating(c, |c| c.run_pending_migrations(PG_MIGRATIONS).map(|_| ()))?
        }
    };
    result.map_err(|e| format!("database migration failed: {e}"))
}

/// Whether every embedded migration has been applied (for `/readyz`).
pub fn migrations_applied(conn: &mut DbConn) -> bool {
    match conn {
        DbConn::Sqlite(c) => c
            .has_pending_migration(SQLITE_MIGRATIONS)
            .map(|p| !p)
            .unwrap_or(false),
        #[cfg(feature = "postgres")]
        DbConn::Pg(c) => c
            .has_pending_migration(PG_MIGRATIONS)
            .map(|p| !p)
            .unwrap_or(false),
    }
}

/// r2d2 manager that opens connections through [`connect`], so the backend is always the one
/// the URL names and every connection gets the same set-up.
#[derive(Debug)]
pub struct Manager {
    url: String,
    setup: ConnSetup,
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = diesel::ConnectionError;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        connect(&self.url, self.setup).map_err(diesel::ConnectionError::BadConnection)
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))
    }

    /// Checked when a connection goes back to the pool: one whose transaction manager is
    /// broken (a transaction left open, e.g. by a panic mid-query) or returned by a
    /// panicking thread is dropped instead of being handed to the next reader.
    fn has_broken(&self, conn: &mut DbConn) -> bool {
        use diesel::r2d2::R2D2Connection;
        std::thread::panicking() || conn.is_broken()
    }
}

/// Builds the read pool.
pub fn pool(url: &str, size: u32, setup: ConnSetup) -> Result<DbPool, String> {
    // Connect once directly so that a wrong URL fails start-up with the backend's own message.
    drop(connect(url, setup)?);
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(POOL_CONNECTION_TIMEOUT)
        .build(Manager {
            url: url.to_string(),
            setup,
        })
        .map_err(|e| format!("cannot build the connection pool: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::TransactionManager;
    use r2d2::ManageConnection;

    /// A connection given back with a transaction still open is dropped, not reused.
    #[test]
    fn a_connection_with_an_open_transaction_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let manager = Manager {
            url: crate::store::Store::sqlite_url(dir.path()),
            setup: ConnSetup {
                sync: SqliteSync::Off,
                writer: false,
            },
        };
        let mut conn = manager.connect().unwrap();
        assert!(!manager.has_broken(&mut conn));
        <DbConn as Connection>::TransactionManager::begin_transaction(&mut conn).unwrap();
        assert!(manager.has_broken(&mut conn));
        <DbConn as Connection>::TransactionManager::commit_transaction(&mut conn).unwrap();
        assert!(!manager.has_broken(&mut conn));
    }
}
