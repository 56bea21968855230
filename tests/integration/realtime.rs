//! The real-time protocol (contract §6) with real WebSocket clients and real long-polls.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Ws {
    s: WsStream,
    pub connected: Value,
}

impl Ws {
    pub async fn connect(app: &TestApp, user: &User, cursor: Option<&str>) -> Ws {
        Self::try_connect(app, user, cursor, None)
            .await
            .expect("upgrade")
    }

    /// Connects with more query parameters (`lang=de`, …).
    pub async fn connect_with(app: &TestApp, user: &User, query: &str) -> Result<Ws, u16> {
        Self::open(app, user, query, None).await
    }

    /// Connects with the token in `access_token`, as browsers do; `Err(status)` if refused.
    pub async fn try_connect(
        app: &TestApp,
        user: &User,
        cursor: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Ws, u16> {
        let query = cursor.map(|c| format!("cursor={c}")).unwrap_or_default();
        Self::open(app, user, &query, origin).await
    }

    async fn open(
        app: &TestApp,
        user: &User,
        query: &str,
        origin: Option<&str>,
    ) -> Result<Ws, u16> {
        let mut url = format!(
            "{}/realtime?access_token={}",
            app.base.replace("http://", "ws://"),
            user.token
        );
        if !query.is_empty() {
            url.push('&');
            url.push_str(query);
        }
        let mut req = url.into_client_request().unwrap();
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((s, _)) => {
                let mut ws = Ws {
                    s,
                    connected: Value::Null,
                };
                let first = ws.next_frame().await.expect("connected frame");
                assert_eq!(first["type"], "realTimeNotificationConnected", "{first}");
                ws.connected = first;
                Ok(ws)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("{e}"),
        }
    }

    /// The next JSON frame, or `None` on close.
    pub async fn next_frame(&mut self) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.s.next())
                .await
                .expect("a frame within 10 s")?;
            match m.ok()? {
                Message::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// The next event (not a pong).
    pub async fn event(&mut self) -> Value {
        loop {
            let f = self.next_frame().await.expect("an event, not a close");
            if f["type"] != "pong" {
                return f;
            }
        }
    }

    /// Asserts that nothing arrives for `ms`.
    pub async fn nothing_for(&mut self, ms: u64) {
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(ms), self.s.next()).await
        {
            panic!("unexpected frame {t}");
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn close_code(&mut self) -> u16 {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(60), self.s.next())
                .await
                .expect("close within 60 s");
            match m {
                Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
                Some(Ok(Message::Close(None))) | None => return 1005,
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("{e}"),
            }
        }
    }

    pub async fn send_text(&mut self, t: &str) {
        self.s.send(Message::Text(t.into())).await.unwrap();
    }
}

/// Long-polls once.
async fn poll(app: &TestApp, user: &User, cursor: Option<&str>, timeout: u64) -> Value {
    let mut url = format!("{}/realtime/poll?timeout={timeout}", app.base);
    if let Some(c) = cursor {
        url.push_str(&format!("&cursor={c}"));
    }
    let r = app
        .client
        .get(url)
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The position `n` of an event's cursor (`<epoch>.<n>`).
fn cursor_n(e: &Value) -> u64 {
    let cursor = e["cursor"].as_str().unwrap();
    cursor.rsplit('.').next().unwrap().parse().unwrap()
}

/// The `sequenceId` of a message event.
fn sequence_id(e: &Value) -> u64 {
    e["data"]["sequenceId"].as_str().unwrap().parse().unwrap()
}

async fn expect(ws: &mut Ws, kind: &str, fields: &[&str]) -> Value {
    let e = ws.event().await;
    assert_eq!(e["type"], kind, "{e}");
    assert!(e["cursor"].as_str().unwrap().contains('.'), "{e}");
    assert_eq!(keys(&e["data"]), set(fields), "{kind} fields");
    e["data"].clone()
}

const MESSAGE: &[&str] = &[
    "threadId",
    "sender",
    "senderDisplayName",
    "recipient",
    "id",
    "createdOn",
    "version",
    "type",
    "sequenceId",
    "priority",
    "message",
    "metadata",
    "sentiment",
];

/// Two users each receive every event type with exactly the contract's fields; typing is not
/// sent to the typist; a removed participant gets participantsRemoved and then nothing.
#[tokio::test]
async fn every_event_type() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let b = app.user().await;
    let c = app.user().await;
    let mut wa = Ws::connect(&app, &a, None).await;
    let mut wb = Ws::connect(&app, &b, None).await;
    let mut wc = Ws::connect(&app, &c, None).await;
    assert_eq!(wa.connected["data"]["recovered"], false);
    assert_eq!(wa.connected["data"]["userId"], a.id.as_str());
    assert_eq!(wa.connected["data"]["heartbeatSeconds"], 15);
    let t = app.thread(&a, &[&b]).await;
    let created = [
        "threadId",
        "version",
        "createdOn",
        "properties",
        "participants",
        "createdBy",
        "recipient",
    ];
    for ws in [&mut wa, &mut wb] {
        let d = expect(ws, "chatThreadCreated", &created).await;
        assert_eq!(d["threadId"], t.as_str());
        assert_eq!(d["participants"].as_array().unwrap().len(), 2);
        assert_eq!(d["createdBy"]["id"]["rawId"], a.id.as_str());
        assert_eq!(d["properties"]["topic"], "test");
    }
    let p = format!("/chat/threads/{}", enc(&t));
    let r = app
        .chat(
            &a,
            Method::POST,
            &format!("{p}/messages"),
            Some(json!({"content": "hi 👋", "senderDisplayName": "A", "metadata": {"k": "v"}})),
        )
        .await;
    let mid = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (ws, me) in [(&mut wa, &a), (&mut wb, &b)] {
        let d = expect(ws, "chatMessageReceived", MESSAGE).await;
        assert_eq!(d["id"], mid.as_str());
        assert_eq!(d["message"], "hi 👋");
        assert_eq!(d["senderDisplayName"], "A");
        assert_eq!(d["type"], "text");
        assert_eq!(d["priority"], "normal");
        assert_eq!(d["sequenceId"], "3");
        assert_eq!(d["metadata"], json!({"k": "v"}));
        assert_eq!(d["sender"]["rawId"], a.id.as_str());
        assert_eq!(d["recipient"]["rawId"], me.id.as_str());
    }
    app.chat(
        &a,
        Method::PATCH,
        &format!("{p}/messages/{mid}"),
        Some(json!({"content": "edited"})),
    )
    .await;
    let mut edited = MESSAGE.to_vec();
    edited.push("editedOn");
    for ws in [&mut wa, &mut wb] {
        assert_eq!(
            expect(ws, "chatMessageEdited", &edited).await["message"],
            "edited"
        );
    }
    app.chat(&a, Method::DELETE, &format!("{p}/messages/{mid}"), None)
        .await;
    let deleted = [
        "threadId",
        "sender",
        "senderDisplayName",
        "recipient",
        "id",
        "createdOn",
        "version",
        "type",
        "sequenceId",
        "priority",
        "deletedOn",
    ];
    for ws in [&mut wa, &mut wb] {
        expect(ws, "chatMessageDeleted", &deleted).await;
    }
    app.chat(
        &b,
        Method::POST,
        &format!("{p}/typing"),
        Some(json!({"senderDisplayName": "Bee"})),
    )
    .await;
    let d = expect(
        &mut wa,
        "typingIndicatorReceived",
        &[
            "threadId",
            "sender",
            "senderDisplayName",
            "recipient",
            "version",
            "receivedOn",
        ],
    )
    .await;
    assert_eq!(d["senderDisplayName"], "Bee");
    app.chat(
        &b,
        Method::POST,
        &format!("{p}/readReceipts"),
        Some(json!({"chatMessageId": mid})),
    )
    .await;
    // the reader's own sessions first hear its read marker move (CONTRACT §10.1)
    let d = expect(
        &mut wb,
        "readMarkerUpdated",
        &[
            "threadId",
            "sequenceId",
            "chatMessageId",
            "readOn",
            "recipient",
        ],
    )
    .await;
    assert_eq!(d["chatMessageId"], mid.as_str());
    for ws in [&mut wb, &mut wa] {
        let d = expect(
            ws,
            "readReceiptReceived",
            &[
                "threadId",
                "sender",
                "senderDisplayName",
                "recipient",
                "chatMessageId",
                "readOn",
            ],
        )
        .await;
        assert_eq!(d["chatMessageId"], mid.as_str());
    }
    app.chat(&a, Method::PATCH, &p, Some(json!({"topic": "renamed"})))
        .await;
    let updated = [
        "threadId",
        "version",
        "properties",
        "updatedOn",
        "updatedBy",
        "sequenceId",
        "recipient",
    ];
    for ws in [&mut wa, &mut wb] {
        assert_eq!(
            expect(ws, "chatThreadPropertiesUpdated", &updated).await["properties"]["topic"],
            "renamed"
        );
    }
    app.chat(
        &a,
        Method::POST,
        &format!("{p}/participants/:add"),
        Some(json!({"participants": [participant(&c.id)]})),
    )
    .await;
    let added = [
        "threadId",
        "version",
        "addedOn",
        "participantsAdded",
        "addedBy",
        "sequenceId",
        "recipient",
    ];
    for ws in [&mut wa, &mut wb, &mut wc] {
        let d = expect(ws, "participantsAdded", &added).await;
        assert_eq!(d["participantsAdded"][0]["id"]["rawId"], c.id.as_str());
    }
    app.chat(
        &a,
        Method::POST,
        &format!("{p}/participants/:remove"),
        Some(json!({"rawId": c.id})),
    )
    .await;
    let removed = [
        "threadId",
        "version",
        "removedOn",
        "participantsRemoved",
        "removedBy",
        "sequenceId",
        "recipient",
    ];
    for ws in [&mut wa, &mut wb, &mut wc] {
        expect(ws, "participantsRemoved", &removed).await;
    }
    app.send(&a, &t, "after c left").await;
    for ws in [&mut wa, &mut wb] {
        expect(ws, "chatMessageReceived", MESSAGE).await;
    }
    app.chat(&a, Method::DELETE, &p, None).await;
    for ws in [&mut wa, &mut wb] {
        expect(
            ws,
            "chatThreadDeleted",
            &["threadId", "version", "deletedOn", "deletedBy", "recipient"],
        )
        .await;
    }
    wc.nothing_for(300).await;
    wb.nothing_for(100).await;
    // a client ping is answered with a pong outside the stream
    wa.send_text(r#"{"type":"ping"}"#).await;
    let pong = wa.next_frame().await.unwrap();
    assert_eq!(pong, json!({"type": "pong"}));
    wa.send_text("hello").await;
    assert_eq!(wa.close_code().await, 1003);
}

/// 4 concurrent senders × 200 messages: the receiver sees every message once, in sequenceId
/// order, with consecutive cursors.
#[tokio::test]
async fn order_under_concurrent_senders() {
    let app = TestApp::spawn_with(&["--rate-limit-profile", "off"]).await;
    let owner = app.user().await;
    let mut senders = Vec::new();
    for _ in 0..4 {
        senders.push(app.user().await);
    }
    let refs: Vec<&User> = senders.iter().collect();
    let t = app.thread(&owner, &refs).await;
    let mut ws = Ws::connect(&app, &owner, None).await;
    let mut tasks = Vec::new();
    for s in senders.clone() {
        let (base, t) = (app.base.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0..200 {
                let r = client
                    .post(format!(
                        "{base}/chat/threads/{}/messages?api-version={CHAT_V}",
                        enc(&t)
                    ))
                    .bearer_auth(&s.token)
                    .json(&json!({"content": format!("{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut seqs = Vec::new();
    let mut cursors = Vec::new();
    while seqs.len() < 800 {
        let e = ws.event().await;
        if e["type"] == "chatMessageReceived" {
            seqs.push(sequence_id(&e));
        }
        cursors.push(cursor_n(&e));
    }
    let mut sorted = seqs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seqs, sorted, "in sequenceId order, no duplicates");
    assert_eq!(seqs.len(), 800);
    assert!(
        cursors.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive cursors"
    );
}

/// After a dropped connection, resuming at the last cursor replays exactly the missed events;
/// a cursor older than the ring, or from another epoch, gives `recovered: false`.
#[tokio::test]
async fn resume_and_its_limits() {
    let app = TestApp::spawn_with(&["--realtime-ring-events", "5"]).await;
    let a = app.user().await;
    let b = app.user().await;
    let t = app.thread(&a, &[&b]).await;
    let mut wb = Ws::connect(&app, &b, None).await;
    app.send(&a, &t, "seen").await;
    let seen = wb.event().await;
    let cursor = seen["cursor"].as_str().unwrap().to_string();
    drop(wb);
    for i in 0..3 {
        app.send(&a, &t, &format!("missed {i}")).await;
    }
    let mut wb = Ws::connect(&app, &b, Some(&cursor)).await;
    assert_eq!(wb.connected["data"]["recovered"], true);
    assert_eq!(wb.connected["cursor"], cursor.as_str());
    for i in 0..3 {
        let e = wb.event().await;
        assert_eq!(e["data"]["message"], format!("missed {i}"));
    }
    wb.nothing_for(200).await;
    let last = {
        app.send(&a, &t, "live").await;
        wb.event().await["cursor"].as_str().unwrap().to_string()
    };
    drop(wb);
    // 6 more events: the ring (5) no longer holds everything after `last`
    for i in 0..6 {
        app.send(&a, &t, &format!("overflow {i}")).await;
    }
    let mut wb = Ws::connect(&app, &b, Some(&last)).await;
    assert_eq!(wb.connected["data"]["recovered"], false);
    wb.nothing_for(200).await;
    let stale = format!("zzzzzzzz.{}", last.rsplit('.').next().unwrap());
    let wb2 = Ws::connect(&app, &b, Some(&stale)).await;
    assert_eq!(wb2.connected["data"]["recovered"], false);
    // long-poll follows the same rules
    let v = poll(&app, &b, Some(&stale), 0).await;
    assert_eq!(v["recovered"], false);
    assert_eq!(v["events"], json!([]));
    // malformed cursor
    let r = app
        .client
        .get(format!("{}/realtime/poll?cursor=nope", app.base))
        .bearer_auth(&b.token)
        .send()
        .await
        .unwrap();
    let e = assert_error(r, 400, "InvalidRequest").await;
    assert_eq!(e["error"]["target"], "cursor");
}

/// Long-poll and WebSocket deliver identical streams (same cursors, types and data).
#[tokio::test]
async fn long_poll_matches_websocket() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let b = app.user().await;
    let mut wb = Ws::connect(&app, &b, None).await;
    let start = wb.connected["cursor"].as_str().unwrap().to_string();
    let t = app.thread(&a, &[&b]).await;
    for i in 0..5 {
        app.send(&a, &t, &format!("m{i}")).await;
    }
    app.chat(
        &a,
        Method::POST,
        &format!("/chat/threads/{}/typing", enc(&t)),
        None,
    )
    .await;
    let mut from_ws = Vec::new();
    for _ in 0..7 {
        from_ws.push(wb.event().await);
    }
    let mut from_poll = Vec::new();
    let mut cursor = start;
    while from_poll.len() < 7 {
        let v = poll(&app, &b, Some(&cursor), 5).await;
        assert_eq!(v["recovered"], true);
        from_poll.extend(v["events"].as_array().unwrap().iter().cloned());
        cursor = v["cursor"].as_str().unwrap().to_string();
    }
    assert_eq!(from_ws, from_poll);
    // a parked poll is answered by the next event
    let waiting = {
        let (app_base, token, cursor) = (app.base.clone(), b.token.clone(), cursor.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(format!(
                    "{app_base}/realtime/poll?cursor={cursor}&timeout=20"
                ))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.send(&a, &t, "wake up").await;
    let v = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v["events"][0]["data"]["message"], "wake up");
    // no cursor: the head, not recovered
    let v = poll(&app, &b, None, 0).await;
    assert_eq!(v["recovered"], false);
    assert_eq!(v["cursor"], v["cursor"].as_str().unwrap());
    // an empty poll times out with no events
    let head = v["cursor"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    let v = poll(&app, &b, Some(&head), 1).await;
    assert_eq!(v["events"], json!([]));
    assert!(started.elapsed() >= Duration::from_millis(900));
}

/// A client that never reads is closed with 4008 while the other member keeps receiving.
#[tokio::test]
async fn slow_consumer_is_closed() {
    let app = TestApp::spawn_with(&["--rate-limit-profile", "off"]).await;
    let a = app.user().await;
    let b = app.user().await;
    let t = app.thread(&a, &[&b]).await;
    let mut slow = Ws::connect(&app, &b, None).await;
    let mut fast = Ws::connect(&app, &a, None).await;
    let big = "x".repeat(20_000);
    // ~16 MB of events: beyond the outbox (1 MiB) and the kernel's socket buffers
    for _ in 0..800 {
        app.send(&a, &t, &big).await;
        let e = fast.event().await;
        assert_eq!(e["type"], "chatMessageReceived");
    }
    assert_eq!(slow.close_code().await, 4008);
    app.send(&a, &t, "still here").await;
    assert_eq!(fast.event().await["data"]["message"], "still here");
}

/// Refusals before the upgrade: a bad token (401), a voip-only token (403), a disallowed
/// Origin (403); loopback origins are allowed by default.
#[tokio::test]
async fn upgrade_refusals() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let bad = User {
        id: a.id.clone(),
        token: "nope".into(),
    };
    assert_eq!(
        Ws::try_connect(&app, &bad, None, None).await.err(),
        Some(401)
    );
    let voip = app.user_with(&["voip"]).await;
    assert_eq!(
        Ws::try_connect(&app, &voip, None, None).await.err(),
        Some(403)
    );
    assert_eq!(
        Ws::try_connect(&app, &a, None, Some("https://evil.example"))
            .await
            .err(),
        Some(403)
    );
    assert!(
        Ws::try_connect(&app, &a, None, Some("http://localhost:3000"))
            .await
            .is_ok()
    );
    let app = TestApp::spawn_with(&["--allowed-origins", "https://chat.example.com"]).await;
    let a = app.user().await;
    assert!(
        Ws::try_connect(&app, &a, None, Some("https://chat.example.com"))
            .await
            .is_ok()
    );
    assert_eq!(
        Ws::try_connect(&app, &a, None, Some("http://localhost:3000"))
            .await
            .err(),
        Some(403)
    );
}

/// Token expiry closes with 4001; revocation closes with 4003.
#[tokio::test]
async fn expiry_and_revocation_close() {
    use jsonwebtoken::{EncodingKey, Header};
    let app = TestApp::spawn_with(&["--token-secret", "rt-secret"]).await;
    let a = app.user().await;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "skypeid": a.id.trim_start_matches("8:"), "scp": 1792, "csi": now.to_string(),
        "iat": now, "exp": now + 2, "acsScope": "chat", "resourceId": app.resource_id,
    });
    let short = User {
        id: a.id.clone(),
        token: jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"rt-secret"),
        )
        .unwrap(),
    };
    let mut ws = Ws::connect(&app, &short, None).await;
    assert_eq!(ws.close_code().await, 4001);
    let mut ws = Ws::connect(&app, &a, None).await;
    let r = app
        .signed(
            Method::POST,
            &format!(
                "/identities/{}/:revokeAccessTokens?api-version={IDENTITY_V}",
                enc(&a.id)
            ),
            "",
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(ws.close_code().await, 4003);
}

/// SSE carries the same stream: `id: <cursor>`, `event: <type>`, connected frame first.
#[tokio::test]
async fn server_sent_events() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let b = app.user().await;
    let t = app.thread(&a, &[&b]).await;
    let mut r = app
        .client
        .get(format!("{}/realtime/sse", app.base))
        .bearer_auth(&b.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    app.send(&a, &t, "over sse").await;
    let mut text = String::new();
    while !text.contains("over sse") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), r.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert!(
        events[0].contains("event: realTimeNotificationConnected"),
        "{text}"
    );
    let msg = events.iter().find(|e| e.contains("over sse")).unwrap();
    let id = msg.lines().find_map(|l| l.strip_prefix("id: ")).unwrap();
    assert!(msg.contains("event: chatMessageReceived"));
    let data: Value =
        serde_json::from_str(msg.lines().find_map(|l| l.strip_prefix("data: ")).unwrap()).unwrap();
    assert_eq!(data["cursor"], id);
    assert_eq!(data["data"]["message"], "over sse");
}

/// `/demo` and its assets are served from the binary.
#[tokio::test]
async fn demo_page_is_served() {
    let app = TestApp::spawn().await;
    for (path, ct, needle) in [
        ("/demo", "text/html; charset=utf-8", "/static/demo.js"),
        (
            "/static/demo.js",
            "text/javascript; charset=utf-8",
            "/realtime/poll",
        ),
        ("/static/demo.css", "text/css; charset=utf-8", "#messages"),
    ] {
        let r = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], ct);
        assert!(r.text().await.unwrap().contains(needle), "{path}");
    }
    let r = app
        .client
        .get(format!("{}/static/nope.js", app.base))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "NotFound").await;
}

/// Limits: a 5th concurrent long-poll and a 17th connection of one user get 429; a client
/// frame over 4 KiB is closed with 1009.
#[tokio::test]
async fn realtime_limits() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let head = poll(&app, &a, None, 0).await["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let mut parked = Vec::new();
    for _ in 0..4 {
        let (base, token, head) = (app.base.clone(), a.token.clone(), head.clone());
        parked.push(tokio::spawn(async move {
            reqwest::Client::new()
                .get(format!("{base}/realtime/poll?timeout=3&cursor={head}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = app
        .client
        .get(format!(
            "{}/realtime/poll?timeout=0&cursor={head}",
            app.base
        ))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    assert_error(r, 429, "TooManyRequests").await;
    for p in parked {
        assert_eq!(p.await.unwrap(), 200);
    }

    let mut open = Vec::new();
    for _ in 0..16 {
        open.push(Ws::connect(&app, &a, None).await);
    }
    assert_eq!(Ws::try_connect(&app, &a, None, None).await.err(), Some(429));
    drop(open);

    let mut ws = Ws::connect(&app, &app.user().await, None).await;
    ws.send_text(&format!(
        r#"{{"type":"ping","pad":"{}"}}"#,
        "x".repeat(5000)
    ))
    .await;
    assert_eq!(ws.close_code().await, 1009);
}

/// SSE resumes from `Last-Event-ID`: the missed event is replayed after the connected frame.
#[tokio::test]
async fn sse_resumes_from_last_event_id() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let b = app.user().await;
    let t = app.thread(&a, &[&b]).await;
    let mut wb = Ws::connect(&app, &b, None).await;
    app.send(&a, &t, "seen").await;
    let cursor = loop {
        let e = wb.event().await;
        if e["type"] == "chatMessageReceived" {
            break e["cursor"].as_str().unwrap().to_string();
        }
    };
    drop(wb);
    app.send(&a, &t, "missed").await;
    let mut r = app
        .client
        .get(format!("{}/realtime/sse", app.base))
        .bearer_auth(&b.token)
        .header("last-event-id", &cursor)
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    while !text.contains("missed") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), r.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let first = text.split("\n\n").next().unwrap();
    assert!(first.contains("\"recovered\":true"), "{first}");
    assert!(
        !text.contains("\"message\":\"seen\""),
        "only what was missed: {text}"
    );
}

/// Concurrent senders to one thread are group-committed by its actor: every send is
/// acknowledged, sequence ids have no gaps, and members receive the messages in sequence order.
#[tokio::test]
async fn concurrent_sends_keep_sequence_order() {
    let app = TestApp::spawn_with(&["--rate-limit-profile", "off"]).await;
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[&b]).await;
    let mut ws = Ws::connect(&app, &b, None).await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (app, a, t) = (app.clone(), a.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..25 {
                ids.push(app.send(&a, &t, &format!("w{w} m{i}")).await);
            }
            ids
        }));
    }
    let mut acked = std::collections::BTreeSet::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    assert_eq!(acked.len(), 100);
    let mut seqs = Vec::new();
    let mut got = std::collections::BTreeSet::new();
    while seqs.len() < 100 {
        let e = ws.event().await;
        if e["type"] == "chatMessageReceived" {
            seqs.push(sequence_id(&e));
            got.insert(e["data"]["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(got, acked, "every acknowledged message was delivered");
    // creation wrote sequenceIds 1 and 2; the messages follow without a gap, in order
    assert_eq!(seqs, (3..103).collect::<Vec<u64>>());
}

/// A thread that grows past the recipients its actor delivers to itself (32) hands its
/// deliveries to a loop of their own: a member watching sees the messages sent before the
/// thread grew, the growth, and concurrent sends after it, each once and in sequenceId order,
/// with consecutive cursors.
#[tokio::test]
async fn a_growing_thread_keeps_delivery_order() {
    let app = TestApp::spawn_with(&["--rate-limit-profile", "off"]).await;
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[&b]).await;
    let mut ws = Ws::connect(&app, &b, None).await;
    for i in 0..10 {
        app.send(&a, &t, &format!("small {i}")).await;
    }
    let mut more = Vec::new();
    for _ in 0..40 {
        let u = app.user().await;
        more.push(json!({"communicationIdentifier": {"rawId": u.id}}));
    }
    let r = app
        .chat(
            &a,
            Method::POST,
            &format!("/chat/threads/{}/participants/:add", enc(&t)),
            Some(json!({ "participants": more })),
        )
        .await;
    assert_eq!(r.status(), 201);
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (app, a, t) = (app.clone(), a.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                app.send(&a, &t, &format!("w{w} m{i}")).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let (mut seqs, mut cursors, mut kinds) = (Vec::new(), Vec::new(), Vec::new());
    while seqs.len() < 211 {
        let e = ws.event().await;
        let kind = e["type"].as_str().unwrap().to_string();
        if kind == "chatMessageReceived" || kind == "participantsAdded" {
            // (the participantsAdded event has no sequenceId: it is checked by position)
            let seq = match kind.as_str() {
                "chatMessageReceived" => sequence_id(&e),
                _ => 0,
            };
            seqs.push(seq);
            kinds.push(kind);
        }
        cursors.push(cursor_n(&e));
    }
    assert_eq!(
        kinds.iter().position(|k| k == "participantsAdded"),
        Some(10),
        "the growth after the first ten messages"
    );
    let messages: Vec<u64> = seqs.iter().copied().filter(|s| *s > 0).collect();
    // creation wrote sequenceIds 1 and 2, the ten messages 3–12, the addition 13
    let expected: Vec<u64> = (3..13).chain(14..214).collect();
    assert_eq!(messages, expected, "every message once, in order");
    assert!(
        cursors.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive cursors"
    );
}
