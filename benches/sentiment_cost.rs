//! What scoring a message's sentiment costs (CONTRACT §10.2), for messages of typical sizes.
//! Prints numbers; asserts nothing. Run with `cargo bench --bench sentiment_cost`.

use std::hint::black_box;
use std::time::Instant;

fn main() {
    let samples = [
        ("short text", "text", "ok see you at 3".to_string()),
        (
            "sentence",
            "text",
            "Thanks a lot, the new release works great and the team did a wonderful job!".into(),
        ),
        (
            "html paragraph",
            "html",
            "<p>I am <b>really</b> unhappy with the delays &amp; the lack of updates. \
             This is the third time this month.</p>"
                .into(),
        ),
        (
            "1 KiB text",
            "text",
            "The meeting went well but the budget is a serious problem. ".repeat(17),
        ),
        (
            "28 KiB text",
            "text",
            "The meeting went well but the budget is a serious problem. ".repeat(480),
        ),
    ];
    // the lexicon is parsed on first use
    black_box(confab::sentiment::score("text", "warm up"));
    for (name, kind, text) in &samples {
        let n = 20_000;
        let start = Instant::now();
        for _ in 0..n {
            black_box(confab::sentiment::score(kind, black_box(text)));
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!(
            "sentiment {name:<15} {:>5} bytes: {us:>7.1} µs per message (score {})",
            text.len(),
            confab::sentiment::score(kind, text)
        );
    }
}
