//! Identity REST (contract §4.1): create, issue token, revoke tokens, delete. Access-key HMAC.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::IDENTITY_API_VERSIONS;
use super::{
    check_api_version, check_content_type, empty, json, parse_json, parse_optional_json,
    rate_limit, Body,
};
use crate::auth::token::{Scope, MAX_EXPIRES_MINUTES, MIN_EXPIRES_MINUTES};
use crate::error::ApiError;
use crate::ids::{fmt_ms, is_own_user_id, new_user_id, now_ms, UserId};
use crate::ratelimit::Op;
use crate::state::AppState;
use crate::store::cluster_events::{self, NewClusterEvent};
use crate::store::{identities, DbConn};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateRequest {
    pub(crate) create_token_with_scopes: Option<Vec<String>>,
    pub(crate) expires_in_minutes: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenRequest {
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) expires_in_minutes: Option<i64>,
}

/// The shared start of every identity handler: api-version, content type, HMAC, rate limit.
fn prologue(req: &HttpRequest, app: &AppState, body: &[u8], op: Op) -> Result<(), ApiError> {
    authenticate(req, app, body)?;
    rate_limit(app, op, "", None)
}

/// api-version, content type and HMAC, in the contract's check order.
fn authenticate(req: &HttpRequest, app: &AppState, body: &[u8]) -> Result<(), ApiError> {
    check_api_version(req, app, IDENTITY_API_VERSIONS)?;
    check_content_type(req, body)?;
    app.auth.access_key(req, body)
}

/// The `{id}` path segment; malformed ids and other resources' ids are simply not found.
fn path_identity(req: &HttpRequest, app: &AppState) -> Result<UserId, ApiError> {
    let id = UserId::new(req.match_info().query("id"));
    if is_own_user_id(&id, &app.resource_id) {
        Ok(id)
    } else {
        Err(ApiError::not_found("Identity"))
    }
}

/// Loads a live identity (404 if unknown or deleted).
async fn live_identity(
    app: &AppState,
    id: &UserId,
) -> Result<crate::store::models::Identity, ApiError> {
    let lookup = id.clone();
    app.store
        .read(move |c| Ok(identities::get(c, &lookup)?))
        .await?
        .filter(|i| i.deleted_at.is_none())
        .ok_or_else(|| ApiError::not_found("Identity"))
}

/// POST /identities — `CommunicationIdentity_Create`: 201 with the identity and, when scopes
/// were asked for, a token.
pub async fn create(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // The rate-limit op depends on the body, so it is applied after parsing.
    authenticate(&req, &app, &body.0)?;
    let parsed: CreateRequest = parse_optional_json(&body.0)?;
    let op = if parsed.create_token_with_scopes.is_some() {
        Op::CreateIdentityWithToken
    } else {
        Op::CreateIdentity
    };
    rate_limit(&app, op, "", None)?;
    let token_scopes = parsed
        .create_token_with_scopes
        .as_deref()
        .map(scopes)
        .transpose()?;
    let minutes = expires(parsed.expires_in_minutes)?;
    let id = new_user_id(&app.resource_id);
    let insert = id.clone();
    app.store
        .write(move |c| Ok(identities::insert(c, &insert, now_ms())?))
        .await?;
    metrics::counter!(crate::metrics::IDENTITIES_CREATED).increment(1);
    let mut out = json!({ "identity": { "id": id } });
    if let Some(s) = token_scopes {
        let (token, exp) = app.auth.tokens.issue(&id, &s, issue_time(None), minutes);
        out["accessToken"] = token_json(token, exp);
        metrics::counter!(crate::metrics::TOKENS_ISSUED).increment(1);
    }
    json(StatusCode::CREATED, &out)
}

/// POST /identities/{id}/:issueAccessToken — 200 `CommunicationIdentityAccessToken`.
pub async fn issue_token(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    prologue(&req, &app, &body.0, Op::IssueToken)?;
    let parsed: TokenRequest = parse_json(&body.0)?;
    let s = scopes(
        parsed
            .scopes
            .as_deref()
            .ok_or_else(|| ApiError::invalid("scopes", "scopes is required."))?,
    )?;
    let minutes = expires(parsed.expires_in_minutes)?;
    let id = path_identity(&req, &app)?;
    let identity = live_identity(&app, &id).await?;
    let (token, exp) =
        app.auth
            .tokens
            .issue(&id, &s, issue_time(identity.tokens_revoked_at), minutes);
    metrics::counter!(crate::metrics::TOKENS_ISSUED).increment(1);
    json(StatusCode::OK, &token_json(token, exp))
}

/// POST /identities/{id}/:revokeAccessTokens — 204; every token issued up to now is refused.
pub async fn revoke_tokens(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    prologue(&req, &app, &body.0, Op::RevokeTokens)?;
    let id = path_identity(&req, &app)?;
    live_identity(&app, &id).await?;
    let secs = now_ms() / 1000;
    let revoked = id.clone();
    let closing = closing(&app).await;
    let nonce = closing.as_ref().map(|c| c.nonce.clone());
    app.store
        .write(move |c| {
            identities::revoke(c, &revoked, secs)?;
            close_everywhere(c, nonce, &revoked)
        })
        .await?;
    closed(&app, &id, closing).await;
    metrics::counter!(crate::metrics::TOKENS_REVOKED).increment(1);
    Ok(empty(StatusCode::NO_CONTENT))
}

/// DELETE /identities/{id} — 204; the user's tokens stop working, its rows stay.
pub async fn delete(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    prologue(&req, &app, &body.0, Op::DeleteIdentity)?;
    let id = path_identity(&req, &app)?;
    live_identity(&app, &id).await?;
    let deleted = id.clone();
    let closing = closing(&app).await;
    let nonce = closing.as_ref().map(|c| c.nonce.clone());
    app.store
        .write(move |c| {
            identities::delete(c, &deleted, now_ms())?;
            close_everywhere(c, nonce, &deleted)
        })
        .await?;
    closed(&app, &id, closing).await;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Cluster mode: before a revoke or delete, listens for the other nodes' confirmations.
async fn closing(app: &AppState) -> Option<crate::cluster::Closing> {
    match &app.cluster {
        Some(cluster) => Some(cluster.closing().await),
        None => None,
    }
}

/// Cluster mode (`nonce` set): in the revoking transaction, the event that closes the user's
/// sessions and forgets their identity on every node (contract §9.2.4; see `cluster::events`).
fn close_everywhere(c: &mut DbConn, nonce: Option<String>, user: &UserId) -> Result<(), ApiError> {
    if let Some(nonce) = nonce {
        cluster_events::insert(
            c,
            &[NewClusterEvent {
                kind: crate::cluster::events::CLOSE_USER.to_string(),
                body: nonce,
                recipients: serde_json::to_string(&[user]).unwrap_or_default(),
                created_at: now_ms(),
            }],
        )?;
    }
    Ok(())
}

/// After a committed revoke or delete: this node forgets the identity and closes its sessions
/// at once; in cluster mode the relay is woken to do the same on the other nodes, and the
/// answer waits until they have (see `Cluster::closed`).
async fn closed(app: &AppState, id: &UserId, closing: Option<crate::cluster::Closing>) {
    let committed = std::time::Instant::now();
    app.auth.identities.invalidate(id);
    app.users
        .close_user(id, crate::hub::queue::CloseReason::Revoked);
    if let (Some(cluster), Some(closing)) = (&app.cluster, closing) {
        cluster.bus.kick();
        cluster.closed(closing, committed).await;
    }
}

pub(crate) fn scopes(raw: &[String]) -> Result<Vec<Scope>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::invalid(
            "scopes",
            "At least one scope is required.",
        ));
    }
    let mut out = Vec::new();
    for s in raw {
        let scope = Scope::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "scopes",
                format!("Unknown scope {s:?}; expected chat, voip, chat.join, chat.join.limited or voip.join."),
            )
        })?;
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    Ok(out)
}

pub(crate) fn expires(minutes: Option<i64>) -> Result<i64, ApiError> {
    let m = minutes.unwrap_or(MAX_EXPIRES_MINUTES);
    if !(MIN_EXPIRES_MINUTES..=MAX_EXPIRES_MINUTES).contains(&m) {
        return Err(ApiError::invalid(
            "expiresInMinutes",
            format!("expiresInMinutes must be between {MIN_EXPIRES_MINUTES} and {MAX_EXPIRES_MINUTES}, got {m}."),
        ));
    }
    Ok(m)
}

/// Issue time of a new token: now, or one second after a revocation in this very second, so
/// that "revoke, then issue" works.
fn issue_time(revoked_at: Option<i64>) -> i64 {
    let now = now_ms() / 1000;
    match revoked_at {
        Some(r) if r >= now => r + 1,
        _ => now,
    }
}

fn token_json(token: String, exp: i64) -> serde_json::Value {
    json!({ "token": token, "expiresOn": fmt_ms(exp * 1000) })
}
