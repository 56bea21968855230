//! `repeatability-request-id` (contract §2.4, OASIS Repeatable Requests).
//!
//! Scope (caller, operation and thread, header value): the same value on another thread's send,
//! or on create thread, is another key; it is stored as `<scope> <value>`. Window `--idempotency-window` from the first receipt; "same
//! body" = equal as parsed JSON. The key is claimed in memory *before* the stored record is
//! read, so a repeat arriving while the first is in flight gets 409 rather than running twice.
//! A 2xx outcome is stored in the transaction of the change itself; a 4xx outcome right after.

use std::future::Future;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::hub::commands::{IdemSlot, Replay};
use crate::ids::now_ms;
use crate::ids::{ThreadId, UserId};
use crate::state::AppState;
use crate::store::messages;
use crate::store::models::IdempotencyRecord;

pub const HEADER: &str = "repeatability-request-id";
pub const FIRST_SENT: &str = "repeatability-first-sent";
const MAX_KEY_CHARS: usize = 128;

/// Releases the in-flight claim when the request ends, however it ends.
struct Claim<'a> {
    app: &'a AppState,
    key: (String, String),
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.app.inflight.lock().remove(&self.key);
    }
}

/// Hash of a JSON body as parsed (key order and whitespace do not matter).
pub fn body_hash(body: &[u8]) -> String {
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
    base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        Sha256::digest(canonical.as_bytes()),
    )
}

pub fn respond(r: &Replay) -> HttpResponse {
    let mut res = HttpResponse::build(StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK));
    res.insert_header((header::CONTENT_TYPE, "application/json; charset=utf-8"));
    if let Some(l) = &r.location {
        res.insert_header((header::LOCATION, l.clone()));
    }
    res.body(r.body.clone())
}

/// What a `repeatability-request-id` is scoped to, besides the caller.
pub enum Scope<'a> {
    CreateThread,
    /// A send to this thread; a replay first passes the send's own checks (404 for a missing
    /// or deleted thread, 403 for a caller who is not a current participant).
    Send(&'a ThreadId),
}

impl Scope<'_> {
    /// The stored key: `<scope> <header value>`.
    fn key(&self, value: &str) -> String {
        match self {
            Scope::CreateThread => format!("create {value}"),
            Scope::Send(t) => format!("send:{t} {value}"),
        }
    }
}

/// Runs `run` at most once per (user, scope, key) within the window, replaying the stored
/// outcome.
pub async fn once<F, Fut>(
    req: &HttpRequest,
    app: &AppState,
    user: &str,
    scope: Scope<'_>,
    body: &[u8],
    run: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(Option<IdemSlot>) -> Fut,
    Fut: Future<Output = Result<Replay, ApiError>>,
{
    let Some(key) = req.headers().get(HEADER) else {
        return run(None).await.map(|r| respond(&r));
    };
    let key = key
        .to_str()
        .map_err(|_| ApiError::invalid(HEADER, "repeatability-request-id must be ASCII."))?
        .trim()
        .to_string();
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return Err(ApiError::invalid(
            HEADER,
            format!("repeatability-request-id must be 1 to {MAX_KEY_CHARS} characters."),
        ));
    }
    let window_ms = app.config.idempotency_window.0.as_millis() as i64;
    if let Some(first) = req.headers().get(FIRST_SENT) {
        let sent = first
            .to_str()
            .ok()
            .and_then(|s| httpdate::parse_http_date(s).ok())
            .ok_or_else(|| {
                ApiError::invalid(
                    FIRST_SENT,
                    "repeatability-first-sent must be an IMF-fixdate.",
                )
            })?;
        let sent_ms = sent
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        if now_ms() - sent_ms > window_ms {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "RepeatabilityFirstSentTooOld",
                "The request was first sent longer ago than the repeatability window.",
            ));
        }
    }
    let key = scope.key(&key);
    let claim_key = (user.to_string(), key.clone());
    if !app.inflight.lock().insert(claim_key.clone()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "RepeatabilityRequestInProgress",
            "A request with this repeatability-request-id is still being processed.",
        ));
    }
    let _claim = Claim {
        app,
        key: claim_key,
    };
    let hash = body_hash(body);
    let (u, k) = (UserId::new(user), key.clone());
    let send_to = match scope {
        Scope::Send(t) => Some(t.clone()),
        Scope::CreateThread => None,
    };
    let stored = app
        .store
        .read(move |c| {
            let rec = messages::idempotency_get(c, &u, &k)?;
            // a replay passes the same checks as a first request
            if let (Some(_), Some(thread)) = (&rec, &send_to) {
                let p = super::messages::viewer(c, thread, &u)?;
                if !p.is_current() {
                    return Err(ApiError::forbidden());
                }
            }
            Ok(rec)
        })
        .await?;
    if let Some(rec) = stored.filter(|r| now_ms() - r.created_at < window_ms) {
        if rec.body_hash != hash {
            return Err(ApiError::bad_request(
                "RepeatabilityRequestIdMismatch",
                "This repeatability-request-id was used with a different request body.",
            ));
        }
        let replay = Replay {
            status: u16::try_from(rec.status).unwrap_or(200),
            body: rec.response,
            location: rec.location,
        };
        let mut res = respond(&replay);
        res.headers_mut().insert(
            header::HeaderName::from_static("repeatability-result"),
            header::HeaderValue::from_static("accepted"),
        );
        return Ok(res);
    }
    let slot = IdemSlot {
        user: UserId::new(user),
        request_id: key.clone(),
        body_hash: hash.clone(),
    };
    match run(Some(slot)).await {
        Ok(r) => Ok(respond(&r)),
        Err(e) if e.status.is_client_error() => {
            let rec = IdempotencyRecord {
                user_id: user.to_string(),
                request_id: key,
                body_hash: hash,
                status: i32::from(e.status.as_u16()),
                response: e.envelope(),
                location: None,
                created_at: now_ms(),
            };
            // Best effort: if storing the 4xx fails, a repeat is simply evaluated again.
            let _ = app
                .store
                .write(move |c| Ok(messages::idempotency_put(c, &rec)?))
                .await;
            Err(e)
        }
        Err(e) => Err(e),
    }
}
