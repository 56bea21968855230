//! What putting one event in a user's stream costs (`hub::users::Users::publish`): the shard
//! lock, the stream's lookup, the ring and its bounds. Every delivery pays it: a standalone
//! node once per recipient, a cluster node once per recipient of every event in the log
//! (every node keeps every user's ring, so that any node can resume anyone). Prints numbers;
//! asserts nothing. Run with `cargo bench --bench delivery_cost`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab::hub::realtime::Event;
use confab::hub::users::{RingLimits, Users};
use confab::ids::UserId;

fn users() -> Users {
    // the defaults of `--realtime-ring-events`, `--realtime-ring-ttl`, `--realtime-ring-bytes`
    Users::new(RingLimits {
        events: 1000,
        ttl: Duration::from_secs(600),
        bytes: 64 * 1024,
    })
}

fn event(i: usize) -> Arc<Event> {
    Event::new(
        "chatMessageReceived",
        serde_json::json!({
            "threadId": format!("19:thread{}@thread.v2", i % 1000),
            "id": format!("{}", 1_733_300_000_000_u64 + i as u64),
            "messageBody": "hello there, this is a message of ordinary length",
            "type": "Text",
            "version": "1733300000000",
        }),
    )
}

fn main() {
    let ids: Vec<UserId> = (0..1000)
        .map(|i| UserId::new(format!("8:acs:8f3b5d2a-6c1e-4f7a-9a2b-3c4d5e6f7a8b_0000002{i:04}-aaaa-bbbb-cccc-1234567890ab")))
        .collect();
    let events: Vec<Arc<Event>> = (0..4096).map(event).collect();

    // one recipient per event, round-robin over 1,000 users (the send scenario's pattern)
    let u = users();
    for (i, e) in events.iter().enumerate() {
        u.publish(&ids[i % ids.len()..][..1], e);
    }
    let n = 2_000_000;
    let started = Instant::now();
    for i in 0..n {
        u.publish(
            &ids[i % ids.len()..][..1],
            black_box(&events[i % events.len()]),
        );
    }
    let one = started.elapsed().as_nanos() as f64 / n as f64;

    // 250 recipients per event (the fan-out scenario's pattern)
    let u = users();
    let members = &ids[..250];
    let rounds = 8_000;
    let started = Instant::now();
    for i in 0..rounds {
        u.publish(members, black_box(&events[i % events.len()]));
    }
    let fan = started.elapsed().as_nanos() as f64 / (rounds * members.len()) as f64;

    println!("delivery_cost: one recipient, 1,000 users: {one:.0} ns per delivery");
    println!("delivery_cost: 250 recipients: {fan:.0} ns per delivery");
}
