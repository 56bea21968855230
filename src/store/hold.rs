//! PostgreSQL: a standalone node keeps its database (its schema) to itself; cluster nodes
//! share it with each other only.
//!
//! Two standalone nodes on one database would each believe they are the thread's only writer:
//! both hand out message ids from the clock and cache membership, so they corrupt each other
//! (duplicate keys, a removed participant still posting through the other node). A standalone
//! node therefore takes a session-level advisory lock, keyed by the schema it works in, on a
//! connection it keeps open for its whole life; the lock goes when the process or that
//! connection dies, so a crashed node's successor can start at once. Housekeeping checks the
//! lock every 2 s and takes it again after its connection broke; while another node holds it,
//! `/readyz` answers 503 saying so. `confab token create` is no node and takes no lock.
//!
//! Cluster nodes (`--nats-url`) take the same lock *shared*: any number of them hold it
//! together, while a standalone node (which takes it exclusive) is refused, and a cluster node
//! is refused while a standalone node holds it (contract §9.1).

use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl};

/// How long a start waits for the lock: a predecessor killed a moment ago may still hold it
/// until PostgreSQL notices its connection is gone.
const WAIT: Duration = Duration::from_secs(5);

/// The lock's key: confab's, per schema (the search path's first schema).
const KEY: &str = "hashtextextended('confab:' || current_schema(), 0)";

/// How a node holds its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A standalone node: alone.
    Exclusive,
    /// A cluster node: with the other nodes of its cluster.
    Shared,
}

/// A connection holding this database's lock for a node.
pub struct Hold {
    url: String,
    mode: Mode,
    /// `None` after the connection broke until the lock is taken again.
    conn: Option<PgConnection>,
}

#[derive(QueryableByName)]
struct Got {
    #[diesel(sql_type = Bool)]
    got: bool,
}

#[derive(QueryableByName)]
struct Holder {
    #[diesel(sql_type = Text)]
    schema: String,
    #[diesel(sql_type = Nullable<Text>)]
    mode: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pid: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    client: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    since: Option<String>,
}

impl Hold {
    /// Takes the lock of the database `url` names, waiting up to a few seconds for a node that
    /// just died to release it; an error that says who holds it otherwise.
    pub fn take(url: &str, mode: Mode) -> Result<Hold, String> {
        let mut conn = connect(url)?;
        let deadline = Instant::now() + WAIT;
        loop {
            if try_lock(&mut conn, mode)? {
                return Ok(Hold {
                    url: url.to_string(),
                    mode,
                    conn: Some(conn),
                });
            }
            if Instant::now() >= deadline {
                return Err(held_by(&mut conn, mode));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Checks that the lock is still held. The lock lives as long as its connection: after
    /// the connection broke (PostgreSQL restarted, a proxy dropped it) this reconnects and takes
    /// it again; an error says why it could not (PostgreSQL unreachable, or another node took
    /// the database meanwhile).
    pub fn keep(&mut self) -> Result<(), String> {
        if let Some(c) = &mut self.conn {
            if diesel::sql_query("SELECT 1").execute(c).is_ok() {
                return Ok(());
            }
            tracing::warn!("the database lock's connection broke; taking the lock again");
            self.conn = None;
        }
        let mut conn = connect(&self.url)?;
        if try_lock(&mut conn, self.mode)? {
            tracing::info!("database lock taken again");
            self.conn = Some(conn);
            Ok(())
        } else {
            Err(held_by(&mut conn, self.mode))
        }
    }
}

fn connect(url: &str) -> Result<PgConnection, String> {
    use diesel::connection::SimpleConnection;
    let mut c =
        PgConnection::establish(url).map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    c.batch_execute(super::connection::PG_SESSION)
        .map_err(|e| format!("cannot configure the PostgreSQL connection: {e}"))?;
    Ok(c)
}

fn try_lock(conn: &mut PgConnection, mode: Mode) -> Result<bool, String> {
    let f = match mode {
        Mode::Exclusive => "pg_try_advisory_lock",
        Mode::Shared => "pg_try_advisory_lock_shared",
    };
    diesel::sql_query(format!("SELECT {f}({KEY}) AS got"))
        .get_result::<Got>(conn)
        .map(|g| g.got)
        .map_err(|e| format!("cannot take the database lock: {e}"))
}

/// Says which node holds the lock (as far as PostgreSQL knows it) and why this one may not
/// join it.
fn held_by(conn: &mut PgConnection, mode: Mode) -> String {
    let q = format!(
        "SELECT current_schema()::text AS schema, l.mode::text AS mode, a.pid::bigint AS pid, \
         COALESCE(host(a.client_addr), 'a local socket') AS client, \
         to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC' AS since \
         FROM (SELECT {KEY} AS k) key \
         LEFT JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND ((l.classid::bigint << 32) | l.objid::bigint) = key.k \
         LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
         ORDER BY a.backend_start LIMIT 1"
    );
    let holder = diesel::sql_query(q).get_result::<Holder>(conn).ok();
    // ShareLock: cluster nodes hold it; ExclusiveLock: a standalone node does
    let by_cluster = holder
        .as_ref()
        .and_then(|h| h.mode.as_deref())
        .is_some_and(|m| m.starts_with("Share"));
    let schema = holder
        .as_ref()
        .map(|h| format!("schema {:?} of this PostgreSQL database", h.schema))
        .unwrap_or_else(|| "this PostgreSQL database".to_string());
    let whom = if by_cluster {
        "cluster nodes (started with --nats-url) are using"
    } else {
        "another confab node without --nats-url holds"
    };
    let seen = holder
        .and_then(|h| Some((h.pid?, h.client?, h.since?)))
        .map(|(pid, client, since)| {
            format!(" (backend pid {pid}, from {client}, connected since {since})")
        })
        .unwrap_or_default();
    let why = match (mode, by_cluster) {
        (Mode::Exclusive, true) => {
            "A node without --nats-url keeps its database to itself, so it cannot join a \
             database that a cluster uses: start it with the cluster's --nats-url, or give it \
             its own database (or schema, with options=-csearch_path=… in the URL)."
        }
        (Mode::Exclusive, false) => {
            "A node without --nats-url keeps its database to itself: two such nodes on one \
             database would corrupt each other's threads. Stop the other node, or give this \
             one its own database (or schema, with options=-csearch_path=… in the URL)."
        }
        (Mode::Shared, _) => {
            "A cluster node (--nats-url) cannot share a database with a node started without \
             --nats-url, which keeps it to itself: stop that node and start it with the \
             cluster's --nats-url, or give the cluster its own database."
        }
    };
    format!("{whom} {schema}{seen}. {why}")
}

/// The key of the advisory lock that one node at a time holds for `task` in this schema (the
/// event relay, the migrations), apart from the database lock's [`KEY`].
fn task_key(task: &str) -> String {
    format!("hashtextextended('confab-{task}:' || current_schema(), 0)")
}

/// How often a node waiting for another one's migrations looks again.
const MIGRATION_POLL: Duration = Duration::from_millis(100);

/// Runs `migrate` while holding this schema's migration lock, so that nodes started together on
/// a new (or older) database take turns: the first applies the migrations, the others then find
/// none pending. Unserialized, two nodes both created diesel's own table and the first
/// migration's types, and one of them failed (`duplicate key value violates unique constraint
/// "pg_type_typname_nsp_index"`). The lock is taken by polling rather than waiting in a
/// statement: a waiting statement holds a snapshot, which a migration building an index
/// `CONCURRENTLY` would wait for in turn. It is released before this returns, whatever
/// `migrate` gave, so that the connection (which becomes a writer) holds nothing.
pub fn migrating<T>(
    conn: &mut PgConnection,
    migrate: impl FnOnce(&mut PgConnection) -> T,
) -> Result<T, String> {
    let key = task_key("migrations");
    let mut waiting: Option<Instant> = None;
    loop {
        let got = diesel::sql_query(format!("SELECT pg_try_advisory_lock({key}) AS got"))
            .get_result::<Got>(conn)
            .map_err(|e| format!("cannot take the migration lock: {e}"))?
            .got;
        if got {
            break;
        }
        if waiting.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            tracing::info!("waiting for another node to finish the database migrations");
            waiting = Some(Instant::now());
        }
        std::thread::sleep(MIGRATION_POLL);
    }
    let out = migrate(conn);
    let released = diesel::sql_query(format!("SELECT pg_advisory_unlock({key}) AS got"))
        .get_result::<Got>(conn)
        .map_err(|e| format!("cannot release the migration lock: {e}"))?
        .got;
    if !released {
        return Err("the migration lock was not held after the migrations".into());
    }
    Ok(out)
}

/// A lock that elects one node of a cluster for a task (the event relay): taken on its own
/// connection, held while that connection lives, so a dead leader's successor takes over as
/// soon as PostgreSQL drops the connection.
pub struct Lead {
    url: String,
    task: &'static str,
    /// Run on each new connection of the lock, after the session's usual settings.
    setup: Option<&'static str>,
    conn: Option<PgConnection>,
    leading: bool,
    /// When the lock's connection was last seen alive.
    checked: Option<std::time::Instant>,
}

impl Lead {
    /// How often a leader checks that its lock's connection (and so the lock) still lives.
    pub const CHECK: std::time::Duration = std::time::Duration::from_secs(1);

    pub fn new(url: String, task: &'static str) -> Lead {
        Lead {
            url,
            task,
            setup: None,
            conn: None,
            leading: false,
            checked: None,
        }
    }

    /// Runs `sql` on each connection of the lock when it is made (settings of the leader's work).
    pub fn with_setup(mut self, sql: &'static str) -> Lead {
        self.setup = Some(sql);
        self
    }

    /// Runs `f` on the lock's own connection while this node leads (the leader's work need not
    /// queue for a pool); `None` if it does not lead. An error makes the next
    /// [`Lead::try_lead`] check the connection.
    pub fn with_conn<T>(
        &mut self,
        f: impl FnOnce(&mut PgConnection) -> diesel::QueryResult<T>,
    ) -> Option<diesel::QueryResult<T>> {
        if !self.leading {
            return None;
        }
        let c = self.conn.as_mut()?;
        let r = f(c);
        if r.is_err() {
            self.checked = None;
        }
        Some(r)
    }

    /// Whether this node led at its last check and that check is recent: no need to look again.
    pub fn surely_leading(&self) -> bool {
        self.leading && self.checked.is_some_and(|t| t.elapsed() < Self::CHECK)
    }

    /// Whether this node leads now: keeps the lock if it has it (its connection is checked at
    /// most every [`Lead::CHECK`]), tries to take it otherwise.
    pub fn try_lead(&mut self) -> bool {
        if self.leading {
            if self.checked.is_some_and(|t| t.elapsed() < Self::CHECK) {
                return true;
            }
            let alive = self
                .conn
                .as_mut()
                .is_some_and(|c| diesel::sql_query("SELECT 1").execute(c).is_ok());
            if alive {
                self.checked = Some(std::time::Instant::now());
                return true;
            }
            tracing::warn!(task = self.task, "the leader lock's connection broke");
            self.conn = None;
            self.leading = false;
        }
        if self.conn.is_none() {
            use diesel::connection::SimpleConnection;
            match connect(&self.url) {
                Ok(mut c) => {
                    if let Some(sql) = self.setup {
                        if let Err(e) = c.batch_execute(sql) {
                            tracing::warn!(task = self.task, error = %e, "cannot configure the leader's connection");
                            return false;
                        }
                    }
                    self.conn = Some(c)
                }
                Err(_) => return false,
            }
        }
        let Some(c) = &mut self.conn else {
            return false;
        };
        let q = format!(
            "SELECT pg_try_advisory_lock({}) AS got",
            task_key(self.task)
        );
        match diesel::sql_query(q).get_result::<Got>(c) {
            Ok(g) => self.leading = g.got,
            Err(_) => self.conn = None,
        }
        if self.leading {
            self.checked = Some(std::time::Instant::now());
            tracing::info!(task = self.task, "this node leads");
        }
        self.leading
    }
}
