//! Every metric, declared and described once (`confab_` prefix, `_total` counters, `_seconds`
//! histograms with explicit buckets, bounded labels: route template, method, status class,
//! transport, reason; never a thread or user id).
//!
//! The Prometheus recorder is installed once per process; `/metrics` renders it, and the
//! dashboard samples the same rendering, so there is one registry and no second set of
//! counters kept by hand.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

// --- requests (RED) ---
pub const HTTP_REQUESTS: &str = "confab_http_requests_total";
pub const HTTP_DURATION: &str = "confab_http_request_duration_seconds";
// --- usage ---
pub const MESSAGES_SENT: &str = "confab_messages_sent_total";
pub const MESSAGES_EDITED: &str = "confab_messages_edited_total";
pub const MESSAGES_SENTIMENT: &str = "confab_messages_sentiment_total";
pub const TRANSLATION_FAILURES: &str = "confab_translation_failures_total";
pub const TRANSCRIPTIONS: &str = "confab_transcriptions_total";
pub const MESSAGES_DELETED: &str = "confab_messages_deleted_total";
pub const THREADS_CREATED: &str = "confab_threads_created_total";
pub const THREADS_DELETED: &str = "confab_threads_deleted_total";
pub const THREAD_ACTORS_LIVE: &str = "confab_thread_actors_live";
pub const PARTICIPANTS_ADDED: &str = "confab_participants_added_total";
pub const PARTICIPANTS_REMOVED: &str = "confab_participants_removed_total";
pub const READ_RECEIPTS: &str = "confab_read_receipts_total";
pub const RECEIPTS_SUPPRESSED: &str = "confab_receipts_suppressed_total";
pub const TYPING_SENT: &str = "confab_typing_notifications_total";
pub const TYPING_SUPPRESSED: &str = "confab_typing_suppressed_total";
pub const IDENTITIES_CREATED: &str = "confab_identities_created_total";
pub const TOKENS_ISSUED: &str = "confab_tokens_issued_total";
pub const TOKENS_REVOKED: &str = "confab_tokens_revoked_total";
// --- real time ---
pub const REALTIME_SESSIONS: &str = "confab_realtime_sessions";
pub const ACTIVE_SENDERS: &str = "confab_active_senders";
pub const REALTIME_OPENED: &str = "confab_realtime_sessions_opened_total";
pub const REALTIME_CLOSED: &str = "confab_realtime_sessions_closed_total";
pub const EVENTS_DELIVERED: &str = "confab_realtime_events_delivered_total";
pub const SLOW_CONSUMERS: &str = "confab_realtime_slow_consumer_disconnects_total";
pub const RESUMES: &str = "confab_realtime_resumes_total";
// --- saturation and internals ---
pub const WRITER_BATCH_SIZE: &str = "confab_writer_batch_size";
pub const WRITER_COMMIT_SECONDS: &str = "confab_writer_commit_duration_seconds";
pub const WRITER_BATCH_RETRIES: &str = "confab_writer_batch_retries_total";
pub const WRITER_STATEMENT_BATCHES: &str = "confab_writer_statement_batches_total";
pub const POOL_IN_USE: &str = "confab_db_pool_connections_in_use";
pub const RATE_LIMITED: &str = "confab_rate_limited_total";
pub const AUTH_FAILURES: &str = "confab_auth_failures_total";
pub const BUILD_INFO: &str = "confab_build_info";
// cluster mode (contract §9.3)
pub const CLUSTER_NODES: &str = "confab_cluster_nodes";
pub const CLUSTER_BUS: &str = "confab_cluster_bus_connected";

// --- webhooks ---
pub const WEBHOOK_DELIVERIES: &str = "confab_webhook_deliveries_total";
pub const WEBHOOK_DURATION: &str = "confab_webhook_delivery_duration_seconds";
pub const WEBHOOK_QUEUE: &str = "confab_webhook_queue_depth";
pub const WEBHOOK_OLDEST: &str = "confab_webhook_oldest_pending_age_seconds";
pub const WEBHOOK_EVENTS: &str = "confab_webhook_events_total";

/// Webhook attempt latency buckets (seconds), up to the 30 s attempt timeout.
const WEBHOOK_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Latency buckets (seconds), from 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Write batch sizes.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(WRITER_BATCH_SIZE.into()), BATCH_BUCKETS)
                })
                // a full-name matcher wins over the suffix one
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(WEBHOOK_DURATION.into()),
                        WEBHOOK_BUCKETS,
                    )
                })
                .expect("static bucket lists are valid");
            let handle = builder.install_recorder().unwrap_or_else(|e| {
                // Another recorder owns the process (an embedding program): keep ours private.
                tracing::warn!(error = %e, "a metrics recorder is already installed");
                PrometheusBuilder::new().build_recorder().handle()
            });
            describe();
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter as c, describe_gauge as g, describe_histogram as h, Unit};
    c!(
        HTTP_REQUESTS,
        "HTTP requests by route template, method and status class"
    );
    h!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request duration by route template and method"
    );
    c!(
        MESSAGES_SENT,
        "Messages sent (committed) by type and priority"
    );
    c!(MESSAGES_EDITED, "Messages edited");
    c!(
        TRANSLATION_FAILURES,
        "Translations that failed (translator unreachable, failing, slow or garbled)"
    );
    c!(TRANSCRIPTIONS, "Transcriptions by outcome (ok, failed)");
    c!(
        MESSAGES_SENTIMENT,
        "Messages and edits scored for sentiment, by label"
    );
    c!(MESSAGES_DELETED, "Messages deleted");
    c!(THREADS_CREATED, "Threads created");
    c!(
        THREADS_DELETED,
        "Threads deleted (by a user or a retention policy)"
    );
    g!(THREAD_ACTORS_LIVE, "Thread actors in memory");
    g!(
        CLUSTER_NODES,
        "Cluster mode: live nodes this node sees in the node table"
    );
    g!(
        CLUSTER_BUS,
        "Cluster mode: 1 while this node is connected to NATS, else 0"
    );
    c!(PARTICIPANTS_ADDED, "Participants added to existing threads");
    c!(PARTICIPANTS_REMOVED, "Participants removed from threads");
    c!(READ_RECEIPTS, "Read receipts stored (moved forward)");
    c!(
        RECEIPTS_SUPPRESSED,
        "Read receipts accepted but not stored or sent because the thread is above --receipts-max-participants"
    );
    c!(
        TYPING_SENT,
        "Typing notifications delivered to the other participants"
    );
    c!(
        TYPING_SUPPRESSED,
        "Typing notifications accepted but not sent because the thread is above --receipts-max-participants"
    );
    c!(IDENTITIES_CREATED, "Identities created");
    c!(TOKENS_ISSUED, "User access tokens issued");
    c!(TOKENS_REVOKED, "Token revocations");
    g!(
        REALTIME_SESSIONS,
        "Open real-time sessions by transport (long-poll: polls waiting)"
    );
    g!(
        ACTIVE_SENDERS,
        "Distinct users who sent a message through this node in the last hour"
    );
    c!(REALTIME_OPENED, "Real-time sessions opened by transport");
    c!(
        REALTIME_CLOSED,
        "Real-time sessions closed by transport and reason"
    );
    c!(
        EVENTS_DELIVERED,
        "Real-time events appended to a user's stream"
    );
    c!(
        SLOW_CONSUMERS,
        "Real-time sessions closed with 4008 because their queue overflowed"
    );
    c!(
        RESUMES,
        "Reconnects with a cursor by outcome (recovered, not_recovered)"
    );
    h!(WRITER_BATCH_SIZE, "Changes committed per write transaction");
    h!(
        WRITER_COMMIT_SECONDS,
        Unit::Seconds,
        "Time to run and commit one write batch"
    );
    c!(
        WRITER_STATEMENT_BATCHES,
        "PostgreSQL: write batches of pure sends committed as one statement, with no \
         transaction block (a send with no idempotency record and no webhook subscription \
         for its events)"
    );
    c!(
        WRITER_BATCH_RETRIES,
        "Write batches run again with a savepoint per change, by reason: failed (a change \
         failed) or moved (a group of sends found a thread row moved from where its actor \
         trusted it was: another node wrote the thread, or moved its membership)"
    );
    g!(POOL_IN_USE, "Read-pool connections in use");
    c!(
        RATE_LIMITED,
        "Requests refused with 429 by the rate limiter"
    );
    c!(AUTH_FAILURES, "Refused credentials by reason");
    g!(BUILD_INFO, "Build information (always 1)");
    c!(
        WEBHOOK_DELIVERIES,
        "Webhook delivery attempts by result (delivered, retrying, dead_lettered)"
    );
    h!(
        WEBHOOK_DURATION,
        Unit::Seconds,
        "Webhook delivery attempt latency, until the endpoint answered or failed"
    );
    g!(
        WEBHOOK_QUEUE,
        "Webhook deliveries waiting (pending or retrying)"
    );
    g!(
        WEBHOOK_OLDEST,
        "Age of the oldest webhook delivery still waiting (0 when none)"
    );
    c!(
        WEBHOOK_EVENTS,
        "Webhook outbox rows written, one per (event, subscription)"
    );
}

/// Records one committed write batch.
pub fn record_write_batch(size: usize, took: Duration) {
    metrics::histogram!(WRITER_BATCH_SIZE).record(size as f64);
    metrics::histogram!(WRITER_COMMIT_SECONDS).record(took.as_secs_f64());
}

/// Records a write batch run again: `moved` if its group of sends found a trusted thread row
/// moved, else because a change failed.
pub fn record_write_batch_retry(moved: bool) {
    let reason = if moved { "moved" } else { "failed" };
    metrics::counter!(WRITER_BATCH_RETRIES, "reason" => reason).increment(1);
}

/// `2xx`, `4xx`, … for a status code.
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// Records one HTTP request (RED).
pub fn record_request(route: &str, method: &str, status: u16, took: Duration) {
    let route = route.to_string();
    let method = match method {
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" | "HEAD" => method.to_string(),
        _ => "other".to_string(),
    };
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method.clone(), "status_class" => status_class(status))
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method)
        .record(took.as_secs_f64());
}
