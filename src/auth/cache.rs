//! A short-lived cache of identity state for bearer authentication, so that a busy user's
//! requests do not each read their identity row from the database.
//!
//! - Revoke and delete on this node call [`IdentityCache::invalidate`] after their commit, so
//!   here they take effect at once. A generation counter keeps a read that started before an
//!   invalidation from putting its stale answer back.
//! - Cluster mode does not use it: another node's revoke or delete must act on the next request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

/// How long an entry is trusted (the staleness bound for changes made by other nodes).
pub const TTL: Duration = Duration::from_secs(2);
/// Entries kept at most; the cache is cleared when full (it refills from hot users).
const CAPACITY: usize = 100_000;

/// What authentication needs of an identity row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityState {
    pub deleted: bool,
    /// Epoch seconds; tokens issued at or before it are refused.
    pub tokens_revoked_at: Option<i64>,
}

#[derive(Default)]
pub struct IdentityCache {
    entries: RwLock<HashMap<String, (IdentityState, Instant)>>,
    generation: AtomicU64,
}

impl IdentityCache {
    pub fn get(&self, id: &str) -> Option<IdentityState> {
        let entries = self.entries.read();
        let (state, at) = entries.get(id)?;
        (at.elapsed() < TTL).then_some(*state)
    }

    /// The generation to pass to [`IdentityCache::put`] for a read starting now.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores what a read found, unless an invalidation happened since it started.
    pub fn put(&self, id: &str, state: IdentityState, read_started: u64) {
        let mut entries = self.entries.write();
        if self.generation.load(Ordering::Acquire) != read_started {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(id.to_string(), (state, Instant::now()));
    }

    /// Forgets an identity after a committed revoke or delete.
    pub fn invalidate(&self, id: &str) {
        let mut entries = self.entries.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: IdentityState = IdentityState {
        deleted: false,
        tokens_revoked_at: None,
    };

    #[test]
    fn a_read_older_than_an_invalidation_is_not_cached() {
        let c = IdentityCache::default();
        let g = c.generation();
        c.invalidate("u"); // a revoke commits while the read is in flight
        c.put("u", LIVE, g);
        assert_eq!(c.get("u"), None);
        let g = c.generation();
        c.put("u", LIVE, g);
        assert_eq!(c.get("u"), Some(LIVE));
        c.invalidate("u");
        assert_eq!(c.get("u"), None);
    }
}
