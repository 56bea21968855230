//! Storage resilience.

use reqwest::Method;

use crate::common::*;

/// When PostgreSQL drops every connection, writes answer a retryable 503 (never a hang or a
/// 500) until the writer has reconnected, and then succeed again.
#[tokio::test]
async fn writer_reconnects_after_postgres_drops_connections() {
    use diesel::{Connection, RunQueryDsl};
    let Ok(base) = std::env::var("CONFAB_TEST_DATABASE_URL") else {
        eprintln!("CONFAB_TEST_DATABASE_URL not set: PostgreSQL-only test skipped");
        return;
    };
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let t = app.thread(&a, &[]).await;
    let app_name = app
        .db_url
        .rsplit("application_name=")
        .next()
        .unwrap()
        .to_string();
    let mut admin = diesel::PgConnection::establish(&base).unwrap();
    diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app_name}'"
    ))
    .execute(&mut admin)
    .unwrap();
    let path = format!("/chat/threads/{}/messages", enc(&t));
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let r = app
            .chat(
                &a,
                Method::POST,
                &path,
                Some(serde_json::json!({"content": "after the outage"})),
            )
            .await;
        statuses.push(r.status().as_u16());
        if r.status() == 201 {
            break;
        }
        assert_eq!(
            r.status(),
            503,
            "only a retryable status while reconnecting: {statuses:?}"
        );
        assert!(r.headers().get("retry-after").is_some());
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    eprintln!("statuses after the outage: {statuses:?}");
    assert_eq!(statuses.last(), Some(&201), "{statuses:?}");
    let texts = app.all_messages(&a, &t, 50).await;
    assert_eq!(texts.iter().filter(|m| m["type"] == "text").count(), 1);
}

/// `/readyz` answers 503 while the database is unreachable (its PostgreSQL database is
/// dropped under it), and `/livez` still 200: liveness never touches storage.
#[tokio::test]
async fn readyz_is_503_when_the_database_is_gone() {
    use diesel::{Connection, RunQueryDsl};
    let Ok(base) = std::env::var("CONFAB_TEST_DATABASE_URL") else {
        eprintln!("CONFAB_TEST_DATABASE_URL not set: PostgreSQL-only test skipped");
        return;
    };
    let db = format!("confab_ready_{}", uuid::Uuid::new_v4().simple());
    let mut admin = diesel::PgConnection::establish(&base).unwrap();
    diesel::sql_query(format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .unwrap();
    let url = match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{db}"),
        None => panic!("CONFAB_TEST_DATABASE_URL has no database name"),
    };
    let app = TestApp::spawn_with(&["--database-url", &url]).await;
    assert_eq!(
        reqwest::get(format!("{}/readyz", app.admin))
            .await
            .unwrap()
            .status(),
        200
    );
    diesel::sql_query(format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&mut admin)
        .unwrap();
    let r = reqwest::get(format!("{}/readyz", app.admin)).await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "unavailable");
    assert!(v["reason"].as_str().unwrap().contains("database"), "{v}");
    assert_eq!(
        reqwest::get(format!("{}/livez", app.base))
            .await
            .unwrap()
            .status(),
        200
    );
}

/// A PostgreSQL writer finds thread rows through their primary key even while the table is
/// tiny: a writer keeps a prepared statement's generic plan for its whole life, and one
/// planned with a sequential scan of a handful of rows went on scanning every row once per
/// batch after there were thousands. A reader session (the control) does plan the scan, so
/// the table is small enough for the difference to show.
#[test]
fn postgres_writers_find_rows_by_key_on_small_tables() {
    use confab::store::connection::{connect, migrate, ConnSetup, SqliteSync};
    use diesel::{QueryableByName, RunQueryDsl};
    // a schema of its own
    let Some(url) = test_database() else {
        eprintln!("CONFAB_TEST_DATABASE_URL not set: PostgreSQL-only test skipped");
        return;
    };
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let plan = |writer: bool| {
        let setup = ConnSetup {
            sync: SqliteSync::Full,
            writer,
        };
        let mut c = connect(&url, setup).unwrap();
        migrate(&mut c).unwrap();
        let confab::store::DbConn::Pg(pg) = &mut c else {
            panic!("not PostgreSQL")
        };
        diesel::sql_query(
            "INSERT INTO threads (id, topic, created_by, created_at, metadata, last_seq, \
             last_message_id, last_message_at) VALUES ('t1', '', 'u', 0, '{}', 0, 0, 0) \
             ON CONFLICT DO NOTHING",
        )
        .execute(pg)
        .unwrap();
        // as autovacuum does while a deployment is young
        diesel::sql_query("ANALYZE threads").execute(pg).unwrap();
        let lines: Vec<Line> = diesel::sql_query(
            "EXPLAIN SELECT id FROM threads WHERE id = ANY('{t1,t2}') ORDER BY id FOR UPDATE",
        )
        .load(pg)
        .unwrap();
        lines
            .into_iter()
            .map(|l| l.line)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (reader, writer) = (plan(false), plan(true));
    assert!(reader.contains("Seq Scan on threads"), "control: {reader}");
    assert!(!writer.contains("Seq Scan"), "{writer}");
    assert!(writer.contains("threads_pkey"), "{writer}");
}

/// A change whose statement fails (a duplicate key, which on PostgreSQL aborts the whole
/// transaction) fails alone in its batch: the writer runs the batch again with a savepoint per
/// change, the caller of the failing one gets its error and the others commit. Runs on SQLite,
/// and on PostgreSQL when `CONFAB_TEST_DATABASE_URL` is set.
#[tokio::test]
async fn a_failing_statement_fails_alone_in_its_batch() {
    use confab::store::schema::meta;
    use confab::store::{connection::SqliteSync, DbConn, Store};
    use diesel::prelude::*;

    let dir = tempfile::tempdir().unwrap();
    let url = test_database().unwrap_or_else(|| Store::sqlite_url(dir.path()));
    let store = Store::open(&url, SqliteSync::Normal).unwrap();
    let insert = |key: &'static str| {
        move |c: &mut DbConn| -> Result<(), confab::error::ApiError> {
            diesel::insert_into(meta::table)
                .values((meta::key.eq(key), meta::value.eq("x")))
                .execute(c)?;
            Ok(())
        }
    };
    store.write(insert("taken")).await.unwrap();
    // holds the writer so that the next three changes queue up and go in one batch
    let blocker = store.write(|_| {
        std::thread::sleep(std::time::Duration::from_millis(300));
        Ok(())
    });
    let (blocked, a, dup, c) = tokio::join!(
        blocker,
        store.write(insert("a")),
        store.write(insert("taken")),
        store.write(insert("c")),
    );
    blocked.unwrap();
    a.unwrap();
    assert!(dup.is_err(), "the duplicate key is refused");
    c.unwrap();
    let keys: Vec<String> = store
        .read(|c| Ok(meta::table.select(meta::key).order(meta::key).load(c)?))
        .await
        .unwrap();
    for k in ["a", "c", "taken"] {
        assert_eq!(
            keys.iter().filter(|x| *x == k).count(),
            1,
            "{k} in {keys:?}"
        );
    }
}

/// A text message of `thread` at (sequenceId, id, createdOn).
fn text_message(thread: &str, (seq, id, at): (i64, i64, i64)) -> confab::store::models::Message {
    confab::store::models::Message {
        thread_id: thread.into(),
        seq,
        id,
        kind: "text".into(),
        content: Some("hi".into()),
        system: None,
        sender_id: Some("u".into()),
        sender_display_name: None,
        metadata: "{}".into(),
        priority: "normal".into(),
        created_at: at,
        version: id,
        edited_at: None,
        deleted_at: None,
        sentiment: None,
    }
}

/// A live thread row whose position is (`at`, `at`, `at`).
fn thread_row(id: &str, at: i64) -> confab::store::models::Thread {
    confab::store::models::Thread {
        id: id.into(),
        topic: "t".into(),
        created_by: "u".into(),
        created_at: 1,
        deleted_at: None,
        metadata: "{}".into(),
        retention: None,
        delete_after: None,
        last_seq: at,
        last_message_id: at,
        last_message_at: at,
        members_version: 0,
    }
}

/// The position a thread's row holds, as stored (not settled).
fn row_position(c: &mut confab::store::DbConn, id: &str) -> diesel::QueryResult<(i64, i64, i64)> {
    use confab::store::schema::threads as t;
    use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
    t::table
        .filter(t::id.eq(id))
        .select((t::last_seq, t::last_message_id, t::last_message_at))
        .get_result(c)
}

/// Sends of several threads in one write batch are written as one group, each from the
/// position its actor trusted. A stale position fails the group (PostgreSQL: the thread row is
/// no longer there; SQLite: the primary key refuses the sequence id, which a message already
/// has); the batch runs again with each job on its own, where the stale one reads where its
/// thread stands, so both commit with the right sequence ids. Runs on both backends like the
/// test above.
#[tokio::test]
async fn a_stale_position_in_a_group_of_sends_is_claimed_again() {
    stale_position_in_a_group(false).await;
}

/// The same with pure appends, which on PostgreSQL the writer commits with no transaction block
/// of their own (the group's statement is the transaction): the statement itself must fail
/// whole, leaving nothing of the fresh thread's send behind before the retry writes it once.
#[tokio::test]
async fn a_stale_position_in_a_group_of_pure_sends_is_claimed_again() {
    stale_position_in_a_group(true).await;
}

async fn stale_position_in_a_group(pure: bool) {
    use confab::ids::ThreadId;
    use confab::store::appends::{Append, Appends, Position};
    use confab::store::models::Message;
    use confab::store::{connection::SqliteSync, messages, threads, DbConn, Store};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let message = |thread: &str, p: Position| Message {
        sentiment: Some(420),
        ..text_message(thread, p)
    };
    let dir = tempfile::tempdir().unwrap();
    let url = test_database().unwrap_or_else(|| Store::sqlite_url(dir.path()));
    // one writer, so that both threads' sends share its batches
    let store = Store::open_with_writers(&url, SqliteSync::Normal, 1).unwrap();
    for (id, at) in [("t-fresh", 0), ("t-moved", 7)] {
        let row = thread_row(id, at);
        store
            .write(move |c| {
                threads::insert(c, &row)?;
                // every sequence id has its message (the thread stands at its last one)
                for k in 1..=at {
                    messages::insert(c, &message(id, (k, k, k)))?;
                }
                Ok(())
            })
            .await
            .unwrap();
    }
    let send = |thread: &'static str, hint: Position, runs: Arc<AtomicUsize>| {
        move |c: &mut DbConn, appends: &mut Appends| {
            runs.fetch_add(1, Ordering::SeqCst);
            let id = ThreadId::from(thread);
            let from = appends.claim(c, &id, Some(hint))?.expect("a live thread");
            let to = (from.0 + 1, from.1 + 1, from.2);
            let m = message(thread, to);
            appends.push(
                c,
                Append {
                    thread: id,
                    from,
                    to,
                    messages: vec![m],
                    members_version: None,
                },
            )?;
            Ok(from)
        }
    };
    let runs: [Arc<AtomicUsize>; 2] = Default::default();
    // The writer is held busy until both sends wait for it, so that they share its next batch.
    let busy = Arc::new(tokio::sync::Notify::new());
    let blocker = tokio::spawn({
        let (store, busy) = (store.clone(), busy.clone());
        async move {
            store
                .write(move |_| {
                    busy.notify_one();
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    Ok(())
                })
                .await
        }
    });
    busy.notified().await;
    let fresh = ThreadId::from("t-fresh");
    let moved = ThreadId::from("t-moved");
    let (a, b) = tokio::join!(
        // the right position
        store.thread_job(
            &fresh,
            true,
            false,
            pure,
            send("t-fresh", (0, 0, 0), runs[0].clone())
        ),
        // a stale one: the row is at 7
        store.thread_job(
            &moved,
            true,
            false,
            pure,
            send("t-moved", (0, 0, 0), runs[1].clone())
        ),
    );
    blocker.await.unwrap().unwrap();
    assert_eq!(a.unwrap(), (0, 0, 0));
    assert_eq!(b.unwrap(), (7, 7, 7), "claimed again from the row");
    let runs: Vec<usize> = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
    assert_eq!(
        runs,
        [2, 2],
        "the group failed once and the batch ran again"
    );
    let (t_fresh, t_moved, m_fresh, m_moved) = store
        .read(move |c| {
            Ok((
                threads::get(c, &fresh)?.unwrap().last_seq,
                threads::get(c, &moved)?.unwrap().last_seq,
                messages::get(c, &fresh, 1)?.map(|m| m.seq),
                messages::get(c, &moved, 8)?.map(|m| m.seq),
            ))
        })
        .await
        .unwrap();
    assert_eq!((t_fresh, t_moved), (1, 8));
    assert_eq!((m_fresh, m_moved), (Some(1), Some(8)));
}

/// PostgreSQL: a job declared a pure append (see `store::writer`) that runs a statement after
/// all is refused before the statement is sent, since no transaction is open to hold it: its
/// caller gets a retryable 503, nothing of it is written, and the writer goes on.
#[tokio::test]
async fn a_pure_append_that_runs_a_statement_writes_nothing() {
    use confab::ids::ThreadId;
    use confab::store::{connection::SqliteSync, schema::meta, DbConn, Store};
    use diesel::prelude::*;

    let Some(url) = test_database() else {
        eprintln!("CONFAB_TEST_DATABASE_URL not set: PostgreSQL-only test skipped");
        return;
    };
    let store = Store::open_with_writers(&url, SqliteSync::Normal, 1).unwrap();
    let thread = ThreadId::from("t-pure");
    let insert = |key: &'static str| {
        move |c: &mut DbConn, _: &mut confab::store::appends::Appends| {
            diesel::insert_into(meta::table)
                .values((meta::key.eq(key), meta::value.eq("x")))
                .execute(c)?;
            Ok(())
        }
    };
    let e = store
        .thread_job(&thread, true, false, true, insert("not pure"))
        .await
        .unwrap_err();
    assert_eq!(e.status, 503, "{e:?}");
    // the same job, not declared pure, commits in the writer's next batch
    store
        .thread_job(&thread, true, false, false, insert("declared"))
        .await
        .unwrap();
    let keys: Vec<String> = store
        .read(|c| {
            Ok(meta::table
                .filter(meta::key.eq_any(["not pure", "declared"]))
                .select(meta::key)
                .load(c)?)
        })
        .await
        .unwrap();
    assert_eq!(keys, ["declared"]);
}

/// SQLite: a send does not rewrite its thread's row; the thread stands where its last message
/// does, which every read of the thread sees at once, and the writer writes it into the row
/// in passes that take only the threads with new messages.
#[tokio::test]
async fn sqlite_thread_rows_catch_up_with_their_messages() {
    use confab::ids::ThreadId;
    use confab::store::{connection::SqliteSync, messages, threads, DbConn, Store};

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Store::sqlite_url(dir.path()), SqliteSync::Normal).unwrap();
    let out = store
        .write(|c| {
            for id in ["a", "b"] {
                threads::insert(c, &thread_row(id, 0))?;
            }
            for k in 1..=3 {
                messages::insert(c, &text_message("a", (k, 100 + k, 1000 + k)))?;
            }
            let raw_before = row_position(c, "a")?;
            let read = threads::get(c, &ThreadId::from("a"))?.unwrap();
            let DbConn::Sqlite(s) = c else { unreachable!() };
            let next = threads::settle_rows(s, Some(0))?;
            let again = threads::settle_rows(s, Some(next))?;
            Ok((
                raw_before,
                (read.last_seq, read.last_message_id, read.last_message_at),
                row_position(c, "a")?,
                row_position(c, "b")?,
                next,
                again,
            ))
        })
        .await
        .unwrap();
    let (raw_before, read, raw_after, untouched, next, again) = out;
    assert_eq!(raw_before, (0, 0, 0), "the sends left the row alone");
    assert_eq!(read, (3, 103, 1003), "a read sees the last message");
    assert_eq!(raw_after, (3, 103, 1003), "the pass wrote it into the row");
    assert_eq!(
        untouched,
        (0, 0, 0),
        "a thread with no messages keeps its row"
    );
    assert_eq!(
        (next, again),
        (3, 3),
        "the next pass starts after the last message"
    );

    // the writer's own passes: a thread that gets messages and then nothing more has its row
    // written within about a second of going idle
    store
        .write(|c| {
            for k in 1..=2 {
                messages::insert(c, &text_message("b", (k, 200 + k, 2000 + k)))?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let row = store.read(|c| Ok(row_position(c, "b")?)).await.unwrap();
        if row == (2, 202, 2002) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the idle writer did not write the row: {row:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A node's database lock lives as long as its connection. When PostgreSQL drops that
/// connection, the node takes the lock again; if something else took it meanwhile, `/readyz`
/// answers 503 saying so until the lock is back.
#[tokio::test]
async fn the_database_lock_is_taken_again_after_its_connection_drops() {
    use diesel::sql_types::Bool;
    use diesel::{Connection, QueryableByName, RunQueryDsl};
    let Ok(base) = std::env::var("CONFAB_TEST_DATABASE_URL") else {
        eprintln!("CONFAB_TEST_DATABASE_URL not set: PostgreSQL-only test skipped");
        return;
    };
    #[derive(QueryableByName)]
    struct Got {
        #[diesel(sql_type = Bool)]
        got: bool,
    }
    let app = TestApp::spawn().await;
    let u = app.user().await;
    let t = app.thread(&u, &[]).await;
    let send = || async {
        let path = format!("/chat/threads/{}/messages", enc(&t));
        let body = serde_json::json!({"content": "hello"});
        let r = app.chat(&u, Method::POST, &path, Some(body)).await;
        let status = r.status().as_u16();
        let retry_after = r.headers().get("retry-after").is_some();
        (status, retry_after, r.text().await.unwrap())
    };
    let app_name = app
        .db_url
        .rsplit("application_name=")
        .next()
        .unwrap()
        .to_string();
    // a connection in the app's schema, as another node would have
    let mut other = diesel::PgConnection::establish(&app.db_url).unwrap();
    let try_lock = |c: &mut diesel::PgConnection| {
        diesel::sql_query(
            "SELECT pg_try_advisory_lock(hashtextextended('confab:' || current_schema(), 0)) AS got",
        )
        .get_result::<Got>(c)
        .unwrap()
        .got
    };
    assert!(!try_lock(&mut other), "the node holds its database");
    let ready = || async {
        let r = reqwest::get(format!("{}/readyz", app.admin)).await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.unwrap())
    };
    assert_eq!(ready().await.0, 200);

    // PostgreSQL drops every connection of the node (the other one has its own name)
    let mut admin = diesel::PgConnection::establish(&base).unwrap();
    let drop_node = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app_name}' \
         AND pid <> pg_backend_pid()"
    );
    diesel::sql_query("SET application_name = 'the-other-node'")
        .execute(&mut other)
        .unwrap();
    // the other node waits for the lock, so it gets it the moment the node's connection goes,
    // before the node's next check can take it back
    let waiter = std::thread::spawn(move || {
        diesel::sql_query(
            "SELECT pg_advisory_lock(hashtextextended('confab:' || current_schema(), 0)) IS NOT NULL AS got",
        )
        .get_result::<Got>(&mut other)
        .unwrap();
        other
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    diesel::sql_query(&drop_node).execute(&mut admin).unwrap();
    let other = waiter.join().unwrap();
    let mut seen = None;
    for _ in 0..40 {
        let (status, v) = ready().await;
        if status == 503 {
            seen = Some(v);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let v = seen.expect("/readyz turns 503 while another node holds the database");
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("another confab node without --nats-url holds schema"),
        "{v}"
    );
    // and it writes nothing meanwhile: a retryable 503, again and again (not only while its
    // writers reconnect, which takes one attempt)
    for _ in 0..5 {
        let (status, retry_after, body) = send().await;
        assert_eq!(status, 503, "{body}");
        assert!(retry_after);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        ready().await.0,
        503,
        "the other node still holds the database"
    );

    // the other node lets go: the node takes its lock back and is ready again
    drop(other);
    let mut back = false;
    for _ in 0..40 {
        if ready().await.0 == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(back, "/readyz is 200 again once the lock is back");
    // writes again (the writers reconnect on their first use after the drop)
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let (status, _, _) = send().await;
        statuses.push(status);
        if status == 201 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(statuses.last(), Some(&201), "{statuses:?}");
    let mut third = diesel::PgConnection::establish(&app.db_url).unwrap();
    assert!(!try_lock(&mut third), "the node holds its database again");
}

/// SQLite under a steady stream of commits: the WAL is rewound to its start (so it stops
/// growing) even though writes never pause long enough for the background checkpoint to catch
/// up. Before the writer finished checkpoints itself, the WAL held every frame ever written
/// (1.1 GB a minute at 1,000 messages/s). A rewind shows in the WAL header's checkpoint
/// sequence number (bytes 12..16), read here without touching the database.
#[tokio::test]
async fn the_sqlite_wal_is_rewound_under_steady_writes() {
    let app = TestApp::spawn_with(&["--rate-limit-profile", "off"]).await;
    if !app.db_url.ends_with("confab.db") {
        eprintln!("CONFAB_TEST_DATABASE_URL is set: SQLite-only test skipped");
        return;
    }
    let wal = format!("{}-wal", app.db_url);
    let rewinds = || {
        let head = std::fs::read(&wal).unwrap_or_default();
        head.get(12..16)
            .map_or(0, |b| u32::from_be_bytes(b.try_into().unwrap()))
    };
    let a = app.user().await;
    let b = app.user().await;
    let t = app.thread(&a, &[&b]).await;
    let before = rewinds();
    // Sends from 8 loops for 5 s: commits never stop for a whole second.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let loops = (0..8).map(|_| {
        let (app, a, t) = (&app, &a, &t);
        async move {
            let mut n = 0;
            while std::time::Instant::now() < until {
                app.send(a, t, "steady").await;
                n += 1;
            }
            n
        }
    });
    let sent: usize = futures_util::future::join_all(loops).await.iter().sum();
    let after = rewinds();
    assert!(
        after > before,
        "{sent} sends in 5 s: the WAL was rewound {} times (sequence {before} → {after})",
        after.wrapping_sub(before)
    );
}

/// PostgreSQL: a batch's real-time events (one `cluster_events` row, here 20 sends' worth of
/// JSON, 13 kB) are written compressed in the row itself, not as TOAST chunks that the relay
/// would delete again, and read back intact.
#[tokio::test]
async fn a_batch_of_cluster_events_is_stored_in_its_row() {
    use confab::store::cluster_events::{self, NewClusterEvent};
    use confab::store::{connection::SqliteSync, DbConn, Store};
    use diesel::prelude::*;

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let Some(url) = test_database() else {
        eprintln!("CONFAB_TEST_DATABASE_URL not set: PostgreSQL-only test skipped");
        return;
    };
    let store = Store::open_with_writers(&url, SqliteSync::Normal, 1).unwrap();
    let events: Vec<NewClusterEvent> = (0..20)
        .map(|i| NewClusterEvent {
            kind: "chatMessageReceived".into(),
            body: format!(
                "\"threadId\":\"19:{i:032x}@thread.v2\",\"sender\":{{\"kind\":\"communicationUser\",\
                 \"rawId\":\"8:acs:{i:036}\",\"communicationUser\":{{\"id\":\"8:acs:{i:036}\"}}}},\
                 \"senderDisplayName\":\"\",\"id\":\"17965860{i:05}\",\"createdOn\":\
                 \"2026-12-06T19:41:17.464Z\",\"version\":\"17965860{i:05}\",\"type\":\"text\",\
                 \"sequenceId\":\"{i}\",\"priority\":\"normal\",\"message\":\"message {i}\",\
                 \"metadata\":{{}}"
            ),
            recipients: format!("[\"8:acs:{:036}\"]", i + 100),
            created_at: 1,
        })
        .collect();
    let packed_len = cluster_events::packed(&events)[0].body.len();
    assert!(
        packed_len > 8_000,
        "a pack of {packed_len} bytes would fit a page anyway"
    );
    let (stored, toast_rows): (Vec<String>, i64) = store
        .write(move |c| {
            cluster_events::insert(c, &events)?;
            let DbConn::Pg(pg) = c else { unreachable!() };
            let toast: String = diesel::sql_query(
                "SELECT reltoastrelid::regclass::text AS name FROM pg_class \
                 WHERE oid = 'cluster_events'::regclass",
            )
            .get_result::<ToastName>(pg)?
            .name;
            let n = diesel::sql_query(format!("SELECT count(*) AS n FROM {toast}"))
                .get_result::<Count>(pg)?
                .n;
            let bodies = confab::store::schema::cluster_events::table
                .select(confab::store::schema::cluster_events::body)
                .load::<String>(c)?;
            Ok((bodies, n))
        })
        .await
        .unwrap();
    assert_eq!(toast_rows, 0, "the events went to TOAST");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].len(), packed_len);
    let parsed: Vec<serde_json::Value> = serde_json::from_str(&stored[0]).unwrap();
    assert_eq!(parsed.len(), 20);
    assert!(parsed[19]["body"].as_str().unwrap().contains("message 19"));

    #[derive(QueryableByName)]
    struct ToastName {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
}
