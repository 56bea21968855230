//! The request middleware of every listener (request id, client request id echo, the
//! original target for HMAC, one trailing `/` ignored, RED metrics, the recent-errors ring,
//! the 500 body quoting the request id) and CORS for the public listeners.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::web::{self};
use actix_web::{HttpMessage, HttpRequest};

use super::{limits, realtime};
use crate::auth::OriginalTarget;
use crate::error::ApiError;
use crate::state::AppState;

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

/// First middleware: request id, client request id echo, the original target (for HMAC), and
/// one trailing `/` ignored.
pub async fn prelude<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B, BoxBody>>, actix_web::Error> {
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
    let (mut res, watch) = if limits::over_connection_limit(&req) {
        let e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "TooManyConnections",
            "Too many open connections from this address; this one is closed.",
        );
        let e = ApiError {
            retry_after: Some(1),
            ..e
        };
        (req.into_response(closing(e)).map_into_right_body(), None)
    } else {
        let (grace, min_rate) = match req.app_data::<web::Data<AppState>>() {
            Some(app) => (app.config.body_timeout.0, app.config.body_min_rate),
            None => (std::time::Duration::from_secs(10), 8192),
        };
        let flag = limits::guard_body(&mut req, grace, min_rate);
        (next.call(req).await?.map_into_left_body(), flag)
    };
    if watch.as_ref().is_some_and(|w| w.timed_out.get()) {
        let e = ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeout",
            "The request body did not arrive in time; the connection is closed.",
        );
        res = res.into_response(closing(e)).map_into_right_body();
    }
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
        res = res.map_body(|_, _| EitherBody::right(BoxBody::new(body)));
    }
    if let Some(unread) = watch.and_then(|w| w.take_unread()) {
        res = res.map_body(|_, body| {
            EitherBody::right(BoxBody::new(limits::Holding {
                body: BoxBody::new(body),
                _unread: unread,
            }))
        });
    }
    Ok(res)
}

/// The response of `e` on a connection closed after it.
fn closing(e: ApiError) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    let mut r = e.error_response();
    r.head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    r
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
