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

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use serde_json::{json, Value};
use sha2::Sha256;

use super::{ssrf, Webhooks};
use crate::ids::{fmt_ms, now_ms};
use crate::store::models::{AttemptOutcome, Delivery, Subscription};
use crate::store::webhooks;

/// Attempts in flight per subscription.
pub const PER_SUBSCRIPTION: usize = 8;
/// One attempt's limit, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest the dispatcher sleeps without a wake-up (also the backlog gauges' period).
const IDLE_SCAN: Duration = Duration::from_secs(5);
/// Delivered rows are kept this long (dead letters until their subscription is deleted).
pub const DELIVERED_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an old secret keeps signing after a new one is set.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3600 * 1000;

/// The retry schedule: the delay after the n-th failed attempt (the last repeats).
const SCHEDULE_SECS: &[u64] = &[10, 30, 60, 300, 600, 1800, 3600, 10_800, 21_600, 43_200];

pub const USER_AGENT: &str = concat!("confab-webhooks/", env!("CARGO_PKG_VERSION"));

/// The delay before the next attempt after `failed` failed attempts (1-based), with jitter in
/// [0.8, 1.2] and scaled by `--webhook-retry-scale`.
pub fn retry_delay(failed: i32, scale: f64) -> Duration {
    let i = usize::try_from(failed.max(1) - 1).unwrap_or(0);
    let base = SCHEDULE_SECS[i.min(SCHEDULE_SECS.len() - 1)] as f64;
    let jitter = rand::thread_rng().gen_range(0.8..=1.2);
    Duration::from_secs_f64(base * jitter * scale)
}

/// The HMAC key of a `whsec_…` secret: base64 of 24 to 64 bytes.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let key = B64.decode(secret.strip_prefix("whsec_")?).ok()?;
    (24..=64).contains(&key.len()).then_some(key)
}

/// `webhook-signature`: one `v1,<base64>` entry per key, space-separated.
pub fn signature(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| {
            let mut mac = Hmac::<Sha256>::new_from_slice(k).expect("HMAC takes any key length");
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The keys that sign for a subscription now: its secret, and the previous one during the
/// rotation overlap.
pub fn signing_keys(s: &Subscription, now: i64) -> Vec<Vec<u8>> {
    let old = s
        .old_secret
        .as_deref()
        .filter(|_| s.old_secret_until.is_some_and(|u| u > now));
    s.secret
        .as_deref()
        .into_iter()
        .chain(old)
        .filter_map(secret_key)
        .collect()
}

pub const CLOUD_EVENTS: &str = "CloudEventSchemaV1_0";

/// The body and content type of one delivery in a subscription's schema (contract §7.3).
pub fn envelope(
    schema: &str,
    topic: &str,
    id: &str,
    event_type: &str,
    subject: &str,
    time: i64,
    data: Value,
) -> (&'static str, String) {
    if schema == CLOUD_EVENTS {
        let e = json!({
            "specversion": "1.0",
            "id": id,
            "source": topic,
            "subject": subject,
            "type": event_type,
            "time": fmt_ms(time),
            "datacontenttype": "application/json",
            "data": data,
        });
        ("application/cloudevents+json; charset=utf-8", e.to_string())
    } else {
        let e = json!([{
            "id": id,
            "topic": topic,
            "subject": subject,
            "eventType": event_type,
            "eventTime": fmt_ms(time),
            "dataVersion": "1.0",
            "metadataVersion": "1",
            "data": data,
        }]);
        ("application/json; charset=utf-8", e.to_string())
    }
}

/// The HTTP client for webhooks: redirects are not followed, and every address it dials has
/// passed [`ssrf::GuardedResolver`].
pub fn client(allow_private: bool) -> awc::Client {
    let tcp = actix_tls::connect::Connector::new(actix_tls::connect::Resolver::custom(
        ssrf::GuardedResolver { allow_private },
    ))
    .service();
    awc::Client::builder()
        .disable_redirects()
        .timeout(ATTEMPT_TIMEOUT)
        .connector(
            awc::Connector::new()
                .connector(tcp)
                .timeout(Duration::from_secs(10)),
        )
        .finish()
}

/// How one attempt ended.
#[derive(Debug)]
pub enum Answer {
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
    /// Timeout, refused connection, blocked address, TLS failure…
    Failed(String),
}

/// An endpoint's answer.
pub struct Reply {
    pub status: u16,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: bytes::Bytes,
}

/// Sends one request to an endpoint after checking its URL (the client's resolver checks the
/// addresses dialled). Up to 64 KiB of the answer's body is read.
pub async fn exchange(
    client: &awc::Client,
    method: actix_web::http::Method,
    url: &str,
    allow_private: bool,
    headers: Vec<(&'static str, String)>,
    body: Option<(&str, String)>,
) -> Result<Reply, String> {
    let endpoint = ssrf::check_url(url, allow_private)?;
    let mut req = client
        .request(method, endpoint.uri)
        .insert_header(("User-Agent", USER_AGENT));
    for (k, v) in headers {
        req = req.insert_header((k, v));
    }
    let sent = match body {
        Some((content_type, body)) => {
            req.insert_header(("Content-Type", content_type))
                .send_body(body)
                .await
        }
        None => req.send().await,
    };
    let mut res = sent.map_err(|e| e.to_string())?;
    let body = res.body().limit(64 * 1024).await.unwrap_or_default();
    Ok(Reply {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body,
    })
}

/// Sends one delivery.
pub async fn send(
    client: &awc::Client,
    url: &str,
    allow_private: bool,
    headers: Vec<(&'static str, String)>,
    content_type: &str,
    body: String,
) -> Answer {
    let post = actix_web::http::Method::POST;
    match exchange(
        client,
        post,
        url,
        allow_private,
        headers,
        Some((content_type, body)),
    )
    .await
    {
        Ok(r) => Answer::Status {
            code: r.status,
            retry_after: retry_after(&r.headers),
        },
        Err(e) => Answer::Failed(e),
    }
}

/// What the validation handshake needs (contract §7.2).
pub struct Handshake<'a> {
    pub schema: &'a str,
    pub url: &'a str,
    pub allow_private: bool,
    pub topic: &'a str,
    pub name: &'a str,
    pub code: &'a str,
    pub validation_url: &'a str,
    /// `WebHook-Request-Origin` (CloudEvents): confab's host name.
    pub origin: &'a str,
}

/// Runs the handshake; true when the endpoint answered as the schema requires.
pub async fn handshake(h: &Handshake<'_>) -> bool {
    let client = client(h.allow_private);
    if h.schema == CLOUD_EVENTS {
        let headers = vec![("WebHook-Request-Origin", h.origin.to_string())];
        let options = actix_web::http::Method::OPTIONS;
        return match exchange(&client, options, h.url, h.allow_private, headers, None).await {
            Ok(r) if r.status == 200 => r
                .headers
                .get("webhook-allowed-origin")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == "*" || v.trim().eq_ignore_ascii_case(h.origin)),
            _ => false,
        };
    }
    let body = json!([{
        "id": uuid::Uuid::new_v4().to_string(),
        "topic": h.topic,
        "subject": "",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": fmt_ms(now_ms()),
        "metadataVersion": "1",
        "dataVersion": "1",
        "data": { "validationCode": h.code, "validationUrl": h.validation_url },
    }]);
    let headers = vec![
        ("aeg-event-type", "SubscriptionValidation".to_string()),
        ("aeg-subscription-name", h.name.to_string()),
        ("aeg-delivery-count", "0".to_string()),
        ("aeg-data-version", "1".to_string()),
        ("aeg-metadata-version", "1".to_string()),
    ];
    let post = actix_web::http::Method::POST;
    let body = Some(("application/json; charset=utf-8", body.to_string()));
    match exchange(&client, post, h.url, h.allow_private, headers, body).await {
        Ok(r) if r.status == 200 => serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| {
                v.get("validationResponse")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .is_some_and(|v| v.eq_ignore_ascii_case(h.code)),
        _ => false,
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(h: &actix_web::http::header::HeaderMap) -> Option<Duration> {
    let v = h.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
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
}

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
        let (subs, rows, next) = self
            .webhooks
            .store()
            .read(move |c| {
                let subs = webhooks::subscriptions(c)?;
                let (mut rows, mut next) = (Vec::new(), None::<i64>);
                for s in subs.iter().filter(|s| super::is_active(s)) {
                    let used = in_flight.get(&s.key).copied().unwrap_or(0);
                    let free = PER_SUBSCRIPTION.saturating_sub(used) as i64;
                    if free == 0 {
                        // a finishing attempt wakes the loop
                        continue;
                    }
                    rows.extend(webhooks::due(c, &s.key, now, &busy, free)?);
                    if let Some(t) = webhooks::next_due(c, &s.key, &busy)? {
                        next = Some(next.map_or(t, |n| n.min(t)));
                    }
                }
                Ok((subs, rows, next))
            })
            .await?;
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
    fn standard_webhooks_signature() {
        // The example of the Standard Webhooks specification's reference libraries.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = signature(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_24_to_64_bytes_of_base64() {
        assert!(secret_key(&format!("whsec_{}", B64.encode([7u8; 24]))).is_some());
        assert!(secret_key(&format!("whsec_{}", B64.encode([7u8; 64]))).is_some());
        assert!(secret_key(&format!("whsec_{}", B64.encode([7u8; 23]))).is_none());
        assert!(secret_key(&format!("whsec_{}", B64.encode([7u8; 65]))).is_none());
        assert!(secret_key(&B64.encode([7u8; 32])).is_none());
        assert!(secret_key("whsec_not base64!").is_none());
    }

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
