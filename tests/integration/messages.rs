//! Messages: send, get, list, update, delete (operations 6–10, §2.5, §3.4).

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

/// Emoji of every kind and html round-trip; html is sanitized; priority and metadata stored.
#[tokio::test]
async fn send_and_get() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let t = app.thread(&a, &[]).await;
    let p = format!("/chat/threads/{}/messages", enc(&t));
    let emoji = "4-byte 😀 ZWJ 👨‍👩‍👧‍👦 skin 👋🏿 flag 🇳🇴 keycap 1️⃣";
    let r = app
        .chat(
            &a,
            Method::POST,
            &p,
            Some(json!({"content": emoji, "senderDisplayName": "Ålice 😀", "metadata": {"k": "v"}, "priority": "High"})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        location,
        format!("{}/chat/threads/{}/messages/{id}", app.base, enc(&t))
    );
    let m: Value = app
        .chat(&a, Method::GET, &format!("{p}/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        m["content"]["message"].as_str().unwrap().as_bytes(),
        emoji.as_bytes()
    );
    assert_eq!(m["senderDisplayName"], "Ålice 😀");
    assert_eq!(m["type"], "text");
    assert_eq!(m["priority"], "high");
    assert_eq!(m["metadata"], json!({"k": "v"}));
    assert_eq!(m["sequenceId"], "3");
    assert_eq!(m["version"], id.as_str());
    assert_eq!(m["senderCommunicationIdentifier"]["rawId"], a.id.as_str());

    let r = app
        .chat(&a, Method::POST, &p, Some(json!({"content": "<p onclick=\"x()\">hi<script>bad()</script></p>", "type": "HTML"})))
        .await;
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m: Value = app
        .chat(&a, Method::GET, &format!("{p}/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["type"], "html");
    assert_eq!(m["content"]["message"], "<p>hi</p>");

    // ids increase strictly even when sent in the same millisecond
    let mut last = 0u64;
    for i in 0..10 {
        let id: u64 = app.send(&a, &t, &format!("m{i}")).await.parse().unwrap();
        assert!(id > last);
        last = id;
    }
}

/// Content rules: required, non-empty, at most 28 KiB counted in UTF-8 bytes; type and
/// priority enums; metadata limit.
#[tokio::test]
async fn send_validation() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let t = app.thread(&a, &[]).await;
    let p = format!("/chat/threads/{}/messages", enc(&t));
    for (body, code, target) in [
        (json!({}), "InvalidRequest", Some("content")),
        (json!({"content": ""}), "InvalidRequest", Some("content")),
        (json!({"content": 5}), "InvalidRequest", Some("content")),
        (
            json!({"content": "x", "type": "topicUpdated"}),
            "InvalidRequest",
            Some("type"),
        ),
        (
            json!({"content": "x", "priority": "urgent"}),
            "InvalidRequest",
            Some("priority"),
        ),
        (
            json!({"content": "x", "metadata": {"k": 1}}),
            "InvalidRequest",
            None,
        ),
        (
            json!({"content": "x", "metadata": {"k": "v".repeat(4100)}}),
            "MetadataTooLarge",
            None,
        ),
        (
            json!({"content": "€".repeat(9558)}),
            "MessageTooLarge",
            None,
        ),
    ] {
        let e = assert_error(
            app.chat(&a, Method::POST, &p, Some(body.clone())).await,
            400,
            code,
        )
        .await;
        if let Some(t) = target {
            assert_eq!(e["error"]["target"], t, "{body}");
        }
    }
    // exactly at the limit (9557 × 3 bytes + 1 = 28672 bytes) is fine
    let at_limit = format!("{}x", "€".repeat(9557));
    assert_eq!(at_limit.len(), 28672);
    let r = app
        .chat(&a, Method::POST, &p, Some(json!({"content": at_limit})))
        .await;
    assert_eq!(r.status(), 201);
}

/// Paging over ≥ 3 pages while others insert: no duplicates, no gaps.
#[tokio::test]
async fn paging_under_concurrent_inserts() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let b = app.user().await;
    let t = app.thread(&a, &[&b]).await;
    for i in 0..25 {
        app.send(&a, &t, &format!("before {i}")).await;
    }
    let mut url = format!("/chat/threads/{}/messages?maxPageSize=5", enc(&t));
    let mut seqs: Vec<u64> = Vec::new();
    let mut pages = 0;
    loop {
        let v: Value = app
            .chat(&b, Method::GET, &url, None)
            .await
            .json()
            .await
            .unwrap();
        pages += 1;
        for m in v["value"].as_array().unwrap() {
            seqs.push(m["sequenceId"].as_str().unwrap().parse().unwrap());
        }
        // another client inserts between pages
        app.send(&a, &t, &format!("during {pages}")).await;
        match v["nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => break,
        }
    }
    assert!(pages >= 3, "{pages}");
    // newest first, contiguous from the first page's top down to 1
    let top = seqs[0];
    assert_eq!(seqs, (1..=top).rev().collect::<Vec<_>>());
    assert_eq!(top, 27);
}

/// startTime filters by createdOn (inclusive); maxPageSize rules.
#[tokio::test]
async fn list_filters() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let t = app.thread(&a, &[]).await;
    let p = format!("/chat/threads/{}/messages", enc(&t));
    let old = app.send(&a, &t, "old").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let new = app.send(&a, &t, "new").await;
    let m: Value = app
        .chat(&a, Method::GET, &format!("{p}/{new}"), None)
        .await
        .json()
        .await
        .unwrap();
    let since = m["createdOn"].as_str().unwrap().to_string();
    let v: Value = app
        .chat(&a, Method::GET, &format!("{p}?startTime={since}"), None)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![new.as_str()]);
    assert!(!ids.contains(&old.as_str()));
    let e = assert_error(
        app.chat(&a, Method::GET, &format!("{p}?maxPageSize=0"), None)
            .await,
        400,
        "InvalidRequest",
    )
    .await;
    assert_eq!(e["error"]["target"], "maxPageSize");
    let e = assert_error(
        app.chat(&a, Method::GET, &format!("{p}?startTime=yesterday"), None)
            .await,
        400,
        "InvalidRequest",
    )
    .await;
    assert_eq!(e["error"]["target"], "startTime");
    let v: Value = app
        .chat(&a, Method::GET, &format!("{p}?maxPageSize=500"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["value"].as_array().unwrap().len(), 4);
}

/// Edit and delete: sender only (403 otherwise), system messages are 403, versions increase,
/// tombstones keep their place and lose content and metadata, a deleted message is 404 for
/// further changes.
#[tokio::test]
async fn edit_delete_tombstone() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let b = app.user().await;
    let t = app.thread(&a, &[&b]).await;
    let p = format!("/chat/threads/{}/messages", enc(&t));
    let r = app
        .chat(
            &a,
            Method::POST,
            &p,
            Some(json!({"content": "first", "metadata": {"x": "1"}})),
        )
        .await;
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mp = format!("{p}/{id}");
    assert_error(
        app.chat(&b, Method::PATCH, &mp, Some(json!({"content": "hijack"})))
            .await,
        403,
        "Forbidden",
    )
    .await;
    assert_error(
        app.chat(&b, Method::DELETE, &mp, None).await,
        403,
        "Forbidden",
    )
    .await;
    let r = app
        .chat(
            &a,
            Method::PATCH,
            &mp,
            Some(json!({"content": "edited 👍", "metadata": {"y": "2"}, "priority": "high"})),
        )
        .await;
    assert_eq!(r.status(), 204);
    let m: Value = app
        .chat(&b, Method::GET, &mp, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["content"]["message"], "edited 👍");
    assert_eq!(m["metadata"], json!({"x": "1", "y": "2"}));
    assert_eq!(m["priority"], "high");
    assert!(m["editedOn"].as_str().is_some());
    let v1: u64 = m["version"].as_str().unwrap().parse().unwrap();
    assert!(v1 > id.parse::<u64>().unwrap());
    let seq = m["sequenceId"].clone();

    // system message: seq 1 participantAdded
    let all = app.all_messages(&a, &t, 50).await;
    let sys = all
        .iter()
        .find(|m| m["type"] == "participantAdded")
        .unwrap();
    let sp = format!("{p}/{}", sys["id"].as_str().unwrap());
    assert_error(
        app.chat(&a, Method::PATCH, &sp, Some(json!({"content": "x"})))
            .await,
        403,
        "Forbidden",
    )
    .await;
    assert_error(
        app.chat(&a, Method::DELETE, &sp, None).await,
        403,
        "Forbidden",
    )
    .await;

    assert_eq!(app.chat(&a, Method::DELETE, &mp, None).await.status(), 204);
    let m: Value = app
        .chat(&b, Method::GET, &mp, None)
        .await
        .json()
        .await
        .unwrap();
    assert!(m.get("content").is_none(), "{m}");
    assert!(m.get("metadata").is_none(), "{m}");
    assert!(m["deletedOn"].as_str().is_some());
    assert!(m["editedOn"].as_str().is_some());
    assert_eq!(m["sequenceId"], seq);
    assert_eq!(m["senderCommunicationIdentifier"]["rawId"], a.id.as_str());
    assert_eq!(m["priority"], "high");
    let v2: u64 = m["version"].as_str().unwrap().parse().unwrap();
    assert!(v2 > v1);
    assert!(app
        .all_messages(&b, &t, 50)
        .await
        .iter()
        .any(|x| x["id"] == id.as_str()));
    assert_error(
        app.chat(&a, Method::DELETE, &mp, None).await,
        404,
        "NotFound",
    )
    .await;
    assert_error(
        app.chat(&a, Method::PATCH, &mp, Some(json!({"content": "back"})))
            .await,
        404,
        "NotFound",
    )
    .await;
    // unknown and malformed message ids
    assert_error(
        app.chat(&a, Method::GET, &format!("{p}/12345"), None).await,
        404,
        "NotFound",
    )
    .await;
    assert_error(
        app.chat(&a, Method::GET, &format!("{p}/abc"), None).await,
        404,
        "NotFound",
    )
    .await;
}

/// A merge-patch `{}` changes nothing: 204, same version, no editedOn.
#[tokio::test]
async fn empty_patch_changes_nothing() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let t = app.thread(&a, &[]).await;
    let id = app.send(&a, &t, "as is").await;
    let p = format!("/chat/threads/{}/messages/{id}", enc(&t));
    assert_eq!(
        app.chat(&a, Method::PATCH, &p, Some(json!({})))
            .await
            .status(),
        204
    );
    let m: Value = app
        .chat(&a, Method::GET, &p, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["version"], id.as_str());
    assert!(m.get("editedOn").is_none());
    assert_eq!(m["content"]["message"], "as is");
}

/// Sends interleaved with changes that write system messages (adds, topic changes), some of
/// them concurrent: sequence ids stay gapless and unique, message ids increase with them and
/// createdOn never goes back.
#[tokio::test]
async fn sequence_ids_stay_gapless_across_system_messages() {
    let app = std::sync::Arc::new(TestApp::spawn_with(&["--rate-limit-profile", "off"]).await);
    let a = app.user().await;
    let t = app.thread(&a, &[]).await;
    let mut tasks = Vec::new();
    for round in 0..5 {
        let (app2, a2, t2) = (app.clone(), a.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..4 {
                app2.send(&a2, &t2, &format!("r{round} m{i}")).await;
            }
        }));
        let joiner = app.user().await;
        let add = format!("/chat/threads/{}/participants/:add", enc(&t));
        let r = app
            .chat(
                &a,
                Method::POST,
                &add,
                Some(json!({ "participants": [participant(&joiner.id)] })),
            )
            .await;
        assert_eq!(r.status(), 201);
        let r = app
            .chat(
                &a,
                Method::PATCH,
                &format!("/chat/threads/{}", enc(&t)),
                Some(json!({ "topic": format!("round {round}") })),
            )
            .await;
        assert_eq!(r.status(), 204);
        app.send(&a, &t, &format!("r{round} after")).await;
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut all = app.all_messages(&a, &t, 50).await;
    all.reverse();
    let seqs: Vec<u64> = all
        .iter()
        .map(|m| m["sequenceId"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    // creation (topic and participants: 2), then 5 × (4 sends, an add, a topic, a send)
    assert_eq!(seqs.len(), 2 + 5 * 7, "{all:#?}");
    let ids: Vec<u64> = all
        .iter()
        .map(|m| m["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let created: Vec<&str> = all
        .iter()
        .map(|m| m["createdOn"].as_str().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]), "{created:?}");
}
