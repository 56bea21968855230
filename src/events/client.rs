//! The HTTP side of webhooks: the SSRF-guarded client, one request to an endpoint, one
//! delivery attempt, and the validation handshake (contract §7.2), which the admin API runs
//! when a subscription is put.

use std::time::Duration;

use serde_json::{json, Value};

use super::envelope::CLOUD_EVENTS;
use super::ssrf;
use crate::ids::{fmt_ms, now_ms};

/// One attempt's limit, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

pub const USER_AGENT: &str = concat!("confab-webhooks/", env!("CARGO_PKG_VERSION"));

/// The HTTP client for webhooks: redirects are not followed, and every address it dials has
/// passed [`ssrf::GuardedResolver`].
pub fn client(allow_private: bool) -> awc::Client {
    let tcp = actix_tls::connect::Connector::new(actix_tls::connect::Resolver::custom(
        ssrf::GuardedResolver { allow_private },
    ))
    .service();
    awc::Client::builder()
        .disable_redirects()
        .timeout(ATTEMPT_TIMEOUT)
        .connector(
            awc::Connector::new()
                .connector(tcp)
                .timeout(Duration::from_secs(10)),
        )
        .finish()
}

/// How one attempt ended.
#[derive(Debug)]
pub enum Answer {
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
    /// Timeout, refused connection, blocked address, TLS failure…
    Failed(String),
}

/// An endpoint's answer.
pub struct EndpointResponse {
    pub status: u16,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: bytes::Bytes,
}

/// Sends one request to an endpoint after checking its URL (the client's resolver checks the
/// addresses dialled). Up to 64 KiB of the answer's body is read.
pub async fn exchange(
    client: &awc::Client,
    method: actix_web::http::Method,
    url: &str,
    allow_private: bool,
    headers: Vec<(&'static str, String)>,
    body: Option<(&str, String)>,
) -> Result<EndpointResponse, String> {
    let endpoint = ssrf::check_url(url, allow_private)?;
    let mut req = client
        .request(method, endpoint.uri)
        .insert_header(("User-Agent", USER_AGENT));
    for (k, v) in headers {
        req = req.insert_header((k, v));
    }
    let sent = match body {
        Some((content_type, body)) => {
            req.insert_header(("Content-Type", content_type))
                .send_body(body)
                .await
        }
        None => req.send().await,
    };
    let mut res = sent.map_err(|e| e.to_string())?;
    let body = res.body().limit(64 * 1024).await.unwrap_or_default();
    Ok(EndpointResponse {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body,
    })
}

/// One request to a service the operator configured (translator, transcriber): the URL and
/// the addresses dialled are checked as a webhook's unless `allow_private`; the whole exchange,
/// answer included (at most `limit` bytes), must end within `timeout`.
#[allow(clippy::too_many_arguments)]
pub async fn call(
    client: &awc::Client,
    url: &str,
    allow_private: bool,
    headers: Vec<(&'static str, String)>,
    content_type: &str,
    body: bytes::Bytes,
    timeout: Duration,
    limit: usize,
) -> Result<EndpointResponse, String> {
    let endpoint = ssrf::check_url(url, allow_private)?;
    let mut req = client
        .post(endpoint.uri)
        .timeout(timeout)
        .insert_header(("User-Agent", USER_AGENT))
        .insert_header(("Content-Type", content_type.to_string()));
    for (k, v) in headers {
        req = req.insert_header((k, v));
    }
    let exchange = async move {
        let mut res = req.send_body(body).await.map_err(|e| e.to_string())?;
        let body = res.body().limit(limit).await.map_err(|e| e.to_string())?;
        Ok(EndpointResponse {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
    }
}

/// Sends one delivery.
pub async fn send(
    client: &awc::Client,
    url: &str,
    allow_private: bool,
    headers: Vec<(&'static str, String)>,
    content_type: &str,
    body: String,
) -> Answer {
    let post = actix_web::http::Method::POST;
    match exchange(
        client,
        post,
        url,
        allow_private,
        headers,
        Some((content_type, body)),
    )
    .await
    {
        Ok(r) => Answer::Status {
            code: r.status,
            retry_after: retry_after(&r.headers),
        },
        Err(e) => Answer::Failed(e),
    }
}

/// What the validation handshake needs (contract §7.2).
pub struct Handshake<'a> {
    pub schema: &'a str,
    pub url: &'a str,
    pub allow_private: bool,
    pub topic: &'a str,
    pub name: &'a str,
    pub code: &'a str,
    pub validation_url: &'a str,
    /// `WebHook-Request-Origin` (CloudEvents): confab's host name.
    pub origin: &'a str,
}

/// Runs the handshake; true when the endpoint answered as the schema requires.
pub async fn handshake(h: &Handshake<'_>) -> bool {
    let client = client(h.allow_private);
    if h.schema == CLOUD_EVENTS {
        let headers = vec![("WebHook-Request-Origin", h.origin.to_string())];
        let options = actix_web::http::Method::OPTIONS;
        return match exchange(&client, options, h.url, h.allow_private, headers, None).await {
            Ok(r) if r.status == 200 => r
                .headers
                .get("webhook-allowed-origin")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == "*" || v.trim().eq_ignore_ascii_case(h.origin)),
            _ => false,
        };
    }
    let body = json!([{
        "id": uuid::Uuid::new_v4().to_string(),
        "topic": h.topic,
        "subject": "",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": fmt_ms(now_ms()),
        "metadataVersion": "1",
        "dataVersion": "1",
        "data": { "validationCode": h.code, "validationUrl": h.validation_url },
    }]);
    let headers = vec![
        ("aeg-event-type", "SubscriptionValidation".to_string()),
        ("aeg-subscription-name", h.name.to_string()),
        ("aeg-delivery-count", "0".to_string()),
        ("aeg-data-version", "1".to_string()),
        ("aeg-metadata-version", "1".to_string()),
    ];
    let post = actix_web::http::Method::POST;
    let body = Some(("application/json; charset=utf-8", body.to_string()));
    match exchange(&client, post, h.url, h.allow_private, headers, body).await {
        Ok(r) if r.status == 200 => serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| {
                v.get("validationResponse")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .is_some_and(|v| v.eq_ignore_ascii_case(h.code)),
        _ => false,
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(h: &actix_web::http::header::HeaderMap) -> Option<Duration> {
    let v = h.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}
