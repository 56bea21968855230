//! The admin listener (contract §8.1, §8.5): `/metrics` in Prometheus text format, `/livez`,
//! `/readyz`. Loopback by default; anywhere else it requires `--metrics-token` as a bearer.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use subtle::ConstantTimeEq;

use super::health;
use crate::error::ApiError;
use crate::state::AppState;

/// Checks the `--metrics-token` bearer when one is configured (constant-time compare).
fn check_token(req: &HttpRequest, app: &AppState) -> Result<(), ApiError> {
    let Some(want) = &app.config.metrics_token else {
        return Ok(());
    };
    let got = crate::auth::bearer(req).unwrap_or_default();
    if bool::from(got.as_bytes().ct_eq(want.expose().as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// GET /metrics
pub async fn metrics(req: HttpRequest, app: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    check_token(&req, &app)?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(app.prometheus.render()))
}

/// The API's routes on the admin listener (the dashboard's are composed beside them).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .route("/livez", web::get().to(health::livez))
        .route("/readyz", web::get().to(health::readyz));
}
