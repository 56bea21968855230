//! Holes found by probing confab from outside (the hardening issue), each with the request that
//! showed it: stalled bodies, connection floods.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// Sends `head` and `body` (the start of what `head` declares) and waits for the answer and the
/// end of the connection: what came back, and when the connection ended.
async fn stall(app: &TestApp, head: &str, body: &[u8]) -> (String, Duration) {
    let mut sock = TcpStream::connect(addr(app)).await.unwrap();
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(body).await.unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), sock.read_to_end(&mut got)).await;
    assert!(
        read.is_ok(),
        "still open after 15 s; got {:?}",
        String::from_utf8_lossy(&got)
    );
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

/// Finding 2: a body that declares more than it sends, or a chunked body that stops, is
/// answered 408 `RequestTimeout` within the body timeout and its connection closed, logged in
/// or not; a body that arrives in time is served as usual.
#[tokio::test]
async fn stalled_bodies_get_408_and_lose_their_connection() {
    let app = TestApp::spawn_with(&["--body-timeout", "1s"]).await;
    let u = app.user().await;
    let t = app.thread(&u, &[]).await;
    let host = addr(&app);
    let send = format!("/chat/threads/{}/messages?api-version={CHAT_V}", enc(&t));
    let cases = [
        (
            "a participant's send",
            format!(
                "POST {send} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
                u.token
            ),
            &b"{\"content\":"[..],
        ),
        (
            "create thread without Authorization",
            format!(
                "POST /chat/threads?api-version={CHAT_V} HTTP/1.1\r\nHost: {host}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            ),
            &b"{\"topic\":"[..],
        ),
        (
            "create identity, unsigned",
            format!(
                "POST /identities?api-version={IDENTITY_V} HTTP/1.1\r\nHost: {host}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            ),
            &b"{"[..],
        ),
        (
            "put a webhook subscription, unsigned",
            format!(
                "PUT /eventSubscriptions/x?api-version=2025-03-15 HTTP/1.1\r\nHost: {host}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            ),
            &b"{"[..],
        ),
        (
            "a chunked send that stops",
            format!(
                "POST {send} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                u.token
            ),
            &b"5\r\n{\"con\r\n"[..],
        ),
    ];
    for (what, head, body) in cases {
        let (answer, took) = stall(&app, &head, body).await;
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "{what}: {answer:?} after {took:?}"
        );
        assert!(answer.contains("\"RequestTimeout\""), "{what}: {answer}");
        assert!(
            took < Duration::from_secs(5),
            "{what}: closed after {took:?}"
        );
    }
    // nothing was stored; a body sent in time is served
    let id = app.send(&u, &t, "in time").await;
    let all = app.all_messages(&u, &t, 50).await;
    let texts: Vec<_> = all.iter().filter(|m| m["type"] == "text").collect();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0]["id"], id.as_str());
}

/// Finding 2: connections from one address beyond `--max-connections-per-address` cannot take
/// the process's descriptors: a request on one is answered 503 `TooManyConnections` with
/// `Retry-After` and the connection is closed; once one closes, the address may connect again.
#[tokio::test]
async fn connections_beyond_the_per_address_limit_are_closed() {
    let app = TestApp::spawn_with(&["--max-connections-per-address", "4"]).await;
    let host = addr(&app);
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(&host).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let get = format!("GET /livez HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let (answer, _) = stall(&app, &get, b"").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"TooManyConnections\""), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    drop(idle.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = reqwest::get(format!("{}/livez", app.base)).await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Finding 6: control characters and bidirectional overrides were stored in topics and display
/// names as sent. They are refused (400 `InvalidRequest`, the field as target) on every route
/// that takes one, and nothing is stored; tabs, line breaks, emoji and right-to-left text pass.
#[tokio::test]
async fn control_characters_in_topics_and_names_are_refused() {
    use reqwest::Method;
    use serde_json::{json, Value};
    let app = TestApp::spawn().await;
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[]).await;
    let path = |p: &str| format!("/chat/threads/{}{p}", enc(&t));
    for bad in [
        "bell\u{7}",
        "nul\u{0}",
        "esc\u{1b}[31m",
        "c1\u{85}",
        "evil\u{202e}txt.exe",
        "iso\u{2066}late",
        "del\u{7f}",
    ] {
        let refusals: Vec<(Method, String, Value, &str)> = vec![
            (
                Method::POST,
                "/chat/threads".into(),
                json!({"topic": bad}),
                "topic",
            ),
            (Method::PATCH, path(""), json!({"topic": bad}), "topic"),
            (
                Method::POST,
                "/chat/threads".into(),
                json!({"topic": "ok", "participants": [{"communicationIdentifier": {"rawId": b.id}, "displayName": bad}]}),
                "participants[0].displayName",
            ),
            (
                Method::POST,
                path("/participants/:add"),
                json!({"participants": [{"communicationIdentifier": {"rawId": b.id}, "displayName": bad}]}),
                "participants[0].displayName",
            ),
            (
                Method::POST,
                path("/messages"),
                json!({"content": "hi", "senderDisplayName": bad}),
                "senderDisplayName",
            ),
        ];
        for (method, p, body, target) in refusals {
            let r = app.chat(&a, method.clone(), &p, Some(body)).await;
            let e = assert_error(r, 400, "InvalidRequest").await;
            assert_eq!(e["error"]["target"], target, "{method} {p} {bad:?}: {e}");
            assert!(
                e["error"]["message"].as_str().unwrap().contains("U+"),
                "{e}"
            );
        }
    }
    // nothing was stored: one participant, no message, the topic unchanged
    let msgs = app.all_messages(&a, &t, 50).await;
    assert!(msgs.iter().all(|m| m["type"] != "text"), "{msgs:?}");
    let r = app.chat(&a, Method::GET, &path(""), None).await;
    let props: Value = r.json().await.unwrap();
    assert_eq!(props["topic"], "test");
    let r = app
        .chat(&a, Method::GET, &path("/participants"), None)
        .await;
    let ps: Value = r.json().await.unwrap();
    assert_eq!(ps["value"].as_array().unwrap().len(), 1);
    // what is fine
    for good in [
        "two\tcolumns",
        "two\nlines",
        "🎉 party",
        "שלום עולם",
        "مرحبا",
    ] {
        let r = app
            .chat(&a, Method::PATCH, &path(""), Some(json!({"topic": good})))
            .await;
        assert_eq!(r.status(), 204, "{good:?}");
    }
}
