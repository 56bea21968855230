//! What a handler extracts and checks before it acts: the bounded body, JSON and query
//! parameters, api-version and content-type guards, the thread path segment, and the chat
//! prologue (authentication, rate limit, checks in the contract's order).

use std::future::ready;

use actix_web::dev::Payload;
use actix_web::http::header::{self};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use futures_util::future::LocalBoxFuture;
use futures_util::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;

use super::{CHAT_API_VERSIONS, DEFAULT_PAGE_SIZE, MAX_BODY_BYTES, MAX_PAGE_SIZE};
use crate::error::ApiError;
use crate::ids::ThreadId;
use crate::state::AppState;

/// The api-version check of a route group (contract §1).
pub fn check_api_version(
    req: &HttpRequest,
    app: &AppState,
    accepted: &[&str],
) -> Result<(), ApiError> {
    if app.config.skip_api_version_check {
        return Ok(());
    }
    match Params::of(req).get("api-version") {
        None => Err(ApiError::bad_request(
            "MissingApiVersionParameter",
            "The api-version query parameter is required.",
        )),
        Some(v) if accepted.contains(&v.as_str()) => Ok(()),
        Some(v) => Err(ApiError::bad_request(
            "UnsupportedApiVersion",
            format!(
                "The api-version {v:?} is not supported; accepted: {}. Start confab with --skip-api-version-check to accept any value.",
                accepted.join(", ")
            ),
        )
        .with_target("api-version")),
    }
}

/// Request Content-Type must be JSON, merge-patch, text/json or absent (an empty body counts
/// as no body).
pub fn check_content_type(req: &HttpRequest, body: &[u8]) -> Result<(), ApiError> {
    if body.is_empty() {
        return Ok(());
    }
    let Some(ct) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or_default();
    let mime = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if matches!(
        mime.as_str(),
        "application/json" | "application/merge-patch+json" | "text/json" | ""
    ) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("Content-Type {ct:?} is not supported; send application/json."),
        ))
    }
}

/// The raw request body, at most [`MAX_BODY_BYTES`] (else 413 before anything else runs).
pub struct Body(pub Bytes);

impl FromRequest for Body {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Body, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        Box::pin(read_body(req, payload, MAX_BODY_BYTES).map(|b| b.map(Body)))
    }
}

/// The largest audio body of a transcription (CONTRACT §10.4).
pub const MAX_AUDIO_BYTES: usize = 10 * 1024 * 1024;

/// The raw body of a transcription request, at most [`MAX_AUDIO_BYTES`] (else 413).
pub struct AudioBody(pub Bytes);

impl FromRequest for AudioBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<AudioBody, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        Box::pin(read_body(req, payload, MAX_AUDIO_BYTES).map(|b| b.map(AudioBody)))
    }
}

/// Reads a body of at most `limit` bytes: a larger declared length is refused before reading.
fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> LocalBoxFuture<'static, Result<Bytes, ApiError>> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Box::pin(ready(Err(ApiError::body_too_large(limit))));
    }
    let mut payload = payload.take();
    Box::pin(async move {
        let mut buf = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::invalid("body", format!("Cannot read the request body: {e}"))
            })?;
            if buf.len() + chunk.len() > limit {
                return Err(ApiError::body_too_large(limit));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    })
}

/// Parses a required JSON body; errors name the offending field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "body",
            "A JSON request body is required.",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let target = if path == "." {
            "body".to_string()
        } else {
            path
        };
        ApiError::invalid(target, format!("Invalid request body: {}.", e.inner()))
    })
}

/// Parses an optional JSON body (none, or empty, gives the default).
pub fn parse_optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(body)
}

/// The decoded query parameters of a request.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn of(req: &HttpRequest) -> Params {
        Params(
            web::Query::<Vec<(String, String)>>::from_query(req.query_string())
                .map(|q| q.into_inner())
                .unwrap_or_default(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&String> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<i32>()
                .map(|n| Some(i64::from(n)))
                .map_err(|_| {
                    ApiError::invalid(name, format!("{name} must be a 32-bit integer, got {v:?}."))
                }),
        }
    }

    /// `maxPageSize`: default 100, clamped to 200, below 1 refused.
    pub fn page_size(&self) -> Result<i64, ApiError> {
        match self.int("maxPageSize")? {
            None => Ok(DEFAULT_PAGE_SIZE),
            Some(n) if n < 1 => Err(ApiError::invalid(
                "maxPageSize",
                "maxPageSize must be at least 1.",
            )),
            Some(n) => Ok(n.min(MAX_PAGE_SIZE)),
        }
    }

    /// `skip`: default 0, negative refused.
    pub fn skip(&self) -> Result<i64, ApiError> {
        match self.int("skip")? {
            None => Ok(0),
            Some(n) if n < 0 => Err(ApiError::invalid("skip", "skip must not be negative.")),
            Some(n) => Ok(n),
        }
    }

    /// `startTime` as epoch ms.
    pub fn start_time(&self) -> Result<Option<i64>, ApiError> {
        match self.get("startTime") {
            None => Ok(None),
            Some(v) => crate::ids::parse_time(v).map(Some).ok_or_else(|| {
                ApiError::invalid(
                    "startTime",
                    format!("startTime must be an RFC 3339 time, got {v:?}."),
                )
            }),
        }
    }

    /// The api-version to carry into `nextLink`.
    pub fn api_version(&self) -> &str {
        self.get("api-version")
            .map(String::as_str)
            .unwrap_or("2025-03-15")
    }

    /// Decodes a `syncState` continuation token.
    pub fn sync_state<T: DeserializeOwned>(&self) -> Result<Option<T>, ApiError> {
        let Some(token) = self.get("syncState") else {
            return Ok(None);
        };
        let bad = || {
            ApiError::invalid(
                "syncState",
                "The syncState continuation token is not valid.",
            )
        };
        decode_sync_state(token).map(Some).ok_or_else(bad)
    }
}

/// Decodes a `syncState` token (base64url of JSON); `None` for anything else.
pub fn decode_sync_state<T: DeserializeOwned>(token: &str) -> Option<T> {
    let bytes = B64URL.decode(token.trim()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The thread id path segment (already percent-decoded by the router).
pub fn path_thread(req: &HttpRequest) -> ThreadId {
    ThreadId::new(req.match_info().query("t"))
}

/// Unknown-shaped thread ids cannot exist.
pub fn check_thread_id(id: &str) -> Result<(), ApiError> {
    if crate::ids::is_thread_id(id) {
        Ok(())
    } else {
        Err(ApiError::not_found("Thread"))
    }
}

/// Extracts the shared state; a missing one is a wiring bug.
pub fn state(req: &HttpRequest) -> Result<&AppState, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .map(|d| d.get_ref())
        .ok_or_else(|| ApiError::internal("AppState missing"))
}

/// The shared start of every chat handler: api-version, content type, user token, rate limit.
pub async fn chat_prologue(
    req: &HttpRequest,
    body: &[u8],
    op: crate::ratelimit::Op,
    thread: Option<&str>,
) -> Result<crate::auth::ChatUser, ApiError> {
    let app = state(req)?;
    check_api_version(req, app, CHAT_API_VERSIONS)?;
    check_content_type(req, body)?;
    let user = app.auth.chat_user(req).await?;
    rate_limit(app, op, &user.id, thread)?;
    Ok(user)
}

/// The prologue of confab's own chat routes (CONTRACT §10): `api-version` is optional there
/// (checked when given), and the body is not JSON-typed (audio, or none).
pub async fn extension_prologue(
    req: &HttpRequest,
    op: crate::ratelimit::Op,
    thread: Option<&str>,
) -> Result<crate::auth::ChatUser, ApiError> {
    let app = state(req)?;
    if Params::of(req).get("api-version").is_some() {
        check_api_version(req, app, CHAT_API_VERSIONS)?;
    }
    let user = app.auth.chat_user(req).await?;
    if op != crate::ratelimit::Op::Transcribe {
        rate_limit(app, op, &user.id, thread)?;
    }
    Ok(user)
}

/// Applies the rate-limit profile, counting refusals.
pub fn rate_limit(
    app: &AppState,
    op: crate::ratelimit::Op,
    user: &str,
    thread: Option<&str>,
) -> Result<(), ApiError> {
    app.limiter.check(op, user, thread).inspect_err(|_| {
        metrics::counter!(crate::metrics::RATE_LIMITED).increment(1);
    })
}
