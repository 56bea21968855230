//! confab's extensions beyond ACS (CONTRACT §10): sentiment, read markers, unread counts and
//! previews.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{enc, TestApp};
use crate::realtime::Ws;

/// The sum of a counter's samples with `label` on the app's `/metrics`.
async fn counter(app: &TestApp, name: &str, label: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", app.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn get_message(app: &TestApp, user: &crate::common::User, t: &str, id: &str) -> Value {
    let r = app
        .chat(
            user,
            Method::GET,
            &format!("/chat/threads/{}/messages/{id}", enc(t)),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// §10.2: every text/html message and edit carries `sentiment` in REST, real-time and webhooks;
/// system and deleted messages have none; the labels follow the model for clear sentences.
#[tokio::test]
async fn sentiment_on_send_and_edit_everywhere() {
    let app = crate::webhooks::app().await;
    let rx = crate::webhooks::Receiver::start();
    crate::webhooks::subscribe(
        &app,
        "sentiment",
        json!({ "endpointUrl": rx.url, "includedEventTypes":
            ["ChatMessageReceivedInThread", "ChatMessageEditedInThread"] }),
        201,
    )
    .await;
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[&a, &b]).await;
    let mut ws = Ws::connect(&app, &b, None).await;
    let negatives = counter(&app, "confab_messages_sentiment_total", "negative").await;

    let happy = app
        .send(&a, &t, "I love this team, you did a wonderful job!")
        .await;
    let m = get_message(&app, &a, &t, &happy).await;
    assert_eq!(m["sentiment"]["label"], "positive", "{m}");
    let score = m["sentiment"]["score"].as_f64().unwrap();
    assert!(score > 0.5 && score <= 1.0, "{score}");
    assert_eq!((score * 1000.0).round() / 1000.0, score, "3 decimals");
    let e = ws.event().await;
    assert_eq!(e["type"], "chatMessageReceived");
    assert_eq!(e["data"]["sentiment"], m["sentiment"]);

    let plain = app.send(&a, &t, "The meeting is at 3 pm in room 4.").await;
    assert_eq!(
        get_message(&app, &a, &t, &plain).await["sentiment"]["label"],
        "neutral"
    );
    let r = app
        .chat(
            &a,
            Method::POST,
            &format!("/chat/threads/{}/messages", enc(&t)),
            Some(json!({"content": "<p>This is <b>awful</b>, I hate it &amp; I am furious.</p>", "type": "html"})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let angry = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get_message(&app, &a, &t, &angry).await["sentiment"]["label"],
        "negative"
    );

    // an edit is scored again
    let r = app
        .chat(
            &a,
            Method::PATCH,
            &format!("/chat/threads/{}/messages/{happy}", enc(&t)),
            Some(json!({"content": "Actually this is a terrible, horrible mess."})),
        )
        .await;
    assert_eq!(r.status(), 204);
    let m = get_message(&app, &a, &t, &happy).await;
    assert_eq!(m["sentiment"]["label"], "negative", "{m}");
    let edited = loop {
        let e = ws.event().await;
        if e["type"] == "chatMessageEdited" {
            break e;
        }
    };
    assert_eq!(edited["data"]["sentiment"], m["sentiment"]);

    // webhooks carry it too
    let got = rx.events_of("ChatMessageReceivedInThread", 3).await;
    let received: Vec<Value> = got
        .iter()
        .map(|h| h.event())
        .filter(|e| e["eventType"] == "Microsoft.Communication.ChatMessageReceivedInThread")
        .collect();
    let first = received
        .iter()
        .find(|e| e["data"]["messageId"] == happy.as_str())
        .expect("the first message's event");
    assert_eq!(first["data"]["sentiment"]["label"], "positive");
    let edits = rx.events_of("ChatMessageEditedInThread", 1).await;
    let edit = edits
        .iter()
        .map(|h| h.event())
        .find(|e| e["eventType"] == "Microsoft.Communication.ChatMessageEditedInThread")
        .unwrap();
    assert_eq!(edit["data"]["sentiment"]["label"], "negative");

    // deleted and system messages have none
    let r = app
        .chat(
            &a,
            Method::DELETE,
            &format!("/chat/threads/{}/messages/{angry}", enc(&t)),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    for m in app.all_messages(&a, &t, 50).await {
        let live_text = m["deletedOn"].is_null() && (m["type"] == "text" || m["type"] == "html");
        assert_eq!(!m["sentiment"].is_null(), live_text, "{m}");
    }
    let after = counter(&app, "confab_messages_sentiment_total", "negative").await;
    assert!(after >= negatives + 2.0, "{negatives} -> {after}");
}

/// `--sentiment off`: no field anywhere.
#[tokio::test]
async fn sentiment_off_adds_nothing() {
    let app = TestApp::spawn_with(&["--sentiment", "off"]).await;
    let a = app.user().await;
    let t = app.thread(&a, &[&a]).await;
    let id = app.send(&a, &t, "I love it!").await;
    let m = get_message(&app, &a, &t, &id).await;
    assert!(m.get("sentiment").is_none(), "{m}");
}

/// The caller's entry for `t` in its thread list (first page is enough here).
async fn listed(app: &TestApp, user: &crate::common::User, t: &str) -> Value {
    let r = app
        .chat(user, Method::GET, "/chat/threads?maxPageSize=50", None)
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == t)
        .cloned()
        .unwrap_or_else(|| panic!("{t} not listed: {v}"))
}

async fn read(app: &TestApp, user: &crate::common::User, t: &str, id: &str) {
    let r = app
        .chat(
            user,
            Method::POST,
            &format!("/chat/threads/{}/readReceipts", enc(t)),
            Some(json!({ "chatMessageId": id })),
        )
        .await;
    assert_eq!(r.status(), 200);
}

async fn send_json(app: &TestApp, user: &crate::common::User, t: &str, body: Value) -> String {
    let r = app
        .chat(
            user,
            Method::POST,
            &format!("/chat/threads/{}/messages", enc(t)),
            Some(body),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// §10.1: unread counts through sends, reads, edits, deletes and share-history limits; previews
/// (html stripped, entities decoded, cut on a character boundary); `readMarkerUpdated` on the
/// reader's other sessions; the same fields on the thread's properties.
#[tokio::test]
async fn unread_counts_previews_and_read_markers() {
    let app = TestApp::spawn_with(&["--receipts-max-participants", "2"]).await;
    let (a, b, c) = (app.user().await, app.user().await, app.user().await);
    let t = app.thread(&a, &[&a, &b]).await;
    let fresh = listed(&app, &b, &t).await;
    assert_eq!(fresh["unreadCount"], 0);
    assert!(fresh.get("lastMessage").is_none(), "{fresh}");

    let one = app.send(&a, &t, "one").await;
    let two = send_json(
        &app,
        &a,
        &t,
        json!({"type": "html", "content": "<p>Hello&nbsp;<b>world</b>  &amp;\n friends</p>", "senderDisplayName": "Ann"}),
    )
    .await;
    let long = "😀".repeat(130);
    let three = app.send(&a, &t, &long).await;
    app.send(&b, &t, "b's own message does not count for b")
        .await;

    let item = listed(&app, &b, &t).await;
    assert_eq!(item["unreadCount"], 3, "{item}");
    let last = &item["lastMessage"];
    assert_eq!(last["preview"], "b's own message does not count for b");
    assert_eq!(listed(&app, &a, &t).await["unreadCount"], 1);

    // b reads up to "two" on one device; its other session hears the marker move
    let mut other = Ws::connect(&app, &b, None).await;
    read(&app, &b, &t, &two).await;
    let e = loop {
        let e = other.event().await;
        if e["type"] == "readMarkerUpdated" {
            break e;
        }
    };
    let d = &e["data"];
    assert_eq!(d["threadId"], t.as_str());
    assert_eq!(d["chatMessageId"], two.as_str());
    assert!(d["sequenceId"].as_str().unwrap().parse::<i64>().unwrap() > 0);
    assert!(d["readOn"].as_str().unwrap().ends_with('Z'));
    // below the receipts limit the receipt itself follows, as in ACS
    assert_eq!(other.event().await["type"], "readReceiptReceived");
    assert_eq!(listed(&app, &b, &t).await["unreadCount"], 1);
    // a marker never moves back
    read(&app, &b, &t, &one).await;
    other.nothing_for(200).await;
    assert_eq!(listed(&app, &b, &t).await["unreadCount"], 1);

    // the long message: the preview is cut on a character boundary
    let r = app
        .chat(
            &a,
            Method::DELETE,
            &format!(
                "/chat/threads/{}/messages/{}",
                enc(&t),
                listed(&app, &a, &t).await["lastMessage"]["id"]
                    .as_str()
                    .unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(r.status(), 403, "only the sender deletes");
    let props = app
        .chat(&b, Method::GET, &format!("/chat/threads/{}", enc(&t)), None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(props["unreadCount"], 1);
    assert_eq!(
        props["lastMessage"]["preview"],
        "b's own message does not count for b"
    );
    let mine = listed(&app, &a, &t).await;
    assert_eq!(mine["lastMessage"]["type"], "text");

    // deletes: unread goes down, the preview falls back to the newest live message
    let bs = app.all_messages(&b, &t, 50).await;
    let b_own = bs
        .iter()
        .find(|m| m["content"]["message"] == "b's own message does not count for b")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (who, id) in [(&b, &b_own), (&a, &three)] {
        let r = app
            .chat(
                who,
                Method::DELETE,
                &format!("/chat/threads/{}/messages/{id}", enc(&t)),
                None,
            )
            .await;
        assert_eq!(r.status(), 204);
    }
    let item = listed(&app, &b, &t).await;
    assert_eq!(item["unreadCount"], 0, "{item}");
    let last = &item["lastMessage"];
    assert_eq!(last["id"], two.as_str());
    assert_eq!(last["type"], "html");
    assert_eq!(last["preview"], "Hello world & friends");
    assert_eq!(last["senderDisplayName"], "Ann");
    assert_eq!(
        last["senderCommunicationIdentifier"]["rawId"],
        a.id.as_str()
    );
    assert!(last["createdOn"].as_str().unwrap().ends_with('Z'));

    // a long one: cut to 120 characters plus the ellipsis, never inside an emoji
    app.send(&a, &t, &long).await;
    let p = listed(&app, &b, &t).await["lastMessage"]["preview"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(p, format!("{}…", "😀".repeat(120)));
    // an edit shows in the preview and keeps the count
    let r = app
        .chat(
            &a,
            Method::PATCH,
            &format!("/chat/threads/{}/messages/{two}", enc(&t)),
            Some(json!({"content": "<i>changed</i>"})),
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(listed(&app, &b, &t).await["unreadCount"], 1);

    // share history: c added without history sees nothing unread, then counts what follows
    let r = app
        .chat(
            &a,
            Method::POST,
            &format!("/chat/threads/{}/participants/:add", enc(&t)),
            Some(
                json!({"participants": [{"communicationIdentifier": {"rawId": c.id},
                "shareHistoryTime": "2100-01-01T00:00:00Z"}]}),
            ),
        )
        .await;
    assert_eq!(r.status(), 201);
    let item = listed(&app, &c, &t).await;
    assert_eq!(item["unreadCount"], 0, "{item}");
    assert!(item.get("lastMessage").is_none(), "{item}");

    // above the receipts limit (3 participants > 2): no receipt is listed or broadcast, but
    // the reader's marker moves and its sessions hear it
    let r = app
        .chat(
            &a,
            Method::POST,
            &format!("/chat/threads/{}/participants/:add", enc(&t)),
            Some(json!({"participants": [{"communicationIdentifier": {"rawId": c.id}}]})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let newest = app.send(&a, &t, "for everyone").await;
    assert_eq!(listed(&app, &b, &t).await["unreadCount"], 2);
    read(&app, &b, &t, &newest).await;
    let e = loop {
        let e = other.event().await;
        assert_ne!(e["type"], "readReceiptReceived", "{e}");
        if e["type"] == "readMarkerUpdated" {
            break e;
        }
    };
    assert_eq!(e["data"]["chatMessageId"], newest.as_str());
    assert_eq!(listed(&app, &b, &t).await["unreadCount"], 0);
    let receipts: Value = app
        .chat(
            &b,
            Method::GET,
            &format!("/chat/threads/{}/readReceipts", enc(&t)),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipts["value"], json!([]), "{receipts}");
}
