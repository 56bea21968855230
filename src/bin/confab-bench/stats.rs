//! Latency histograms (HDR, microseconds), counters, and the one-line summaries.

use hdrhistogram::Histogram;

/// One scenario phase's measurements.
#[derive(Clone)]
pub struct Stats {
    pub hist: Histogram<u64>,
    pub ok: u64,
    pub errors: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            hist: Histogram::new_with_bounds(1, 120_000_000, 3).expect("static bounds"),
            ok: 0,
            errors: 0,
        }
    }
}

impl Stats {
    pub fn record(&mut self, us: u64) {
        self.ok += 1;
        let _ = self.hist.record(us.max(1));
    }

    pub fn merge(mut self, other: &Stats) -> Stats {
        let _ = self.hist.add(&other.hist);
        self.ok += other.ok;
        self.errors += other.errors;
        self
    }

    fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    /// `p50 … p90 … p99 … max …` in milliseconds.
    pub fn latency(&self) -> String {
        if self.hist.is_empty() {
            return "no samples".into();
        }
        format!(
            "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.hist.max() as f64 / 1000.0
        )
    }
}

/// Resident set size of a process in KiB (from /proc), if readable.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
