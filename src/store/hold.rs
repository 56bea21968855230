//! PostgreSQL: a standalone node keeps its database (its schema) to itself.
//!
//! Two standalone nodes on one database would each believe they are the thread's only writer:
//! both hand out message ids from the clock and cache membership, so they corrupt each other
//! (duplicate keys, a removed participant still posting through the other node). A standalone
//! node therefore takes a session-level advisory lock, keyed by the schema it works in, on a
//! connection it keeps open for its whole life; the lock goes when the process or that
//! connection dies, so a crashed node's successor can start at once. Housekeeping checks the
//! lock every 2 s and takes it again after its connection broke; while another node holds it,
//! `/readyz` answers 503 saying so. `confab token create` is no node and takes no lock.

use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl};

/// How long a start waits for the lock: a predecessor killed a moment ago may still hold it
/// until PostgreSQL notices its connection is gone.
const WAIT: Duration = Duration::from_secs(5);

/// The lock's key: confab's, per schema (the search path's first schema).
const KEY: &str = "hashtextextended('confab:' || current_schema(), 0)";

/// A connection holding this database's lock for a standalone node.
pub struct Hold {
    url: String,
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
    pub fn take(url: &str) -> Result<Hold, String> {
        let mut conn = connect(url)?;
        let deadline = Instant::now() + WAIT;
        loop {
            if try_lock(&mut conn)? {
                return Ok(Hold {
                    url: url.to_string(),
                    conn: Some(conn),
                });
            }
            if Instant::now() >= deadline {
                return Err(held_by(&mut conn));
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
        if try_lock(&mut conn)? {
            tracing::info!("database lock taken again");
            self.conn = Some(conn);
            Ok(())
        } else {
            Err(held_by(&mut conn))
        }
    }
}

fn connect(url: &str) -> Result<PgConnection, String> {
    PgConnection::establish(url).map_err(|e| format!("cannot connect to PostgreSQL: {e}"))
}

fn try_lock(conn: &mut PgConnection) -> Result<bool, String> {
    diesel::sql_query(format!("SELECT pg_try_advisory_lock({KEY}) AS got"))
        .get_result::<Got>(conn)
        .map(|g| g.got)
        .map_err(|e| format!("cannot take the database lock: {e}"))
}

/// Says which node holds the lock (as far as PostgreSQL knows it).
fn held_by(conn: &mut PgConnection) -> String {
    let q = format!(
        "SELECT current_schema()::text AS schema, a.pid::bigint AS pid, \
         COALESCE(host(a.client_addr), 'a local socket') AS client, \
         to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC' AS since \
         FROM (SELECT {KEY} AS k) key \
         LEFT JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND ((l.classid::bigint << 32) | l.objid::bigint) = key.k \
         LEFT JOIN pg_stat_activity a ON a.pid = l.pid LIMIT 1"
    );
    let who = match diesel::sql_query(q).get_result::<Holder>(conn) {
        Ok(h) => match (h.pid, h.client, h.since) {
            (Some(pid), Some(client), Some(since)) => format!(
                "another confab node holds schema {:?} of this PostgreSQL database \
                 (backend pid {pid}, from {client}, connected since {since})",
                h.schema
            ),
            _ => format!(
                "another confab node holds schema {:?} of this PostgreSQL database",
                h.schema
            ),
        },
        Err(_) => "another confab node holds this PostgreSQL database".to_string(),
    };
    format!(
        "{who}. A node without --nats-url keeps its database to itself: two such nodes on one \
         database would corrupt each other's threads. Stop the other node, or give this one \
         its own database (or schema, with options=-csearch_path=… in the URL)."
    )
}
