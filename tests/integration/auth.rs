//! User tokens on chat routes (contract §4.4, §3.6).

use jsonwebtoken::{EncodingKey, Header};
use reqwest::Method;
use serde_json::json;

use crate::common::*;

const SECRET: &str = "integration-token-secret";

fn forge(app: &TestApp, user: &str, iat: i64, exp: i64, secret: &str) -> String {
    let claims = json!({
        "skypeid": user.trim_start_matches("8:"),
        "scp": 1792, "csi": iat.to_string(), "iat": iat, "exp": exp,
        "acsScope": "chat", "resourceId": app.resource_id,
    });
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Missing, malformed, wrongly signed, `alg: none`, expired and future tokens are all 401;
/// an HMAC credential on a chat route is 401 too.
#[tokio::test]
async fn bad_tokens_are_401() {
    let app = TestApp::spawn_with(&["--token-secret", SECRET]).await;
    let u = app.user().await;
    let now = chrono::Utc::now().timestamp();
    let r = app
        .client
        .get(format!("{}/chat/threads?api-version={CHAT_V}", app.base))
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "Unauthorized").await;
    let good = forge(&app, &u.id, now - 10, now + 3600, SECRET);
    assert_eq!(
        app.chat_raw(&good, Method::GET, "/chat/threads", None, &[])
            .await
            .status(),
        200
    );
    let header_none = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"alg":"none","typ":"JWT"}"#,
    );
    let none = format!("{header_none}.{}.", good.split('.').nth(1).unwrap());
    for token in [
        "not-a-jwt".to_string(),
        forge(&app, &u.id, now - 10, now + 3600, "other-secret"),
        forge(&app, &u.id, now - 7200, now - 1, SECRET),
        forge(&app, &u.id, now + 600, now + 4000, SECRET),
        none,
    ] {
        let r = app
            .chat_raw(&token, Method::GET, "/chat/threads", None, &[])
            .await;
        assert_error(r, 401, "Unauthorized").await;
    }
    let r = app
        .client
        .get(format!("{}/chat/threads?api-version={CHAT_V}", app.base))
        .header(
            "authorization",
            "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=abc",
        )
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "Unauthorized").await;
}

/// Scopes: voip alone is refused on chat; chat.join can't create threads; chat.join.limited
/// can't manage participants but can send.
#[tokio::test]
async fn scopes() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    let voip = app.user_with(&["voip"]).await;
    let join = app.user_with(&["chat.join"]).await;
    let limited = app.user_with(&["chat.join.limited"]).await;
    let other = app.user().await;
    assert_error(
        app.chat(&voip, Method::GET, "/chat/threads", None).await,
        403,
        "Forbidden",
    )
    .await;
    let body = json!({"topic": "t"});
    assert_error(
        app.chat(&join, Method::POST, "/chat/threads", Some(body))
            .await,
        403,
        "Forbidden",
    )
    .await;
    let t = app.thread(&owner, &[&join, &limited]).await;
    let add = json!({"participants": [participant(&other.id)]});
    let p = format!("/chat/threads/{}/participants/:add", enc(&t));
    assert_error(
        app.chat(&limited, Method::POST, &p, Some(add.clone()))
            .await,
        403,
        "Forbidden",
    )
    .await;
    assert_eq!(
        app.chat(&join, Method::POST, &p, Some(add)).await.status(),
        201
    );
    app.send(&limited, &t, "limited can talk").await;
}
