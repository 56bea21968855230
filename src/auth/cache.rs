//! A short-lived cache of identity state for bearer authentication, so that a busy user's
//! requests do not each read their identity row from the database.
//!
//! - Revoke and delete on this node call [`IdentityCache::invalidate`] after their commit, so
//!   here they take effect at once. A generation counter keeps a read that started before an
//!   invalidation from putting its stale answer back.
//! - In cluster mode every node invalidates when it applies the revoke's `closeUser` event, and
//!   the revoking request answers once every live node has (see `cluster::Closing`), or once
//!   [`TTL`] has passed since its commit, whichever is first.
//! - An entry's age counts from when its read *started*, so no entry reflecting the state before a
//!   commit outlives that commit by more than [`TTL`], on any node: that is the bound the
//!   revoking request relies on when a node does not confirm.

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

/// When and at which generation a read of an identity row started.
#[derive(Debug, Clone, Copy)]
pub struct ReadTicket {
    generation: u64,
    at: Instant,
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

    /// What to pass to [`IdentityCache::put`] for a read starting now.
    pub fn start_read(&self) -> ReadTicket {
        ReadTicket {
            generation: self.generation.load(Ordering::Acquire),
            at: Instant::now(),
        }
    }

    /// Stores what a read found, unless an invalidation happened since it started; it expires
    /// [`TTL`] after the read started.
    pub fn put(&self, id: &str, state: IdentityState, read: ReadTicket) {
        let mut entries = self.entries.write();
        if self.generation.load(Ordering::Acquire) != read.generation {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(id.to_string(), (state, read.at));
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
        let g = c.start_read();
        c.invalidate("u"); // a revoke commits while the read is in flight
        c.put("u", LIVE, g);
        assert_eq!(c.get("u"), None);
        let g = c.start_read();
        c.put("u", LIVE, g);
        assert_eq!(c.get("u"), Some(LIVE));
        c.invalidate("u");
        assert_eq!(c.get("u"), None);
    }

    #[test]
    fn an_entry_ages_from_the_start_of_its_read() {
        let c = IdentityCache::default();
        let mut g = c.start_read();
        g.at -= TTL; // a read that took as long as the whole TTL
        c.put("u", LIVE, g);
        assert_eq!(c.get("u"), None);
    }
}
