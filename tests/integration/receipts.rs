//! Read receipts and typing (operations 14–16, §3.5).

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

/// Receipts: one per user, forward only, for visible messages; typing answers 200.
#[tokio::test]
async fn receipts_and_typing() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let b = app.user().await;
    let t = app.thread(&a, &[&b]).await;
    let m1 = app.send(&a, &t, "one").await;
    let m2 = app.send(&a, &t, "two").await;
    let rp = format!("/chat/threads/{}/readReceipts", enc(&t));
    let r = app
        .chat(&b, Method::POST, &rp, Some(json!({"chatMessageId": m2})))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "0");
    // an older message does not move the receipt back
    assert_eq!(
        app.chat(&b, Method::POST, &rp, Some(json!({"chatMessageId": m1})))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.chat(&a, Method::POST, &rp, Some(json!({"chatMessageId": m1})))
            .await
            .status(),
        200
    );
    let v: Value = app
        .chat(&a, Method::GET, &rp, None)
        .await
        .json()
        .await
        .unwrap();
    let list = v["value"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let mine = list
        .iter()
        .find(|r| r["senderCommunicationIdentifier"]["rawId"] == b.id.as_str())
        .unwrap();
    assert_eq!(mine["chatMessageId"], m2.as_str());
    assert!(mine["readOn"].as_str().unwrap().ends_with('Z'));
    assert_error(
        app.chat(&b, Method::POST, &rp, Some(json!({"chatMessageId": "999"})))
            .await,
        404,
        "NotFound",
    )
    .await;
    assert_error(
        app.chat(&b, Method::POST, &rp, Some(json!({}))).await,
        400,
        "InvalidRequest",
    )
    .await;

    let tp = format!("/chat/threads/{}/typing", enc(&t));
    for body in [
        None,
        Some(json!({})),
        Some(json!({"senderDisplayName": "Bob"})),
    ] {
        let r = app.chat(&b, Method::POST, &tp, body).await;
        assert_eq!(r.status(), 200);
    }
}

/// Above 20 participants, receipts are accepted but nothing is stored; the list is empty.
#[tokio::test]
async fn receipts_suppressed_above_limit() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let mut others = Vec::new();
    for _ in 0..20 {
        others.push(app.user().await);
    }
    let refs: Vec<&User> = others.iter().collect();
    let t = app.thread(&a, &refs).await; // 21 participants
    let m = app.send(&a, &t, "hello").await;
    let rp = format!("/chat/threads/{}/readReceipts", enc(&t));
    let r = app
        .chat(
            &others[0],
            Method::POST,
            &rp,
            Some(json!({"chatMessageId": m})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = app
        .chat(&a, Method::GET, &rp, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"value": []}));
    let tp = format!("/chat/threads/{}/typing", enc(&t));
    assert_eq!(
        app.chat(&others[0], Method::POST, &tp, None).await.status(),
        200
    );
    // back to 20: receipts are stored again
    let rm = format!("/chat/threads/{}/participants/:remove", enc(&t));
    assert_eq!(
        app.chat(&a, Method::POST, &rm, Some(json!({"rawId": others[19].id})))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.chat(
            &others[0],
            Method::POST,
            &rp,
            Some(json!({"chatMessageId": m}))
        )
        .await
        .status(),
        200
    );
    let v: Value = app
        .chat(&a, Method::GET, &rp, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["value"].as_array().unwrap().len(), 1);
}
