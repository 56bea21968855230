//! Building responses: JSON bodies, empty answers, `nextLink` paging and the `syncState`
//! token, the absolute base URL of the request.

use actix_web::http::header::{self};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde::Serialize;

use super::Params;
use crate::error::ApiError;
use crate::state::AppState;

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
