//! Participants: list, add, remove, share history, former participants, limits (§3.1–3.3).

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

async fn ids_seen(app: &TestApp, u: &User, t: &str) -> Vec<String> {
    app.all_messages(u, t, 100)
        .await
        .into_iter()
        .filter(|m| m["type"] == "text")
        .map(|m| m["content"]["message"].as_str().unwrap().to_string())
        .collect()
}

/// Share history all / none / since a time decides what an added participant sees.
#[tokio::test]
async fn share_history() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let (all, none, since) = (app.user().await, app.user().await, app.user().await);
    let t = app.thread(&a, &[]).await;
    app.send(&a, &t, "one").await;
    tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    let two = app.send(&a, &t, "two").await;
    let m: Value = app
        .chat(
            &a,
            Method::GET,
            &format!("/chat/threads/{}/messages/{two}", enc(&t)),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let two_at = m["createdOn"].as_str().unwrap().to_string();
    let add = format!("/chat/threads/{}/participants/:add", enc(&t));
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let future = "2999-01-01T00:00:00.000Z";
    let body = json!({"participants": [
        participant(&all.id),
        {"communicationIdentifier": {"rawId": none.id}, "shareHistoryTime": future},
        {"communicationIdentifier": {"rawId": since.id}, "shareHistoryTime": two_at, "displayName": "S"},
    ]});
    let r = app.chat(&a, Method::POST, &add, Some(body)).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({}));
    app.send(&a, &t, "three").await;
    assert_eq!(ids_seen(&app, &all, &t).await, vec!["three", "two", "one"]);
    assert_eq!(ids_seen(&app, &none, &t).await, vec!["three"]);
    assert_eq!(ids_seen(&app, &since, &t).await, vec!["three", "two"]);
    // the clamped participant still sees its own participantAdded message
    let msgs = app.all_messages(&none, &t, 100).await;
    assert!(msgs.iter().any(|m| m["type"] == "participantAdded"));
    let v: Value = app
        .chat(
            &a,
            Method::GET,
            &format!("/chat/threads/{}/participants", enc(&t)),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let list = v["value"].as_array().unwrap();
    assert_eq!(list.len(), 4);
    assert_eq!(list[0]["communicationIdentifier"]["rawId"], a.id.as_str());
    assert_eq!(list[1]["shareHistoryTime"], "1970-01-01T00:00:00.000Z");
    assert!(list[2]["shareHistoryTime"].as_str().unwrap() >= now.as_str());
    assert!(list[2]["shareHistoryTime"].as_str().unwrap() < future);
    assert_eq!(list[3]["displayName"], "S");
}

/// A removed participant reads history up to its removal, can't send, and can be re-added;
/// participantRemoved is written; removing a non-participant is a no-op; self-removal works.
#[tokio::test]
async fn removed_participant() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let b = app.user().await;
    let t = app.thread(&a, &[&b]).await;
    app.send(&a, &t, "before").await;
    let rm = format!("/chat/threads/{}/participants/:remove", enc(&t));
    let r = app
        .chat(
            &a,
            Method::POST,
            &rm,
            Some(json!({"communicationUser": {"id": b.id}})),
        )
        .await;
    assert_eq!(r.status(), 204);
    app.send(&a, &t, "after").await;
    assert_eq!(ids_seen(&app, &b, &t).await, vec!["before"]);
    let msgs = app.all_messages(&b, &t, 100).await;
    assert_eq!(msgs[0]["type"], "participantRemoved");
    assert_eq!(
        msgs[0]["content"]["participants"][0]["communicationIdentifier"]["rawId"],
        b.id.as_str()
    );
    let p = format!("/chat/threads/{}/messages", enc(&t));
    assert_error(
        app.chat(&b, Method::POST, &p, Some(json!({"content": "x"})))
            .await,
        403,
        "Forbidden",
    )
    .await;
    // former participants may still get the thread's properties but not the participant list
    let tp = format!("/chat/threads/{}", enc(&t));
    assert_eq!(app.chat(&b, Method::GET, &tp, None).await.status(), 200);
    let lp = format!("/chat/threads/{}/participants", enc(&t));
    assert_error(app.chat(&b, Method::GET, &lp, None).await, 403, "Forbidden").await;
    // the thread is still in b's list
    let v: Value = app
        .chat(&b, Method::GET, "/chat/threads", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["value"][0]["id"], t.as_str());
    // removing again is a no-op
    let before = app.all_messages(&a, &t, 100).await.len();
    let r = app
        .chat(&a, Method::POST, &rm, Some(json!({"rawId": b.id})))
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(app.all_messages(&a, &t, 100).await.len(), before);
    // re-adding makes b current again
    let add = format!("/chat/threads/{}/participants/:add", enc(&t));
    assert_eq!(
        app.chat(
            &a,
            Method::POST,
            &add,
            Some(json!({"participants": [participant(&b.id)]}))
        )
        .await
        .status(),
        201
    );
    app.send(&b, &t, "back").await;
    // self-removal
    assert_eq!(
        app.chat(&b, Method::POST, &rm, Some(json!({"rawId": b.id})))
            .await
            .status(),
        204
    );
    assert_error(
        app.chat(&b, Method::POST, &p, Some(json!({"content": "x"})))
            .await,
        403,
        "Forbidden",
    )
    .await;
}

/// Adding a current participant does nothing; unknown ids come back in invalidParticipants;
/// the per-thread limit rejects the whole request.
#[tokio::test]
async fn add_rules_and_limit() {
    let app = TestApp::spawn_with(&["--max-participants", "5"]).await;
    let a = app.user().await;
    let b = app.user().await;
    let t = app.thread(&a, &[&b]).await;
    // the SDKs may send the action segment encoded
    let add = format!("/chat/threads/{}/participants/%3Aadd", enc(&t));
    let before = app.all_messages(&a, &t, 100).await.len();
    let body = json!({"participants": [{"communicationIdentifier": {"rawId": b.id}, "displayName": "renamed"}]});
    assert_eq!(
        app.chat(&a, Method::POST, &add, Some(body)).await.status(),
        201
    );
    assert_eq!(
        app.all_messages(&a, &t, 100).await.len(),
        before,
        "no system message"
    );
    let unknown = format!(
        "8:acs:{}_00000000-0000-4000-8000-000000000001",
        app.resource_id
    );
    let r = app
        .chat(
            &a,
            Method::POST,
            &add,
            Some(json!({"participants": [participant(&unknown)]})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["invalidParticipants"][0]["target"], unknown.as_str());
    let mut more = Vec::new();
    for _ in 0..4 {
        more.push(app.user().await);
    }
    let body = json!({"participants": more.iter().map(|u| participant(&u.id)).collect::<Vec<_>>()});
    assert_error(
        app.chat(&a, Method::POST, &add, Some(body)).await,
        400,
        "TooManyParticipants",
    )
    .await;
    let lp = format!("/chat/threads/{}/participants", enc(&t));
    let v: Value = app
        .chat(&a, Method::GET, &lp, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["value"].as_array().unwrap().len(), 2, "nothing was added");
    let body =
        json!({"participants": more[..3].iter().map(|u| participant(&u.id)).collect::<Vec<_>>()});
    assert_eq!(
        app.chat(&a, Method::POST, &add, Some(body)).await.status(),
        201
    );
    let v: Value = app
        .chat(&a, Method::GET, &format!("{lp}?maxPageSize=2"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["value"].as_array().unwrap().len(), 2);
    let next = v["nextLink"].as_str().unwrap();
    assert!(next.contains("skip=2"), "{next}");
    assert_error(
        app.chat(&a, Method::POST, &add, Some(json!({"participants": []})))
            .await,
        400,
        "InvalidRequest",
    )
    .await;
}

/// The default limit: a thread of 250 refuses the 251st participant.
#[tokio::test]
async fn participant_251_refused() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let mut users = Vec::new();
    for _ in 0..250 {
        users.push(app.user().await);
    }
    let t = app.thread(&a, &[]).await;
    let add = format!("/chat/threads/{}/participants/:add", enc(&t));
    let batch = |us: &[User]| json!({"participants": us.iter().map(|u| participant(&u.id)).collect::<Vec<_>>()});
    assert_eq!(
        app.chat(&a, Method::POST, &add, Some(batch(&users[..200])))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.chat(&a, Method::POST, &add, Some(batch(&users[200..249])))
            .await
            .status(),
        201
    );
    let r = app
        .chat(&a, Method::POST, &add, Some(batch(&users[249..])))
        .await;
    assert_error(r, 400, "TooManyParticipants").await;
    // more than 200 in one request is refused on its own
    let r = app
        .chat(&a, Method::POST, &add, Some(batch(&users[..201])))
        .await;
    assert_error(r, 400, "TooManyParticipants").await;
}
