//! The public HTTP API: the whole URL table, and what every handler shares (api-version and
//! content-type checks, the body reader, JSON parsing, paging, absolute URLs).
//!
//! Handlers read like the contract: extract (auth, path, body) → `check_*` guards → one
//! command to a thread actor or one read from the store → response. The check order is the
//! contract's (§2.8): body size 413 → api-version 400 → auth 401 → scope 403 → body shape 400
//! → thread 404 → membership 403 → target 404 → ownership 403 → limits 400 → idempotency.

pub mod admin;
pub mod demo;
pub mod health;
pub mod idempotency;
pub mod identities;
pub mod messages;
pub mod participants;
pub mod realtime;
pub mod receipts;
pub mod subscriptions;
pub mod threads;

use std::future::ready;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::auth::OriginalTarget;
use crate::error::ApiError;
use crate::state::AppState;

/// Chat api-versions confab accepts (contract §1).
pub const CHAT_API_VERSIONS: &[&str] = &[
    "2021-03-07",
    "2021-09-07",
    "2023-11-07",
    "2024-03-07",
    "2025-03-15",
];
/// Identity api-versions confab accepts.
pub const IDENTITY_API_VERSIONS: &[&str] = &[
    "2021-03-07",
    "2022-06-01",
    "2022-09-01",
    "2022-10-01",
    "2023-08-01",
    "2023-10-01",
    "2025-06-30",
];
/// Largest request body.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Default and largest page sizes.
pub const DEFAULT_PAGE_SIZE: i64 = 100;
pub const MAX_PAGE_SIZE: i64 = 200;

/// The request id of a request (set by [`prelude`]).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The request id of `req` (the `x-ms-request-id` it is answered with).
pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

/// Installs every public route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use actix_web::Route;
    fn resource(path: &str, routes: Vec<(Method, Route)>) -> actix_web::Resource {
        let allow = routes
            .iter()
            .map(|(m, _)| m.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let mut r = web::resource(path);
        for (m, route) in routes {
            r = r.route(route.method(m));
        }
        r.default_service(web::to(move || {
            let allow = allow.clone();
            async move {
                let mut e = ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    format!("Method not allowed here; allowed: {allow}."),
                );
                e.allow = Some(allow);
                Err::<HttpResponse, _>(e)
            }
        }))
    }
    use Method as M;
    cfg.service(resource(
        "/livez",
        vec![(M::GET, web::route().to(health::livez))],
    ))
    .service(resource(
        "/readyz",
        vec![(M::GET, web::route().to(health::readyz))],
    ))
    .service(resource(
        "/chat/threads",
        vec![
            (M::GET, web::route().to(threads::list)),
            (M::POST, web::route().to(threads::create)),
        ],
    ))
    .service(resource(
        "/chat/threads/{t}",
        vec![
            (M::GET, web::route().to(threads::get)),
            (M::PATCH, web::route().to(threads::update)),
            (M::DELETE, web::route().to(threads::delete)),
        ],
    ))
    .service(resource(
        "/chat/threads/{t}/messages",
        vec![
            (M::GET, web::route().to(messages::list)),
            (M::POST, web::route().to(messages::send)),
        ],
    ))
    .service(resource(
        "/chat/threads/{t}/messages/{m}",
        vec![
            (M::GET, web::route().to(messages::get)),
            (M::PATCH, web::route().to(messages::update)),
            (M::DELETE, web::route().to(messages::delete)),
        ],
    ))
    .service(resource(
        "/chat/threads/{t}/participants",
        vec![(M::GET, web::route().to(participants::list))],
    ))
    .service(resource(
        "/chat/threads/{t}/participants/:add",
        vec![(M::POST, web::route().to(participants::add))],
    ))
    .service(resource(
        "/chat/threads/{t}/participants/:remove",
        vec![(M::POST, web::route().to(participants::remove))],
    ))
    .service(resource(
        "/chat/threads/{t}/readReceipts",
        vec![
            (M::GET, web::route().to(receipts::list)),
            (M::POST, web::route().to(receipts::send)),
        ],
    ))
    .service(resource(
        "/chat/threads/{t}/typing",
        vec![(M::POST, web::route().to(receipts::typing))],
    ))
    .service(
        web::resource([
            "/chat/threads/{t}/images",
            "/chat/threads/{t}/images/{rest:.*}",
        ])
        .to(|| async { Err::<HttpResponse, _>(ApiError::feature_not_supported("Image upload")) }),
    )
    .service(resource(
        "/demo",
        vec![(M::GET, web::route().to(demo::page))],
    ))
    .service(resource(
        "/static/{file}",
        vec![(M::GET, web::route().to(demo::asset))],
    ))
    .service(resource(
        "/realtime",
        vec![(M::GET, web::route().to(realtime::websocket))],
    ))
    .service(resource(
        "/realtime/poll",
        vec![(M::GET, web::route().to(realtime::poll))],
    ))
    .service(resource(
        "/realtime/sse",
        vec![(M::GET, web::route().to(realtime::sse))],
    ))
    .service(resource(
        "/identities",
        vec![(M::POST, web::route().to(identities::create))],
    ))
    .service(resource(
        "/identities/{id}",
        vec![(M::DELETE, web::route().to(identities::delete))],
    ))
    .service(resource(
        "/identities/{id}/:issueAccessToken",
        vec![(M::POST, web::route().to(identities::issue_token))],
    ))
    .service(resource(
        "/identities/{id}/:revokeAccessTokens",
        vec![(M::POST, web::route().to(identities::revoke_tokens))],
    ))
    // Webhook subscriptions (after the hot chat routes: every pattern tried before a match
    // costs a regex run); the `:validate` and `:replay` forms before the plain ones.
    .service(resource(
        "/eventSubscriptions",
        vec![(M::GET, web::route().to(subscriptions::list))],
    ))
    .service(resource(
        "/eventSubscriptions/{name}:validate",
        vec![(M::GET, web::route().to(subscriptions::validate_manually))],
    ))
    .service(resource(
        "/eventSubscriptions/{name}",
        vec![
            (M::GET, web::route().to(subscriptions::get)),
            (M::PUT, web::route().to(subscriptions::put)),
            (M::DELETE, web::route().to(subscriptions::delete)),
        ],
    ))
    .service(resource(
        "/eventSubscriptions/{name}/deliveries",
        vec![(M::GET, web::route().to(subscriptions::deliveries))],
    ))
    .service(resource(
        "/eventSubscriptions/{name}/deliveries/{id}:replay",
        vec![(M::POST, web::route().to(subscriptions::replay))],
    ))
    .service(
        web::resource("/teamsUser/:exchangeAccessToken").to(|| async {
            Err::<HttpResponse, _>(ApiError::feature_not_supported("Teams user token exchange"))
        }),
    );
}

/// Unknown route → 404 `NotFound`.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("Resource"))
}

/// First middleware: request id, client request id echo, the original target (for HMAC), and
/// one trailing `/` ignored.
pub async fn prelude(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let started = std::time::Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_id = req.headers().get("x-ms-client-request-id").cloned();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    req.extensions_mut().insert(OriginalTarget(target));
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let path = req.path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let new = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_string(),
        };
        if let Ok(uri) = new.parse::<actix_web::http::Uri>() {
            req.match_info_mut().get_mut().update(&uri);
            req.head_mut().uri = uri;
        }
    }
    let mut res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    crate::metrics::record_request(
        &route,
        res.request().method().as_str(),
        res.status().as_u16(),
        started.elapsed(),
    );
    if res.status().as_u16() >= 400 {
        if let Some(app) = res.request().app_data::<web::Data<AppState>>() {
            app.recent_errors.record(
                &route,
                res.request().method().as_str(),
                res.status().as_u16(),
                &request_id,
            );
        }
    }
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(header::HeaderName::from_static("x-ms-request-id"), v);
    }
    if let Some(v) = client_id {
        headers.insert(header::HeaderName::from_static("x-ms-client-request-id"), v);
    }
    // A 500's body is generic but quotes the request id, which the log line carries too.
    if res.status() == StatusCode::INTERNAL_SERVER_ERROR {
        let body = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            format!(
                "An internal error occurred. Quote x-ms-request-id {request_id} when reporting it."
            ),
        )
        .envelope();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        return Ok(res.map_body(|_, _| {
            actix_web::body::EitherBody::right(actix_web::body::BoxBody::new(body))
        }));
    }
    Ok(res.map_into_left_body())
}

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
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
            return Box::pin(ready(Err(ApiError::body_too_large(MAX_BODY_BYTES))));
        }
        let mut payload = payload.take();
        Box::pin(async move {
            let mut buf = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::invalid("body", format!("Cannot read the request body: {e}"))
                })?;
                if buf.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(ApiError::body_too_large(MAX_BODY_BYTES));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(Body(buf.freeze()))
        })
    }
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

/// A JSON response with the contract's content type.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Result<HttpResponse, ApiError> {
    let text = serde_json::to_string(body).map_err(ApiError::internal)?;
    Ok(json_text(status, text))
}

pub fn json_text(status: StatusCode, text: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "application/json; charset=utf-8"))
        .body(text)
}

/// A bodiless response (`Content-Length: 0`).
pub fn empty(status: StatusCode) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_LENGTH, 0))
        .finish()
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
        let bytes = B64URL.decode(token.trim()).map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map(Some).map_err(|_| bad())
    }
}

/// Encodes a `syncState` continuation token (opaque base64url of private JSON).
pub fn encode_sync_state<T: Serialize>(state: &T) -> String {
    B64URL.encode(serde_json::to_vec(state).unwrap_or_default())
}

/// `scheme://host` of the request, or `--public-url`. `X-Forwarded-*` is never trusted.
pub fn base_url(req: &HttpRequest, app: &AppState) -> String {
    if let Some(u) = &app.config.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| req.app_config().host().to_string());
    format!("{scheme}://{host}")
}

/// The thread id path segment (already percent-decoded by the router).
pub fn path_thread(req: &HttpRequest) -> String {
    req.match_info().query("t").to_string()
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

/// Offset paging (participants, receipts): keeps the first `size` of `rows` (fetched as
/// `size + 1`) and returns the absolute `nextLink` to `path` when there were more.
pub fn skip_page<T>(
    req: &HttpRequest,
    app: &AppState,
    path: &str,
    rows: &mut Vec<T>,
    size: i64,
    skip: i64,
    params: &Params,
) -> Option<String> {
    if rows.len() <= size as usize {
        return None;
    }
    rows.truncate(size as usize);
    Some(format!(
        "{}{path}?skip={}&maxPageSize={size}&api-version={}",
        base_url(req, app),
        skip + size,
        crate::ids::encode_query(params.api_version())
    ))
}

/// CORS for the public listeners (contract §8.1): origins on `--allowed-origins`, the chat
/// methods, request headers reflected, and the headers clients need to read exposed.
pub fn cors(allowed: Vec<String>) -> actix_cors::Cors {
    actix_cors::Cors::default()
        .allowed_origin_fn(move |origin, _req| {
            origin
                .to_str()
                .is_ok_and(|o| realtime::origin_allowed(o, &allowed))
        })
        .allowed_methods(["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"])
        .allow_any_header()
        .expose_headers([
            "location",
            "retry-after",
            "x-ms-request-id",
            "x-ms-client-request-id",
        ])
        .max_age(3600)
}

#[cfg(test)]
mod tests {
    use actix_web::{middleware, test, web, App};

    use crate::error::ApiError;

    /// A 500 answers the envelope with a generic message that quotes the request id.
    #[actix_web::test]
    async fn internal_errors_quote_the_request_id() {
        let app = test::init_service(App::new().wrap(middleware::from_fn(super::prelude)).route(
            "/boom",
            web::get().to(|| async { Err::<String, _>(ApiError::internal("a bug")) }),
        ))
        .await;
        let res =
            test::call_service(&app, test::TestRequest::get().uri("/boom").to_request()).await;
        assert_eq!(res.status(), 500);
        let id = res
            .headers()
            .get("x-ms-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let body: serde_json::Value = test::read_body_json(res).await;
        assert_eq!(body["error"]["code"], "InternalServerError");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&id), "{message}");
        assert!(!message.contains("a bug"), "the cause stays in the log");
    }
}
