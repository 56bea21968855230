//! The public HTTP API. This file is the whole URL table; one file per resource holds its
//! handlers, and what every handler shares is in [`extract`] (the body reader, JSON and query
//! parsing, api-version and content-type guards, the chat prologue), [`respond`] (JSON
//! answers, paging, absolute URLs) and [`middleware`] (request id, metrics, CORS).
//!
//! Handlers read like the contract: extract (auth, path, body) → `check_*` guards → one
//! command to a thread actor or one read from the store → response. The check order is the
//! contract's (§2.8): body size 413 → api-version 400 → auth 401 → scope 403 → body shape 400
//! → thread 404 → membership 403 → target 404 → ownership 403 → limits 400 → idempotency.

pub mod admin;
pub mod cognitive;
pub mod demo;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod identities;
pub mod limits;
pub mod messages;
pub mod middleware;
pub mod participants;
pub mod realtime;
pub mod receipts;
pub mod respond;
pub mod subscriptions;
pub mod threads;

pub use extract::*;
pub use middleware::*;
pub use respond::*;

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpResponse};

use crate::error::ApiError;

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
        "/chat/threads/{t}/messages/{m}:translate",
        vec![(M::POST, web::route().to(cognitive::translate))],
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
        "/speech:transcribe",
        vec![(M::POST, web::route().to(cognitive::transcribe))],
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
