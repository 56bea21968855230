//! Threads: create, get, update, delete, list, idempotency (operations 1–5, §2.4, §2.6).

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

/// Create answers 201 with Location and the properties; writes participantAdded (seq 1) and
/// topicUpdated (seq 2); the creator listed in participants gets the listed display name;
/// unknown and foreign identities come back in invalidParticipants keyed by rawId.
#[tokio::test]
async fn create_thread() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let b = app.user().await;
    let unknown = format!(
        "8:acs:{}_00000000-0000-4000-8000-000000000000",
        app.resource_id
    );
    let body = json!({
        "topic": "launch 🚀",
        "metadata": {"k": "v"},
        "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": 40},
        "participants": [
            {"communicationIdentifier": {"rawId": a.id}, "displayName": "Alice"},
            {"communicationIdentifier": {"communicationUser": {"id": b.id}}, "displayName": "Bob"},
            {"communicationIdentifier": {"rawId": unknown}},
            {"communicationIdentifier": {"phoneNumber": {"value": "+15551234"}, "kind": "phoneNumber"}},
        ]
    });
    let r = app
        .chat(&a, Method::POST, "/chat/threads", Some(body))
        .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    let t = v["chatThread"]["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("{}/chat/threads/{}", app.base, enc(&t)));
    assert_eq!(v["chatThread"]["topic"], "launch 🚀");
    assert_eq!(v["chatThread"]["metadata"], json!({"k": "v"}));
    assert_eq!(
        v["chatThread"]["retentionPolicy"]["deleteThreadAfterDays"],
        40
    );
    assert_eq!(
        v["chatThread"]["createdByCommunicationIdentifier"]["rawId"],
        a.id.as_str()
    );
    let invalid = v["invalidParticipants"].as_array().unwrap();
    assert_eq!(invalid.len(), 2);
    assert_eq!(
        invalid[0],
        json!({"target": unknown, "code": "404", "message": "Not found"})
    );
    assert_eq!(invalid[1]["target"], "4:+15551234");
    assert_eq!(invalid[1]["code"], "403");

    let msgs = app.all_messages(&a, &t, 50).await;
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1]["sequenceId"], "1");
    assert_eq!(msgs[1]["type"], "participantAdded");
    let added = msgs[1]["content"]["participants"].as_array().unwrap();
    assert_eq!(added.len(), 2);
    assert_eq!(added[0]["displayName"], "Alice");
    assert_eq!(added[0]["shareHistoryTime"], "1970-01-01T00:00:00.000Z");
    assert_eq!(
        msgs[1]["content"]["initiatorCommunicationIdentifier"]["rawId"],
        a.id.as_str()
    );
    assert!(msgs[1].get("senderCommunicationIdentifier").is_none());
    assert_eq!(msgs[0]["sequenceId"], "2");
    assert_eq!(msgs[0]["type"], "topicUpdated");
    assert_eq!(msgs[0]["content"]["topic"], "launch 🚀");
    assert_eq!(msgs[0]["priority"], "normal");

    let r = app
        .chat(&b, Method::GET, &format!("/chat/threads/{}", enc(&t)), None)
        .await;
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["id"], t.as_str());
    assert!(p["createdOn"].as_str().unwrap().ends_with('Z'));
    // raw (unencoded) ids work too
    let r = app
        .chat(&b, Method::GET, &format!("/chat/threads/{t}"), None)
        .await;
    assert_eq!(r.status(), 200);
}

/// PATCH is a merge-patch: topic writes a topicUpdated message, metadata keys merge and null
/// removes, `{}` changes nothing, `"topic": null` is refused.
#[tokio::test]
async fn update_thread() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let t = app.thread(&a, &[]).await;
    let p = format!("/chat/threads/{}", enc(&t));
    let r = app
        .chat(
            &a,
            Method::PATCH,
            &p,
            Some(json!({"topic": "new", "metadata": {"x": "1", "y": "2"}})),
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = app
        .chat(
            &a,
            Method::PATCH,
            &p,
            Some(json!({"metadata": {"x": null}})),
        )
        .await;
    assert_eq!(r.status(), 204);
    let v: Value = app
        .chat(&a, Method::GET, &p, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["topic"], "new");
    assert_eq!(v["metadata"], json!({"y": "2"}));
    assert!(v.get("retentionPolicy").is_none());
    let r = app
        .chat(
            &a,
            Method::PATCH,
            &p,
            Some(json!({"retentionPolicy": null})),
        )
        .await;
    assert_eq!(r.status(), 204);
    let v: Value = app
        .chat(&a, Method::GET, &p, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["retentionPolicy"], json!({"kind": "none"}));
    let before = app.all_messages(&a, &t, 50).await.len();
    assert_eq!(
        app.chat(&a, Method::PATCH, &p, Some(json!({})))
            .await
            .status(),
        204
    );
    assert_eq!(app.all_messages(&a, &t, 50).await.len(), before);
    let msgs = app.all_messages(&a, &t, 50).await;
    assert_eq!(msgs[0]["type"], "topicUpdated");
    assert_eq!(msgs[0]["content"]["topic"], "new");
    assert_eq!(msgs.len(), 3);
    assert_error(
        app.chat(&a, Method::PATCH, &p, Some(json!({"topic": null})))
            .await,
        400,
        "InvalidRequest",
    )
    .await;
    let bad =
        json!({"retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": 10}});
    assert_error(
        app.chat(&a, Method::PATCH, &p, Some(bad)).await,
        400,
        "InvalidRequest",
    )
    .await;
    let big = json!({"metadata": {"k": "x".repeat(1100)}});
    assert_error(
        app.chat(&a, Method::PATCH, &p, Some(big)).await,
        400,
        "MetadataTooLarge",
    )
    .await;
}

/// A deleted thread is gone for every route but stays in the list with deletedOn.
#[tokio::test]
async fn delete_thread() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let b = app.user().await;
    let t = app.thread(&a, &[&b]).await;
    let p = format!("/chat/threads/{}", enc(&t));
    let r = app.chat(&b, Method::DELETE, &p, None).await;
    assert_eq!(r.status(), 204);
    assert_error(app.chat(&a, Method::GET, &p, None).await, 404, "NotFound").await;
    assert_error(
        app.chat(&a, Method::DELETE, &p, None).await,
        404,
        "NotFound",
    )
    .await;
    let r = app
        .chat(&a, Method::GET, &format!("{p}/messages"), None)
        .await;
    assert_error(r, 404, "NotFound").await;
    let r = app
        .chat(
            &a,
            Method::POST,
            &format!("{p}/messages"),
            Some(json!({"content": "x"})),
        )
        .await;
    assert_error(r, 404, "NotFound").await;
    let v: Value = app
        .chat(&a, Method::GET, "/chat/threads", None)
        .await
        .json()
        .await
        .unwrap();
    let item = &v["value"][0];
    assert_eq!(item["id"], t.as_str());
    assert!(item["deletedOn"].as_str().unwrap().ends_with('Z'));
}

/// List threads: newest activity first, paged with an absolute nextLink carrying
/// api-version, and filtered by startTime.
#[tokio::test]
async fn list_threads_paging() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.thread(&a, &[]).await);
    }
    // activity in the first thread moves it to the top
    app.send(&a, &ids[0], "bump").await;
    let mut seen = Vec::new();
    let mut url = "/chat/threads?maxPageSize=2".to_string();
    let mut pages = 0;
    loop {
        let v: Value = app
            .chat(&a, Method::GET, &url, None)
            .await
            .json()
            .await
            .unwrap();
        pages += 1;
        for item in v["value"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
            assert!(item["lastMessageReceivedOn"]
                .as_str()
                .unwrap()
                .ends_with('Z'));
        }
        match v["nextLink"].as_str() {
            Some(n) => {
                assert!(n.starts_with(&app.base), "{n}");
                assert!(n.contains(&format!("api-version={CHAT_V}")), "{n}");
                url = n.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[0], ids[0]);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 5);
    let r = app
        .chat(
            &a,
            Method::GET,
            "/chat/threads?startTime=2999-01-01T00:00:00Z",
            None,
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["value"].as_array().unwrap().len(), 0);
    assert!(v.get("nextLink").is_none());
    let r = app
        .chat(&a, Method::GET, "/chat/threads?syncState=bm9wZQ", None)
        .await;
    let e = assert_error(r, 400, "InvalidRequest").await;
    assert_eq!(e["error"]["target"], "syncState");
}

/// repeatability-request-id: a replay returns the identical response and creates nothing; the
/// same id with another body is 400; the same id from another user is independent.
#[tokio::test]
async fn idempotent_create() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let b = app.user().await;
    let body = json!({"topic": "once", "participants": [participant(&b.id)]}).to_string();
    let id = uuid::Uuid::new_v4().to_string();
    let h = [("repeatability-request-id", id.as_str())];
    let r1 = app
        .chat_raw(
            &a.token,
            Method::POST,
            "/chat/threads",
            Some(body.clone()),
            &h,
        )
        .await;
    assert_eq!(r1.status(), 201);
    let l1 = r1.headers()["location"].clone();
    let b1 = r1.text().await.unwrap();
    // same JSON, other key order and spacing
    let reordered = json!({"participants": [participant(&b.id)], "topic": "once"}).to_string();
    let r2 = app
        .chat_raw(&a.token, Method::POST, "/chat/threads", Some(reordered), &h)
        .await;
    assert_eq!(r2.status(), 201);
    assert_eq!(r2.headers()["location"], l1);
    assert_eq!(r2.text().await.unwrap(), b1);
    let v: Value = app
        .chat(&a, Method::GET, "/chat/threads", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["value"].as_array().unwrap().len(), 1, "one thread only");
    let other = json!({"topic": "different"}).to_string();
    let r = app
        .chat_raw(&a.token, Method::POST, "/chat/threads", Some(other), &h)
        .await;
    assert_error(r, 400, "RepeatabilityRequestIdMismatch").await;
    let r = app
        .chat_raw(
            &b.token,
            Method::POST,
            "/chat/threads",
            Some(body.clone()),
            &h,
        )
        .await;
    assert_eq!(r.status(), 201);
    let long = "x".repeat(129);
    let r = app
        .chat_raw(
            &a.token,
            Method::POST,
            "/chat/threads",
            Some(body.clone()),
            &[("repeatability-request-id", &long)],
        )
        .await;
    assert_error(r, 400, "InvalidRequest").await;
    let old =
        httpdate::fmt_http_date(std::time::SystemTime::now() - std::time::Duration::from_secs(600));
    let fresh = uuid::Uuid::new_v4().to_string();
    let r = app
        .chat_raw(
            &a.token,
            Method::POST,
            "/chat/threads",
            Some(body),
            &[
                ("repeatability-request-id", &fresh),
                ("repeatability-first-sent", &old),
            ],
        )
        .await;
    assert_error(r, 412, "RepeatabilityFirstSentTooOld").await;
}

/// Sending with repeatability-request-id also replays instead of sending twice.
#[tokio::test]
async fn idempotent_send() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let t = app.thread(&a, &[]).await;
    let p = format!("/chat/threads/{}/messages", enc(&t));
    let h = [("repeatability-request-id", "send-1")];
    let body = json!({"content": "once"}).to_string();
    let r1 = app
        .chat_raw(&a.token, Method::POST, &p, Some(body.clone()), &h)
        .await;
    assert_eq!(r1.status(), 201);
    let id1 = r1.json::<Value>().await.unwrap()["id"].clone();
    let r2 = app
        .chat_raw(&a.token, Method::POST, &p, Some(body), &h)
        .await;
    assert_eq!(r2.status(), 201);
    assert_eq!(r2.json::<Value>().await.unwrap()["id"], id1);
    let texts: Vec<Value> = app
        .all_messages(&a, &t, 50)
        .await
        .into_iter()
        .filter(|m| m["type"] == "text")
        .collect();
    assert_eq!(texts.len(), 1);
}

/// A repeatability-request-id is scoped to the operation and the thread: the same value on
/// another thread's send, or on create thread, is a new request; a replay passes the send's
/// own checks first (403 once the caller was removed, 404 once the thread is deleted).
#[tokio::test]
async fn idempotency_keys_are_scoped_to_operation_and_thread() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user().await, app.user().await);
    let t1 = app.thread(&a, &[&b]).await;
    let t2 = app.thread(&a, &[&b]).await;
    let h = [("repeatability-request-id", "same-value")];
    let body = json!({"content": "hi"}).to_string();
    let send = |t: &str, who: &User| {
        let p = format!("/chat/threads/{}/messages", enc(t));
        let (token, body) = (who.token.clone(), body.clone());
        let app = &app;
        async move {
            let r = app.chat_raw(&token, Method::POST, &p, Some(body), &h).await;
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s1, v1) = send(&t1, &b).await;
    let (s2, v2) = send(&t2, &b).await;
    assert_eq!((s1, s2), (201, 201));
    let texts = |msgs: Vec<Value>| msgs.into_iter().filter(|m| m["type"] == "text").count();
    assert_eq!(texts(app.all_messages(&a, &t1, 50).await), 1);
    assert_eq!(texts(app.all_messages(&a, &t2, 50).await), 1, "{v1} {v2}");
    // the same value on create thread creates a thread
    let r = app
        .chat_raw(
            &b.token,
            Method::POST,
            "/chat/threads",
            Some(json!({"topic": "new"}).to_string()),
            &h,
        )
        .await;
    assert_eq!(r.status(), 201);
    // a replay on t1 is a replay ...
    let (s, v) = send(&t1, &b).await;
    assert_eq!((s, &v["id"]), (201, &v1["id"]));
    // ... until b is removed from t1 (403) ...
    let r = app
        .chat(
            &a,
            Method::POST,
            &format!("/chat/threads/{}/participants/:remove", enc(&t1)),
            Some(json!({"communicationUser": {"id": b.id}})),
        )
        .await;
    assert_eq!(r.status(), 204);
    let (s, v) = send(&t1, &b).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "Forbidden");
    // ... or t2 is deleted (404)
    let r = app
        .chat(
            &a,
            Method::DELETE,
            &format!("/chat/threads/{}", enc(&t2)),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    let (s, v) = send(&t2, &b).await;
    assert_eq!(s, 404, "{v}");
}

/// The retention sweeper deletes a thread whose time has come, exactly as DELETE does.
#[tokio::test]
async fn retention_sweeper_deletes() {
    use confab::store::schema::threads;
    use diesel::prelude::*;
    let app = TestApp::spawn_with(&["--retention-sweep-interval", "100ms"]).await;
    let a = app.user().await;
    let body = json!({"topic": "short-lived", "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": 30}});
    let r = app
        .chat(&a, Method::POST, "/chat/threads", Some(body))
        .await;
    let t = r.json::<Value>().await.unwrap()["chatThread"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let keep = app.thread(&a, &[]).await;
    let p = format!("/chat/threads/{}", enc(&t));
    assert_eq!(app.chat(&a, Method::GET, &p, None).await.status(), 200);
    // Thirty days pass: move the thread's deletion time into the past.
    let setup = confab::store::connection::ConnSetup {
        sync: confab::store::connection::SqliteSync::Normal,
        writer: false,
    };
    let mut c = confab::store::connection::connect(&app.db_url, setup).unwrap();
    diesel::update(threads::table.find(&t))
        .set(threads::delete_after.eq(Some(1_i64)))
        .execute(&mut c)
        .unwrap();
    let mut status = 0;
    for _ in 0..50 {
        status = app.chat(&a, Method::GET, &p, None).await.status().as_u16();
        if status == 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 404);
    let v: Value = app
        .chat(&a, Method::GET, "/chat/threads", None)
        .await
        .json()
        .await
        .unwrap();
    let items = v["value"].as_array().unwrap();
    let gone = items.iter().find(|i| i["id"] == t.as_str()).unwrap();
    assert!(gone["deletedOn"].is_string());
    let kept = items.iter().find(|i| i["id"] == keep.as_str()).unwrap();
    assert!(kept.get("deletedOn").is_none());
}

/// `--public-url` fixes Location and nextLink, and its authority is an accepted HMAC host.
#[tokio::test]
async fn public_url() {
    let app = TestApp::spawn_with(&["--public-url", "https://chat.example.com"]).await;
    let a = app.user().await;
    let r = app
        .chat(
            &a,
            Method::POST,
            "/chat/threads",
            Some(json!({"topic": "p"})),
        )
        .await;
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let t = r.json::<Value>().await.unwrap()["chatThread"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        location,
        format!("https://chat.example.com/chat/threads/{}", enc(&t))
    );
    let v: Value = app
        .chat(
            &a,
            Method::GET,
            &format!("/chat/threads/{}/messages?maxPageSize=1", enc(&t)),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        v["nextLink"]
            .as_str()
            .unwrap()
            .starts_with("https://chat.example.com/chat/threads/"),
        "{v}"
    );
    // a client that signs the public host (as an SDK behind a proxy would)
    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::{Digest, Sha256};
    let b64 = base64::engine::general_purpose::STANDARD;
    let p = format!("/identities?api-version={IDENTITY_V}");
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let hash = b64.encode(Sha256::digest(b""));
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(&b64.decode(&app.key).unwrap()).unwrap();
    mac.update(format!("POST\n{p}\n{date};chat.example.com;{hash}").as_bytes());
    let sig = b64.encode(mac.finalize().into_bytes());
    let r = app
        .client
        .post(format!("{}{p}", app.base))
        .header("x-ms-date", date)
        .header("x-ms-content-sha256", hash)
        .header(
            "authorization",
            format!("HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={sig}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

/// A former participant's lastMessageReceivedOn stops at its removal.
#[tokio::test]
async fn former_participant_last_message_is_capped() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let b = app.user().await;
    let t = app.thread(&a, &[&b]).await;
    let rm = format!("/chat/threads/{}/participants/:remove", enc(&t));
    app.chat(&a, Method::POST, &rm, Some(json!({"rawId": b.id})))
        .await;
    let removal = app.all_messages(&a, &t, 10).await[0]["createdOn"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.send(&a, &t, "after b left").await;
    let of = |v: Value| {
        v["value"][0]["lastMessageReceivedOn"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let for_b = of(app
        .chat(&b, Method::GET, "/chat/threads", None)
        .await
        .json()
        .await
        .unwrap());
    let for_a = of(app
        .chat(&a, Method::GET, "/chat/threads", None)
        .await
        .json()
        .await
        .unwrap());
    assert_eq!(for_b, removal);
    assert!(for_a > for_b, "{for_a} vs {for_b}");
}

/// A request that failed with a 4xx inside the change is remembered: the repeat gets the same
/// 400, and the same id with another body is a mismatch.
#[tokio::test]
async fn idempotent_4xx_is_replayed() {
    let app = TestApp::spawn_with(&["--max-participants", "1"]).await;
    let a = app.user().await;
    let b = app.user().await;
    let h = [("repeatability-request-id", "fails-once")];
    let body = json!({"topic": "t", "participants": [participant(&b.id)]}).to_string();
    let r1 = app
        .chat_raw(
            &a.token,
            Method::POST,
            "/chat/threads",
            Some(body.clone()),
            &h,
        )
        .await;
    assert_eq!(r1.status(), 400);
    let b1 = r1.text().await.unwrap();
    assert!(b1.contains("TooManyParticipants"), "{b1}");
    let r2 = app
        .chat_raw(&a.token, Method::POST, "/chat/threads", Some(body), &h)
        .await;
    assert_eq!(r2.status(), 400);
    assert_eq!(r2.text().await.unwrap(), b1);
    let other = json!({"topic": "t"}).to_string();
    let r = app
        .chat_raw(&a.token, Method::POST, "/chat/threads", Some(other), &h)
        .await;
    assert_error(r, 400, "RepeatabilityRequestIdMismatch").await;
}
