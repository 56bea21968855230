//! Queries on `event_subscriptions` and `webhook_deliveries` (the webhook outbox).
//!
//! A delivery is due while `next_attempt_at` is set: the dispatcher's scan is a range on that
//! column alone. Delivered and dead-lettered rows have it cleared.

use diesel::dsl::{count_star, min};
use diesel::prelude::*;

use super::models::{AttemptOutcome, Delivery, NewDelivery, Subscription};
use super::schema::{event_subscriptions as subs, webhook_deliveries as dl};
use super::DbConn;
use crate::model::{DeliveryStatus, ProvisioningState, SubscriptionStatus};

// The stored delivery states, as the queries below compare them.
pub const PENDING: &str = DeliveryStatus::Pending.as_str();
pub const RETRYING: &str = DeliveryStatus::Retrying.as_str();
pub const DELIVERED: &str = DeliveryStatus::Delivered.as_str();
pub const DEAD_LETTERED: &str = DeliveryStatus::DeadLettered.as_str();

pub fn subscriptions(c: &mut DbConn) -> QueryResult<Vec<Subscription>> {
    subs::table
        .order(subs::key.asc())
        .select(Subscription::as_select())
        .load(c)
}

pub fn subscription(c: &mut DbConn, key: &str) -> QueryResult<Option<Subscription>> {
    subs::table
        .find(key)
        .select(Subscription::as_select())
        .first(c)
        .optional()
}

/// Inserts or replaces a subscription row.
pub fn put_subscription(c: &mut DbConn, s: &Subscription) -> QueryResult<()> {
    let n = diesel::update(subs::table.find(&s.key)).set(s).execute(c)?;
    if n == 0 {
        diesel::insert_into(subs::table).values(s).execute(c)?;
    }
    Ok(())
}

/// Deletes a subscription and every delivery it has (pending ones are dropped).
pub fn delete_subscription(c: &mut DbConn, key: &str) -> QueryResult<usize> {
    diesel::delete(dl::table.filter(dl::subscription.eq(key))).execute(c)?;
    diesel::delete(subs::table.find(key)).execute(c)
}

/// Disables a subscription (its endpoint answered 410).
pub fn disable(c: &mut DbConn, key: &str, now: i64) -> QueryResult<usize> {
    diesel::update(subs::table.find(key))
        .set((
            subs::status.eq(SubscriptionStatus::Disabled.as_str()),
            subs::updated_at.eq(now),
        ))
        .execute(c)
}

/// Marks a subscription validated by its manual validation link (the code stays, so the link
/// keeps answering 200).
pub fn validated(c: &mut DbConn, key: &str, now: i64) -> QueryResult<usize> {
    diesel::update(subs::table.find(key))
        .set((
            subs::provisioning_state.eq(ProvisioningState::Succeeded.as_str()),
            subs::validation_expires.eq(None::<i64>),
            subs::updated_at.eq(now),
        ))
        .execute(c)
}

/// Inserts outbox rows, one statement each (`MultiConnection` has no multi-row insert).
pub fn insert_deliveries(c: &mut DbConn, rows: &[NewDelivery<'_>]) -> QueryResult<usize> {
    let mut n = 0;
    for row in rows {
        n += diesel::insert_into(dl::table).values(row).execute(c)?;
    }
    Ok(n)
}

/// A subscription's due deliveries, oldest due first, skipping `busy` (in flight) rows.
pub fn due(
    c: &mut DbConn,
    key: &str,
    now: i64,
    busy: &[i64],
    limit: i64,
) -> QueryResult<Vec<Delivery>> {
    dl::table
        .filter(dl::subscription.eq(key))
        .filter(dl::next_attempt_at.le(now))
        .filter(dl::seq.ne_all(busy))
        .order(dl::next_attempt_at.asc())
        .limit(limit)
        .select(Delivery::as_select())
        .load(c)
}

/// Cluster mode: claims up to `limit` of a subscription's due deliveries for this node, by
/// moving their next attempt to `until` (the lease): the other nodes see them due again only
/// if this node dies before recording the attempt. Rows another node is claiming right now
/// are skipped, not waited for. Runs in a write transaction.
pub fn claim_due(
    c: &mut DbConn,
    key: &str,
    now: i64,
    busy: &[i64],
    limit: i64,
    until: i64,
) -> QueryResult<Vec<Delivery>> {
    let due = dl::table
        .filter(dl::subscription.eq(key))
        .filter(dl::next_attempt_at.le(now))
        .filter(dl::seq.ne_all(busy))
        .order(dl::next_attempt_at.asc())
        .limit(limit)
        .select(dl::seq);
    let seqs: Vec<i64> = match c {
        #[cfg(feature = "postgres")]
        DbConn::Pg(pg) => due.for_update().skip_locked().load(pg)?,
        // (one process: nothing to skip)
        DbConn::Sqlite(s) => due.load(s)?,
    };
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    diesel::update(dl::table.filter(dl::seq.eq_any(&seqs)))
        .set(dl::next_attempt_at.eq(until))
        .execute(c)?;
    dl::table
        .filter(dl::seq.eq_any(&seqs))
        .order(dl::seq.asc())
        .select(Delivery::as_select())
        .load(c)
}

/// The earliest time one of a subscription's waiting deliveries (not in flight) is due.
pub fn next_due(c: &mut DbConn, key: &str, busy: &[i64]) -> QueryResult<Option<i64>> {
    dl::table
        .filter(dl::subscription.eq(key))
        .filter(dl::seq.ne_all(busy))
        .select(min(dl::next_attempt_at))
        .first(c)
}

/// Records an attempt's outcome unless the row changed meanwhile (replayed, or its
/// subscription deleted): `attempts` is the count the attempt started from.
pub fn record_attempt(
    c: &mut DbConn,
    seq: i64,
    started_from: i32,
    outcome: &AttemptOutcome,
) -> QueryResult<usize> {
    diesel::update(
        dl::table
            .filter(dl::seq.eq(seq))
            .filter(dl::attempts.eq(started_from))
            .filter(dl::next_attempt_at.is_not_null()),
    )
    .set(outcome)
    .execute(c)
}

/// Dead-letters every due-or-waiting delivery of a subscription (after a 410).
pub fn dead_letter_pending(c: &mut DbConn, key: &str, reason: &str) -> QueryResult<usize> {
    diesel::update(
        dl::table
            .filter(dl::subscription.eq(key))
            .filter(dl::next_attempt_at.is_not_null()),
    )
    .set((
        dl::status.eq(DEAD_LETTERED),
        dl::next_attempt_at.eq(None::<i64>),
        dl::dead_letter_reason.eq(reason),
    ))
    .execute(c)
}

/// Deliveries newest first: one subscription's (or every one's, for the dashboard),
/// optionally by status and below a `seq`.
pub fn list(
    c: &mut DbConn,
    key: Option<&str>,
    status: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Delivery>> {
    let mut q = dl::table
        .select(Delivery::as_select())
        .order(dl::seq.desc())
        .limit(limit)
        .into_boxed();
    if let Some(k) = key {
        q = q.filter(dl::subscription.eq(k.to_string()));
    }
    if let Some(s) = status {
        q = q.filter(dl::status.eq(s.to_string()));
    }
    if let Some(b) = before {
        q = q.filter(dl::seq.lt(b));
    }
    q.load(c)
}

/// Re-queues a delivery now with its attempt count reset; the `webhook-id` (event id) stays.
pub fn replay(c: &mut DbConn, key: &str, event_id: &str, now: i64) -> QueryResult<usize> {
    diesel::update(
        dl::table
            .filter(dl::subscription.eq(key))
            .filter(dl::event_id.eq(event_id)),
    )
    .set((
        dl::status.eq(PENDING),
        dl::attempts.eq(0),
        dl::next_attempt_at.eq(Some(now)),
        dl::dead_letter_reason.eq(None::<String>),
        // A replay is a new delivery as far as the TTL goes.
        dl::created_at.eq(now),
    ))
    .execute(c)
}

/// (deliveries waiting, the oldest waiting one's creation time).
pub fn backlog(c: &mut DbConn) -> QueryResult<(i64, Option<i64>)> {
    dl::table
        .filter(dl::next_attempt_at.is_not_null())
        .select((count_star(), min(dl::created_at)))
        .first(c)
}

/// Drops delivered rows older than `before` (dead letters stay until their subscription goes).
pub fn purge_delivered(c: &mut DbConn, before: i64) -> QueryResult<usize> {
    diesel::delete(
        dl::table
            .filter(dl::status.eq(DELIVERED))
            .filter(dl::last_attempt_at.lt(before)),
    )
    .execute(c)
}
