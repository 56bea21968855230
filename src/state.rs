//! [`AppState`]: the API layer's bag of handles, one per subsystem a handler may reach. Nothing
//! below the API takes it: each subsystem is given only its own handles when it is built.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::auth::Auth;
use crate::config::Config;
use crate::events::Webhooks;
use crate::hub::activity::Activity;
use crate::hub::users::Users;
use crate::hub::Hub;
use crate::ratelimit::RateLimiter;
use crate::request_log::RecentErrors;
use crate::store::Store;

pub struct AppState {
    /// The process's metrics registry, rendered by `/metrics`.
    pub prometheus: metrics_exporter_prometheus::PrometheusHandle,
    /// Every flag, as parsed at start.
    pub config: Arc<Config>,
    /// Reads (and the few writes that belong to no thread: identities, subscriptions).
    pub store: Store,
    /// The way to the thread actors: every change to a thread is a command to its actor.
    pub hub: Hub,
    /// Access keys, user tokens and the identity-state cache.
    pub auth: Auth,
    /// The resource id in user ids (`8:acs:<resourceId>_<uuid>`).
    pub resource_id: String,
    /// Per-user, per-operation request rates (`--rate-limit-profile`).
    pub limiter: RateLimiter,
    /// Recent message activity per thread.
    pub activity: Arc<Activity>,
    /// The most recent error responses, written by the request middleware.
    pub recent_errors: Arc<RecentErrors>,
    /// Active webhook subscriptions, the dispatcher's wake-up, delivery replay.
    pub webhooks: Arc<Webhooks>,
    /// Per-user real-time streams.
    pub users: Arc<Users>,
    /// (user, repeatability-request-id) pairs being processed right now (→ 409 on a repeat).
    pub inflight: Mutex<HashSet<(String, String)>>,
    /// Cluster mode (`--nats-url`): the bus and the node table; `None` for a standalone node.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// `--translator-url`: message translation (CONTRACT §10.3); `None` when off.
    pub translator: Option<Arc<crate::cognitive::translate::Translator>>,
    /// `--speech-url`: speech to text (CONTRACT §10.4); `None` when off.
    pub transcriber: Option<Arc<crate::cognitive::speech::Transcriber>>,
    /// Set on SIGINT/SIGTERM: `/readyz` answers 503 while in-flight requests finish.
    pub draining: AtomicBool,
}

impl AppState {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
