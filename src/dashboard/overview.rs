//! The Overview page: totals over named windows (last hour, 24 hours, since start), rates over
//! the last 5 minutes, the range's latency quantiles, and full-width charts of a chosen range,
//! all from the metrics registry (read now, and through the sampler's history).

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::{TimeZone, Utc};

use super::alerts::alerts;
use super::charts::{fmt, line_chart};
use super::sampler::{self, quantile, Sample};
use super::{render, DashboardState, SignedIn};
use crate::ids::now_ms;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
/// The window of the headline rates.
const RATE_WINDOW: i64 = 5 * MINUTE;
/// Most points a chart draws (longer ranges are thinned, rates spanning the gaps).
const CHART_POINTS: usize = 360;

/// The ranges the charts offer: (query value, length, label).
const RANGES: [(&str, i64, &str); 3] = [
    ("15m", 15 * MINUTE, "15 minutes"),
    ("1h", HOUR, "1 hour"),
    ("24h", 24 * HOUR, "24 hours"),
];

/// Per-interval rates between consecutive samples.
struct Series {
    messages_per_min: Vec<(i64, f64)>,
    requests_per_s: Vec<(i64, f64)>,
    error_ratio: Vec<(i64, f64)>,
    p50: Vec<(i64, f64)>,
    p95: Vec<(i64, f64)>,
    p99: Vec<(i64, f64)>,
    sessions: Vec<(i64, f64)>,
    actors: Vec<(i64, f64)>,
    /// Share of the scored messages that were negative, per interval (0 when none).
    negative_share: Vec<(i64, f64)>,
}

fn series(samples: &[Arc<Sample>]) -> Series {
    let n = samples.len().saturating_sub(1).max(1);
    let mut s = Series {
        messages_per_min: Vec::with_capacity(n),
        requests_per_s: Vec::with_capacity(n),
        error_ratio: Vec::with_capacity(n),
        p50: Vec::with_capacity(n),
        p95: Vec::with_capacity(n),
        p99: Vec::with_capacity(n),
        sessions: Vec::with_capacity(n + 1),
        actors: Vec::with_capacity(n + 1),
        negative_share: Vec::with_capacity(n),
    };
    for w in samples.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let dt = ((b.at - a.at) as f64 / 1000.0).max(0.001);
        let dreq = (b.requests - a.requests).max(0.0);
        s.messages_per_min
            .push((b.at, (b.messages - a.messages).max(0.0) / dt * 60.0));
        s.requests_per_s.push((b.at, dreq / dt));
        s.error_ratio
            .push((b.at, share(b.errors_5xx - a.errors_5xx, dreq)));
        s.negative_share.push((
            b.at,
            share(
                b.sentiment_negative - a.sentiment_negative,
                b.sentiment_scored - a.sentiment_scored,
            ),
        ));
        for (q, out) in [(0.5, &mut s.p50), (0.95, &mut s.p95), (0.99, &mut s.p99)] {
            // no request in the interval: no latency to draw (a gap, not a zero)
            out.push((
                b.at,
                quantile(q, &b.buckets, Some(&a.buckets)).unwrap_or(f64::NAN),
            ));
        }
    }
    for x in samples {
        s.sessions.push((x.at, x.sessions));
        s.actors.push((x.at, x.actors));
    }
    s
}

fn share(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part.max(0.0) / whole
    } else {
        0.0
    }
}

/// Every `k`-th sample (and the last), so that at most [`CHART_POINTS`] remain.
fn thin(samples: Vec<Arc<Sample>>) -> Vec<Arc<Sample>> {
    let k = samples.len().div_ceil(CHART_POINTS).max(1);
    if k == 1 {
        return samples;
    }
    let last = samples.len() - 1;
    samples
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % k == 0 || *i == last)
        .map(|(_, s)| s)
        .collect()
}

/// `HH:MM:SS UTC` of an epoch-ms instant.
fn clock(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .format("%H:%M:%S UTC")
        .to_string()
}

/// How long ago, for a person: `40 s`, `12 min`, `3 h 5 min`.
fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=7199 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// A headline figure: what, how much, over which window, and a line of detail.
struct Tile {
    id: &'static str,
    label: &'static str,
    value: String,
    window: String,
    detail: String,
}

struct Chart {
    title: &'static str,
    svg: String,
}

struct RangeLink {
    key: &'static str,
    label: &'static str,
    active: bool,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    csrf: String,
    page: &'static str,
    tiles: Vec<Tile>,
    charts: Vec<Chart>,
    ranges: Vec<RangeLink>,
    range_label: String,
    firing: usize,
}

/// `?range=15m|1h|24h` of the Overview.
#[derive(serde::Deserialize)]
pub struct OverviewQuery {
    range: Option<String>,
}

/// The change of a counter over the last `window` ms: `now` minus what the registry held then
/// (0 before the start), with the window as it really is when the history is shorter.
struct Windowed {
    base: Arc<Sample>,
    /// The window as it was counted: the requested one, or since start.
    label: String,
}

fn windowed(app: &DashboardState, now: i64, window: i64, name: &str) -> Windowed {
    let started = app.sampler.started_at();
    match app.sampler.baseline(now - window) {
        Some(base) if base.at <= started => Windowed {
            base,
            label: if now - started < window {
                format!("{name} (confab started {} ago)", span(now - started))
            } else {
                name.to_string()
            },
        },
        Some(base) => Windowed {
            base,
            label: name.to_string(),
        },
        // (samples are kept for 25 h and no longer window is offered: only a gap in sampling
        // gets here) the window as far back as samples go
        None => match app.sampler.oldest() {
            Some(base) => Windowed {
                label: format!("since {}", clock(base.at)),
                base,
            },
            None => Windowed {
                base: Arc::new(Sample::default()),
                label: "since start".to_string(),
            },
        },
    }
}

/// GET /?range= — the overview.
pub async fn overview(
    SignedIn(s): SignedIn,
    app: web::Data<DashboardState>,
    query: web::Query<OverviewQuery>,
) -> HttpResponse {
    let now_at = now_ms();
    let now = sampler::parse(&app.prometheus.render(), now_at);
    let started = app.sampler.started_at();
    let (range_key, range_ms, range_name) = RANGES
        .iter()
        .copied()
        .find(|r| Some(r.0) == query.range.as_deref())
        .unwrap_or(RANGES[1]);

    let hour = windowed(&app, now_at, HOUR, "last hour");
    let day = windowed(&app, now_at, 24 * HOUR, "");
    let five = windowed(&app, now_at, RATE_WINDOW, "last 5 minutes");
    let range = windowed(&app, now_at, range_ms, "");
    // a rate over what the window really covers, but never over less than a minute (a few
    // seconds after the start would extrapolate a burst to a rate nobody saw)
    let five_minutes = ((now_at - five.base.at).clamp(MINUTE, RATE_WINDOW) as f64) / MINUTE as f64;
    let since_start = format!("since start ({})", clock(started));

    let transports = |t: &str| {
        now.sessions_by_transport
            .get(t)
            .copied()
            .unwrap_or(0.0)
            .max(0.0)
    };
    let dreq_range = now.requests - range.base.requests;
    let q = |p: f64| {
        quantile(p, &now.buckets, Some(&range.base.buckets))
            .map(|v| fmt(v, "s"))
            .unwrap_or_else(|| "–".into())
    };
    let tiles = vec![
        Tile {
            id: "messages-hour",
            label: "Messages sent",
            value: format!("{:.0}", now.messages - hour.base.messages),
            window: hour.label.clone(),
            detail: format!(
                "{:.0} in the last 24 hours · {:.0} {}",
                now.messages - day.base.messages,
                now.messages,
                since_start
            ),
        },
        Tile {
            id: "messages-rate",
            label: "Messages per minute",
            value: format!(
                "{:.1}",
                (now.messages - five.base.messages) / five_minutes
            ),
            window: format!("average over the {}", five.label),
            detail: format!(
                "{:.0} messages in that window",
                now.messages - five.base.messages
            ),
        },
        Tile {
            id: "active-users",
            label: "Active users",
            value: format!("{:.0}", now.active_senders),
            window: "distinct senders, last hour".into(),
            detail: "users who sent at least one message through this node".into(),
        },
        Tile {
            id: "threads-created",
            label: "Threads created",
            value: format!("{:.0}", now.threads_created - hour.base.threads_created),
            window: hour.label.clone(),
            detail: format!(
                "{:.0} since start · identities created: {:.0} in the last hour, {:.0} since start",
                now.threads_created,
                now.identities_created - hour.base.identities_created,
                now.identities_created,
            ),
        },
        Tile {
            id: "sessions",
            label: "Live real-time sessions",
            value: format!("{:.0}", now.sessions.max(0.0)),
            window: "now".into(),
            detail: format!(
                "WebSocket {:.0} · SSE {:.0} · long-poll {:.0} (polls waiting)",
                transports("websocket"),
                transports("sse"),
                transports("longpoll")
            ),
        },
        Tile {
            id: "requests-rate",
            label: "Requests per second",
            value: format!(
                "{:.2}",
                (now.requests - five.base.requests) / (five_minutes * 60.0)
            ),
            window: format!("average over the {}", five.label),
            detail: format!(
                "in the {range_name} range: {:.0} requests, {:.0} answered 4xx, {:.0} answered 5xx ({})",
                dreq_range,
                now.errors_4xx - range.base.errors_4xx,
                now.errors_5xx - range.base.errors_5xx,
                fmt(share(now.errors_5xx - range.base.errors_5xx, dreq_range), "%"),
            ),
        },
        Tile {
            id: "latency",
            label: "Latency p50 / p95 / p99",
            value: format!("{} / {} / {}", q(0.5), q(0.95), q(0.99)),
            window: format!("requests in the {range_name} range"),
            detail: "from the request-duration histogram; long-polls, which wait for events \
                     by design, are left out (see Requests)"
                .into(),
        },
        Tile {
            id: "negative",
            label: "Negative messages",
            value: match now.sentiment_scored - range.base.sentiment_scored {
                n if n > 0.0 => fmt(
                    (now.sentiment_negative - range.base.sentiment_negative) / n,
                    "%",
                ),
                _ => "–".into(),
            },
            window: format!("share of those scored, {range_name} range"),
            detail: format!(
                "{:.0} scored",
                now.sentiment_scored - range.base.sentiment_scored
            ),
        },
    ];

    // charts: the range, or from the start when that is later
    let from = (now_at - range_ms).max(started);
    let samples = thin(app.sampler.since(from));
    let sr = series(&samples);
    let chart = |title, svg| Chart { title, svg };
    let charts = vec![
        chart(
            "Messages sent per minute",
            line_chart(&[("messages/min", sr.messages_per_min)], "", from, now_at),
        ),
        chart(
            "Requests per second",
            line_chart(&[("req/s", sr.requests_per_s)], "", from, now_at),
        ),
        chart(
            "Latency p50 / p95 / p99",
            line_chart(
                &[("p50", sr.p50), ("p95", sr.p95), ("p99", sr.p99)],
                "s",
                from,
                now_at,
            ),
        ),
        chart(
            "Error ratio (5xx share of requests)",
            line_chart(&[("5xx ratio", sr.error_ratio)], "%", from, now_at),
        ),
        chart(
            "Live real-time sessions",
            line_chart(&[("sessions", sr.sessions)], "", from, now_at),
        ),
        chart(
            "Thread actors in memory",
            line_chart(&[("threads", sr.actors)], "", from, now_at),
        ),
        chart(
            "Negative messages (share of those scored)",
            line_chart(&[("negative share", sr.negative_share)], "%", from, now_at),
        ),
    ];
    let range_label = if from > now_at - range_ms {
        format!(
            "last {range_name}: data since {}, when confab started ({} ago)",
            clock(started),
            span(now_at - started)
        )
    } else {
        format!("last {range_name} ({} to {})", clock(from), clock(now_at))
    };
    let firing = alerts(&app.sampler.all())
        .iter()
        .filter(|a| a.firing)
        .count();
    render(OverviewPage {
        csrf: s.csrf,
        page: "overview",
        tiles,
        charts,
        ranges: RANGES
            .iter()
            .map(|r| RangeLink {
                key: r.0,
                label: r.2,
                active: r.0 == range_key,
            })
            .collect(),
        range_label,
        firing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at: i64, messages: f64) -> Arc<Sample> {
        Arc::new(Sample {
            at,
            messages,
            ..Default::default()
        })
    }

    #[test]
    fn rates_are_per_interval_and_thinning_keeps_the_ends() {
        let samples: Vec<Arc<Sample>> = (0..1000).map(|i| at(i * 10_000, i as f64 * 5.0)).collect();
        let s = series(&samples[..3]);
        assert_eq!(s.messages_per_min, vec![(10_000, 30.0), (20_000, 30.0)]);
        let thinned = thin(samples);
        assert!(thinned.len() <= CHART_POINTS + 1, "{}", thinned.len());
        assert_eq!(thinned.first().unwrap().at, 0);
        assert_eq!(thinned.last().unwrap().at, 999 * 10_000);
        // a rate across thinned samples is still the average over the span
        let s = series(&thinned);
        assert!(s.messages_per_min.iter().all(|p| (p.1 - 30.0).abs() < 1e-9));
    }
}
