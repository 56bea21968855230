//! Authentication: access-key HMAC for identity and admin routes, user tokens for chat.

pub mod cache;
pub mod hmac;
pub mod token;

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest};

use crate::error::ApiError;
use crate::ids::now_ms;
use crate::store::{identities, Store};
use token::Scope;

/// The authenticated chat user of a request.
#[derive(Debug, Clone)]
pub struct ChatUser {
    pub id: crate::ids::UserId,
    pub scopes: Vec<Scope>,
    /// Token expiry, epoch seconds (real-time connections close with 4001 then).
    pub exp: i64,
}

impl ChatUser {
    /// `chat`, `chat.join` or `chat.join.limited`: anything that reaches chat at all.
    pub fn can_chat(&self) -> bool {
        self.scopes
            .iter()
            .any(|s| matches!(s, Scope::Chat | Scope::ChatJoin | Scope::ChatJoinLimited))
    }

    pub fn can_create_thread(&self) -> bool {
        self.scopes.contains(&Scope::Chat)
    }

    pub fn can_manage_participants(&self) -> bool {
        self.scopes
            .iter()
            .any(|s| matches!(s, Scope::Chat | Scope::ChatJoin))
    }
}

/// Records an authentication failure and returns the 401 the client sees.
fn refuse(reason: &'static str) -> ApiError {
    metrics::counter!(crate::metrics::AUTH_FAILURES, "reason" => reason).increment(1);
    tracing::debug!(reason, "authentication failed");
    ApiError::unauthorized()
}

/// The bearer token of a request: `Authorization: Bearer …`, or (real-time only) `access_token`.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// What authentication needs: the access keys, the token signer, the identity-state cache and
/// the store behind it.
pub struct Auth {
    pub keys: hmac::AccessKeys,
    pub tokens: token::Tokens,
    /// Identity state for bearer auth (invalidated by revoke and delete).
    pub identities: cache::IdentityCache,
    store: Store,
    /// The authority of `--public-url`, if set: one more host an HMAC signature may name.
    public_host: Option<String>,
}

impl Auth {
    pub fn new(
        keys: hmac::AccessKeys,
        tokens: token::Tokens,
        store: Store,
        public_url: Option<&str>,
    ) -> Auth {
        let public_host = public_url.map(|u| {
            let rest = u.split_once("://").map(|(_, r)| r).unwrap_or(u);
            rest.split('/').next().unwrap_or(rest).to_string()
        });
        Auth {
            keys,
            tokens,
            identities: Default::default(),
            store,
            public_host,
        }
    }

    /// Authenticates a chat request: token valid, identity live and not revoked, a chat scope.
    pub async fn chat_user(&self, req: &HttpRequest) -> Result<ChatUser, ApiError> {
        let token = bearer(req).ok_or_else(|| refuse("missing_token"))?;
        self.authenticate_token(token).await
    }

    /// Checks a user token against the signature, claims and the identity's current state.
    pub async fn authenticate_token(&self, token: &str) -> Result<ChatUser, ApiError> {
        let now = now_ms() / 1000;
        let claims = self
            .tokens
            .verify(token, now)
            .ok_or_else(|| refuse("invalid_token"))?;
        let user_id = claims.user_id();
        let identity = match self.identities.get(&user_id) {
            Some(state) => state,
            None => {
                let read = self.identities.start_read();
                let lookup = user_id.clone();
                let row = self
                    .store
                    .read(move |c| Ok(identities::get(c, &lookup)?))
                    .await?
                    .ok_or_else(|| refuse("unknown_identity"))?;
                let state = cache::IdentityState {
                    deleted: row.deleted_at.is_some(),
                    tokens_revoked_at: row.tokens_revoked_at,
                };
                self.identities.put(&user_id, state, read);
                state
            }
        };
        if identity.deleted {
            return Err(refuse("deleted_identity"));
        }
        if identity.tokens_revoked_at.is_some_and(|r| claims.iat <= r) {
            return Err(refuse("revoked_token"));
        }
        let user = ChatUser {
            id: user_id,
            scopes: claims.scopes(),
            exp: claims.exp,
        };
        if !user.can_chat() {
            return Err(ApiError::forbidden());
        }
        Ok(user)
    }
}

/// The request target exactly as received (still percent-encoded), saved by the prelude
/// middleware before any rewriting.
#[derive(Debug, Clone)]
pub struct OriginalTarget(pub String);

impl Auth {
    /// Verifies access-key HMAC on `req` with its raw `body`.
    pub fn access_key(&self, req: &HttpRequest, body: &[u8]) -> Result<(), ApiError> {
        let h = req.headers();
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
        let authorization = get("authorization");
        if authorization.is_some_and(|a| {
            a.get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
        }) {
            return Err(refuse("bearer_on_hmac_route"));
        }
        let target = req
            .extensions()
            .get::<OriginalTarget>()
            .map(|t| t.0.clone())
            .unwrap_or_else(|| {
                req.uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default()
            });
        let host = get("host")
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let signed = hmac::SignedRequest {
            method: req.method().as_str(),
            path_and_query: &target,
            host: &host,
            date: get("x-ms-date").or_else(|| get("date")),
            content_hash: get("x-ms-content-sha256"),
            authorization,
            body,
        };
        self.keys
            .verify(&signed, self.public_host.as_deref(), now_ms() / 1000)
            .map_err(|f| refuse(f.reason()))
    }
}
