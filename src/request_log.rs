//! The most recent error responses (4xx and 5xx) of every listener: written by the API's
//! request middleware, read by the dashboard's Requests page. Bounded; the newest first.

use std::collections::VecDeque;

use parking_lot::Mutex;

use crate::ids::{fmt_ms, now_ms};

/// Error responses kept.
const KEPT: usize = 50;

/// An error response, as the Requests page lists it.
#[derive(Debug, Clone)]
pub struct RecentError {
    pub at: String,
    pub method: String,
    pub route: String,
    pub status: u16,
    pub request_id: String,
}

/// A ring of the last `KEPT` (50) error responses.
#[derive(Default)]
pub struct RecentErrors {
    ring: Mutex<VecDeque<RecentError>>,
}

impl RecentErrors {
    /// Remembers an error response, dropping the oldest beyond the bound.
    pub fn record(&self, route: &str, method: &str, status: u16, request_id: &str) {
        let mut q = self.ring.lock();
        if q.len() == KEPT {
            q.pop_back();
        }
        q.push_front(RecentError {
            at: fmt_ms(now_ms()),
            method: method.to_string(),
            route: route.to_string(),
            status,
            request_id: request_id.to_string(),
        });
    }

    /// The kept errors, newest first.
    pub fn snapshot(&self) -> Vec<RecentError> {
        self.ring.lock().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_within_the_bound() {
        let r = RecentErrors::default();
        for i in 0..(KEPT as u16 + 5) {
            r.record("/x", "GET", 400 + i, "id");
        }
        let s = r.snapshot();
        assert_eq!(s.len(), KEPT);
        assert_eq!(s[0].status, 400 + KEPT as u16 + 4, "newest first");
        assert_eq!(s[KEPT - 1].status, 405, "the five oldest were dropped");
    }
}
