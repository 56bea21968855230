//! The admin dashboard (askama, server-rendered, no JavaScript framework): Overview, Requests,
//! Threads, Webhooks and Alerts, behind an access-key login with a cookie session and CSRF tokens.
//! Every number comes from the metrics registry (through [`sampler`]) or the hub.

pub mod charts;
pub mod sampler;
pub mod session;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::api::Params;
use crate::hub::registry::LiveCount;
use crate::ids::{fmt_ms, now_ms};
use crate::state::AppState;
use charts::{fmt, line_chart};
use sampler::{quantile, Sample};
use session::{random_token, same};

/// Recent error responses kept for the Requests page.
const RECENT_ERRORS: usize = 50;
const DASHBOARD_CSS: &str = include_str!("../../static/dashboard.css");

/// An error response, as the Requests page lists it.
#[derive(Debug, Clone)]
pub struct RecentError {
    pub at: String,
    pub method: String,
    pub route: String,
    pub status: u16,
    pub request_id: String,
}

/// Remembers an error response (bounded).
pub fn record_error(app: &AppState, route: &str, method: &str, status: u16, request_id: &str) {
    let mut q = app.recent_errors.lock();
    if q.len() == RECENT_ERRORS {
        q.pop_back();
    }
    q.push_front(RecentError {
        at: fmt_ms(now_ms()),
        method: method.to_string(),
        route: route.to_string(),
        status,
        request_id: request_id.to_string(),
    });
}

fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

fn render(t: impl Template) -> HttpResponse {
    match t.render() {
        Ok(s) => html(s),
        Err(e) => {
            tracing::error!(error = %e, "dashboard template failed");
            HttpResponse::InternalServerError().body("template error")
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct LoginForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize, Default)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// Reads a urlencoded form body; anything unreadable counts as an empty form (so a missing
/// token is refused by the CSRF check, not by the parser).
fn form<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> T {
    std::str::from_utf8(body)
        .ok()
        .and_then(|b| web::Query::<T>::from_query(b).ok())
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

/// GET /login
pub async fn login_page(req: HttpRequest, app: web::Data<AppState>) -> HttpResponse {
    if app.sessions.get(&req).is_some() {
        return redirect("/");
    }
    let csrf = random_token();
    let mut res = render(LoginPage {
        csrf: csrf.clone(),
        error: None,
    });
    let _ = res.add_cookie(&session::cookie(
        session::LOGIN_COOKIE,
        csrf,
        std::time::Duration::from_secs(3600),
    ));
    res
}

/// POST /login — the access key (primary or secondary) opens a session.
pub async fn login(req: HttpRequest, app: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let form: LoginForm = form(&body);
    let expected = req
        .cookie(session::LOGIN_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    if expected.is_empty() || !same(&expected, &form.csrf) {
        return HttpResponse::Forbidden().body("missing or wrong CSRF token");
    }
    let c = &app.config;
    let key = form.key.trim();
    let ok = same(key, c.primary_key())
        || c.secondary_access_key
            .as_ref()
            .is_some_and(|s| same(key, s.expose()));
    if !ok {
        metrics::counter!(crate::metrics::AUTH_FAILURES, "reason" => "dashboard_login")
            .increment(1);
        let csrf = random_token();
        let mut res = render(LoginPage {
            csrf: csrf.clone(),
            error: Some("That is not this instance's access key.".into()),
        });
        *res.status_mut() = actix_web::http::StatusCode::UNAUTHORIZED;
        let _ = res.add_cookie(&session::cookie(
            session::LOGIN_COOKIE,
            csrf,
            std::time::Duration::from_secs(3600),
        ));
        return res;
    }
    let mut res = redirect("/");
    let _ = res.add_cookie(&app.sessions.create());
    res
}

/// POST /logout (CSRF-protected).
pub async fn logout(req: HttpRequest, app: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let form: CsrfForm = form(&body);
    let Some(s) = app.sessions.get(&req) else {
        return redirect("/login");
    };
    if !form.csrf.as_deref().is_some_and(|c| same(c, &s.csrf)) {
        return HttpResponse::Forbidden().body("missing or wrong CSRF token");
    }
    app.sessions.remove(&req);
    let mut res = redirect("/login");
    let _ = res.add_removal_cookie(&session::cookie(
        session::COOKIE,
        String::new(),
        session::TTL,
    ));
    res
}

/// GET /static/dashboard.css
pub async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .body(DASHBOARD_CSS)
}

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

fn last(v: &[(i64, f64)]) -> f64 {
    v.last().map(|p| p.1).unwrap_or(0.0)
}

/// The sample closest to `ms` ago (or the oldest).
fn ago(samples: &[Arc<Sample>], ms: i64) -> Option<&Arc<Sample>> {
    let now = samples.last()?.at;
    samples
        .iter()
        .find(|s| now - s.at <= ms)
        .or(samples.first())
}

/// One alert condition, evaluated from the same registry as the Prometheus rules.
pub struct AlertState {
    pub name: &'static str,
    pub firing: bool,
    pub value: String,
    pub condition: &'static str,
    /// The span of data the rule needs before it is judged.
    pub window_ms: i64,
}

fn ratio(new: &Sample, old: &Sample) -> f64 {
    let dreq = new.requests - old.requests;
    if dreq > 0.0 {
        (new.errors_5xx - old.errors_5xx) / dreq
    } else {
        0.0
    }
}

/// The alert rules of deploy/prometheus/alerts.yml, evaluated in-process over the samples.
/// A rule is judged only once the samples cover its window, as Prometheus would (a rate over
/// 5 minutes needs 5 minutes of data); until then it shows how much data there is.
pub fn alerts(samples: &[Arc<Sample>]) -> Vec<AlertState> {
    let span = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => b.at - a.at,
        _ => 0,
    };
    evaluate(samples)
        .into_iter()
        .map(|mut a| {
            if span < a.window_ms {
                a.firing = false;
                a.value = format!(
                    "collecting data ({} of {} min)",
                    span / 60_000,
                    a.window_ms / 60_000
                );
            }
            a
        })
        .collect()
}

/// Each rule's raw state over whatever the samples cover.
fn evaluate(samples: &[Arc<Sample>]) -> Vec<AlertState> {
    let Some(now) = samples.last() else {
        return vec![];
    };
    let m5 = ago(samples, 5 * 60_000).unwrap_or(now);
    let m10 = ago(samples, 10 * 60_000).unwrap_or(now);
    let h1 = ago(samples, 60 * 60_000).unwrap_or(now);
    let secs5 = ((now.at - m5.at) as f64 / 1000.0).max(1.0);
    let p99 = quantile(0.99, &now.buckets, Some(&m5.buckets)).unwrap_or(0.0);
    let r5 = ratio(now, m5);
    let r1h = ratio(now, h1);
    let slow = now.slow_consumers - m10.slow_consumers;
    let auth = (now.auth_failures - m5.auth_failures) / secs5;
    // `for: 10m`: the condition held at every sample of the last 10 minutes
    let backlog = |s: &Sample| s.webhook_oldest > 900.0 || s.webhook_queue > 10_000.0;
    let backlog_held = samples
        .iter()
        .filter(|s| s.at >= now.at - 10 * 60_000)
        .all(|s| backlog(s));
    vec![
        AlertState {
            name: "ConfabHighErrorRatio",
            firing: r5 > 0.05,
            value: fmt(r5, "%"),
            condition: "5xx ratio over 5 min > 5%",
            window_ms: 5 * 60_000,
        },
        AlertState {
            name: "ConfabHighLatencyP99",
            firing: p99 > 0.5,
            value: fmt(p99, "s"),
            condition: "p99 latency over 5 min > 500 ms",
            window_ms: 5 * 60_000,
        },
        AlertState {
            name: "ConfabErrorBudgetBurn",
            firing: r5 > 14.4 * 0.001 && r1h > 14.4 * 0.001,
            value: format!("{} (1 h), {} (5 min)", fmt(r1h, "%"), fmt(r5, "%")),
            condition: "5xx ratio > 1.44% over both 1 h and 5 min (99.9% SLO)",
            window_ms: 60 * 60_000,
        },
        AlertState {
            name: "ConfabSlowConsumerSpike",
            firing: slow > 20.0,
            value: format!("{slow:.0}"),
            condition: "more than 20 sessions closed with 4008 in 10 min",
            window_ms: 10 * 60_000,
        },
        AlertState {
            name: "ConfabAuthFailureSpike",
            firing: auth > 5.0,
            value: format!("{auth:.2}/s"),
            condition: "more than 5 refused credentials per second over 5 min",
            window_ms: 5 * 60_000,
        },
        AlertState {
            name: "WebhookDeliveryBacklog",
            firing: backlog_held,
            value: format!(
                "oldest {}, {:.0} waiting",
                fmt(now.webhook_oldest, "s"),
                now.webhook_queue
            ),
            condition: "oldest waiting webhook delivery > 15 min, or > 10000 waiting, for 10 min",
            window_ms: 10 * 60_000,
        },
    ]
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
pub async fn overview(req: HttpRequest, app: web::Data<AppState>) -> HttpResponse {
    let Some(s) = app.sessions.get(&req) else {
        return redirect("/login");
    };
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
}

/// GET /requests — per route: rate, error %, latency quantiles; and the latest errors.
pub async fn requests(req: HttpRequest, app: web::Data<AppState>) -> HttpResponse {
    let Some(s) = app.sessions.get(&req) else {
        return redirect("/login");
    };
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
            let q = |p| {
                quantile(p, &r.buckets, o.map(|o| &o.buckets))
                    .map(|v| fmt(v, "s"))
                    .unwrap_or("–".into())
            };
            RouteRow {
                route: k.0.clone(),
                method: k.1.clone(),
                rate: format!("{:.2}/s", dreq / secs),
                errors: if dreq > 0.0 {
                    fmt(derr / dreq, "%")
                } else {
                    "–".into()
                },
                p50: q(0.5),
                p95: q(0.95),
                p99: q(0.99),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.route.cmp(&b.route).then_with(|| a.method.cmp(&b.method)));
    let errors: Vec<RecentError> = app
        .recent_errors
        .lock()
        .iter()
        .cloned()
        .collect::<VecDeque<_>>()
        .into();
    render(RequestsPage {
        csrf: s.csrf,
        page: "requests",
        rows,
        errors,
    })
}

#[derive(Template)]
#[template(path = "threads.html")]
struct ThreadsPage {
    csrf: String,
    page: &'static str,
    live: usize,
    total: i64,
    busiest: Vec<(String, usize)>,
}

/// GET /threads — counts and the busiest threads right now (from the hub).
pub async fn threads(req: HttpRequest, app: web::Data<AppState>) -> HttpResponse {
    let Some(s) = app.sessions.get(&req) else {
        return redirect("/login");
    };
    let live = app.registry.registry.send(LiveCount).await.unwrap_or(0);
    let total = app
        .store
        .read(|c| Ok(crate::store::threads::count_live(c)?))
        .await
        .unwrap_or(-1);
    render(ThreadsPage {
        csrf: s.csrf,
        page: "threads",
        live,
        total,
        busiest: app.activity.busiest(10),
    })
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    csrf: String,
    page: &'static str,
    alerts: Vec<AlertState>,
    points: usize,
}

/// GET /alerts — the alert conditions, evaluated in-process.
pub async fn alerts_page(req: HttpRequest, app: web::Data<AppState>) -> HttpResponse {
    let Some(s) = app.sessions.get(&req) else {
        return redirect("/login");
    };
    let samples = app.sampler.all();
    render(AlertsPage {
        csrf: s.csrf,
        page: "alerts",
        alerts: alerts(&samples),
        points: samples.len(),
    })
}

/// A delivery as the Webhooks page shows it.
struct DeliveryRow {
    subscription: String,
    id: String,
    event_type: String,
    status: String,
    attempts: i32,
    last_status: String,
    latency: String,
    created: String,
    reason: String,
}

impl DeliveryRow {
    fn of(d: &crate::store::models::Delivery, names: &HashMap<String, String>) -> DeliveryRow {
        DeliveryRow {
            subscription: names
                .get(&d.subscription)
                .cloned()
                .unwrap_or_else(|| d.subscription.clone()),
            id: d.event_id.clone(),
            event_type: d
                .event_type
                .trim_start_matches(crate::events::TYPE_PREFIX)
                .to_string(),
            status: d.status.clone(),
            attempts: d.attempts,
            last_status: d
                .last_status_code
                .map_or_else(|| "—".into(), |c| c.to_string()),
            latency: d
                .last_latency_ms
                .map_or_else(|| "—".into(), |ms| format!("{ms} ms")),
            created: fmt_ms(d.created_at),
            reason: d.dead_letter_reason.clone().unwrap_or_default(),
        }
    }
}

struct SubscriptionRow {
    name: String,
    endpoint: String,
    schema: String,
    state: String,
    status: String,
    types: String,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    csrf: String,
    page: &'static str,
    subscriptions: Vec<SubscriptionRow>,
    waiting: i64,
    oldest: String,
    recent: Vec<DeliveryRow>,
    dead: Vec<DeliveryRow>,
    notice: Option<String>,
}

/// Rows shown per table on the Webhooks page.
const WEBHOOK_ROWS: i64 = 50;

/// GET /webhooks — subscriptions, the backlog, recent deliveries and dead letters.
pub async fn webhooks_page(req: HttpRequest, app: web::Data<AppState>) -> HttpResponse {
    let Some(s) = app.sessions.get(&req) else {
        return redirect("/login");
    };
    use crate::store::webhooks as wh;
    let data = app
        .store
        .read(|c| {
            Ok((
                wh::subscriptions(c)?,
                wh::backlog(c)?,
                wh::list(c, None, None, None, WEBHOOK_ROWS)?,
                wh::list(c, None, Some(wh::DEAD_LETTERED), None, WEBHOOK_ROWS)?,
            ))
        })
        .await;
    let Ok((subs, (waiting, oldest), recent, dead)) = data else {
        return HttpResponse::ServiceUnavailable().body("storage unavailable");
    };
    let names: HashMap<String, String> = subs
        .iter()
        .map(|s| (s.key.clone(), s.name.clone()))
        .collect();
    let now = now_ms();
    render(WebhooksPage {
        csrf: s.csrf,
        page: "webhooks",
        subscriptions: subs
            .iter()
            .map(|s| SubscriptionRow {
                name: s.name.clone(),
                endpoint: s.endpoint_url.clone(),
                schema: s.delivery_schema.clone(),
                state: s.provisioning_state.clone(),
                status: s.status.clone(),
                types: match crate::events::parse_types(&s.event_types) {
                    None => "all".into(),
                    Some(t) => t.len().to_string(),
                },
            })
            .collect(),
        waiting,
        oldest: oldest.map_or_else(
            || "—".into(),
            |t| format!("{:.1} s", (now - t).max(0) as f64 / 1000.0),
        ),
        recent: recent.iter().map(|d| DeliveryRow::of(d, &names)).collect(),
        dead: dead.iter().map(|d| DeliveryRow::of(d, &names)).collect(),
        notice: Params::of(&req)
            .get("replayed")
            .map(|id| format!("Delivery {id} re-queued.")),
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct ReplayForm {
    csrf: Option<String>,
    subscription: String,
    id: String,
}

/// POST /webhooks/replay (CSRF-protected) — re-queues a dead letter, as the API's `:replay`.
pub async fn webhooks_replay(
    req: HttpRequest,
    app: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let form: ReplayForm = form(&body);
    let Some(s) = app.sessions.get(&req) else {
        return redirect("/login");
    };
    if !form.csrf.as_deref().is_some_and(|c| same(c, &s.csrf)) {
        return HttpResponse::Forbidden().body("missing or wrong CSRF token");
    }
    let key = form.subscription.to_ascii_lowercase();
    match crate::api::subscriptions::replay_delivery(&app, key, form.id.clone()).await {
        Ok(()) => redirect(&format!(
            "/webhooks?replayed={}",
            crate::ids::encode_query(&form.id)
        )),
        Err(e) => HttpResponse::build(e.status).body(e.message),
    }
}

/// The dashboard's routes on the admin listener.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(overview))
        .route("/requests", web::get().to(requests))
        .route("/threads", web::get().to(threads))
        .route("/alerts", web::get().to(alerts_page))
        .route("/webhooks", web::get().to(webhooks_page))
        .route("/webhooks/replay", web::post().to(webhooks_replay))
        .route("/login", web::get().to(login_page))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/static/dashboard.css", web::get().to(css));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples every 30 s for `minutes`, adding `req` requests, `err` 5xx and `auth` refused
    /// credentials per sample.
    fn samples(minutes: i64, req: f64, err: f64, auth: f64) -> Vec<Arc<Sample>> {
        (0..=minutes * 2)
            .map(|i| {
                let n = i as f64;
                Arc::new(Sample {
                    at: i * 30_000,
                    requests: n * req,
                    errors_5xx: n * err,
                    auth_failures: n * auth,
                    ..Default::default()
                })
            })
            .collect()
    }

    fn firing(a: &[AlertState]) -> Vec<&'static str> {
        a.iter().filter(|a| a.firing).map(|a| a.name).collect()
    }

    #[test]
    fn error_ratio_fires_once_the_window_is_covered() {
        assert_eq!(
            firing(&alerts(&samples(10, 100.0, 10.0, 0.0))),
            vec!["ConfabHighErrorRatio"]
        );
        assert!(
            firing(&alerts(&samples(10, 100.0, 1.0, 0.0))).is_empty(),
            "1% is fine"
        );
        let early = alerts(&samples(2, 100.0, 10.0, 0.0));
        assert!(
            firing(&early).is_empty(),
            "two minutes of data do not judge a 5-minute rule"
        );
        assert!(early[0].value.starts_with("collecting data"));
    }

    #[test]
    fn auth_spike_and_budget_burn() {
        // 300 refused credentials per 30 s = 10/s
        assert_eq!(
            firing(&alerts(&samples(6, 100.0, 0.0, 300.0))),
            vec!["ConfabAuthFailureSpike"]
        );
        // 2% 5xx for an hour: below the 5% page, above the 1.44% budget burn
        assert_eq!(
            firing(&alerts(&samples(61, 1000.0, 20.0, 0.0))),
            vec!["ConfabErrorBudgetBurn"]
        );
    }

    #[test]
    fn webhook_backlog_needs_ten_minutes_above_the_line() {
        // one delivery stuck from t=0: its age grows with time
        let stuck = |minutes: i64| -> Vec<Arc<Sample>> {
            (0..=minutes * 2)
                .map(|i| {
                    Arc::new(Sample {
                        at: i * 30_000,
                        webhook_oldest: (i * 30) as f64,
                        webhook_queue: 1.0,
                        ..Default::default()
                    })
                })
                .collect()
        };
        assert!(
            firing(&alerts(&stuck(20))).is_empty(),
            "over 15 min for 5 min only"
        );
        assert_eq!(firing(&alerts(&stuck(26))), vec!["WebhookDeliveryBacklog"]);
    }
}
