//! Dashboard sessions: log in with the access key; an HttpOnly, SameSite=Strict cookie holds
//! a random session id; every form carries the session's CSRF token.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::HttpRequest;
use parking_lot::Mutex;
use rand::RngCore;

pub const COOKIE: &str = "confab_admin";
/// Carries the CSRF token of the login form (before a session exists).
pub const LOGIN_COOKIE: &str = "confab_login";
/// How long a dashboard session lasts.
pub const TTL: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most (oldest dropped beyond).
const MAX_SESSIONS: usize = 1024;

#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    expires: Instant,
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

pub fn random_token() -> String {
    let mut b = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Constant-time string equality (the length is not secret).
pub fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl Sessions {
    /// Starts a session; returns its cookie.
    pub fn create(&self) -> Cookie<'static> {
        let id = random_token();
        let mut map = self.map.lock();
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Session {
                csrf: random_token(),
                expires: now + TTL,
            },
        );
        cookie(COOKIE, id, TTL)
    }

    /// The live session of a request.
    pub fn get(&self, req: &HttpRequest) -> Option<Session> {
        let id = req.cookie(COOKIE)?.value().to_string();
        let map = self.map.lock();
        map.get(&id).filter(|s| s.expires > Instant::now()).cloned()
    }

    pub fn remove(&self, req: &HttpRequest) {
        if let Some(c) = req.cookie(COOKIE) {
            self.map.lock().remove(c.value());
        }
    }
}

/// An HttpOnly, SameSite=Strict cookie.
pub fn cookie(name: &'static str, value: String, ttl: Duration) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::seconds(
            ttl.as_secs() as i64
        ))
        .finish()
}
