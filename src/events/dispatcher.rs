//! Delivers the webhook outbox (contract §7.5, §7.6): at least once, no ordering, at most
//! [`PER_SUBSCRIPTION`] attempts in flight per subscription, retries on the schedule with
//! jitter, dead letters, Standard Webhooks signatures.
//!
//! It runs on the server's own actix system (awc is single-threaded). Rows are read from and
//! written back to the store, so whatever was due when the process died is due again after a
//! restart: a delivery interrupted mid-attempt is sent again with the same `webhook-id`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

use super::client::{client, send, Answer};
use super::envelope::envelope;
use super::signing::{signature, signing_keys};
use super::Webhooks;
use crate::ids::now_ms;
use crate::store::models::{AttemptOutcome, Delivery, Subscription};
use crate::store::webhooks;

/// Attempts in flight per subscription.
pub const PER_SUBSCRIPTION: usize = 8;
/// The longest the dispatcher sleeps without a wake-up (also the backlog gauges' period).
const IDLE_SCAN: Duration = Duration::from_secs(5);
/// Delivered rows are kept this long (dead letters until their subscription is deleted).
pub const DELIVERED_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// The retry schedule: the delay after the n-th failed attempt (the last repeats).
const SCHEDULE_SECS: &[u64] = &[10, 30, 60, 300, 600, 1800, 3600, 10_800, 21_600, 43_200];

/// The delay before the next attempt after `failed` failed attempts (1-based), with jitter in
/// [0.8, 1.2] and scaled by `--webhook-retry-scale`.
pub fn retry_delay(failed: i32, scale: f64) -> Duration {
    let i = usize::try_from(failed.max(1) - 1).unwrap_or(0);
    let base = SCHEDULE_SECS[i.min(SCHEDULE_SECS.len() - 1)] as f64;
    let jitter = rand::thread_rng().gen_range(0.8..=1.2);
    Duration::from_secs_f64(base * jitter * scale)
}

/// What to do with a row after an attempt (contract §7.6).
pub fn outcome(
    d: &Delivery,
    s: &Subscription,
    answer: &Answer,
    now: i64,
    scale: f64,
    latency_ms: i64,
) -> AttemptOutcome {
    let attempts = d.attempts + 1;
    let code = match answer {
        Answer::Status { code, .. } => Some(i32::from(*code)),
        Answer::Failed(_) => None,
    };
    let done = |status: &str, reason: Option<&str>| AttemptOutcome {
        status: status.to_string(),
        attempts,
        next_attempt_at: None,
        last_attempt_at: Some(now),
        last_status_code: code,
        last_latency_ms: Some(latency_ms),
        dead_letter_reason: reason.map(str::to_string),
    };
    match answer {
        Answer::Status {
            code: 200..=204, ..
        } => return done(webhooks::DELIVERED, None),
        Answer::Status {
            code: 400 | 401 | 403 | 413,
            ..
        } => return done(webhooks::DEAD_LETTERED, Some("NonRetryableStatus")),
        Answer::Status { code: 410, .. } => {
            return done(webhooks::DEAD_LETTERED, Some("EndpointGone"))
        }
        _ => {}
    }
    if attempts >= s.max_attempts {
        return done(webhooks::DEAD_LETTERED, Some("MaxDeliveryAttemptsExceeded"));
    }
    let mut delay = retry_delay(attempts, scale);
    if let Answer::Status {
        code: 429 | 503,
        retry_after: Some(ra),
    } = answer
    {
        delay = delay.max(*ra);
    }
    let next = now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
    if next > deadline(d, s) {
        return done(webhooks::DEAD_LETTERED, Some("TimeToLiveExceeded"));
    }
    AttemptOutcome {
        status: webhooks::RETRYING.to_string(),
        next_attempt_at: Some(next),
        ..done(webhooks::RETRYING, None)
    }
}

/// When retrying stops: `eventTimeToLiveInMinutes` after the event (or after its replay).
fn deadline(d: &Delivery, s: &Subscription) -> i64 {
    d.event_time.max(d.created_at) + i64::from(s.ttl_minutes) * 60_000
}

/// The settings the dispatcher reads (from `Config`).
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// `--webhook-allow-private`: private addresses and `http://` allowed.
    pub allow_private: bool,
    /// `--webhook-retry-scale`: multiplies the retry schedule (tests shrink it).
    pub retry_scale: f64,
    /// `--event-topic`: the `topic`/`source` of every envelope.
    pub event_topic: String,
    /// Cluster mode: every node dispatches, so each claims the rows it attempts (see
    /// `store::webhooks::claim_due`) instead of just reading what is due.
    pub cluster: bool,
}

/// How long a cluster node's claim on a delivery lasts: longer than any attempt, so that no
/// other node attempts it meanwhile, and a dead node's claims are taken over after it.
const CLAIM_LEASE: Duration =
    Duration::from_secs(crate::events::client::ATTEMPT_TIMEOUT.as_secs() + 5);

/// Starts the dispatcher on the current actix system.
pub fn spawn(webhooks: Arc<Webhooks>, config: DispatcherConfig) {
    actix_web::rt::spawn(async move {
        let d = Rc::new(Dispatcher {
            client: client(config.allow_private),
            webhooks,
            config,
            busy: RefCell::new(HashSet::new()),
            per_sub: RefCell::new(HashMap::new()),
        });
        d.run().await;
    });
}

struct Dispatcher {
    webhooks: Arc<Webhooks>,
    config: DispatcherConfig,
    client: awc::Client,
    /// Rows with an attempt in flight.
    busy: RefCell<HashSet<i64>>,
    /// Attempts in flight per subscription.
    per_sub: RefCell<HashMap<String, usize>>,
}

impl Dispatcher {
    async fn run(self: Rc<Self>) {
        let mut gauges_at = Instant::now() - IDLE_SCAN;
        loop {
            let sleep = match self.clone().scan().await {
                Ok(sleep) => sleep,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook scan failed");
                    IDLE_SCAN
                }
            };
            if gauges_at.elapsed() >= IDLE_SCAN {
                gauges_at = Instant::now();
                self.record_backlog().await;
            }
            tokio::select! {
                _ = actix_web::rt::time::sleep(sleep) => {}
                _ = self.webhooks.woken() => {}
            }
        }
    }

    /// Starts an attempt for each due row that may start; returns how long to sleep.
    ///
    /// Each active subscription is scanned for at most its free slots, so one subscription's
    /// backlog never holds up another's deliveries. Rows of inactive subscriptions wait.
    async fn scan(self: Rc<Self>) -> Result<Duration, crate::error::ApiError> {
        let busy: Vec<i64> = self.busy.borrow().iter().copied().collect();
        let in_flight = self.per_sub.borrow().clone();
        let now = now_ms();
        let claim_until = self
            .config
            .cluster
            .then(|| now + CLAIM_LEASE.as_millis() as i64);
        let scan = move |c: &mut crate::store::DbConn| {
            let subs = webhooks::subscriptions(c)?;
            let (mut rows, mut next) = (Vec::new(), None::<i64>);
            for s in subs.iter().filter(|s| super::is_active(s)) {
                let used = in_flight.get(&s.key).copied().unwrap_or(0);
                let free = PER_SUBSCRIPTION.saturating_sub(used) as i64;
                if free == 0 {
                    // a finishing attempt wakes the loop
                    continue;
                }
                rows.extend(match claim_until {
                    Some(until) => webhooks::claim_due(c, &s.key, now, &busy, free, until)?,
                    None => webhooks::due(c, &s.key, now, &busy, free)?,
                });
                if let Some(t) = webhooks::next_due(c, &s.key, &busy)? {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
            Ok((subs, rows, next))
        };
        let store = self.webhooks.store();
        let (subs, rows, next) = match claim_until {
            Some(_) => store.write(scan).await?,
            None => store.read(scan).await?,
        };
        let subs: HashMap<String, Rc<Subscription>> = subs
            .into_iter()
            .map(|s| (s.key.clone(), Rc::new(s)))
            .collect();
        let started = !rows.is_empty();
        for d in rows {
            let Some(s) = subs.get(&d.subscription).cloned() else {
                continue;
            };
            *self.per_sub.borrow_mut().entry(s.key.clone()).or_default() += 1;
            self.busy.borrow_mut().insert(d.seq);
            let me = self.clone();
            actix_web::rt::spawn(async move {
                let (seq, key) = (d.seq, s.key.clone());
                me.attempt(d, &s).await;
                me.busy.borrow_mut().remove(&seq);
                if let Some(n) = me.per_sub.borrow_mut().get_mut(&key) {
                    *n = n.saturating_sub(1);
                }
                me.webhooks.wake();
            });
        }
        let now = now_ms();
        Ok(match next {
            // rows just started: scan again for what their slots left
            _ if started => Duration::ZERO,
            Some(t) if t > now => Duration::from_millis((t - now) as u64).min(IDLE_SCAN),
            _ => IDLE_SCAN,
        })
    }

    async fn attempt(&self, d: Delivery, s: &Subscription) {
        let config = &self.config;
        let now = now_ms();
        let answer = if now > deadline(&d, s) {
            None
        } else {
            let data: Value = serde_json::from_str(&d.data).unwrap_or(Value::Null);
            let (content_type, body) = envelope(
                &s.delivery_schema,
                &config.event_topic,
                &d.event_id,
                &d.event_type,
                &d.subject,
                d.event_time,
                data,
            );
            let mut headers = vec![
                ("aeg-event-type", "Notification".to_string()),
                ("aeg-subscription-name", s.name.clone()),
                ("aeg-delivery-count", d.attempts.to_string()),
                ("aeg-data-version", "1.0".to_string()),
                ("aeg-metadata-version", "1".to_string()),
            ];
            let keys = signing_keys(s, now);
            if !keys.is_empty() {
                let ts = now / 1000;
                headers.push(("webhook-id", d.event_id.clone()));
                headers.push(("webhook-timestamp", ts.to_string()));
                headers.push((
                    "webhook-signature",
                    signature(&keys, &d.event_id, ts, body.as_bytes()),
                ));
            }
            let started = Instant::now();
            let answer = send(
                &self.client,
                &s.endpoint_url,
                config.allow_private,
                headers,
                content_type,
                body,
            )
            .await;
            let took = started.elapsed();
            metrics::histogram!(crate::metrics::WEBHOOK_DURATION).record(took.as_secs_f64());
            Some((answer, took))
        };
        let now = now_ms();
        let o = match &answer {
            Some((a, took)) => outcome(&d, s, a, now, config.retry_scale, took.as_millis() as i64),
            None => AttemptOutcome {
                status: webhooks::DEAD_LETTERED.into(),
                attempts: d.attempts,
                next_attempt_at: None,
                last_attempt_at: d.last_attempt_at,
                last_status_code: d.last_status_code,
                last_latency_ms: d.last_latency_ms,
                dead_letter_reason: Some("TimeToLiveExceeded".into()),
            },
        };
        if let Some((Answer::Failed(e), _)) = &answer {
            tracing::debug!(subscription = %s.name, event = %d.event_id, error = %e, "webhook attempt failed");
        }
        let result = match o.status.as_str() {
            webhooks::DELIVERED => "delivered",
            webhooks::RETRYING => "retrying",
            _ => "dead_lettered",
        };
        metrics::counter!(crate::metrics::WEBHOOK_DELIVERIES, "result" => result).increment(1);
        let gone = o.dead_letter_reason.as_deref() == Some("EndpointGone");
        let key = s.key.clone();
        let (seq, from) = (d.seq, d.attempts);
        let saved = self
            .webhooks
            .store()
            .write(move |c| {
                webhooks::record_attempt(c, seq, from, &o)?;
                if gone {
                    // 410: the subscription is disabled and what it still had waiting is dead.
                    webhooks::disable(c, &key, now)?;
                    webhooks::dead_letter_pending(c, &key, "EndpointGone")?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = saved {
            tracing::warn!(error = %e, "cannot record a webhook attempt; it will be retried");
        } else if gone {
            tracing::warn!(subscription = %s.name, "endpoint answered 410 Gone: subscription disabled");
            self.webhooks.reload().await;
        }
    }

    async fn record_backlog(&self) {
        let backlog = self
            .webhooks
            .store()
            .read(|c| Ok(webhooks::backlog(c)?))
            .await;
        if let Ok((n, oldest)) = backlog {
            metrics::gauge!(crate::metrics::WEBHOOK_QUEUE).set(n as f64);
            let age = oldest.map_or(0, |t| (now_ms() - t).max(0));
            metrics::gauge!(crate::metrics::WEBHOOK_OLDEST).set(age as f64 / 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_has_jitter_and_scale() {
        for (failed, base) in [
            (1, 10.0),
            (2, 30.0),
            (9, 21_600.0),
            (10, 43_200.0),
            (25, 43_200.0),
        ] {
            let d = retry_delay(failed, 1.0).as_secs_f64();
            assert!((base * 0.8..=base * 1.2).contains(&d), "{failed}: {d}");
        }
        let d = retry_delay(1, 0.001).as_secs_f64();
        assert!((0.008..=0.012).contains(&d), "{d}");
    }
}
