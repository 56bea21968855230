//! Queries on `cluster_events` (cluster mode): the real-time events of each commit, written in
//! its transaction and taken out by the relay in id order (see `cluster::events`).

use diesel::prelude::*;

use super::schema::cluster_events as ce;
use super::DbConn;

/// A committed event waiting for the relay.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
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

/// The kind of a row that carries several events: its body is a JSON array of
/// `{"kind","body","recipients"}` objects, in order (see `cluster::events`).
pub const PACK: &str = "pack";

/// Events at most in one packed row (`cluster::events` numbers a row's events below 2^16).
pub const PACK_MAX: usize = 4096;

/// Writes events in the caller's transaction, in order, packed into as few rows as possible
/// (one for any transaction's worth): each row costs an insert, a relay read and delete and a
/// message on the log, whatever it carries. How many events.
pub fn insert(c: &mut DbConn, events: &[NewClusterEvent]) -> QueryResult<usize> {
    if events.is_empty() {
        return Ok(0);
    }
    let rows = packed(events);
    match c {
        #[cfg(feature = "postgres")]
        DbConn::Pg(pg) => diesel::insert_into(ce::table).values(&rows).execute(pg)?,
        // (cluster mode is PostgreSQL only; one statement each, as `MultiConnection` needs)
        DbConn::Sqlite(s) => {
            let mut n = 0;
            for row in &rows {
                n += diesel::insert_into(ce::table).values(row).execute(s)?;
            }
            n
        }
    };
    Ok(events.len())
}

/// Bytes of events' bodies and recipients at most in one packed row (an event bigger than that
/// goes alone). The relay publishes a row in one log message, and NATS refuses a message over
/// its `max_payload` (1 MiB by default): a row over it could never be published, and would
/// hold up every event after it. A batch of big messages (28 KiB each, or many recipients)
/// passes 1 MiB at about 35 sends.
pub const PACK_BYTES: usize = 128 * 1024;

/// The rows carrying `events`, in order: as few as possible, each within [`PACK_MAX`] events
/// and [`PACK_BYTES`] (one for a transaction of ordinary size).
pub fn packed(events: &[NewClusterEvent]) -> Vec<NewClusterEvent> {
    let mut rows = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, e) in events.iter().enumerate() {
        let size = e.body.len() + e.recipients.len();
        if i > start && (i - start == PACK_MAX || bytes + size > PACK_BYTES) {
            rows.push(pack(&events[start..i]));
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < events.len() {
        rows.push(pack(&events[start..]));
    }
    rows
}

/// One row carrying `events`. The strings are escaped straight into the body, not copied into
/// a `serde_json::Value` and a string of their own first (packing was a seventh of the
/// cluster writers' CPU).
fn pack(events: &[NewClusterEvent]) -> NewClusterEvent {
    // (a body is JSON text, so about one byte in six is a quote that gains a backslash)
    let size: usize = events.iter().map(|e| e.body.len() * 7 / 6 + 96).sum();
    let mut body: Vec<u8> = Vec::with_capacity(size);
    body.push(b'[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"kind\":");
        escape_into(&mut body, &e.kind);
        body.extend_from_slice(b",\"body\":");
        escape_into(&mut body, &e.body);
        body.extend_from_slice(b",\"recipients\":");
        // (a JSON array of user ids, as written by the callers)
        body.extend_from_slice(if e.recipients.is_empty() {
            b"[]"
        } else {
            e.recipients.as_bytes()
        });
        body.push(b'}');
    }
    body.push(b']');
    NewClusterEvent {
        kind: PACK.to_string(),
        // (only valid UTF-8 went in: the strings' own bytes, escaped, and ASCII)
        body: String::from_utf8(body).unwrap_or_default(),
        recipients: "[]".to_string(),
        created_at: events.iter().map(|e| e.created_at).min().unwrap_or(0),
    }
}

/// Appends `s` as a JSON string literal.
fn escape_into(out: &mut Vec<u8>, s: &str) {
    // (writing a `str` into a `Vec` cannot fail)
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The events a row carries as a JSON array (see [`PACK`]): its body if packed, else the one
/// event it is (rows written before packing).
pub fn unpacked(row: &ClusterEvent) -> String {
    if row.kind == PACK {
        return row.body.clone();
    }
    let one = pack(&[NewClusterEvent {
        kind: row.kind.clone(),
        body: row.body.clone(),
        recipients: row.recipients.clone(),
        created_at: row.created_at,
    }]);
    one.body
}

/// The relay's round in one statement: forgets the rows `published` (acknowledged by the log)
/// and reads the oldest `limit` others, in id order. A prepared statement: the relay runs one
/// every few milliseconds under load, and parsing and planning it each time (a `sql_query`
/// is never prepared) was a quarter of its connection's CPU.
#[cfg(feature = "postgres")]
pub fn take(
    c: &mut diesel::PgConnection,
    published: &[i64],
    limit: i64,
) -> QueryResult<Vec<ClusterEvent>> {
    Take { published, limit }.load(c)
}

/// See [`take`].
#[cfg(feature = "postgres")]
struct Take<'a> {
    published: &'a [i64],
    limit: i64,
}

#[cfg(feature = "postgres")]
impl diesel::query_builder::QueryId for Take<'_> {
    type QueryId = Take<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

#[cfg(feature = "postgres")]
impl diesel::query_builder::Query for Take<'_> {
    type SqlType = (
        diesel::sql_types::BigInt,
        diesel::sql_types::Text,
        diesel::sql_types::Text,
        diesel::sql_types::Text,
        diesel::sql_types::BigInt,
    );
}

#[cfg(feature = "postgres")]
impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for Take<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Array, BigInt};
        out.push_sql("WITH gone AS (DELETE FROM cluster_events WHERE id = ANY(");
        out.push_bind_param::<Array<BigInt>, _>(&self.published)?;
        out.push_sql(
            ")) SELECT id, kind, body, recipients, created_at FROM cluster_events WHERE id <> ALL(",
        );
        out.push_bind_param::<Array<BigInt>, _>(&self.published)?;
        out.push_sql(") ORDER BY id LIMIT ");
        out.push_bind_param::<BigInt, _>(&self.limit)?;
        Ok(())
    }
}

#[cfg(feature = "postgres")]
impl RunQueryDsl<diesel::PgConnection> for Take<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_is_the_events_in_order() {
        let events: Vec<NewClusterEvent> = (0..3)
            .map(|i| NewClusterEvent {
                kind: "chatMessageReceived".into(),
                body: format!("{{\"n\":{i},\"t\":\"a \\\"q\\\"\"}}"),
                recipients: format!("[\"8:acs:u{i}\"]"),
                created_at: 10 - i,
            })
            .collect();
        let row = pack(&events);
        assert_eq!(row.kind, PACK);
        assert_eq!(row.created_at, 8);
        let parsed: Vec<serde_json::Value> = serde_json::from_str(&row.body).unwrap();
        assert_eq!(parsed.len(), 3);
        for (i, p) in parsed.iter().enumerate() {
            assert_eq!(p["kind"], "chatMessageReceived");
            assert_eq!(p["body"], events[i].body.as_str());
            assert_eq!(p["recipients"][0], format!("8:acs:u{i}"));
        }
        let old = ClusterEvent {
            id: 1,
            kind: "closeUser".into(),
            body: "abc".into(),
            recipients: "[\"8:acs:x\"]".into(),
            created_at: 1,
        };
        let parsed: Vec<serde_json::Value> = serde_json::from_str(&unpacked(&old)).unwrap();
        assert_eq!(parsed[0]["kind"], "closeUser");
        assert_eq!(parsed[0]["recipients"][0], "8:acs:x");
    }

    #[test]
    fn big_events_spread_over_rows_within_the_bound() {
        let event = |n: usize, size: usize| NewClusterEvent {
            kind: "chatMessageReceived".into(),
            body: format!("{{\"n\":{n},\"c\":\"{}\"}}", "x".repeat(size)),
            recipients: r#"["8:acs:a","8:acs:b"]"#.into(),
            created_at: 1,
        };
        // a transaction of ordinary size is one row
        let small: Vec<_> = (0..500).map(|n| event(n, 100)).collect();
        assert_eq!(packed(&small).len(), 1);
        // 100 sends of 28 KiB: 2.8 MiB, which NATS would refuse as one message
        let big: Vec<_> = (0..100).map(|n| event(n, 28 * 1024)).collect();
        let rows = packed(&big);
        assert!(rows.len() >= 22, "{} rows", rows.len());
        let mut n = 0;
        for row in &rows {
            assert!(row.body.len() < 2 * PACK_BYTES, "{} bytes", row.body.len());
            let parsed: Vec<serde_json::Value> = serde_json::from_str(&row.body).unwrap();
            for p in parsed {
                let body: serde_json::Value =
                    serde_json::from_str(p["body"].as_str().unwrap()).unwrap();
                assert_eq!(body["n"], n, "in order, none lost");
                n += 1;
            }
        }
        assert_eq!(n, 100);
        // an event bigger than the bound goes alone
        let huge = [event(0, 10), event(1, PACK_BYTES + 1), event(2, 10)];
        assert_eq!(packed(&huge).len(), 3);
    }
}
