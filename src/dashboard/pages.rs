//! The Overview, Requests and Threads pages: rates, latencies and counts from the metrics
//! registry (through the sampler) and the hub.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use askama::Template;

use super::alerts::{ago, alerts};
use super::charts::{fmt, line_chart};
use super::sampler::{self, quantile, Sample};
use super::{render, DashboardState, SignedIn};
use crate::hub::registry::LiveCount;
use crate::ids::now_ms;
use crate::request_log::RecentError;

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
    let mut s = Series {
        messages_per_min: vec![],
        requests_per_s: vec![],
        error_ratio: vec![],
        p50: vec![],
        p95: vec![],
        p99: vec![],
        sessions: vec![],
        actors: vec![],
        negative_share: vec![],
    };
    for w in samples.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let dt = ((b.at - a.at) as f64 / 1000.0).max(0.001);
        let dreq = (b.requests - a.requests).max(0.0);
        s.messages_per_min
            .push((b.at, (b.messages - a.messages).max(0.0) / dt * 60.0));
        s.requests_per_s.push((b.at, dreq / dt));
        s.error_ratio.push((
            b.at,
            if dreq > 0.0 {
                (b.errors_5xx - a.errors_5xx).max(0.0) / dreq
            } else {
                0.0
            },
        ));
        let scored = (b.sentiment_scored - a.sentiment_scored).max(0.0);
        s.negative_share.push((
            b.at,
            if scored > 0.0 {
                (b.sentiment_negative - a.sentiment_negative).max(0.0) / scored
            } else {
                0.0
            },
        ));
        for (q, out) in [(0.5, &mut s.p50), (0.95, &mut s.p95), (0.99, &mut s.p99)] {
            out.push((
                b.at,
                quantile(q, &b.buckets, Some(&a.buckets)).unwrap_or(0.0),
            ));
        }
    }
    for x in samples {
        s.sessions.push((x.at, x.sessions));
        s.actors.push((x.at, x.actors));
    }
    s
}

/// The share of negative messages over every sample kept (the window the charts show).
fn negative_share(samples: &[Arc<Sample>]) -> String {
    let (Some(a), Some(b)) = (samples.first(), samples.last()) else {
        return "–".into();
    };
    let scored = b.sentiment_scored - a.sentiment_scored;
    if scored <= 0.0 {
        return "–".into();
    }
    fmt((b.sentiment_negative - a.sentiment_negative) / scored, "%")
}

fn last(v: &[(i64, f64)]) -> f64 {
    v.last().map(|p| p.1).unwrap_or(0.0)
}

struct Stat {
    label: &'static str,
    value: String,
    chart: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    csrf: String,
    page: &'static str,
    stats: Vec<Stat>,
    firing: usize,
}

/// GET / — the overview.
pub async fn overview(SignedIn(s): SignedIn, app: web::Data<DashboardState>) -> HttpResponse {
    let samples = app.sampler.all();
    let sr = series(&samples);
    let stats = vec![
        Stat {
            label: "Messages sent per minute",
            value: format!("{:.0}", last(&sr.messages_per_min)),
            chart: line_chart(&[("messages/min", sr.messages_per_min.clone())], ""),
        },
        Stat {
            label: "Requests per second",
            value: format!("{:.1}", last(&sr.requests_per_s)),
            chart: line_chart(&[("req/s", sr.requests_per_s.clone())], ""),
        },
        Stat {
            label: "Error ratio (5xx)",
            value: fmt(last(&sr.error_ratio), "%"),
            chart: line_chart(&[("5xx ratio", sr.error_ratio.clone())], "%"),
        },
        Stat {
            label: "Latency p50 / p95 / p99",
            value: format!(
                "{} / {} / {}",
                fmt(last(&sr.p50), "s"),
                fmt(last(&sr.p95), "s"),
                fmt(last(&sr.p99), "s")
            ),
            chart: line_chart(
                &[
                    ("p50", sr.p50.clone()),
                    ("p95", sr.p95.clone()),
                    ("p99", sr.p99.clone()),
                ],
                "s",
            ),
        },
        Stat {
            label: "Negative messages (share of those scored)",
            value: negative_share(&samples),
            chart: line_chart(&[("negative share", sr.negative_share.clone())], "%"),
        },
        Stat {
            label: "Live real-time sessions",
            value: format!("{:.0}", last(&sr.sessions)),
            chart: line_chart(&[("sessions", sr.sessions.clone())], ""),
        },
        Stat {
            label: "Active threads (actors in memory)",
            value: format!("{:.0}", last(&sr.actors)),
            chart: line_chart(&[("threads", sr.actors.clone())], ""),
        },
    ];
    let firing = alerts(&samples).iter().filter(|a| a.firing).count();
    render(OverviewPage {
        csrf: s.csrf,
        page: "overview",
        stats,
        firing,
    })
}

struct RouteRow {
    route: String,
    method: String,
    rate: String,
    /// 4xx and 5xx answers in the window: count and share.
    client_errors: String,
    errors: String,
    p50: String,
    p95: String,
    p99: String,
}

#[derive(Template)]
#[template(path = "requests.html")]
struct RequestsPage {
    csrf: String,
    page: &'static str,
    rows: Vec<RouteRow>,
    errors: Vec<RecentError>,
    /// The status class the recent errors are filtered by: "", "4xx" or "5xx".
    class: &'static str,
    /// A request id whose log search is shown.
    find: Option<String>,
}

/// `?class=` and `?id=` of the Requests page.
#[derive(serde::Deserialize)]
pub struct RequestsQuery {
    class: Option<String>,
    id: Option<String>,
}

/// `n (share %)` of `total`, or – when there was no request.
fn count_share(n: f64, total: f64) -> String {
    if total > 0.0 {
        format!("{n:.0} ({})", fmt(n / total, "%"))
    } else {
        "–".into()
    }
}

/// GET /requests?class=4xx|5xx&id= — per route over the last 5 minutes: rate, 4xx and 5xx,
/// latency quantiles; the latest errors (of one status class), each request id leading to how
/// to find it in the log.
pub async fn requests(
    SignedIn(s): SignedIn,
    app: web::Data<DashboardState>,
    query: web::Query<RequestsQuery>,
) -> HttpResponse {
    let text = app.prometheus.render();
    let now = sampler::parse(&text, now_ms());
    let samples = app.sampler.all();
    let old = ago(&samples, 5 * 60_000).cloned();
    let mut rows: Vec<RouteRow> = now
        .routes
        .iter()
        .map(|(k, r)| {
            let o = old.as_ref().and_then(|o| o.routes.get(k));
            let secs = old
                .as_ref()
                .map(|o| ((now.at - o.at) as f64 / 1000.0).max(1.0))
                .unwrap_or(1.0);
            let dreq = r.requests - o.map(|o| o.requests).unwrap_or(0.0);
            let derr = r.errors - o.map(|o| o.errors).unwrap_or(0.0);
            let dclient = r.client_errors - o.map(|o| o.client_errors).unwrap_or(0.0);
            let q = |p| {
                quantile(p, &r.buckets, o.map(|o| &o.buckets))
                    .map(|v| fmt(v, "s"))
                    .unwrap_or("–".into())
            };
            RouteRow {
                route: k.0.clone(),
                method: k.1.clone(),
                rate: format!("{:.2}/s", dreq / secs),
                client_errors: count_share(dclient, dreq),
                errors: count_share(derr, dreq),
                p50: q(0.5),
                p95: q(0.95),
                p99: q(0.99),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.route.cmp(&b.route).then_with(|| a.method.cmp(&b.method)));
    let class = match query.class.as_deref() {
        Some("4xx") => "4xx",
        Some("5xx") => "5xx",
        _ => "",
    };
    let errors: Vec<RecentError> = app
        .recent_errors
        .snapshot()
        .into_iter()
        .filter(|e| class.is_empty() || crate::metrics::status_class(e.status) == class)
        .collect();
    // only an id of the shape confab gives out is echoed back
    let find = query.id.clone().filter(|id| {
        !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    render(RequestsPage {
        csrf: s.csrf,
        page: "requests",
        rows,
        errors,
        class,
        find,
    })
}

#[derive(Template)]
#[template(path = "threads.html")]
struct ThreadsPage {
    csrf: String,
    page: &'static str,
    live: usize,
    total: i64,
    busiest: Vec<BusyRow>,
    negative: Vec<NegativeRow>,
}

/// A thread of the "busiest" table: what an operator needs to tell which conversation it is,
/// and no message content.
struct BusyRow {
    thread: String,
    topic: String,
    participants: i64,
    messages: usize,
    last_activity: String,
}

/// GET /threads — counts and the busiest threads right now (from the hub).
pub async fn threads(SignedIn(s): SignedIn, app: web::Data<DashboardState>) -> HttpResponse {
    let live = app.hub.registry.send(LiveCount).await.unwrap_or(0);
    let total = app
        .store
        .read(|c| Ok(crate::store::threads::count_live(c)?))
        .await
        .unwrap_or(-1);
    let worst = app.activity.most_negative(10);
    let busy = app.activity.busiest(10);
    let ids: Vec<String> = worst
        .iter()
        .map(|n| n.thread.clone())
        .chain(busy.iter().map(|(t, _)| t.clone()))
        .collect();
    // topic, current participants and last activity of each thread shown
    let facts = app
        .store
        .read(move |c| {
            let mut out = std::collections::HashMap::new();
            for id in ids {
                let tid = crate::ids::ThreadId::new(id.as_str());
                if let Some(t) = crate::store::threads::get(c, &tid)? {
                    let n = crate::store::participants::current_count(c, &tid)?;
                    out.insert(id, (t.topic, n, t.last_message_at));
                }
            }
            Ok(out)
        })
        .await
        .unwrap_or_default();
    let topics: std::collections::HashMap<&String, String> =
        facts.iter().map(|(k, v)| (k, v.0.clone())).collect();
    let busiest = busy
        .into_iter()
        .map(|(thread, messages)| {
            let (topic, participants, last) = facts.get(&thread).cloned().unwrap_or_default();
            BusyRow {
                topic,
                participants,
                messages,
                last_activity: if last > 0 {
                    crate::ids::fmt_ms(last)
                } else {
                    "–".into()
                },
                thread,
            }
        })
        .collect();
    let negative = worst
        .into_iter()
        .map(|n| NegativeRow {
            topic: topics.get(&n.thread).cloned().unwrap_or_default(),
            share: fmt(f64::from(n.negative) / f64::from(n.scored.max(1)), "%"),
            thread: n.thread,
            negative: n.negative,
        })
        .collect();
    render(ThreadsPage {
        csrf: s.csrf,
        page: "threads",
        live,
        total,
        busiest,
        negative,
    })
}

/// A thread of the "most negative" table (CONTRACT §10.2).
struct NegativeRow {
    thread: String,
    topic: String,
    negative: u32,
    share: String,
}

/// A live node as the Cluster page shows it.
struct NodeRow {
    id: String,
    address: String,
    started: String,
    sessions: usize,
    thread_actors: usize,
    heartbeat: String,
    /// Seconds since that heartbeat (as this node's clock sees it).
    heartbeat_age: String,
    this: bool,
}

#[derive(Template)]
#[template(path = "cluster.html")]
struct ClusterPage {
    csrf: String,
    page: &'static str,
    /// `None` for a standalone node.
    cluster: Option<ClusterView>,
}

struct ClusterView {
    node_id: String,
    url: String,
    connected: bool,
    nodes: Vec<NodeRow>,
}

/// GET /cluster — the live nodes of the cluster (contract §9.3), from the node table.
pub async fn cluster(SignedIn(s): SignedIn, app: web::Data<DashboardState>) -> HttpResponse {
    let now = crate::ids::now_ms();
    let cluster = app.cluster.as_ref().map(|c| ClusterView {
        node_id: c.bus.node_id.clone(),
        url: c.bus.url.clone(),
        connected: c.bus.connected(),
        nodes: c
            .live_nodes()
            .into_iter()
            .map(|n| NodeRow {
                this: n.id == c.bus.node_id,
                started: crate::ids::fmt_ms(n.started_at),
                heartbeat: crate::ids::fmt_ms(n.heartbeat_at),
                heartbeat_age: format!("{:.1}", (now - n.heartbeat_at).max(0) as f64 / 1000.0),
                id: n.id,
                address: n.address,
                sessions: n.sessions,
                thread_actors: n.thread_actors,
            })
            .collect(),
    });
    render(ClusterPage {
        csrf: s.csrf,
        page: "cluster",
        cluster,
    })
}
