//! Unit tests of [`super`]: cursors, resume within the ring, its bounds, slow consumers.

use super::*;
use crate::hub::queue::QueueLimits;

fn users() -> Users {
    Users::new(RingLimits {
        events: 3,
        ttl: Duration::from_secs(600),
        bytes: 1 << 20,
    })
}

fn queue() -> Arc<SessionQueue> {
    SessionQueue::new(
        QueueLimits {
            frames: 4,
            bytes: 1 << 20,
        },
        Box::new(|| {}),
    )
}

#[test]
fn cursors_parse() {
    assert_eq!(
        Cursor::parse("abcd1234.42"),
        Some(Cursor {
            epoch: "abcd1234".into(),
            n: 42
        })
    );
    for bad in [
        "",
        "abc.1",
        "ABCD1234.1",
        "abcd1234.",
        "abcd1234.x",
        "abcd1234",
    ] {
        assert!(Cursor::parse(bad).is_none(), "{bad}");
    }
}

/// The byte bound holds a ring of large events to fewer than `events`; each ring is charged
/// its share of a body that all the rings holding it share.
#[test]
fn the_ring_is_bounded_by_bytes_and_shares_event_bodies() {
    let u = Users::new(RingLimits {
        events: 1000,
        ttl: Duration::from_secs(600),
        bytes: 5_000,
    });
    let big = "x".repeat(3000);
    let e = Event::new("chatMessageReceived", serde_json::json!({ "message": big }));
    let who = vec![UserId::new("8:acs:a"), UserId::new("8:acs:b")];
    for _ in 0..10 {
        u.publish(&who, &e);
    }
    let at = |n| {
        Some(Cursor {
            epoch: u.epoch().to_string(),
            n,
        })
    };
    // each ring is charged 64 + 3,000/2 bytes an event: 3 fit in 5,000 bytes (8..=10)
    let (_, a) = u.attach("8:acs:a", &at(7), queue(), 15);
    assert!(a.recovered);
    let (_, a) = u.attach("8:acs:a", &at(6), queue(), 15);
    assert!(!a.recovered, "event 7 fell out of the ring by bytes");
    // one body for both users' rings and the caller: 1 + 3 + 3
    assert_eq!(Arc::strong_count(&e), 7);
}

#[test]
fn resume_within_ring_and_not_beyond() {
    let u = users();
    let e = Event::new("chatMessageReceived", serde_json::json!({"threadId": "t"}));
    let who = vec![UserId::new("8:acs:u")];
    for _ in 0..5 {
        u.publish(&who, &e);
    }
    // ring holds 3..=5
    let at = |n| {
        Some(Cursor {
            epoch: u.epoch().to_string(),
            n,
        })
    };
    let o = queue();
    let (_, a) = u.attach("8:acs:u", &at(2), o.clone(), 15);
    assert!(a.recovered);
    let (frames, _) = o.drain();
    assert_eq!(frames.len(), 4, "connected + 3 missed");
    assert!(frames[1]
        .json
        .contains("\"recipient\":{\"kind\":\"communicationUser\""));
    let (_, a) = u.attach("8:acs:u", &at(1), queue(), 15);
    assert!(!a.recovered, "event 2 fell out of the ring");
    let stale = Some(Cursor {
        epoch: "zzzzzzzz".into(),
        n: 5,
    });
    let (_, a) = u.attach("8:acs:u", &stale, queue(), 15);
    assert!(!a.recovered);
}

#[test]
fn overflow_closes_as_slow_consumer() {
    let u = users();
    let o = queue();
    u.attach("8:acs:u", &None, o.clone(), 15);
    let e = Event::new("typingIndicatorReceived", serde_json::json!({}));
    for _ in 0..10 {
        u.publish(&[UserId::new("8:acs:u")], &e);
    }
    let (frames, closed) = o.drain();
    assert!(frames.is_empty());
    assert_eq!(closed, Some(CloseReason::SlowConsumer));
    assert_eq!(
        u.session_count("8:acs:u"),
        0,
        "the session is dropped from the stream"
    );
}
