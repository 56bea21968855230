//! Queries on `cluster_events` (cluster mode): the real-time events of each commit, written in
//! its transaction and taken out by the relay in id order (see `cluster::events`).

use diesel::prelude::*;

use super::schema::cluster_events as ce;
use super::DbConn;

/// A committed event waiting for the relay.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ce)]
pub struct ClusterEvent {
    pub id: i64,
    pub kind: String,
    pub body: String,
    /// JSON array of user ids.
    pub recipients: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = ce)]
pub struct NewClusterEvent {
    pub kind: String,
    pub body: String,
    pub recipients: String,
    pub created_at: i64,
}

/// Writes events in the caller's transaction, in order; how many.
pub fn insert(c: &mut DbConn, rows: &[NewClusterEvent]) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    match c {
        #[cfg(feature = "postgres")]
        DbConn::Pg(pg) => diesel::insert_into(ce::table).values(rows).execute(pg),
        // (cluster mode is PostgreSQL only; one statement each, as `MultiConnection` needs)
        DbConn::Sqlite(s) => {
            let mut n = 0;
            for row in rows {
                n += diesel::insert_into(ce::table).values(row).execute(s)?;
            }
            Ok(n)
        }
    }
}

/// The oldest committed events, in id order.
pub fn oldest(c: &mut DbConn, limit: i64) -> QueryResult<Vec<ClusterEvent>> {
    ce::table
        .order(ce::id.asc())
        .limit(limit)
        .select(ClusterEvent::as_select())
        .load(c)
}

/// Forgets events the relay has published.
pub fn delete(c: &mut DbConn, ids: &[i64]) -> QueryResult<usize> {
    diesel::delete(ce::table.filter(ce::id.eq_any(ids))).execute(c)
}

/// Events waiting (for `/metrics` and the dashboard).
pub fn backlog(c: &mut DbConn) -> QueryResult<i64> {
    ce::table.count().get_result(c)
}
