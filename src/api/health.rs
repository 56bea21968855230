//! `/livez` and `/readyz` (contract §8.5): no auth, no api-version.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::json;
use crate::error::ApiError;
use crate::state::AppState;

/// GET /livez: 200 while the process serves; never touches storage.
pub async fn livez() -> Result<HttpResponse, ApiError> {
    json(StatusCode::OK, &json!({"status": "ok"}))
}

/// GET /readyz: 200 when storage is reachable, migrations applied and not draining; in
/// cluster mode also connected to NATS (else reason `nats`, contract §9.2.8).
pub async fn readyz(app: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let reason = if app.is_draining() {
        Some("shutting down".to_string())
    } else if app.cluster.as_ref().is_some_and(|c| !c.bus.connected()) {
        Some("nats".to_string())
    } else {
        app.store.ready().await.err()
    };
    match reason {
        None => json(StatusCode::OK, &json!({"status": "ok"})),
        Some(reason) => {
            let mut res = json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "unavailable", "reason": reason}),
            )?;
            res.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_static("1"),
            );
            Ok(res)
        }
    }
}
