//! Which threads are busiest right now: thread actors record each committed message here,
//! and the dashboard reads the top of it (no metric label ever carries a thread id).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The window "right now" covers.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Most timestamps kept per thread.
const MAX_PER_THREAD: usize = 10_000;

/// The window of the sentiment view (CONTRACT §10.2: the last hour), kept per minute.
pub const SENTIMENT_WINDOW: Duration = Duration::from_secs(3600);

/// One minute of a thread's scored messages: (minute since start, negative, scored).
type Minute = (u64, u32, u32);

#[derive(Default)]
pub struct Activity {
    threads: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// Per thread, the last hour's scored messages per minute (at most 60 entries each).
    sentiment: Mutex<HashMap<String, VecDeque<Minute>>>,
    started: std::sync::OnceLock<Instant>,
    /// When each user last sent a message (kept for [`SENDERS_WINDOW`]).
    senders: Mutex<HashMap<String, Instant>>,
}

/// The window of "active users": distinct senders of the last hour.
pub const SENDERS_WINDOW: Duration = Duration::from_secs(3600);

/// A thread's negative messages in the last hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negative {
    pub thread: String,
    pub negative: u32,
    pub scored: u32,
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

    /// Notes that `user` sent a message now; the `confab_active_senders` gauge follows the
    /// number of distinct senders of the last hour (pruned by [`Activity::prune_senders`]).
    pub fn record_sender(&self, user: &str) {
        let mut map = self.senders.lock();
        let fresh = map.insert(user.to_string(), Instant::now()).is_none();
        if fresh {
            metrics::gauge!(crate::metrics::ACTIVE_SENDERS).set(map.len() as f64);
        }
    }

    /// Forgets senders quiet for an hour; returns how many remain.
    pub fn prune_senders(&self) -> usize {
        let now = Instant::now();
        let mut map = self.senders.lock();
        map.retain(|_, t| now.duration_since(*t) <= SENDERS_WINDOW);
        metrics::gauge!(crate::metrics::ACTIVE_SENDERS).set(map.len() as f64);
        map.len()
    }

    /// Per minute over the window, oldest first: `thread`'s committed messages (5 entries).
    pub fn per_minute(&self, thread: &str) -> Vec<usize> {
        let now = Instant::now();
        let minutes = (WINDOW.as_secs() / 60) as usize;
        let mut out = vec![0; minutes];
        if let Some(q) = self.threads.lock().get(thread) {
            for t in q {
                let ago = (now.duration_since(*t).as_secs() / 60) as usize;
                if ago < minutes {
                    out[minutes - 1 - ago] += 1;
                }
            }
        }
        out
    }

    fn minute(&self, now: Instant) -> u64 {
        now.duration_since(*self.started.get_or_init(Instant::now))
            .as_secs()
            / 60
    }

    /// Counts a committed message's sentiment label for the last-hour view.
    pub fn record_sentiment(&self, thread: &str, negative: bool) {
        let minute = self.minute(Instant::now());
        let mut map = self.sentiment.lock();
        let q = map.entry(thread.to_string()).or_default();
        match q.back_mut() {
            Some(m) if m.0 == minute => {
                m.1 += u32::from(negative);
                m.2 += 1;
            }
            _ => q.push_back((minute, u32::from(negative), 1)),
        }
        let oldest = minute.saturating_sub(SENTIMENT_WINDOW.as_secs() / 60 - 1);
        while q.front().is_some_and(|m| m.0 < oldest) {
            q.pop_front();
        }
    }

    /// The `n` threads with the most negative messages in the last hour.
    pub fn most_negative(&self, n: usize) -> Vec<Negative> {
        let oldest = self
            .minute(Instant::now())
            .saturating_sub(SENTIMENT_WINDOW.as_secs() / 60 - 1);
        let mut map = self.sentiment.lock();
        map.retain(|_, q| {
            while q.front().is_some_and(|m| m.0 < oldest) {
                q.pop_front();
            }
            !q.is_empty()
        });
        let mut v: Vec<Negative> = map
            .iter()
            .map(|(t, q)| Negative {
                thread: t.clone(),
                negative: q.iter().map(|m| m.1).sum(),
                scored: q.iter().map(|m| m.2).sum(),
            })
            .filter(|x| x.negative > 0)
            .collect();
        v.sort_by(|a, b| {
            b.negative
                .cmp(&a.negative)
                .then_with(|| a.thread.cmp(&b.thread))
        });
        v.truncate(n);
        v
    }

    /// `thread`'s negative messages in the last hour, `None` when it has none.
    pub fn negative_of(&self, thread: &str) -> Option<Negative> {
        let oldest = self
            .minute(Instant::now())
            .saturating_sub(SENTIMENT_WINDOW.as_secs() / 60 - 1);
        let map = self.sentiment.lock();
        let q = map.get(thread)?;
        let live = q.iter().filter(|m| m.0 >= oldest);
        let n = Negative {
            thread: thread.to_string(),
            negative: live.clone().map(|m| m.1).sum(),
            scored: live.map(|m| m.2).sum(),
        };
        (n.negative > 0).then_some(n)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_negative_threads_of_the_hour() {
        let a = Activity::default();
        for neg in [true, true, false] {
            a.record_sentiment("t1", neg);
        }
        a.record_sentiment("t2", true);
        a.record_sentiment("t3", false);
        let v = a.most_negative(10);
        assert_eq!(
            v,
            vec![
                Negative {
                    thread: "t1".into(),
                    negative: 2,
                    scored: 3
                },
                Negative {
                    thread: "t2".into(),
                    negative: 1,
                    scored: 1
                },
            ]
        );
        assert_eq!(a.most_negative(1).len(), 1);
        // one thread's figures, as the thread page reads them
        assert_eq!(a.negative_of("t1"), Some(v[0].clone()));
        assert_eq!(a.negative_of("t3"), None, "scored, none negative");
        assert_eq!(a.negative_of("t4"), None);
    }
}
