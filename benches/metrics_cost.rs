//! What recording metrics costs per HTTP request: the RED counter + histogram that the
//! prelude middleware records, against the real Prometheus recorder. Prints numbers; asserts
//! nothing. Run with `cargo bench --bench metrics_cost`.

use std::hint::black_box;
use std::time::{Duration, Instant};

fn per_op(n: u32, mut f: impl FnMut(u32)) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        f(black_box(i));
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    let handle = confab::metrics::install();
    let n = 2_000_000;
    let routes = [
        "/chat/threads/{t}/messages",
        "/chat/threads",
        "/chat/threads/{t}",
        "/identities",
    ];
    // warm up: create the series
    for r in routes {
        confab::metrics::record_request(r, "POST", 201, Duration::from_micros(300));
    }
    let red = per_op(n, |i| {
        let route = routes[(i % 4) as usize];
        confab::metrics::record_request(
            route,
            "POST",
            201,
            Duration::from_micros(u64::from(i % 5000)),
        );
    });
    let counter = per_op(n, |_| {
        metrics::counter!(confab::metrics::MESSAGES_SENT, "type" => "text", "priority" => "normal")
            .increment(1);
    });
    let started = Instant::now();
    let text = handle.render();
    let render = started.elapsed();
    println!("metrics_cost: RED per request (counter + histogram, 4 routes): {red:.0} ns/op");
    println!("metrics_cost: one labelled counter increment: {counter:.0} ns/op");
    println!(
        "metrics_cost: rendering /metrics ({} lines): {:.2} ms",
        text.lines().count(),
        render.as_secs_f64() * 1000.0
    );
}
