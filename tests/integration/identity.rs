//! Identity REST and HMAC access-key authentication (contract §4.1–4.2).

use std::time::{Duration, SystemTime};

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

fn path(p: &str) -> String {
    format!("{p}?api-version={IDENTITY_V}")
}

/// Create without body, with scopes, issue token, revoke, delete: codes and bodies as ACS.
#[tokio::test]
async fn identity_lifecycle() {
    let app = TestApp::spawn().await;
    // Python's create_user() sends an empty body with Content-Type: application/json.
    let r = app.signed(Method::POST, &path("/identities"), "").await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let id = v["identity"]["id"].as_str().unwrap().to_string();
    assert!(
        id.starts_with(&format!("8:acs:{}_", app.resource_id)),
        "{id}"
    );
    assert!(v.get("accessToken").is_none());

    let r = app
        .signed(
            Method::POST,
            &path("/identities"),
            &json!({"createTokenWithScopes": ["chat", "voip", "chat"], "expiresInMinutes": 60})
                .to_string(),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let expires = v["accessToken"]["expiresOn"].as_str().unwrap();
    assert_eq!(expires.len(), "2026-11-27T11:07:47.443Z".len(), "{expires}");
    assert!(expires.ends_with('Z'));
    let token = v["accessToken"]["token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    assert!(
        !payload.contains(['-', '_']),
        "payload must decode with the standard alphabet"
    );

    let enc_id = enc(&id);
    let r = app
        .signed(
            Method::POST,
            &path(&format!("/identities/{enc_id}/:issueAccessToken")),
            &json!({"scopes": ["chat"]}).to_string(),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let user = User {
        id: id.clone(),
        token: v["token"].as_str().unwrap().to_string(),
    };
    assert!(v["expiresOn"].is_string());
    // the token works
    let r = app.chat(&user, Method::GET, "/chat/threads", None).await;
    assert_eq!(r.status(), 200);

    let r = app
        .signed(
            Method::POST,
            &path(&format!("/identities/{enc_id}/:revokeAccessTokens")),
            "",
        )
        .await;
    assert_eq!(r.status(), 204);
    // RFC 9110 forbids Content-Length on 204; the body is empty.
    assert!(r.bytes().await.unwrap().is_empty());
    assert_error(
        app.chat(&user, Method::GET, "/chat/threads", None).await,
        401,
        "Unauthorized",
    )
    .await;

    // revoke, then issue at once: the new token works
    let r = app
        .signed(
            Method::POST,
            &path(&format!("/identities/{enc_id}/:issueAccessToken")),
            &json!({"scopes": ["chat"]}).to_string(),
        )
        .await;
    let fresh = User {
        id: id.clone(),
        token: r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string(),
    };
    assert_eq!(
        app.chat(&fresh, Method::GET, "/chat/threads", None)
            .await
            .status(),
        200
    );

    let r = app
        .signed(Method::DELETE, &path(&format!("/identities/{enc_id}")), "")
        .await;
    assert_eq!(r.status(), 204);
    assert_error(
        app.chat(&fresh, Method::GET, "/chat/threads", None).await,
        401,
        "Unauthorized",
    )
    .await;
    // a deleted identity is not found
    let r = app
        .signed(
            Method::POST,
            &path(&format!("/identities/{enc_id}/:issueAccessToken")),
            &json!({"scopes": ["chat"]}).to_string(),
        )
        .await;
    assert_error(r, 404, "NotFound").await;
    let r = app
        .signed(Method::DELETE, &path(&format!("/identities/{enc_id}")), "")
        .await;
    assert_error(r, 404, "NotFound").await;
}

/// Bad identity input: scopes, expiry range, malformed and foreign ids.
#[tokio::test]
async fn identity_bad_input() {
    let app = TestApp::spawn().await;
    for body in [
        json!({"createTokenWithScopes": ["chat"], "expiresInMinutes": 59}),
        json!({"createTokenWithScopes": ["chat"], "expiresInMinutes": 1441}),
        json!({"createTokenWithScopes": ["admin"]}),
        json!({"createTokenWithScopes": []}),
        json!({"createTokenWithScopes": "chat"}),
    ] {
        let r = app
            .signed(Method::POST, &path("/identities"), &body.to_string())
            .await;
        assert_error(r, 400, "InvalidRequest").await;
    }
    let r = app
        .signed(Method::POST, &path("/identities"), "{nope")
        .await;
    assert_error(r, 400, "InvalidRequest").await;
    for id in [
        "8%3Aacs%3Aother_00000000-0000-4000-8000-000000000000",
        "garbage",
    ] {
        let r = app
            .signed(Method::DELETE, &path(&format!("/identities/{id}")), "")
            .await;
        assert_error(r, 404, "NotFound").await;
    }
    let r = app
        .signed(
            Method::POST,
            "/teamsUser/:exchangeAccessToken?api-version=2023-10-01",
            "{}",
        )
        .await;
    assert_error(r, 400, "FeatureNotSupported").await;
}

/// HMAC: wrong body hash, stale date, wrong key and a bearer token are all 401; the secondary
/// key works; Host+"/" and host:port:port are accepted host forms.
#[tokio::test]
async fn hmac_rules() {
    let secondary = "c2Vjb25kYXJ5LWtleS1mb3ItdGVzdHMtMDEyMzQ1Njc4OQ==";
    let app = TestApp::spawn_with(&["--secondary-access-key", secondary]).await;
    let p = path("/identities");
    let now = SystemTime::now();
    let r = app
        .signed_with(
            Method::POST,
            &p,
            "{}",
            &app.key,
            now,
            Some("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
        )
        .await;
    assert_error(r, 401, "Unauthorized").await;
    let r = app
        .signed_with(
            Method::POST,
            &p,
            "",
            &app.key,
            now - Duration::from_secs(16 * 60),
            None,
        )
        .await;
    assert_error(r, 401, "Unauthorized").await;
    let r = app
        .signed_with(Method::POST, &p, "", "d3Jvbmcta2V5", now, None)
        .await;
    assert_error(r, 401, "Unauthorized").await;
    let r = app
        .signed_with(Method::POST, &p, "", secondary, now, None)
        .await;
    assert_eq!(r.status(), 201);
    // a user token on an identity route
    let u = app.user().await;
    let r = app
        .client
        .post(format!("{}{p}", app.base))
        .bearer_auth(&u.token)
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "Unauthorized").await;
    // no credential at all
    let r = app
        .client
        .post(format!("{}{p}", app.base))
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "Unauthorized").await;
}

/// The signed host may be `Host + "/"` (Python) or `host:port:port` (JS).
#[tokio::test]
async fn hmac_host_forms() {
    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::{Digest, Sha256};
    let app = TestApp::spawn().await;
    let host = app.base.trim_start_matches("http://").to_string();
    let port = host.rsplit(':').next().unwrap().to_string();
    for signed_host in [format!("{host}/"), format!("{host}:{port}")] {
        let b64 = base64::engine::general_purpose::STANDARD;
        let p = path("/identities");
        let date = httpdate::fmt_http_date(SystemTime::now());
        let hash = b64.encode(Sha256::digest(b""));
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&b64.decode(&app.key).unwrap()).unwrap();
        mac.update(format!("POST\n{p}\n{date};{signed_host};{hash}").as_bytes());
        let sig = b64.encode(mac.finalize().into_bytes());
        let r = app
            .client
            .post(format!("{}{p}", app.base))
            .header("x-ms-date", date)
            .header("x-ms-content-sha256", hash)
            .header(
                "authorization",
                format!(
                    "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={sig}"
                ),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{signed_host}");
    }
}

/// api-version: missing, unknown, a chat version on an identity route, and the skip flag.
#[tokio::test]
async fn api_versions() {
    let app = TestApp::spawn().await;
    let r = app.signed(Method::POST, "/identities", "").await;
    assert_error(r, 400, "MissingApiVersionParameter").await;
    let r = app
        .signed(Method::POST, "/identities?api-version=2024-03-07", "")
        .await;
    let v = assert_error(r, 400, "UnsupportedApiVersion").await;
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--skip-api-version-check"));
    let r = app
        .signed(
            Method::POST,
            "/identities?api-version=2023-10-01-preview",
            "",
        )
        .await;
    assert_error(r, 400, "UnsupportedApiVersion").await;
    let u = app.user().await;
    let r = app
        .client
        .get(format!("{}/chat/threads?api-version=2099-01-01", app.base))
        .bearer_auth(&u.token)
        .send()
        .await
        .unwrap();
    let v = assert_error(r, 400, "UnsupportedApiVersion").await;
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--skip-api-version-check"));
    // the JS SDK's version is accepted
    let r = app
        .client
        .get(format!("{}/chat/threads?api-version=2025-03-15", app.base))
        .bearer_auth(&u.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let app = TestApp::spawn_with(&["--skip-api-version-check"]).await;
    let r = app
        .signed(Method::POST, "/identities?api-version=1999-01-01", "")
        .await;
    assert_eq!(r.status(), 201);
    let r = app.signed(Method::POST, "/identities", "").await;
    assert_eq!(r.status(), 201);
}
