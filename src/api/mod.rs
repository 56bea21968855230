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

/// The OpenAPI document of every public route (CONTRACT §11), served at `GET /openapi.json`.
/// It is kept next to this table; a test checks that every route here is in it.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// Every public route with its methods, in match order (the `:validate`/`:replay` forms before
/// the plain ones).
pub fn table() -> Vec<(&'static str, Vec<(Method, actix_web::Route)>)> {
    use Method as M;
    let to = |m: Method, r: actix_web::Route| (m, r);
    vec![
        ("/livez", vec![to(M::GET, web::route().to(health::livez))]),
        ("/readyz", vec![to(M::GET, web::route().to(health::readyz))]),
        (
            "/chat/threads",
            vec![
                to(M::GET, web::route().to(threads::list)),
                to(M::POST, web::route().to(threads::create)),
            ],
        ),
        (
            "/chat/threads/{t}",
            vec![
                to(M::GET, web::route().to(threads::get)),
                to(M::PATCH, web::route().to(threads::update)),
                to(M::DELETE, web::route().to(threads::delete)),
            ],
        ),
        (
            "/chat/threads/{t}/messages",
            vec![
                to(M::GET, web::route().to(messages::list)),
                to(M::POST, web::route().to(messages::send)),
            ],
        ),
        (
            "/chat/threads/{t}/messages/{m}:translate",
            vec![to(M::POST, web::route().to(cognitive::translate))],
        ),
        (
            "/chat/threads/{t}/messages/{m}",
            vec![
                to(M::GET, web::route().to(messages::get)),
                to(M::PATCH, web::route().to(messages::update)),
                to(M::DELETE, web::route().to(messages::delete)),
            ],
        ),
        (
            "/chat/threads/{t}/participants",
            vec![to(M::GET, web::route().to(participants::list))],
        ),
        (
            "/chat/threads/{t}/participants/:add",
            vec![to(M::POST, web::route().to(participants::add))],
        ),
        (
            "/chat/threads/{t}/participants/:remove",
            vec![to(M::POST, web::route().to(participants::remove))],
        ),
        (
            "/chat/threads/{t}/readReceipts",
            vec![
                to(M::GET, web::route().to(receipts::list)),
                to(M::POST, web::route().to(receipts::send)),
            ],
        ),
        (
            "/chat/threads/{t}/typing",
            vec![to(M::POST, web::route().to(receipts::typing))],
        ),
        ("/demo", vec![to(M::GET, web::route().to(demo::page))]),
        (
            "/static/{file}",
            vec![to(M::GET, web::route().to(demo::asset))],
        ),
        (
            "/realtime",
            vec![to(M::GET, web::route().to(realtime::websocket))],
        ),
        (
            "/realtime/poll",
            vec![to(M::GET, web::route().to(realtime::poll))],
        ),
        (
            "/realtime/sse",
            vec![to(M::GET, web::route().to(realtime::sse))],
        ),
        (
            "/speech:transcribe",
            vec![to(M::POST, web::route().to(cognitive::transcribe))],
        ),
        (
            "/identities",
            vec![to(M::POST, web::route().to(identities::create))],
        ),
        (
            "/identities/{id}",
            vec![to(M::DELETE, web::route().to(identities::delete))],
        ),
        (
            "/identities/{id}/:issueAccessToken",
            vec![to(M::POST, web::route().to(identities::issue_token))],
        ),
        (
            "/identities/{id}/:revokeAccessTokens",
            vec![to(M::POST, web::route().to(identities::revoke_tokens))],
        ),
        // Webhook subscriptions (after the hot chat routes: every pattern tried before a match
        // costs a regex run); the `:validate` and `:replay` forms before the plain ones.
        (
            "/eventSubscriptions",
            vec![to(M::GET, web::route().to(subscriptions::list))],
        ),
        (
            "/eventSubscriptions/{name}:validate",
            vec![to(
                M::GET,
                web::route().to(subscriptions::validate_manually),
            )],
        ),
        (
            "/eventSubscriptions/{name}",
            vec![
                to(M::GET, web::route().to(subscriptions::get)),
                to(M::PUT, web::route().to(subscriptions::put)),
                to(M::DELETE, web::route().to(subscriptions::delete)),
            ],
        ),
        (
            "/eventSubscriptions/{name}/deliveries",
            vec![to(M::GET, web::route().to(subscriptions::deliveries))],
        ),
        (
            "/eventSubscriptions/{name}/deliveries/{id}:replay",
            vec![to(M::POST, web::route().to(subscriptions::replay))],
        ),
        ("/openapi.json", vec![to(M::GET, web::route().to(openapi))]),
    ]
}

/// Routes that refuse every method with 400 `FeatureNotSupported` (CONTRACT §1); they are in
/// the OpenAPI document too.
pub const UNSUPPORTED: [(&str, &str); 3] = [
    ("/chat/threads/{t}/images", "Image upload"),
    ("/chat/threads/{t}/images/{rest:.*}", "Image upload"),
    (
        "/teamsUser/:exchangeAccessToken",
        "Teams user token exchange",
    ),
];

/// Installs every public route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    for (path, routes) in table() {
        let allow = routes
            .iter()
            .map(|(m, _)| m.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let mut r = web::resource(path);
        for (m, route) in routes {
            r = r.route(route.method(m));
        }
        cfg.service(r.default_service(web::to(move || {
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
        })));
    }
    for (path, what) in UNSUPPORTED {
        cfg.service(web::resource(path).to(move || async move {
            Err::<HttpResponse, _>(ApiError::feature_not_supported(what))
        }));
    }
}

/// GET /openapi.json: the API description (no auth, no api-version).
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(OPENAPI_JSON)
}

/// Unknown route → 404 `NotFound`.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("Resource"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// `/chat/threads/{t}` and `/chat/threads/{chatThreadId}` are the same route.
    fn shape(path: &str) -> String {
        let mut out = String::new();
        let mut in_param = false;
        for c in path.chars() {
            match c {
                '{' => {
                    in_param = true;
                    out.push_str("{}");
                }
                '}' => in_param = false,
                _ if in_param => {}
                c => out.push(c),
            }
        }
        out
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI_JSON).unwrap();
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                out.insert((shape(path), method.to_uppercase()));
            }
        }
        out
    }

    #[test]
    fn every_route_is_in_the_openapi_document_and_nothing_else() {
        let doc = documented();
        let mut served = BTreeSet::new();
        for (path, routes) in super::table() {
            for (method, _) in routes {
                served.insert((shape(path), method.as_str().to_string()));
            }
        }
        for (path, _) in super::UNSUPPORTED {
            if !path.contains(".*") {
                served.insert((shape(path), "POST".to_string()));
            }
        }
        let missing: Vec<_> = served.difference(&doc).collect();
        assert!(missing.is_empty(), "served but not documented: {missing:?}");
        let extra: Vec<_> = doc.difference(&served).collect();
        assert!(extra.is_empty(), "documented but not served: {extra:?}");
    }
}
