//! Every metric name, declared and described once. The Prometheus exporter and the dashboard
//! read the same registry (installed by the monitoring work); without a recorder these calls
//! are no-ops.

use std::time::Duration;

pub const RECEIPTS_SUPPRESSED: &str = "confab_receipts_suppressed_total";
pub const TYPING_SUPPRESSED: &str = "confab_typing_suppressed_total";
pub const AUTH_FAILURES: &str = "confab_auth_failures_total";
pub const RATE_LIMITED: &str = "confab_rate_limited_total";
pub const WRITER_BATCH_SIZE: &str = "confab_writer_batch_size";
pub const WRITER_COMMIT_SECONDS: &str = "confab_writer_commit_duration_seconds";
pub const THREAD_ACTORS_LIVE: &str = "confab_thread_actors_live";
pub const REALTIME_SESSIONS: &str = "confab_realtime_sessions";
pub const TYPING_SENT: &str = "confab_typing_notifications_total";
pub const EVENTS_DELIVERED: &str = "confab_realtime_events_delivered_total";
pub const SLOW_CONSUMERS: &str = "confab_realtime_slow_consumer_disconnects_total";

/// Describes every metric (so exporters print HELP lines).
pub fn describe() {
    metrics::describe_counter!(
        RECEIPTS_SUPPRESSED,
        "Read receipts accepted but not stored or sent because the thread is above --receipts-max-participants"
    );
    metrics::describe_counter!(
        TYPING_SUPPRESSED,
        "Typing notifications accepted but not sent because the thread is above --receipts-max-participants"
    );
    metrics::describe_counter!(AUTH_FAILURES, "Refused credentials by reason");
    metrics::describe_counter!(
        RATE_LIMITED,
        "Requests refused with 429 by the rate limiter"
    );
    metrics::describe_histogram!(WRITER_BATCH_SIZE, "Changes committed per write transaction");
    metrics::describe_histogram!(
        WRITER_COMMIT_SECONDS,
        metrics::Unit::Seconds,
        "Time to run and commit one write batch"
    );
    metrics::describe_gauge!(THREAD_ACTORS_LIVE, "Thread actors in memory");
    metrics::describe_gauge!(REALTIME_SESSIONS, "Open real-time sessions by transport");
    metrics::describe_counter!(
        TYPING_SENT,
        "Typing notifications delivered to the other participants"
    );
    metrics::describe_counter!(
        EVENTS_DELIVERED,
        "Real-time events appended to a user's stream"
    );
    metrics::describe_counter!(
        SLOW_CONSUMERS,
        "Real-time sessions closed with 4008 because their queue overflowed"
    );
}

/// Records one committed write batch.
pub fn record_write_batch(size: usize, took: Duration) {
    metrics::histogram!(WRITER_BATCH_SIZE).record(size as f64);
    metrics::histogram!(WRITER_COMMIT_SECONDS).record(took.as_secs_f64());
}
