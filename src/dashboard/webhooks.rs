//! The Webhooks page: subscriptions, the backlog, recent deliveries and dead letters, with a
//! CSRF-protected replay.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::session::same;
use super::{form, redirect, render, DashboardState, SignedIn};
use crate::ids::{fmt_ms, now_ms};

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

/// `?replayed=<id>`: the notice after a replay.
#[derive(Debug, Default, Deserialize)]
pub struct Notice {
    replayed: Option<String>,
}

/// Rows shown per table on the Webhooks page.
const WEBHOOK_ROWS: i64 = 50;

/// GET /webhooks — subscriptions, the backlog, recent deliveries and dead letters.
pub async fn webhooks_page(
    SignedIn(s): SignedIn,
    notice: web::Query<Notice>,
    app: web::Data<DashboardState>,
) -> HttpResponse {
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
        notice: notice
            .replayed
            .as_ref()
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
    SignedIn(s): SignedIn,
    app: web::Data<DashboardState>,
    body: web::Bytes,
) -> HttpResponse {
    let form: ReplayForm = form(&body);
    if !form.csrf.as_deref().is_some_and(|c| same(c, &s.csrf)) {
        return HttpResponse::Forbidden().body("missing or wrong CSRF token");
    }
    let key = form.subscription.to_ascii_lowercase();
    match app.webhooks.replay(key, form.id.clone()).await {
        Ok(()) => redirect(&format!(
            "/webhooks?replayed={}",
            crate::ids::encode_query(&form.id)
        )),
        Err(e) => HttpResponse::build(e.status).body(e.message),
    }
}
