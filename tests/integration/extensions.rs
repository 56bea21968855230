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
