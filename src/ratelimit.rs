//! Rate-limit profiles (contract §8.4).
//!
//! - `acs`: ACS's published service limits as fixed windows per scope key;
//! - `default`: token buckets, 50 req/s per user (burst 100) across chat, 100 writes/s per
//!   thread (burst 200), identity 1000 req/s for the instance;
//! - `off`: nothing.
//!
//! A refused request gets 429 with `Retry-After` in whole seconds (≥ 1). State is bounded:
//! expired windows and full buckets are purged as the table grows.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::RateLimitProfile;
use crate::error::ApiError;

/// Operations with their own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    CreateThread,
    DeleteThread,
    UpdateThread,
    Participants,
    GetThread,
    GetMessage,
    ListMessages,
    GetReceipts,
    ListParticipants,
    /// send, update and delete message
    WriteMessage,
    SendReceipt,
    Typing,
    CreateIdentity,
    DeleteIdentity,
    IssueToken,
    RevokeTokens,
    CreateIdentityWithToken,
    /// POST /speech:transcribe (CONTRACT §10.4): 10 per user per minute in every profile but
    /// `off`.
    Transcribe,
}

impl Op {
    fn is_identity(self) -> bool {
        matches!(
            self,
            Op::CreateIdentity
                | Op::DeleteIdentity
                | Op::IssueToken
                | Op::RevokeTokens
                | Op::CreateIdentityWithToken
        )
    }

    /// Whether the operation changes a thread (counted against the per-thread write bucket).
    fn is_thread_write(self) -> bool {
        matches!(
            self,
            Op::DeleteThread
                | Op::UpdateThread
                | Op::Participants
                | Op::WriteMessage
                | Op::SendReceipt
                | Op::Typing
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scope {
    User,
    Thread,
    UserThread,
    Instance,
}

/// One ACS limit: `limit` requests per `window` for each scope key.
struct Rule {
    op: Op,
    scope: Scope,
    window: Duration,
    limit: u32,
}

const fn rule(op: Op, scope: Scope, secs: u64, limit: u32) -> Rule {
    Rule {
        op,
        scope,
        window: Duration::from_secs(secs),
        limit,
    }
}

/// The ACS service-limit table.
const ACS_RULES: &[Rule] = &[
    rule(Op::CreateThread, Scope::User, 10, 10),
    rule(Op::DeleteThread, Scope::User, 10, 10),
    rule(Op::UpdateThread, Scope::Thread, 10, 5),
    rule(Op::Participants, Scope::Thread, 10, 10),
    rule(Op::Participants, Scope::Thread, 60, 30),
    rule(Op::GetThread, Scope::User, 10, 50),
    rule(Op::GetMessage, Scope::UserThread, 10, 50),
    rule(Op::GetMessage, Scope::Thread, 10, 250),
    rule(Op::ListMessages, Scope::UserThread, 10, 50),
    rule(Op::ListMessages, Scope::UserThread, 60, 200),
    rule(Op::ListMessages, Scope::Thread, 10, 250),
    rule(Op::ListMessages, Scope::Thread, 60, 400),
    rule(Op::GetReceipts, Scope::UserThread, 10, 5),
    rule(Op::GetReceipts, Scope::Thread, 10, 100),
    rule(Op::ListParticipants, Scope::UserThread, 10, 10),
    rule(Op::ListParticipants, Scope::Thread, 10, 250),
    rule(Op::WriteMessage, Scope::Thread, 10, 10),
    rule(Op::WriteMessage, Scope::Thread, 60, 30),
    rule(Op::SendReceipt, Scope::UserThread, 10, 10),
    rule(Op::SendReceipt, Scope::UserThread, 60, 30),
    rule(Op::Typing, Scope::UserThread, 10, 5),
    rule(Op::Typing, Scope::UserThread, 60, 15),
    rule(Op::Typing, Scope::Thread, 10, 10),
    rule(Op::Typing, Scope::Thread, 60, 30),
    rule(Op::CreateIdentity, Scope::Instance, 30, 1000),
    rule(Op::DeleteIdentity, Scope::Instance, 30, 500),
    rule(Op::IssueToken, Scope::Instance, 30, 1000),
    rule(Op::RevokeTokens, Scope::Instance, 30, 500),
    rule(Op::CreateIdentityWithToken, Scope::Instance, 30, 1000),
    rule(Op::Transcribe, Scope::User, 60, 10),
];

/// Token bucket parameters of the `default` profile.
const USER_RATE: f64 = 50.0;
const USER_BURST: f64 = 100.0;
const THREAD_WRITE_RATE: f64 = 100.0;
const THREAD_WRITE_BURST: f64 = 200.0;
const IDENTITY_RATE: f64 = 1000.0;
const IDENTITY_BURST: f64 = 1000.0;

/// Entries kept before expired ones are purged.
const PURGE_THRESHOLD: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Window {
        rule: usize,
        key: String,
        start: u64,
    },
    Bucket {
        kind: u8,
        key: String,
    },
}

enum Entry {
    Count(u32),
    Tokens { tokens: f64, at: Instant },
}

pub struct RateLimiter {
    profile: RateLimitProfile,
    epoch: Instant,
    table: Mutex<HashMap<Key, Entry>>,
}

impl RateLimiter {
    pub fn new(profile: RateLimitProfile) -> RateLimiter {
        RateLimiter {
            profile,
            epoch: Instant::now(),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `op` by `user` (on `thread`), or refuses it with 429.
    pub fn check(&self, op: Op, user: &str, thread: Option<&str>) -> Result<(), ApiError> {
        match self.profile {
            RateLimitProfile::Off => Ok(()),
            RateLimitProfile::Acs => self.check_acs(op, user, thread),
            // transcriptions cost the operator money: the same window in every profile
            RateLimitProfile::Default if op == Op::Transcribe => self.check_acs(op, user, thread),
            RateLimitProfile::Default => self.check_buckets(op, user, thread),
        }
    }

    fn check_acs(&self, op: Op, user: &str, thread: Option<&str>) -> Result<(), ApiError> {
        let now = self.epoch.elapsed();
        let mut table = self.table.lock();
        purge(&mut table, |k, _| match k {
            Key::Window { rule, start, .. } => {
                start + ACS_RULES[*rule].window.as_secs() > now.as_secs()
            }
            Key::Bucket { .. } => true,
        });
        let t = thread.unwrap_or("");
        let mut keys = Vec::new();
        for (i, r) in ACS_RULES.iter().enumerate().filter(|(_, r)| r.op == op) {
            let w = r.window.as_secs();
            let start = now.as_secs() / w * w;
            let key = match r.scope {
                Scope::User => user.to_string(),
                Scope::Thread => t.to_string(),
                Scope::UserThread => format!("{user}|{t}"),
                Scope::Instance => String::new(),
            };
            let k = Key::Window {
                rule: i,
                key,
                start,
            };
            let used = match table.get(&k) {
                Some(Entry::Count(n)) => *n,
                _ => 0,
            };
            if used >= r.limit {
                let retry = (start + w).saturating_sub(now.as_secs()).max(1);
                return Err(ApiError::too_many_requests(retry));
            }
            keys.push(k);
        }
        for k in keys {
            match table.entry(k).or_insert(Entry::Count(0)) {
                Entry::Count(n) => *n += 1,
                e => *e = Entry::Count(1),
            }
        }
        Ok(())
    }

    fn check_buckets(&self, op: Op, user: &str, thread: Option<&str>) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut table = self.table.lock();
        purge(&mut table, |_, e| match e {
            Entry::Tokens { at, .. } => now.duration_since(*at) < Duration::from_secs(10),
            Entry::Count(_) => false,
        });
        let mut wanted: Vec<(Key, f64, f64)> = Vec::with_capacity(2);
        if op.is_identity() {
            wanted.push((
                Key::Bucket {
                    kind: 0,
                    key: String::new(),
                },
                IDENTITY_RATE,
                IDENTITY_BURST,
            ));
        } else {
            wanted.push((
                Key::Bucket {
                    kind: 1,
                    key: user.to_string(),
                },
                USER_RATE,
                USER_BURST,
            ));
            if let (true, Some(t)) = (op.is_thread_write(), thread) {
                wanted.push((
                    Key::Bucket {
                        kind: 2,
                        key: t.to_string(),
                    },
                    THREAD_WRITE_RATE,
                    THREAD_WRITE_BURST,
                ));
            }
        }
        for (k, rate, burst) in &wanted {
            let tokens = match table.get(k) {
                Some(Entry::Tokens { tokens, at }) => {
                    (tokens + now.duration_since(*at).as_secs_f64() * rate).min(*burst)
                }
                _ => *burst,
            };
            if tokens < 1.0 {
                let retry = ((1.0 - tokens) / rate).ceil() as u64;
                return Err(ApiError::too_many_requests(retry));
            }
        }
        for (k, rate, burst) in wanted {
            let entry = table.entry(k).or_insert(Entry::Tokens {
                tokens: burst,
                at: now,
            });
            if let Entry::Tokens { tokens, at } = entry {
                *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst) - 1.0;
                *at = now;
            }
        }
        Ok(())
    }
}

fn purge(table: &mut HashMap<Key, Entry>, keep: impl FnMut(&Key, &mut Entry) -> bool) {
    if table.len() >= PURGE_THRESHOLD {
        table.retain(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acs_typing_per_user_thread() {
        let l = RateLimiter::new(RateLimitProfile::Acs);
        for _ in 0..5 {
            l.check(Op::Typing, "u", Some("t")).unwrap();
        }
        let e = l.check(Op::Typing, "u", Some("t")).unwrap_err();
        assert_eq!(e.status, 429);
        assert!(e.retry_after.unwrap() >= 1);
        // another user on the same thread still has room
        l.check(Op::Typing, "v", Some("t")).unwrap();
    }

    #[test]
    fn default_buckets_allow_burst_then_refuse() {
        let l = RateLimiter::new(RateLimitProfile::Default);
        let mut ok = 0;
        for _ in 0..150 {
            if l.check(Op::GetThread, "u", None).is_ok() {
                ok += 1;
            }
        }
        assert!((100..=105).contains(&ok), "{ok}");
        assert!(RateLimiter::new(RateLimitProfile::Off)
            .check(Op::GetThread, "u", None)
            .is_ok());
    }
}
