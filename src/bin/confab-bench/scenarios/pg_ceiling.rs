//! `pg-ceiling`: what PostgreSQL itself commits on this machine, one single-row INSERT per
//! transaction from concurrent clients (as `pgbench -c 16` with a one-INSERT script). It is the
//! anchor for `send --server-arg=--database-url=…`: run both in the same session and compare.
//! It needs no confab; it creates, fills and drops its own table.

use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, RunQueryDsl};

use super::line;
use crate::stats::Stats;

const TABLE: &str = "confab_pg_ceiling";

pub fn pg_ceiling(url: &str, clients: usize, duration: Duration) -> Result<(), String> {
    let connect = || PgConnection::establish(url).map_err(|e| format!("{url}: {e}"));
    let mut admin = connect()?;
    let ddl = |c: &mut PgConnection, sql: &str| {
        diesel::sql_query(sql)
            .execute(c)
            .map(drop)
            .map_err(|e| e.to_string())
    };
    ddl(&mut admin, &format!("DROP TABLE IF EXISTS {TABLE}"))?;
    ddl(
        &mut admin,
        &format!(
            "CREATE TABLE {TABLE} (id BIGSERIAL PRIMARY KEY, thread TEXT NOT NULL, \
             body TEXT NOT NULL, at BIGINT NOT NULL)"
        ),
    )?;
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(connect()?);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            std::thread::spawn(move || {
                let mut s = Stats::default();
                let mut k: i64 = 0;
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    // autocommit: each INSERT is its own transaction, committed durably
                    let r = diesel::sql_query(format!(
                        "INSERT INTO {TABLE} (thread, body, at) VALUES ($1, $2, $3)"
                    ))
                    .bind::<Text, _>(format!("thread-{}", (i as i64 * 7919 + k) % 1000))
                    .bind::<Text, _>("m")
                    .bind::<BigInt, _>(k)
                    .execute(&mut c);
                    match r {
                        Ok(_) => s.record(t0.elapsed().as_micros() as u64),
                        Err(_) => s.errors += 1,
                    }
                    k += 1;
                }
                s
            })
        })
        .collect();
    let mut total = Stats::default();
    for w in workers {
        total = total.merge(&w.join().map_err(|_| "a client thread panicked")?);
    }
    let secs = started.elapsed().as_secs_f64();
    ddl(&mut admin, &format!("DROP TABLE {TABLE}"))?;
    line(
        "pg-ceiling",
        &total,
        secs,
        "commit",
        &format!("  ({clients} clients, one single-row INSERT per transaction)"),
    );
    Ok(())
}
