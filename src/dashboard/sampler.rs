//! Keeps the dashboard's history by sampling the same registry `/metrics` renders: every tick
//! it parses the Prometheus text of the one recorder, so the dashboard and Prometheus can never
//! disagree and no counter is kept twice.
//!
//! Two tiers: every sample of the last 360 ticks (an hour at the default 10 s), and one sample
//! a minute, without the per-route figures, for 25 hours (1,500 samples, about 1.5 MB).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

/// Cumulative values of one route.
#[derive(Debug, Clone, Default)]
pub struct RouteSample {
    pub requests: f64,
    /// 5xx answers.
    pub errors: f64,
    /// 4xx answers.
    pub client_errors: f64,
    pub buckets: BTreeMap<u64, f64>,
}

/// One reading of the registry.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// epoch ms
    pub at: i64,
    pub messages: f64,
    pub threads_created: f64,
    pub identities_created: f64,
    pub requests: f64,
    pub errors_5xx: f64,
    pub errors_4xx: f64,
    /// Distinct senders of the last hour (a gauge).
    pub active_senders: f64,
    /// Live sessions per transport (websocket, sse, longpoll).
    pub sessions_by_transport: BTreeMap<String, f64>,
    /// le (as f64 bits of seconds, ordered) → cumulative count, over all routes but the
    /// long-poll
    pub buckets: BTreeMap<u64, f64>,
    pub sessions: f64,
    pub actors: f64,
    pub slow_consumers: f64,
    pub auth_failures: f64,
    /// Age (s) of the oldest waiting webhook delivery, and how many wait.
    pub webhook_oldest: f64,
    pub webhook_queue: f64,
    /// Messages and edits scored for sentiment, and the negative ones (cumulative).
    pub sentiment_scored: f64,
    pub sentiment_negative: f64,
    pub routes: HashMap<(String, String), RouteSample>,
}

/// The route whose requests wait for events (kept out of the overall latency, as in the
/// `ConfabHighLatencyP99` rule).
pub const LONG_POLL_ROUTE: &str = "/realtime/poll";

/// `le` values sort as f64 through their bit pattern (all are positive).
fn le_key(le: &str) -> u64 {
    if le == "+Inf" {
        f64::INFINITY.to_bits()
    } else {
        le.parse::<f64>().unwrap_or(f64::INFINITY).to_bits()
    }
}

fn labels(s: &str) -> HashMap<&str, &str> {
    s.split("\",")
        .filter_map(|p| p.split_once("=\""))
        .map(|(k, v)| (k.trim_start_matches(','), v.trim_end_matches('"')))
        .collect()
}

/// Parses the Prometheus text confab renders.
pub fn parse(text: &str, at: i64) -> Sample {
    use crate::metrics as m;
    let mut s = Sample {
        at,
        ..Default::default()
    };
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let (name, lbl) = match key.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (key, ""),
        };
        let l = labels(lbl);
        let route_key = || {
            (
                l.get("route").unwrap_or(&"").to_string(),
                l.get("method").unwrap_or(&"").to_string(),
            )
        };
        match name {
            n if n == m::MESSAGES_SENT => s.messages += v,
            n if n == m::THREADS_CREATED => s.threads_created += v,
            n if n == m::IDENTITIES_CREATED => s.identities_created += v,
            n if n == m::ACTIVE_SENDERS => s.active_senders += v,
            n if n == m::HTTP_REQUESTS => {
                s.requests += v;
                let r = s.routes.entry(route_key()).or_default();
                r.requests += v;
                match l.get("status_class") {
                    Some(&"5xx") => {
                        s.errors_5xx += v;
                        r.errors += v;
                    }
                    Some(&"4xx") => {
                        s.errors_4xx += v;
                        r.client_errors += v;
                    }
                    _ => {}
                }
            }
            "confab_http_request_duration_seconds_bucket" => {
                let le = le_key(l.get("le").unwrap_or(&"+Inf"));
                // a long-poll waits for events by design: its duration is not latency (the
                // Requests page still shows it on its own row)
                if l.get("route") != Some(&LONG_POLL_ROUTE) {
                    *s.buckets.entry(le).or_default() += v;
                }
                *s.routes
                    .entry(route_key())
                    .or_default()
                    .buckets
                    .entry(le)
                    .or_default() += v;
            }
            n if n == m::MESSAGES_SENTIMENT => {
                s.sentiment_scored += v;
                if l.get("label") == Some(&"negative") {
                    s.sentiment_negative += v;
                }
            }
            n if n == m::REALTIME_SESSIONS => {
                s.sessions += v;
                let transport = l.get("transport").unwrap_or(&"other").to_string();
                *s.sessions_by_transport.entry(transport).or_default() += v;
            }
            n if n == m::THREAD_ACTORS_LIVE => s.actors += v,
            n if n == m::SLOW_CONSUMERS => s.slow_consumers += v,
            n if n == m::AUTH_FAILURES => s.auth_failures += v,
            n if n == m::WEBHOOK_OLDEST => s.webhook_oldest = s.webhook_oldest.max(v),
            n if n == m::WEBHOOK_QUEUE => s.webhook_queue = s.webhook_queue.max(v),
            _ => {}
        }
    }
    s
}

/// `histogram_quantile` over bucket deltas (Prometheus' linear interpolation).
pub fn quantile(q: f64, new: &BTreeMap<u64, f64>, old: Option<&BTreeMap<u64, f64>>) -> Option<f64> {
    let deltas: Vec<(f64, f64)> = new
        .iter()
        .map(|(k, v)| {
            (
                f64::from_bits(*k),
                v - old.and_then(|o| o.get(k)).copied().unwrap_or(0.0),
            )
        })
        .collect();
    let total = deltas.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev_le = 0.0;
    let mut prev_count = 0.0;
    for (le, count) in &deltas {
        if *count >= rank {
            if le.is_infinite() {
                return Some(prev_le);
            }
            let in_bucket = count - prev_count;
            let frac = if in_bucket > 0.0 {
                (rank - prev_count) / in_bucket
            } else {
                1.0
            };
            return Some(prev_le + (le - prev_le) * frac);
        }
        prev_le = *le;
        prev_count = *count;
    }
    Some(prev_le)
}

/// Spacing of the 24-hour tier.
const COARSE_EVERY_MS: i64 = 60_000;
/// Samples the minute tier keeps: 25 hours, so that a sample at or before 24 hours ago is
/// always there once confab has run that long.
const COARSE_POINTS: usize = 25 * 60;

/// The dashboard's history of registry samples.
pub struct Sampler {
    /// Every sample, the last `capacity`.
    samples: Mutex<VecDeque<Arc<Sample>>>,
    /// One sample a minute (per-route figures dropped), the last 24 hours.
    coarse: Mutex<VecDeque<Arc<Sample>>>,
    capacity: usize,
    /// When the registry started counting (epoch ms): counters were 0 then.
    started_at: i64,
}

impl Sampler {
    pub fn new(capacity: usize) -> Sampler {
        Sampler {
            samples: Mutex::new(VecDeque::with_capacity(capacity)),
            coarse: Mutex::new(VecDeque::with_capacity(COARSE_POINTS)),
            capacity: capacity.max(2),
            started_at: crate::ids::now_ms(),
        }
    }

    /// When counting started (epoch ms).
    pub fn started_at(&self) -> i64 {
        self.started_at
    }

    pub fn record(&self, sample: Sample) {
        {
            let mut c = self.coarse.lock();
            if c.back().is_none_or(|b| sample.at - b.at >= COARSE_EVERY_MS) {
                if c.len() == COARSE_POINTS {
                    c.pop_front();
                }
                c.push_back(Arc::new(Sample {
                    routes: HashMap::new(),
                    ..sample.clone()
                }));
            }
        }
        let mut g = self.samples.lock();
        if g.len() == self.capacity {
            g.pop_front();
        }
        g.push_back(Arc::new(sample));
    }

    /// The fine tier: every sample kept.
    pub fn all(&self) -> Vec<Arc<Sample>> {
        self.samples.lock().iter().cloned().collect()
    }

    /// Every sample from `since` (epoch ms) on, oldest first: the minute tier where the fine
    /// one no longer reaches, then the fine one.
    pub fn since(&self, since: i64) -> Vec<Arc<Sample>> {
        let fine = self.samples.lock();
        let first_fine = fine.front().map(|s| s.at).unwrap_or(i64::MAX);
        let coarse = self.coarse.lock();
        coarse
            .iter()
            .filter(|s| s.at >= since && s.at < first_fine)
            .chain(fine.iter().filter(|s| s.at >= since))
            .cloned()
            .collect()
    }

    /// The newest sample taken at or before `at`, from either tier.
    pub fn at_or_before(&self, at: i64) -> Option<Arc<Sample>> {
        let pick = |q: &VecDeque<Arc<Sample>>| q.iter().rev().find(|s| s.at <= at).cloned();
        let fine = pick(&self.samples.lock());
        fine.or_else(|| pick(&self.coarse.lock()))
    }

    /// The oldest sample kept.
    pub fn oldest(&self) -> Option<Arc<Sample>> {
        let coarse = self.coarse.lock().front().cloned();
        coarse.or_else(|| self.samples.lock().front().cloned())
    }

    /// What the counters were at `at`: the sample then, or zero when `at` is before the
    /// registry started. `None` when the history does not reach back that far (a sample
    /// after the start, then none kept).
    pub fn baseline(&self, at: i64) -> Option<Arc<Sample>> {
        if at <= self.started_at {
            return Some(Arc::new(Sample {
                at: self.started_at,
                ..Default::default()
            }));
        }
        self.at_or_before(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_computes_quantiles() {
        let text = "\
# HELP confab_messages_sent_total x
confab_messages_sent_total{type=\"text\",priority=\"normal\"} 5
confab_messages_sent_total{type=\"html\",priority=\"high\"} 2
confab_http_requests_total{route=\"/a\",method=\"GET\",status_class=\"2xx\"} 90
confab_http_requests_total{route=\"/a\",method=\"GET\",status_class=\"5xx\"} 10
confab_http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",le=\"0.1\"} 50
confab_http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",le=\"1\"} 100
confab_http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",le=\"+Inf\"} 100
confab_http_request_duration_seconds_bucket{route=\"/realtime/poll\",method=\"GET\",le=\"0.1\"} 0
confab_http_request_duration_seconds_bucket{route=\"/realtime/poll\",method=\"GET\",le=\"1\"} 0
confab_http_request_duration_seconds_bucket{route=\"/realtime/poll\",method=\"GET\",le=\"+Inf\"} 1000
";
        let s = parse(text, 0);
        assert_eq!(s.messages, 7.0);
        assert_eq!(s.errors_4xx, 0.0);
        assert_eq!(s.requests, 100.0);
        assert_eq!(s.errors_5xx, 10.0);
        assert_eq!(
            s.routes[&("/a".to_string(), "GET".to_string())].errors,
            10.0
        );
        let p50 = quantile(0.5, &s.buckets, None).unwrap();
        assert!((p50 - 0.1).abs() < 1e-9, "{p50}");
        let p90 = quantile(0.9, &s.buckets, None).unwrap();
        assert!(
            (p90 - 0.82).abs() < 1e-9,
            "{p90}: long-polls are not latency"
        );
        let poll = &s.routes[&("/realtime/poll".to_string(), "GET".to_string())];
        assert_eq!(
            poll.buckets.values().last(),
            Some(&1000.0),
            "but have their row"
        );
    }

    fn at(at: i64, messages: f64) -> Sample {
        Sample {
            at,
            messages,
            ..Default::default()
        }
    }

    #[test]
    fn two_tiers_answer_a_day_and_baselines_before_the_start_are_zero() {
        let s = Sampler::new(5);
        let t0 = s.started_at();
        // one sample every 30 s for an hour: the fine tier keeps the last 5, the minute tier
        // one a minute
        for i in 1..=120 {
            s.record(at(t0 + i * 30_000, i as f64));
        }
        assert_eq!(s.all().len(), 5);
        let day = s.since(t0);
        assert_eq!(day.len(), 60 - 2 + 5, "a minute apart, then every sample");
        assert!(day.windows(2).all(|w| w[0].at < w[1].at));
        assert_eq!(s.at_or_before(t0 + 600_000).unwrap().messages, 19.0);
        assert_eq!(s.baseline(t0 - 1).unwrap().messages, 0.0);
        assert_eq!(s.baseline(t0 + 3_600_000).unwrap().messages, 120.0);
        assert!(s
            .since(t0 + 3_500_000)
            .iter()
            .all(|x| x.at >= t0 + 3_500_000));
    }
}
