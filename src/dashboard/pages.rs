//! The Requests, Threads and Cluster pages: rates, latencies and counts from the metrics
//! registry (through the sampler), the hub and the store.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::alerts::ago;
use super::charts::fmt;
use super::sampler::{self, quantile};
use super::{render, DashboardState, SignedIn};
use crate::hub::registry::LiveCount;
use crate::ids::now_ms;
use crate::request_log::RecentError;

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
    link: String,
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
                link: thread_link(&thread),
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
            link: thread_link(&n.thread),
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

/// `/threads/<id>` of a thread (its id percent-encoded: it holds `:` and `@`).
fn thread_link(id: &str) -> String {
    format!(
        "/threads/{}",
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    )
}

#[derive(Template)]
#[template(path = "thread.html")]
struct ThreadPage {
    csrf: String,
    page: &'static str,
    id: String,
    found: Option<ThreadFacts>,
}

/// What an operator sees of one thread: volumes and times, never content.
struct ThreadFacts {
    topic: String,
    created: String,
    deleted: Option<String>,
    participants: i64,
    /// Sequence ids handed out: every message of its history, system messages included.
    history: i64,
    last_activity: String,
    /// Messages committed in the last 5 minutes (through this node), and per minute.
    recent: usize,
    per_minute: String,
    negative: Option<String>,
}

/// GET /threads/{id} — one thread's figures and its recent message rate.
pub async fn thread(
    SignedIn(s): SignedIn,
    app: web::Data<DashboardState>,
    path: web::Path<String>,
) -> HttpResponse {
    let id = path.into_inner();
    let tid = crate::ids::ThreadId::new(id.as_str());
    let row = app
        .store
        .read(move |c| {
            Ok(match crate::store::threads::get(c, &tid)? {
                Some(t) => Some((crate::store::participants::current_count(c, &tid)?, t)),
                None => None,
            })
        })
        .await;
    let found = match row {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e.message, "thread page: database read failed");
            return HttpResponse::ServiceUnavailable().body("The database could not be read.");
        }
    };
    let found = found.map(|(participants, t)| {
        let minutes = app.activity.per_minute(&id);
        let chart = minutes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let ago = minutes.len() - 1 - i;
                let label = match ago {
                    0 => "last minute".to_string(),
                    _ => format!("{ago}–{} min ago", ago + 1),
                };
                (label, *n as f64)
            })
            .collect::<Vec<_>>();
        let negative = app.activity.negative_of(&id).map(|n| {
            format!(
                "{} of {} scored ({})",
                n.negative,
                n.scored,
                fmt(f64::from(n.negative) / f64::from(n.scored.max(1)), "%")
            )
        });
        ThreadFacts {
            topic: t.topic,
            created: crate::ids::fmt_ms(t.created_at),
            deleted: t.deleted_at.map(crate::ids::fmt_ms),
            participants,
            history: t.last_seq,
            last_activity: crate::ids::fmt_ms(t.last_message_at),
            recent: minutes.iter().sum(),
            per_minute: super::charts::bar_chart(&chart, ""),
            negative,
        }
    });
    let missing = found.is_none();
    let mut page = render(ThreadPage {
        csrf: s.csrf,
        page: "threads",
        id,
        found,
    });
    if missing {
        *page.status_mut() = actix_web::http::StatusCode::NOT_FOUND;
    }
    page
}

/// A thread of the "most negative" table (CONTRACT §10.2).
struct NegativeRow {
    thread: String,
    link: String,
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
