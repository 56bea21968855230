//! Errors and routing: the check order, 403 for non-participants on every thread route, 404s,
//! bad input, 413/415/405, rate limits (§2.1, §2.8, §8.4).

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

/// Every thread route answers 403 to a user who never was a participant, and 404 for an
/// unknown thread.
#[tokio::test]
async fn non_participant_and_unknown_thread() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let stranger = app.user().await;
    let t = app.thread(&a, &[]).await;
    let m = app.send(&a, &t, "secret").await;
    let unknown = "19:0123456789abcdef0123456789abcdef@thread.v2";
    let routes = |t: &str| {
        let e = enc(t);
        vec![
            (Method::GET, format!("/chat/threads/{e}"), None),
            (
                Method::PATCH,
                format!("/chat/threads/{e}"),
                Some(json!({"topic": "x"})),
            ),
            (Method::DELETE, format!("/chat/threads/{e}"), None),
            (
                Method::POST,
                format!("/chat/threads/{e}/messages"),
                Some(json!({"content": "x"})),
            ),
            (Method::GET, format!("/chat/threads/{e}/messages"), None),
            (Method::GET, format!("/chat/threads/{e}/messages/{m}"), None),
            (
                Method::PATCH,
                format!("/chat/threads/{e}/messages/{m}"),
                Some(json!({"content": "x"})),
            ),
            (
                Method::DELETE,
                format!("/chat/threads/{e}/messages/{m}"),
                None,
            ),
            (Method::GET, format!("/chat/threads/{e}/participants"), None),
            (
                Method::POST,
                format!("/chat/threads/{e}/participants/:add"),
                Some(json!({"participants": [participant(&a.id)]})),
            ),
            (
                Method::POST,
                format!("/chat/threads/{e}/participants/:remove"),
                Some(json!({"rawId": a.id})),
            ),
            (
                Method::POST,
                format!("/chat/threads/{e}/readReceipts"),
                Some(json!({"chatMessageId": m})),
            ),
            (Method::GET, format!("/chat/threads/{e}/readReceipts"), None),
            (Method::POST, format!("/chat/threads/{e}/typing"), None),
        ]
    };
    for (method, path, body) in routes(&t) {
        let r = app.chat(&stranger, method.clone(), &path, body).await;
        let got = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (got.as_u16(), v["error"]["code"].as_str()),
            (403, Some("Forbidden")),
            "{method} {path}"
        );
    }
    for (method, path, body) in routes(unknown) {
        let r = app.chat(&stranger, method.clone(), &path, body).await;
        let got = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (got.as_u16(), v["error"]["code"].as_str()),
            (404, Some("NotFound")),
            "{method} {path}"
        );
    }
    // a malformed thread id cannot exist
    assert_error(
        app.chat(&a, Method::GET, "/chat/threads/not-a-thread", None)
            .await,
        404,
        "NotFound",
    )
    .await;
    // the message is untouched
    let v: Value = app
        .chat(
            &a,
            Method::GET,
            &format!("/chat/threads/{}/messages/{m}", enc(&t)),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"]["message"], "secret");
}

/// Malformed JSON, wrong types, unknown enum values, 413, 415, 405 with Allow, unknown
/// routes, trailing slash, unsupported image routes.
#[tokio::test]
async fn bad_input_and_routing() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    for body in [
        "{not json",
        "[]",
        r#"{"topic": 5}"#,
        r#"{"topic": "t", "participants": {}}"#,
        r#"{"topic": "t", "retentionPolicy": {"kind": "forever"}}"#,
        r#"{"topic": "t", "participants": [{"communicationIdentifier": {"kind": "alien", "rawId": "8:acs:x"}}]}"#,
    ] {
        let r = app
            .chat_raw(
                &a.token,
                Method::POST,
                "/chat/threads",
                Some(body.into()),
                &[],
            )
            .await;
        assert_error(r, 400, "InvalidRequest").await;
    }
    let r = app
        .chat_raw(&a.token, Method::POST, "/chat/threads", None, &[])
        .await;
    assert_error(r, 400, "InvalidRequest").await;
    let big = json!({"topic": "t", "metadata": {"k": "x".repeat(300 * 1024)}}).to_string();
    let r = app
        .chat_raw(&a.token, Method::POST, "/chat/threads", Some(big), &[])
        .await;
    assert_error(r, 413, "RequestBodyTooLarge").await;
    let r = app
        .client
        .post(format!("{}/chat/threads?api-version={CHAT_V}", app.base))
        .bearer_auth(&a.token)
        .header("content-type", "text/plain")
        .body(r#"{"topic":"t"}"#)
        .send()
        .await
        .unwrap();
    assert_error(r, 415, "UnsupportedMediaType").await;
    let r = app.chat(&a, Method::PUT, "/chat/threads", None).await;
    let allow = r.headers()["allow"].to_str().unwrap().to_string();
    assert_error(r, 405, "MethodNotAllowed").await;
    assert_eq!(allow, "GET, POST");
    assert_error(
        app.chat(&a, Method::GET, "/nope", None).await,
        404,
        "NotFound",
    )
    .await;
    let r = app.chat(&a, Method::GET, "/chat/threads/", None).await;
    assert_eq!(r.status(), 200, "one trailing slash is ignored");
    let t = app.thread(&a, &[]).await;
    let r = app
        .chat(
            &a,
            Method::POST,
            &format!("/chat/threads/{}/images", enc(&t)),
            None,
        )
        .await;
    assert_error(r, 400, "FeatureNotSupported").await;
    let r = app
        .chat(
            &a,
            Method::GET,
            "/chat/threads?api-version=2024-03-07&x-extra=1",
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let missing = app
        .client
        .get(format!("{}/chat/threads", app.base))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    assert_error(missing, 400, "MissingApiVersionParameter").await;
    // every response carries a request id, and the client's id is echoed
    let r = app
        .chat_raw(
            &a.token,
            Method::GET,
            "/chat/threads",
            None,
            &[("x-ms-client-request-id", "abc-123")],
        )
        .await;
    assert!(r.headers().get("x-ms-request-id").is_some());
    assert_eq!(r.headers()["x-ms-client-request-id"], "abc-123");
}

/// Under the acs profile the 6th typing call in 10 s is 429 with Retry-After; nothing a
/// client can repeat gets 5xx.
#[tokio::test]
async fn acs_rate_limit() {
    let app = TestApp::spawn_with(&["--rate-limit-profile", "acs"]).await;
    let a = app.user().await;
    let t = app.thread(&a, &[]).await;
    let tp = format!("/chat/threads/{}/typing", enc(&t));
    for _ in 0..5 {
        assert_eq!(app.chat(&a, Method::POST, &tp, None).await.status(), 200);
    }
    let r = app.chat(&a, Method::POST, &tp, None).await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    assert_error(r, 429, "TooManyRequests").await;
}

/// CORS: a browser app on an allowed origin gets its preflight answered and can read
/// Location and the request id; other origins get no CORS grant.
#[tokio::test]
async fn cors_for_allowed_origins() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let origin = "http://localhost:3000";
    let r = app
        .client
        .request(
            Method::OPTIONS,
            format!("{}/chat/threads?api-version={CHAT_V}", app.base),
        )
        .header("origin", origin)
        .header("access-control-request-method", "PATCH")
        .header(
            "access-control-request-headers",
            "authorization,content-type,repeatability-request-id",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], origin);
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        methods.contains("PATCH") && methods.contains("DELETE"),
        "{methods}"
    );
    let headers = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("repeatability-request-id"), "{headers}");
    let r = app
        .chat_raw(
            &a.token,
            Method::POST,
            "/chat/threads",
            Some(json!({"topic": "cors"}).to_string()),
            &[("origin", origin)],
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["access-control-allow-origin"], origin);
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "location",
        "retry-after",
        "x-ms-request-id",
        "x-ms-client-request-id",
    ] {
        assert!(exposed.contains(h), "{h} not exposed: {exposed}");
    }
    let r = app
        .chat_raw(
            &a.token,
            Method::GET,
            "/chat/threads",
            None,
            &[("origin", "https://evil.example")],
        )
        .await;
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

/// `GET /openapi.json` (CONTRACT §11): no auth, no api-version; an OpenAPI 3 document naming
/// chat, identity, webhooks, the long-poll and the extensions, with the ACS error body.
#[tokio::test]
async fn openapi_document_is_served_without_credentials() {
    let app = TestApp::spawn().await;
    let r = reqwest::get(format!("{}/openapi.json", app.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/chat/threads",
        "/chat/threads/{chatThreadId}/messages/{chatMessageId}",
        "/chat/threads/{chatThreadId}/messages/{chatMessageId}:translate",
        "/identities/{id}/:issueAccessToken",
        "/eventSubscriptions/{name}",
        "/realtime/poll",
        "/speech:transcribe",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not described");
    }
    let error = &doc["components"]["schemas"]["CommunicationErrorResponse"];
    assert_eq!(error["required"], json!(["error"]));
    // every operation's other answers are the ACS error body
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert_eq!(
                op["responses"]["default"]["$ref"], "#/components/responses/Error",
                "{method} {path}"
            );
        }
    }
}
