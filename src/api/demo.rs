//! The browser demo client (`/demo`) and its static files, embedded in the binary so that a
//! release build needs nothing on disk.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::error::ApiError;

const DEMO_HTML: &str = include_str!("../../static/demo.html");
const DEMO_JS: &str = include_str!("../../static/demo.js");
const DEMO_CSS: &str = include_str!("../../static/demo.css");

/// GET /demo
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(DEMO_HTML)
}

/// GET /static/{file}
pub async fn asset(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (body, ct) = match file.as_str() {
        "demo.js" => (DEMO_JS, "text/javascript; charset=utf-8"),
        "demo.css" => (DEMO_CSS, "text/css; charset=utf-8"),
        _ => return Err(ApiError::not_found("File")),
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, ct))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body))
}
