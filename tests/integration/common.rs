//! Test harness: a real confab on port 0 with a fresh database, and small clients for the
//! Identity (HMAC) and Chat (bearer) APIs.
//!
//! With `CONFAB_TEST_DATABASE_URL=postgres://…` every app gets its own PostgreSQL schema;
//! otherwise a SQLite database in a temporary directory.

use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::Parser;
use confab::config::Config;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const CHAT_V: &str = "2024-03-07";
pub const IDENTITY_V: &str = "2023-10-01";
pub const DEV_KEY: &str = confab::config::DEV_ACCESS_KEY;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: Config,
}

/// Builds a config from flags, as the binary would.
pub fn config(extra: &[&str]) -> Config {
    let mut args = vec![
        "confab",
        "--http-port",
        "0",
        "--admin-addr",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--log",
        "warn",
    ];
    // HTTPS only when a test asks for it (with its own --https-port).
    if !extra.contains(&"--https-port") {
        args.push("--no-tls");
    }
    args.extend_from_slice(extra);
    Args::try_parse_from(args).expect("test flags").config
}

pub struct TestApp {
    pub base: String,
    /// `https://127.0.0.1:port` when the app serves HTTPS.
    pub https: Option<String>,
    /// The development CA of that HTTPS listener.
    pub ca: Option<std::path::PathBuf>,
    /// `http://127.0.0.1:port` of the admin listener (dashboard, /metrics).
    pub admin: String,
    pub client: reqwest::Client,
    pub key: String,
    pub resource_id: String,
    /// The database the server uses (SQLite file or PostgreSQL URL), for tests that reach in.
    pub db_url: String,
    pub _dir: tempfile::TempDir,
    /// Stops the in-process server (and closes its database connections) when dropped.
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A user with a token.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub token: String,
}

/// A fresh PostgreSQL schema for one app, as a URL whose search_path points at it.
pub fn postgres_schema(base_url: &str) -> String {
    use diesel::{Connection, RunQueryDsl};
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut c =
        diesel::PgConnection::establish(base_url).expect("connect to CONFAB_TEST_DATABASE_URL");
    diesel::sql_query(format!("CREATE SCHEMA {schema}"))
        .execute(&mut c)
        .expect("create schema");
    let sep = if base_url.contains('?') { '&' } else { '?' };
    format!("{base_url}{sep}options=-csearch_path%3D{schema}&application_name={schema}")
}

/// A fresh PostgreSQL schema when `CONFAB_TEST_DATABASE_URL` is set, else `None` (SQLite).
pub fn test_database() -> Option<String> {
    std::env::var("CONFAB_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| postgres_schema(&u))
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// Starts confab with extra flags on its own actix system thread.
    pub async fn spawn_with(extra: &[&str]) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(extra);
        cfg.data_dir = dir.path().to_path_buf();
        if cfg.database_url.is_none() {
            cfg.database_url = test_database().map(|u| u.parse().unwrap());
        }
        let key = cfg.primary_key().to_string();
        let db_url = match &cfg.database_url {
            Some(u) => u.expose().to_string(),
            None => confab::store::Store::sqlite_url(&cfg.data_dir),
        };
        let (tx, rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match confab::start(cfg).await {
                    Ok(r) => {
                        tx.send(Ok((
                            r.http_addr,
                            r.https_addr,
                            r.ca_path.clone(),
                            r.state.resource_id.clone(),
                            r.admin_addr,
                        )))
                        .unwrap();
                        let handle = r.server.handle();
                        let admin = r.admin.clone();
                        let server = r.server;
                        tokio::select! {
                            _ = server => {}
                                                        _ = stop_rx => {
                                handle.stop(false).await;
                                admin.stop(false).await;
                            },
                        }
                        actix_web::rt::System::current().stop();
                    }
                    Err(e) => tx.send(Err(e)).unwrap(),
                }
            })
        });
        let (addr, https_addr, ca, resource_id, admin) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server started")
            .expect("server config valid");
        TestApp {
            base: format!("http://{}", addr.expect("an http listener")),
            https: https_addr.map(|a| format!("https://{a}")),
            ca,
            admin: format!("http://{admin}"),
            client: reqwest::Client::new(),
            key,
            resource_id,
            db_url,
            _dir: dir,
            stop: Some(stop_tx),
        }
    }

    /// Sends an HMAC-signed identity request (signing `host` as sent).
    pub async fn signed(
        &self,
        method: Method,
        path_and_query: &str,
        body: &str,
    ) -> reqwest::Response {
        self.signed_with(
            method,
            path_and_query,
            body,
            &self.key,
            SystemTime::now(),
            None,
        )
        .await
    }

    pub async fn signed_with(
        &self,
        method: Method,
        path_and_query: &str,
        body: &str,
        key: &str,
        when: SystemTime,
        hash_override: Option<&str>,
    ) -> reqwest::Response {
        let host = self.base.trim_start_matches("http://").to_string();
        let date = httpdate::fmt_http_date(when);
        let hash = B64.encode(Sha256::digest(body.as_bytes()));
        let to_sign = format!(
            "{}\n{path_and_query}\n{date};{host};{hash}",
            method.as_str()
        );
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&B64.decode(key).unwrap()).unwrap();
        mac.update(to_sign.as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        self.client
            .request(method, format!("{}{path_and_query}", self.base))
            .header("x-ms-date", date)
            .header("x-ms-content-sha256", hash_override.unwrap_or(&hash))
            .header(
                "authorization",
                format!(
                    "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={sig}"
                ),
            )
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Creates an identity with a token of `scopes`.
    pub async fn user_with(&self, scopes: &[&str]) -> User {
        let body = json!({ "createTokenWithScopes": scopes }).to_string();
        let r = self
            .signed(
                Method::POST,
                &format!("/identities?api-version={IDENTITY_V}"),
                &body,
            )
            .await;
        assert_eq!(r.status(), 201, "create identity");
        let v: Value = r.json().await.unwrap();
        User {
            id: v["identity"]["id"].as_str().unwrap().to_string(),
            token: v["accessToken"]["token"].as_str().unwrap().to_string(),
        }
    }

    pub async fn user(&self) -> User {
        self.user_with(&["chat"]).await
    }

    /// A chat request as `user` (api-version appended), with a JSON body if given.
    pub async fn chat(
        &self,
        user: &User,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        self.chat_raw(&user.token, method, path, body.map(|b| b.to_string()), &[])
            .await
    }

    pub async fn chat_raw(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}{sep}api-version={CHAT_V}", self.base)
        };
        let mut req = self.client.request(method, url).bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        req.send().await.unwrap()
    }

    /// Creates a thread with `others` as participants; returns its id.
    pub async fn thread(&self, owner: &User, others: &[&User]) -> String {
        let participants: Vec<Value> = others.iter().map(|u| participant(&u.id)).collect();
        let r = self
            .chat(
                owner,
                Method::POST,
                "/chat/threads",
                Some(json!({ "topic": "test", "participants": participants })),
            )
            .await;
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        v["chatThread"]["id"].as_str().unwrap().to_string()
    }

    /// Sends a text message; returns its id.
    pub async fn send(&self, user: &User, thread: &str, content: &str) -> String {
        let r = self
            .chat(
                user,
                Method::POST,
                &format!("/chat/threads/{}/messages", enc(thread)),
                Some(json!({ "content": content })),
            )
            .await;
        assert_eq!(r.status(), 201, "send message");
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Every message `user` sees, following nextLink.
    pub async fn all_messages(&self, user: &User, thread: &str, page: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut url = format!("/chat/threads/{}/messages?maxPageSize={page}", enc(thread));
        loop {
            let r = self.chat(user, Method::GET, &url, None).await;
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            out.extend(v["value"].as_array().unwrap().iter().cloned());
            match v["nextLink"].as_str() {
                Some(next) => url = next.to_string(),
                None => return out,
            }
        }
    }
}

pub fn participant(id: &str) -> Value {
    json!({ "communicationIdentifier": { "rawId": id, "communicationUser": { "id": id } } })
}

/// Percent-encodes an id as the SDKs do.
pub fn enc(id: &str) -> String {
    id.replace(':', "%3A").replace('@', "%40")
}

/// Asserts an ACS error envelope with `status` and `code`.
pub async fn assert_error(r: reqwest::Response, status: u16, code: &str) -> Value {
    let got = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(got, StatusCode::from_u16(status).unwrap(), "body: {body}");
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(ct, "application/json; charset=utf-8");
    body
}
