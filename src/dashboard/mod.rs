//! The admin dashboard (askama, server-rendered, no JavaScript): Overview, Usage, Requests,
//! Threads, Cluster, Webhooks and Alerts, behind an access-key login with a cookie session and
//! CSRF tokens.
//! Every number comes from the metrics registry (through [`sampler`]), the hub or the store.
//!
//! - [`login`]: signing in and out; [`SignedIn`] is the session check of every other page.
//! - [`overview`]: totals, rates and charts. [`usage`]: per day and hour, from the database.
//! - [`pages`]: Requests, Threads (and one thread), Cluster. [`alerts`]: the alert rules.
//! - [`webhooks`]: the delivery log and replay.
//! - [`sampler`] keeps 24 hours of registry samples; [`charts`] draws them as SVG.
//!
//! It shares nothing with the API layer but the handles [`DashboardState`] names.

pub mod alerts;
pub mod charts;
pub mod login;
pub mod overview;
pub mod pages;
pub mod sampler;
pub mod session;
pub mod throttle;
pub mod usage;
pub mod webhooks;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use crate::config::Config;
use crate::hub::activity::Activity;
use crate::hub::Hub;
use crate::request_log::RecentErrors;
use crate::store::Store;

const DASHBOARD_CSS: &str = include_str!("../../static/dashboard.css");

/// What the dashboard's pages read.
pub struct DashboardState {
    /// The access keys that open a session.
    pub config: Arc<Config>,
    /// The process's metrics registry (the Requests page renders it for per-route figures).
    pub prometheus: metrics_exporter_prometheus::PrometheusHandle,
    /// The last hour of samples of that registry (written by the housekeeping task).
    pub sampler: Arc<sampler::Sampler>,
    /// Login sessions.
    pub sessions: session::Sessions,
    /// Wrong keys per client address at the sign-in.
    pub login_throttle: throttle::LoginThrottle,
    /// The most recent error responses of every listener.
    pub recent_errors: Arc<RecentErrors>,
    pub store: Store,
    /// Live thread actors (the Threads page's count).
    pub hub: Hub,
    /// Recent message activity per thread.
    pub activity: Arc<Activity>,
    /// Delivery replay.
    pub webhooks: Arc<crate::events::Webhooks>,
    /// Cluster mode: the bus and the node table (the Cluster page).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// The live dashboard session of a request; without one, the page answers with a redirect to
/// the login page.
pub struct SignedIn(pub session::Session);

/// The answer to a request without a live session.
#[derive(Debug)]
pub struct NotSignedIn;

impl std::fmt::Display for NotSignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not signed in")
    }
}

impl ResponseError for NotSignedIn {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::SEE_OTHER
    }

    fn error_response(&self) -> HttpResponse {
        redirect("/login")
    }
}

impl FromRequest for SignedIn {
    type Error = NotSignedIn;
    type Future = std::future::Ready<Result<SignedIn, NotSignedIn>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let session = req
            .app_data::<web::Data<DashboardState>>()
            .and_then(|app| app.sessions.get(req));
        std::future::ready(session.map(SignedIn).ok_or(NotSignedIn))
    }
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

/// Reads a urlencoded form body; anything unreadable counts as an empty form (so a missing
/// token is refused by the CSRF check, not by the parser).
fn form<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> T {
    std::str::from_utf8(body)
        .ok()
        .and_then(|b| web::Query::<T>::from_query(b).ok())
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

/// GET /static/dashboard.css
pub async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .body(DASHBOARD_CSS)
}

/// The dashboard's routes on the admin listener.
/// The headers of every answer of the admin listener: no scripts, styles and images from this
/// origin only, forms post back here only, never framed, no content sniffing, no referrer.
pub fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(overview::overview))
        .route("/usage", web::get().to(usage::usage_page))
        .route("/usage.csv", web::get().to(usage::usage_csv))
        .route("/requests", web::get().to(pages::requests))
        .route("/threads", web::get().to(pages::threads))
        .route("/threads/{id}", web::get().to(pages::thread))
        .route("/cluster", web::get().to(pages::cluster))
        .route("/alerts", web::get().to(alerts::alerts_page))
        .route("/webhooks", web::get().to(webhooks::webhooks_page))
        .route(
            "/webhooks/replay",
            web::post().to(webhooks::webhooks_replay),
        )
        .route("/login", web::get().to(login::login_page))
        .route("/login", web::post().to(login::login))
        .route("/logout", web::post().to(login::logout))
        .route("/static/dashboard.css", web::get().to(css));
}
