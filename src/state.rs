//! What every handler shares: configuration, store, hub, credentials, limiter.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::auth::hmac::AccessKeys;
use crate::auth::token::Tokens;
use crate::config::Config;
use crate::ratelimit::RateLimiter;
use crate::store::Store;

pub struct AppState {
    /// The process's metrics registry, rendered by `/metrics` and sampled by the dashboard.
    pub prometheus: metrics_exporter_prometheus::PrometheusHandle,
    pub config: Config,
    pub store: Store,
    pub registry: crate::hub::Hub,
    pub tokens: Tokens,
    /// Identity state for bearer auth (invalidated by revoke and delete).
    pub identity_cache: crate::auth::cache::IdentityCache,
    pub keys: AccessKeys,
    pub resource_id: String,
    pub limiter: RateLimiter,
    /// Recent message activity per thread.
    pub activity: std::sync::Arc<crate::hub::activity::Activity>,
    /// The last hour of dashboard points, sampled from the metrics registry.
    pub sampler: crate::dashboard::sampler::Sampler,
    /// Dashboard login sessions.
    pub sessions: crate::dashboard::session::Sessions,
    /// The most recent error responses, for the dashboard's Requests page.
    pub recent_errors: Mutex<std::collections::VecDeque<crate::dashboard::RecentError>>,
    /// Active webhook subscriptions and the dispatcher's wake-up.
    pub webhooks: std::sync::Arc<crate::events::Webhooks>,
    /// Per-user real-time streams.
    pub users: std::sync::Arc<crate::hub::users::Users>,
    /// (user, repeatability-request-id) pairs being processed right now (→ 409 on a repeat).
    pub inflight: Mutex<HashSet<(String, String)>>,
    /// Set on SIGINT/SIGTERM: `/readyz` answers 503 while in-flight requests finish.
    pub draining: AtomicBool,
}

impl AppState {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The authority of `--public-url`, if set (an extra HMAC host candidate).
    pub fn public_host(&self) -> Option<&str> {
        self.config.public_url.as_deref().map(|u| {
            let rest = u.split_once("://").map(|(_, r)| r).unwrap_or(u);
            rest.split('/').next().unwrap_or(rest)
        })
    }
}
