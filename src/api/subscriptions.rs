//! Webhook subscription admin API (contract §7.1): access-key HMAC, no api-version.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{base_url, check_content_type, empty, json, parse_json, Body, Params};
use crate::error::ApiError;
use crate::events::client::{handshake, Handshake};
use crate::events::envelope::CLOUD_EVENTS;
use crate::events::signing::{secret_key, ROTATION_OVERLAP_MS};
use crate::events::{full_type, ssrf};
use crate::ids::{encode_query, fmt_ms, now_ms};
use crate::model::{ProvisioningState, SubscriptionStatus};
use crate::state::AppState;
use crate::store::models::{Delivery, Subscription};
use crate::store::webhooks;

/// How long a manual validation link stays valid.
const MANUAL_VALIDATION_MS: i64 = 5 * 60 * 1000;

const EVENT_GRID: &str = "EventGridSchema";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PutBody {
    endpoint_url: Option<String>,
    included_event_types: Option<Vec<String>>,
    event_delivery_schema: Option<String>,
    secret: Option<String>,
    max_delivery_attempts: Option<i64>,
    event_time_to_live_in_minutes: Option<i64>,
}

/// The wire form of a subscription (`secret` is never returned).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionOut {
    name: String,
    endpoint_url: String,
    included_event_types: Vec<String>,
    event_delivery_schema: String,
    has_secret: bool,
    max_delivery_attempts: i32,
    event_time_to_live_in_minutes: i32,
    provisioning_state: ProvisioningState,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    validation_url: Option<String>,
    created_on: String,
    updated_on: String,
}

/// The provisioning state now: a manual validation that timed out has failed.
fn provisioning_state(s: &Subscription, now: i64) -> ProvisioningState {
    match ProvisioningState::parse(&s.provisioning_state) {
        Some(ProvisioningState::Succeeded) => ProvisioningState::Succeeded,
        Some(ProvisioningState::AwaitingManualAction)
            if s.validation_expires.is_some_and(|e| e > now) =>
        {
            ProvisioningState::AwaitingManualAction
        }
        _ => ProvisioningState::Failed,
    }
}

fn validation_url(base: &str, name: &str, code: &str) -> String {
    format!(
        "{base}/eventSubscriptions/{}:validate?code={}",
        encode_query(name),
        encode_query(code)
    )
}

fn out(s: &Subscription, base: &str) -> SubscriptionOut {
    let state = provisioning_state(s, now_ms());
    SubscriptionOut {
        name: s.name.clone(),
        endpoint_url: s.endpoint_url.clone(),
        included_event_types: serde_json::from_str(&s.event_types).unwrap_or_default(),
        event_delivery_schema: s.delivery_schema.clone(),
        has_secret: s.secret.is_some(),
        max_delivery_attempts: s.max_attempts,
        event_time_to_live_in_minutes: s.ttl_minutes,
        provisioning_state: state,
        status: s.status.clone(),
        validation_url: match (&s.validation_code, state) {
            (Some(code), ProvisioningState::AwaitingManualAction) => {
                Some(validation_url(base, &s.name, code))
            }
            _ => None,
        },
        created_on: fmt_ms(s.created_at),
        updated_on: fmt_ms(s.updated_at),
    }
}

/// The `{name}` segment: `[A-Za-z0-9-]{3,64}`; returns it and its lower-case key.
fn path_name(req: &HttpRequest) -> Result<(String, String), ApiError> {
    let name = req.match_info().query("name").to_string();
    let ok = (3..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok {
        return Err(ApiError::invalid(
            "name",
            "A subscription name is 3 to 64 letters, digits or hyphens.",
        ));
    }
    let key = name.to_ascii_lowercase();
    Ok((name, key))
}

/// HMAC (a user token → 401) and the name.
fn prologue(req: &HttpRequest, app: &AppState, body: &[u8]) -> Result<(String, String), ApiError> {
    check_content_type(req, body)?;
    app.auth.access_key(req, body)?;
    path_name(req)
}

async fn load(app: &AppState, key: &str) -> Result<Option<Subscription>, ApiError> {
    let key = key.to_string();
    app.store
        .read(move |c| Ok(webhooks::subscription(c, &key)?))
        .await
}

async fn existing(app: &AppState, key: &str) -> Result<Subscription, ApiError> {
    load(app, key)
        .await?
        .ok_or_else(|| ApiError::not_found("EventSubscription"))
}

fn invalid_endpoint(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("InvalidEndpoint", message).with_target("endpointUrl")
}

/// A validated PUT body.
pub(crate) struct Wanted {
    endpoint_url: String,
    types: Vec<String>,
    schema: String,
    secret: Option<String>,
    max_attempts: i32,
    ttl_minutes: i32,
}

pub(crate) fn validate(body: PutBody) -> Result<Wanted, ApiError> {
    let endpoint_url = body
        .endpoint_url
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("endpointUrl", "endpointUrl is required."))?;
    let mut types = Vec::new();
    for t in body.included_event_types.unwrap_or_default() {
        let full = full_type(&t).ok_or_else(|| {
            ApiError::invalid("includedEventTypes", format!("Unknown event type {t:?}."))
        })?;
        if !types.contains(&full) {
            types.push(full);
        }
    }
    let schema = match body.event_delivery_schema.as_deref() {
        None => EVENT_GRID.to_string(),
        Some(s) if s.eq_ignore_ascii_case(EVENT_GRID) => EVENT_GRID.to_string(),
        Some(s) if s.eq_ignore_ascii_case(CLOUD_EVENTS) => CLOUD_EVENTS.to_string(),
        Some(s) => {
            return Err(ApiError::invalid(
                "eventDeliverySchema",
                format!(
                "eventDeliverySchema must be EventGridSchema or CloudEventSchemaV1_0, got {s:?}."
            ),
            ))
        }
    };
    if let Some(s) = &body.secret {
        if secret_key(s).is_none() {
            return Err(ApiError::invalid(
                "secret",
                "secret must be whsec_ followed by the base64 of 24 to 64 bytes.",
            ));
        }
    }
    let range = |v: Option<i64>, default: i64, max: i64, field: &str| -> Result<i32, ApiError> {
        match v.unwrap_or(default) {
            n if (1..=max).contains(&n) => Ok(n as i32),
            n => Err(ApiError::invalid(
                field,
                format!("{field} must be between 1 and {max}, got {n}."),
            )),
        }
    };
    Ok(Wanted {
        endpoint_url,
        types,
        schema,
        secret: body.secret,
        max_attempts: range(body.max_delivery_attempts, 30, 30, "maxDeliveryAttempts")?,
        ttl_minutes: range(
            body.event_time_to_live_in_minutes,
            1440,
            1440,
            "eventTimeToLiveInMinutes",
        )?,
    })
}

/// PUT /eventSubscriptions/{name}: 201 created / 200 updated, after the handshake if the
/// endpoint is new.
pub async fn put(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (name, key) = prologue(&req, &app, &body.0)?;
    let wanted = validate(parse_json(&body.0)?)?;
    let allow_private = app.config.webhook_allow_private;
    let endpoint =
        ssrf::check_url(&wanted.endpoint_url, allow_private).map_err(invalid_endpoint)?;
    ssrf::resolve(&endpoint.host, endpoint.port, allow_private)
        .await
        .map_err(invalid_endpoint)?;
    let now = now_ms();
    let before = load(&app, &key).await?;
    let base = base_url(&req, &app);
    let mut s = match &before {
        Some(b) => b.clone(),
        None => Subscription {
            key: key.clone(),
            name,
            endpoint_url: String::new(),
            event_types: String::new(),
            delivery_schema: String::new(),
            secret: None,
            old_secret: None,
            old_secret_until: None,
            max_attempts: 0,
            ttl_minutes: 0,
            provisioning_state: String::new(),
            status: String::new(),
            validation_code: None,
            validation_expires: None,
            created_at: now,
            updated_at: now,
        },
    };
    // The handshake reruns when the endpoint changes, and for a subscription that never
    // passed it (so a PUT is how a failed validation is retried).
    let revalidate = before.as_ref().is_none_or(|b| {
        b.endpoint_url != wanted.endpoint_url
            || provisioning_state(b, now) != ProvisioningState::Succeeded
    });
    // Rotation: a replaced secret keeps signing for 24 h beside the new one.
    match (&s.secret, &wanted.secret) {
        (Some(old), Some(new)) if old != new => {
            s.old_secret = Some(old.clone());
            s.old_secret_until = Some(now + ROTATION_OVERLAP_MS);
        }
        (_, None) => {
            s.old_secret = None;
            s.old_secret_until = None;
        }
        _ => {}
    }
    s.secret = wanted.secret;
    s.endpoint_url = wanted.endpoint_url;
    s.event_types = serde_json::to_string(&wanted.types).map_err(ApiError::internal)?;
    s.delivery_schema = wanted.schema;
    s.max_attempts = wanted.max_attempts;
    s.ttl_minutes = wanted.ttl_minutes;
    s.status = SubscriptionStatus::Active.as_str().into();
    s.updated_at = now;
    if revalidate {
        let code = uuid::Uuid::new_v4().to_string();
        let origin = base
            .split_once("://")
            .map_or(base.as_str(), |(_, r)| r)
            .split(':')
            .next()
            .unwrap_or_default()
            .trim_start_matches('[')
            .to_string();
        let passed = handshake(&Handshake {
            schema: &s.delivery_schema,
            url: &s.endpoint_url,
            allow_private,
            topic: &app.config.event_topic,
            name: &s.name,
            code: &code,
            validation_url: &validation_url(&base, &s.name, &code),
            origin: &origin,
        })
        .await;
        s.validation_code = Some(code);
        if passed {
            s.provisioning_state = ProvisioningState::Succeeded.as_str().into();
            s.validation_expires = None;
        } else {
            s.provisioning_state = ProvisioningState::AwaitingManualAction.as_str().into();
            s.validation_expires = Some(now_ms() + MANUAL_VALIDATION_MS);
        }
    }
    let row = s.clone();
    app.store
        .write(move |c| Ok(webhooks::put_subscription(c, &row)?))
        .await?;
    app.webhooks.changed().await;
    let status = if before.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    json(status, &out(&s, &base))
}

/// GET /eventSubscriptions/{name}
pub async fn get(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, key) = prologue(&req, &app, &body.0)?;
    let s = existing(&app, &key).await?;
    json(StatusCode::OK, &out(&s, &base_url(&req, &app)))
}

/// GET /eventSubscriptions
pub async fn list(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_content_type(&req, &body.0)?;
    app.auth.access_key(&req, &body.0)?;
    let all = app.store.read(|c| Ok(webhooks::subscriptions(c)?)).await?;
    let base = base_url(&req, &app);
    let value: Vec<SubscriptionOut> = all.iter().map(|s| out(s, &base)).collect();
    json(StatusCode::OK, &json!({ "value": value }))
}

/// DELETE /eventSubscriptions/{name}: 204; its pending deliveries are dropped.
pub async fn delete(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, key) = prologue(&req, &app, &body.0)?;
    app.store
        .write(move |c| Ok(webhooks::delete_subscription(c, &key)?))
        .await?;
    app.webhooks.changed().await;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// The wire form of a delivery.
fn delivery_out(d: &Delivery) -> serde_json::Value {
    json!({
        "id": d.event_id,
        "eventType": d.event_type,
        "subject": d.subject,
        "status": d.status,
        "attempts": d.attempts,
        "createdOn": fmt_ms(d.created_at),
        "lastAttemptOn": d.last_attempt_at.map(fmt_ms),
        "lastStatusCode": d.last_status_code,
        "nextAttemptOn": d.next_attempt_at.map(fmt_ms),
        "deadLetterReason": d.dead_letter_reason,
        "latencyMs": d.last_latency_ms,
    })
}

/// GET /eventSubscriptions/{name}/deliveries?status=&maxPageSize= — newest first.
pub async fn deliveries(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (name, key) = prologue(&req, &app, &body.0)?;
    existing(&app, &key).await?;
    let params = Params::of(&req);
    let size = params.page_size()?;
    let status = match params.get("status") {
        None => None,
        Some(s) => Some(
            [
                webhooks::PENDING,
                webhooks::RETRYING,
                webhooks::DELIVERED,
                webhooks::DEAD_LETTERED,
            ]
            .into_iter()
            .find(|k| k.eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                ApiError::invalid(
                    "status",
                    "status must be Pending, Retrying, Delivered or DeadLettered.",
                )
            })?,
        ),
    };
    let before = match params.get("continuationToken") {
        None => None,
        Some(t) => Some(t.parse::<i64>().map_err(|_| {
            ApiError::invalid("continuationToken", "The continuationToken is not valid.")
        })?),
    };
    let mut rows = app
        .store
        .read(move |c| Ok(webhooks::list(c, Some(&key), status, before, size + 1)?))
        .await?;
    let more = rows.len() > size as usize;
    rows.truncate(size as usize);
    let mut page = json!({ "value": rows.iter().map(delivery_out).collect::<Vec<_>>() });
    if let (true, Some(last)) = (more, rows.last()) {
        let mut link = format!(
            "{}/eventSubscriptions/{}/deliveries?maxPageSize={size}&continuationToken={}",
            base_url(&req, &app),
            encode_query(&name),
            last.seq
        );
        if let Some(s) = status {
            link.push_str(&format!("&status={s}"));
        }
        page["nextLink"] = json!(link);
    }
    json(StatusCode::OK, &page)
}

/// POST /eventSubscriptions/{name}/deliveries/{id}:replay — 202; re-queued now with the same
/// `webhook-id` and the attempt count reset.
pub async fn replay(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, key) = prologue(&req, &app, &body.0)?;
    existing(&app, &key).await?;
    app.webhooks
        .replay(key, req.match_info().query("id").to_string())
        .await?;
    Ok(empty(StatusCode::ACCEPTED))
}

/// GET /eventSubscriptions/{name}:validate?code= — manual validation; the code is the
/// credential, so there is no other auth.
pub async fn validate_manually(
    req: HttpRequest,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, key) = path_name(&req)?;
    let code = Params::of(&req).get("code").cloned().unwrap_or_default();
    let s = existing(&app, &key).await?;
    if code.is_empty() || s.validation_code.as_deref() != Some(code.as_str()) {
        return Err(ApiError::bad_request(
            "InvalidValidationCode",
            "The validation code does not match this subscription.",
        ));
    }
    let now = now_ms();
    match provisioning_state(&s, now) {
        ProvisioningState::Succeeded => {}
        ProvisioningState::AwaitingManualAction => {
            app.store
                .write(move |c| Ok(webhooks::validated(c, &key, now)?))
                .await?;
            app.webhooks.changed().await;
        }
        _ => return Err(ApiError::bad_request(
            "ValidationExpired",
            "The validation link has expired; PUT the subscription again to restart validation.",
        )),
    }
    json(
        StatusCode::OK,
        &json!({ "name": s.name, "provisioningState": ProvisioningState::Succeeded }),
    )
}
