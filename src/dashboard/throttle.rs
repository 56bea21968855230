//! Slows down guessing of the access key at the dashboard's sign-in, per client address: the
//! first few failures are free, then every further attempt from that address must wait a delay
//! that doubles with each failure (up to 5 minutes), during which even the right key is refused
//! unchecked. A success, or 15 minutes without a failure, forgets the address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before any delay.
const FREE_FAILURES: u32 = 5;
/// The longest delay.
const MAX_DELAY: Duration = Duration::from_secs(300);
/// How long an address's failures are remembered.
const FORGET_AFTER: Duration = Duration::from_secs(900);
/// Addresses remembered at most (the oldest are forgotten first).
const MAX_ADDRESSES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    next_allowed: Instant,
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    by_address: Mutex<HashMap<IpAddr, Failures>>,
}

impl LoginThrottle {
    /// How long `address` must still wait before its next attempt is checked.
    pub fn wait(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let map = self.by_address.lock().expect("poisoned");
        let f = map.get(&address)?;
        (f.next_allowed > now).then(|| f.next_allowed - now)
    }

    /// Records a wrong key from `address`.
    pub fn failed(&self, address: IpAddr, now: Instant) {
        let mut map = self.by_address.lock().expect("poisoned");
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&address) {
            map.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if map.len() >= MAX_ADDRESSES {
                if let Some(oldest) = map.iter().min_by_key(|(_, f)| f.last).map(|(a, _)| *a) {
                    map.remove(&oldest);
                }
            }
        }
        let f = map.entry(address).or_insert(Failures {
            count: 0,
            last: now,
            next_allowed: now,
        });
        if now.duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count += 1;
        f.last = now;
        f.next_allowed = now + delay_after(f.count);
    }

    /// Forgets `address` (it signed in).
    pub fn succeeded(&self, address: IpAddr) {
        self.by_address.lock().expect("poisoned").remove(&address);
    }
}

/// The wait after `failures` failures in a row.
fn delay_after(failures: u32) -> Duration {
    if failures < FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES).min(16);
    Duration::from_secs(1u64 << doublings).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_after_the_free_failures() {
        let got: Vec<u64> = (1..=15).map(|n| delay_after(n).as_secs()).collect();
        assert_eq!(
            got,
            [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
        );
    }

    #[test]
    fn per_address_and_forgotten_on_success_or_after_a_while() {
        let t = LoginThrottle::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let now = Instant::now();
        for _ in 0..4 {
            t.failed(a, now);
        }
        assert_eq!(t.wait(a, now), None, "four failures are free");
        t.failed(a, now);
        assert_eq!(t.wait(a, now), Some(Duration::from_secs(1)));
        assert_eq!(t.wait(b, now), None, "another address is not slowed");
        assert_eq!(t.wait(a, now + Duration::from_secs(1)), None);
        t.failed(a, now + Duration::from_secs(1));
        assert_eq!(
            t.wait(a, now + Duration::from_secs(1)),
            Some(Duration::from_secs(2))
        );
        t.succeeded(a);
        assert_eq!(t.wait(a, now + Duration::from_secs(1)), None);
        for _ in 0..5 {
            t.failed(b, now);
        }
        let later = now + FORGET_AFTER;
        t.failed(b, later);
        assert_eq!(t.wait(b, later), None, "old failures are forgotten");
    }
}
