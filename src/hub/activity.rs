//! Which threads are busiest right now: thread actors record each committed message here,
//! and the dashboard reads the top of it (no metric label ever carries a thread id).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The window "right now" covers.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Most timestamps kept per thread.
const MAX_PER_THREAD: usize = 10_000;

#[derive(Default)]
pub struct Activity {
    threads: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Activity {
    pub fn record(&self, thread: &str) {
        let now = Instant::now();
        let mut map = self.threads.lock();
        let q = map.entry(thread.to_string()).or_default();
        q.push_back(now);
        while q.len() > MAX_PER_THREAD || q.front().is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            q.pop_front();
        }
    }

    /// The `n` threads with most messages in the window, with their counts.
    pub fn busiest(&self, n: usize) -> Vec<(String, usize)> {
        let now = Instant::now();
        let mut map = self.threads.lock();
        map.retain(|_, q| {
            while q.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
                q.pop_front();
            }
            !q.is_empty()
        });
        let mut v: Vec<(String, usize)> = map.iter().map(|(k, q)| (k.clone(), q.len())).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}
