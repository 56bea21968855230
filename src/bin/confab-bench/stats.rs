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

/// Samples a process's RSS every `every` on a thread of its own, printing each sample; a soak
/// run reads the growth after warm-up from the summary printed by [`RssWatch::finish`].
pub struct RssWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(f64, u64)>>,
}

impl RssWatch {
    pub fn start(pid: u32, every: std::time::Duration) -> RssWatch {
        use std::sync::atomic::Ordering::Relaxed;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let mut samples = Vec::new();
            let mut next = started;
            while !flag.load(Relaxed) {
                if std::time::Instant::now() >= next {
                    if let Some(kib) = rss_kib(pid) {
                        let t = started.elapsed().as_secs_f64();
                        println!("rss          t={t:>7.0} s  {:>8} KiB", kib);
                        samples.push((t, kib));
                    }
                    next += every;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            samples
        });
        RssWatch { stop, thread }
    }

    /// Stops sampling and prints: first, peak and last sample, and the growth over the last
    /// two thirds of the run (after warm-up).
    pub fn finish(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let samples = self.thread.join().unwrap_or_default();
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            return;
        };
        let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
        let from = last.0 / 3.0;
        let warm = samples.iter().find(|s| s.0 >= from).unwrap_or(first);
        let grew = last.1 as i64 - warm.1 as i64;
        let minutes = ((last.0 - warm.0) / 60.0).max(1e-9);
        println!(
            "rss-summary  start {} KiB  peak {peak} KiB  end {} KiB  after warm-up (t={:.0} s → {:.0} s): {grew:+} KiB ({:+.1} KiB/min)",
            first.1, last.1, warm.0, last.0, grew as f64 / minutes
        );
    }
}
