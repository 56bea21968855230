//! Unit tests of `store::writer` (SQLite: a batch's jobs, savepoints and panics).

use diesel::prelude::*;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::ApiError;
use crate::store::connection::SqliteSync;
use crate::store::schema::meta;
use crate::store::DbConn;
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

/// Holds the writer so that the jobs queued meanwhile go in one batch.
fn blocker(store: &Store) -> impl std::future::Future<Output = Result<(), ApiError>> + '_ {
    store.write(|_| {
        std::thread::sleep(std::time::Duration::from_millis(300));
        Ok(())
    })
}

/// Inserts `key` into `meta`, counting its runs in `runs`.
fn insert(
    key: &'static str,
    runs: &Arc<AtomicUsize>,
) -> impl FnOnce(&mut DbConn) -> Result<(), ApiError> + Clone + Send + 'static {
    let runs = runs.clone();
    move |c: &mut DbConn| {
        runs.fetch_add(1, Ordering::SeqCst);
        diesel::insert_into(meta::table)
            .values((meta::key.eq(key), meta::value.eq("x")))
            .execute(c)?;
        Ok(())
    }
}

/// One failing job in a batch fails alone: its caller gets its own error, the jobs before
/// and after it in the same batch commit. The batch ran once without savepoints up to the
/// failure, then again with one per job.
#[tokio::test]
async fn a_failing_job_fails_alone_in_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Store::sqlite_url(dir.path()), SqliteSync::Normal).unwrap();
    let runs: [Arc<AtomicUsize>; 3] = Default::default();
    let blocked = blocker(&store);
    let a = store.write(insert("a", &runs[0]));
    let insert_b = insert("b", &runs[1]);
    let b = store.write(move |c| {
        insert_b(c)?;
        Err::<(), _>(ApiError::invalid("b", "refused inside the transaction"))
    });
    let c = store.write(insert("c", &runs[2]));
    let (blocked, a, b, c) = tokio::join!(blocked, a, b, c);
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
    let runs: Vec<usize> = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
    assert_eq!(
        runs,
        [2, 2, 1],
        "a and b ran in both attempts, c in the retry only"
    );
}

/// A batch in which every job succeeds runs each job once, in order, and commits them all.
#[tokio::test]
async fn a_batch_without_failures_runs_each_job_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Store::sqlite_url(dir.path()), SqliteSync::Normal).unwrap();
    let runs: [Arc<AtomicUsize>; 3] = Default::default();
    let blocked = blocker(&store);
    let a = store.write(insert("a", &runs[0]));
    let b = store.write(insert("b", &runs[1]));
    let c = store.write(insert("c", &runs[2]));
    let (blocked, a, b, c) = tokio::join!(blocked, a, b, c);
    blocked.unwrap();
    a.unwrap();
    b.unwrap();
    c.unwrap();
    let rows = store
        .read(|c| Ok((count(c, "a"), count(c, "b"), count(c, "c"))))
        .await
        .unwrap();
    assert_eq!(rows, (1, 1, 1));
    let runs: Vec<usize> = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
    assert_eq!(runs, [1, 1, 1]);
}
