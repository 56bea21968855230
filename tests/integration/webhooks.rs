//! Webhooks (contract §7) against a real HTTP receiver on loopback.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::common::{assert_error, enc, participant, TestApp};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
}

impl Hit {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// The one event of an Event Grid delivery (or the CloudEvents object).
    pub fn event(&self) -> Value {
        let v = self.json();
        match v {
            Value::Array(mut a) => {
                assert_eq!(a.len(), 1, "one event per POST: {}", self.body);
                a.remove(0)
            }
            v => v,
        }
    }
}

#[derive(Default)]
struct Script {
    /// Statuses (and an optional Retry-After) for the next notifications; then `default`.
    queue: VecDeque<(u16, Option<&'static str>)>,
    default: u16,
    /// Whether the validation handshake is answered.
    refuse_handshake: bool,
    /// How long each notification is held before the answer.
    delay: Duration,
    in_flight: usize,
    max_in_flight: usize,
    hits: Vec<Hit>,
}

/// A webhook endpoint on loopback that records what it gets and answers as scripted.
pub struct Receiver {
    pub url: String,
    pub port: u16,
    script: Arc<Mutex<Script>>,
    server: actix_web::dev::ServerHandle,
}

impl Receiver {
    pub fn start() -> Receiver {
        Self::start_on(0)
    }

    pub fn start_on(port: u16) -> Receiver {
        let script = Arc::new(Mutex::new(Script {
            default: 200,
            ..Default::default()
        }));
        let shared = script.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(web::Data::new(shared.clone()))
                        .default_service(web::to(answer))
                })
                .workers(1)
                .disable_signals()
                .bind(("127.0.0.1", port))
                .unwrap();
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, server.handle())).unwrap();
                server.await.unwrap();
            })
        });
        let (port, server) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            port,
            script,
            server,
        }
    }

    pub fn respond(&self, statuses: &[(u16, Option<&'static str>)]) {
        self.script
            .lock()
            .unwrap()
            .queue
            .extend(statuses.iter().copied());
    }

    pub fn set_default(&self, status: u16) {
        self.script.lock().unwrap().default = status;
    }

    /// Holds every notification for `d` before answering.
    pub fn delay(&self, d: Duration) {
        self.script.lock().unwrap().delay = d;
    }

    /// The most notifications that were held at once.
    pub fn max_in_flight(&self) -> usize {
        self.script.lock().unwrap().max_in_flight
    }

    pub fn refuse_handshake(&self) {
        self.script.lock().unwrap().refuse_handshake = true;
    }

    pub fn all(&self) -> Vec<Hit> {
        self.script.lock().unwrap().hits.clone()
    }

    /// Deliveries only (not the handshake).
    pub fn notifications(&self) -> Vec<Hit> {
        self.all()
            .into_iter()
            .filter(|h| h.header("aeg-event-type") == Some("Notification"))
            .collect()
    }

    /// Waits until `pred` holds over the notifications (10 s at most).
    pub async fn wait(&self, what: &str, pred: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let hits = self.notifications();
            if pred(&hits) {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got {} notifications: {:#?}",
                hits.len(),
                hits.iter()
                    .map(|h| h.event()["eventType"].clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for notifications of `event_type` (Event Grid schema) until `n` have arrived.
    pub async fn events_of(&self, event_type: &str, n: usize) -> Vec<Hit> {
        let t = format!("Microsoft.Communication.{event_type}");
        let hits = self
            .wait(&format!("{n} × {event_type}"), |h| {
                h.iter().filter(|x| x.event()["eventType"] == t).count() >= n
            })
            .await;
        hits.into_iter()
            .filter(|x| x.event()["eventType"] == t)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let s = self.server.clone();
        std::thread::spawn(move || actix_web::rt::System::new().block_on(s.stop(false)));
    }
}

async fn answer(
    req: HttpRequest,
    body: web::Bytes,
    script: web::Data<Arc<Mutex<Script>>>,
) -> HttpResponse {
    let hit = Hit {
        method: req.method().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    };
    let (status, retry_after, delay) = {
        let mut s = script.lock().unwrap();
        s.hits.push(hit.clone());
        if hit.method == "OPTIONS" {
            return if s.refuse_handshake {
                HttpResponse::MethodNotAllowed().finish()
            } else {
                HttpResponse::Ok()
                    .insert_header(("WebHook-Allowed-Origin", "*"))
                    .finish()
            };
        }
        if hit.header("aeg-event-type") == Some("SubscriptionValidation") {
            if s.refuse_handshake {
                return HttpResponse::NotFound().finish();
            }
            let code = hit.event()["data"]["validationCode"].clone();
            return HttpResponse::Ok().json(json!({ "validationResponse": code }));
        }
        let (status, retry_after) = s.queue.pop_front().unwrap_or((s.default, None));
        if !s.delay.is_zero() {
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
        }
        (status, retry_after, s.delay)
    };
    if !delay.is_zero() {
        actix_web::rt::time::sleep(delay).await;
        script.lock().unwrap().in_flight -= 1;
    }
    let mut r = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    if let Some(ra) = retry_after {
        r.insert_header(("Retry-After", ra));
    }
    r.finish()
}

/// An app that may deliver to loopback, with retries scaled from seconds to milliseconds.
pub async fn app() -> TestApp {
    TestApp::spawn_with(&["--webhook-allow-private", "--webhook-retry-scale", "0.001"]).await
}

/// PUTs a subscription; returns the response body after asserting `status`.
pub async fn subscribe(app: &TestApp, name: &str, body: Value, status: u16) -> Value {
    let r = app
        .signed(
            Method::PUT,
            &format!("/eventSubscriptions/{name}"),
            &body.to_string(),
        )
        .await;
    let got = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{v}");
    v
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app.signed(Method::GET, path, "").await;
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Reads a subscription's deliveries until `pred` holds on them.
async fn deliveries_until(
    app: &TestApp,
    name: &str,
    query: &str,
    pred: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, v) = get(
            app,
            &format!("/eventSubscriptions/{name}/deliveries{query}"),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        let rows = v["value"].as_array().unwrap().clone();
        if pred(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries never matched: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn cim(raw: &str) -> Value {
    json!({ "kind": "communicationUser", "rawId": raw, "communicationUser": { "id": raw } })
}

const TOPIC: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/confab/providers/Microsoft.Communication/communicationServices/confab";

#[actix_web::test]
async fn subscription_lifecycle_and_handshake() {
    let app = app().await;
    let rx = Receiver::start();
    let v = subscribe(
        &app,
        "Orders-Hook",
        json!({ "endpointUrl": rx.url, "includedEventTypes": ["ChatMessageReceived"] }),
        201,
    )
    .await;
    assert_eq!(v["name"], "Orders-Hook");
    assert_eq!(v["endpointUrl"], rx.url.as_str());
    assert_eq!(
        v["includedEventTypes"],
        json!(["Microsoft.Communication.ChatMessageReceived"])
    );
    assert_eq!(v["eventDeliverySchema"], "EventGridSchema");
    assert_eq!(v["hasSecret"], false);
    assert_eq!(v["maxDeliveryAttempts"], 30);
    assert_eq!(v["eventTimeToLiveInMinutes"], 1440);
    assert_eq!(v["provisioningState"], "Succeeded");
    assert_eq!(v["status"], "Active");
    assert!(v.get("secret").is_none());
    assert!(v["createdOn"].as_str().unwrap().ends_with('Z'));

    // The handshake: one SubscriptionValidation POST with the exact event shape.
    let hs = rx.all();
    assert_eq!(hs.len(), 1);
    assert_eq!(hs[0].method, "POST");
    assert_eq!(
        hs[0].header("aeg-event-type"),
        Some("SubscriptionValidation")
    );
    let e = hs[0].event();
    assert_eq!(
        keys(&e),
        set(&[
            "id",
            "topic",
            "subject",
            "eventType",
            "eventTime",
            "metadataVersion",
            "dataVersion",
            "data"
        ])
    );
    assert_eq!(
        e["eventType"],
        "Microsoft.EventGrid.SubscriptionValidationEvent"
    );
    assert_eq!(e["topic"], TOPIC);
    assert_eq!(e["subject"], "");
    let code = e["data"]["validationCode"].as_str().unwrap();
    assert!(e["data"]["validationUrl"]
        .as_str()
        .unwrap()
        .ends_with(&format!(
            "/eventSubscriptions/Orders-Hook:validate?code={code}"
        )));

    // Names compare case-insensitively; a second PUT updates (200) without a new handshake.
    let (s, got) = get(&app, "/eventSubscriptions/orders-hook").await;
    assert_eq!((s, &got["name"]), (200, &json!("Orders-Hook")));
    let v = subscribe(
        &app,
        "ORDERS-HOOK",
        json!({ "endpointUrl": rx.url, "maxDeliveryAttempts": 5, "eventDeliverySchema": "EventGridSchema" }),
        200,
    )
    .await;
    assert_eq!(v["maxDeliveryAttempts"], 5);
    assert_eq!(v["includedEventTypes"], json!([]));
    assert_eq!(rx.all().len(), 1, "same endpoint: no new handshake");
    let (s, list) = get(&app, "/eventSubscriptions").await;
    assert_eq!(s, 200);
    assert_eq!(list["value"].as_array().unwrap().len(), 1);

    // Bad input → 400 with the field named; nothing stored changes.
    for (body, target) in [
        (json!({}), "endpointUrl"),
        (
            json!({ "endpointUrl": rx.url, "includedEventTypes": ["ChatNope"] }),
            "includedEventTypes",
        ),
        (
            json!({ "endpointUrl": rx.url, "secret": "hunter2" }),
            "secret",
        ),
        (
            json!({ "endpointUrl": rx.url, "maxDeliveryAttempts": 31 }),
            "maxDeliveryAttempts",
        ),
        (
            json!({ "endpointUrl": rx.url, "eventTimeToLiveInMinutes": 0 }),
            "eventTimeToLiveInMinutes",
        ),
        (
            json!({ "endpointUrl": rx.url, "eventDeliverySchema": "Custom" }),
            "eventDeliverySchema",
        ),
    ] {
        let r = app
            .signed(
                Method::PUT,
                "/eventSubscriptions/orders-hook",
                &body.to_string(),
            )
            .await;
        let e = assert_error(r, 400, "InvalidRequest").await;
        assert_eq!(e["error"]["target"], target);
    }
    let r = app
        .signed(
            Method::PUT,
            "/eventSubscriptions/ab",
            &json!({ "endpointUrl": rx.url }).to_string(),
        )
        .await;
    assert_error(r, 400, "InvalidRequest").await;
    let (_, got) = get(&app, "/eventSubscriptions/orders-hook").await;
    assert_eq!(got["maxDeliveryAttempts"], 5);

    // A user token is not an access key.
    let user = app.user().await;
    let r = app
        .chat_raw(&user.token, Method::GET, "/eventSubscriptions", None, &[])
        .await;
    assert_error(r, 401, "Unauthorized").await;

    let r = app
        .signed(Method::DELETE, "/eventSubscriptions/Orders-Hook", "")
        .await;
    assert_eq!(r.status(), 204);
    let (s, _) = get(&app, "/eventSubscriptions/orders-hook").await;
    assert_eq!(s, 404);
}

#[actix_web::test]
async fn manual_validation_holds_deliveries_until_the_link_is_visited() {
    let app = app().await;
    let rx = Receiver::start();
    rx.refuse_handshake();
    let v = subscribe(&app, "manual", json!({ "endpointUrl": rx.url }), 201).await;
    assert_eq!(v["provisioningState"], "AwaitingManualAction");
    let link = v["validationUrl"].as_str().unwrap().to_string();
    let (a, b) = (app.user().await, app.user().await);
    let thread = app.thread(&a, &[&b]).await;
    app.send(&a, &thread, "before validation").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        rx.notifications().is_empty(),
        "nothing is delivered before validation"
    );

    // The link is the credential: a wrong code is refused, the right one validates.
    let bad = reqwest::get(link.replace("code=", "code=0")).await.unwrap();
    assert_error(bad, 400, "InvalidValidationCode").await;
    let ok = reqwest::get(&link).await.unwrap();
    assert_eq!(ok.status(), 200);
    let (_, got) = get(&app, "/eventSubscriptions/manual").await;
    assert_eq!(got["provisioningState"], "Succeeded");
    assert!(got.get("validationUrl").is_none());
    app.send(&a, &thread, "after validation").await;
    let hits = rx.events_of("ChatMessageReceivedInThread", 1).await;
    assert_eq!(hits[0].event()["data"]["messageBody"], "after validation");
}

/// Creates A (creator) with B, then a message, edit, delete, typing, topic change, add C,
/// remove C and delete: every event type, each checked field by field.
#[actix_web::test]
async fn every_event_type_with_exact_envelope_and_data() {
    let app = app().await;
    let rx = Receiver::start();
    subscribe(&app, "everything", json!({ "endpointUrl": rx.url }), 201).await;
    let (a, b, c) = (app.user().await, app.user().await, app.user().await);

    let r = app
        .chat(
            &a,
            Method::POST,
            "/chat/threads",
            Some(json!({
                "topic": "launch",
                "participants": [
                    participant(&a.id),
                    { "communicationIdentifier": { "rawId": b.id, "communicationUser": { "id": b.id } },
                      "displayName": "Bea", "metadata": { "role": "pm" } }
                ],
                "metadata": { "team": "rocket" }
            })),
        )
        .await;
    assert_eq!(r.status(), 201);
    let create_tx = r.headers()["x-ms-request-id"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    let t = v["chatThread"]["id"].as_str().unwrap().to_string();
    let created_on = v["chatThread"]["createdOn"].as_str().unwrap().to_string();
    let path = format!("/chat/threads/{}", enc(&t));

    let r = app
        .chat(
            &a,
            Method::POST,
            &format!("{path}/messages"),
            Some(json!({ "content": "<b>hi</b>", "type": "html", "senderDisplayName": "Ann", "metadata": { "k": "v" } })),
        )
        .await;
    assert_eq!(r.status(), 201);
    let send_tx = r.headers()["x-ms-request-id"].to_str().unwrap().to_string();
    let mid = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .chat(
            &a,
            Method::PATCH,
            &format!("{path}/messages/{mid}"),
            Some(json!({ "content": "<i>hi</i>" })),
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = app
        .chat(&a, Method::DELETE, &format!("{path}/messages/{mid}"), None)
        .await;
    assert_eq!(r.status(), 204);
    let r = app
        .chat(
            &b,
            Method::POST,
            &format!("{path}/typing"),
            Some(json!({ "senderDisplayName": "Bea" })),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .chat(
            &a,
            Method::PATCH,
            &path,
            Some(json!({ "topic": "liftoff" })),
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = app
        .chat(
            &a,
            Method::POST,
            &format!("{path}/participants/:add"),
            Some(json!({ "participants": [participant(&c.id)] })),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .chat(
            &a,
            Method::POST,
            &format!("{path}/participants/:remove"),
            Some(participant(&c.id)["communicationIdentifier"].clone()),
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = app.chat(&a, Method::DELETE, &path, None).await;
    assert_eq!(r.status(), 204);

    // Every delivery: the 8 envelope fields, one event per POST, the headers.
    let all = rx.wait("all events", |h| h.len() >= 19).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = if rx.notifications().len() > all.len() {
        rx.notifications()
    } else {
        all
    };
    let mut ids = BTreeSet::new();
    for h in &all {
        let e = h.event();
        assert_eq!(
            keys(&e),
            set(&[
                "id",
                "topic",
                "subject",
                "eventType",
                "eventTime",
                "dataVersion",
                "metadataVersion",
                "data"
            ]),
            "{e}"
        );
        assert_eq!(e["topic"], TOPIC);
        assert_eq!(e["dataVersion"], "1.0");
        assert_eq!(e["metadataVersion"], "1");
        assert!(e["eventTime"].as_str().unwrap().ends_with('Z'));
        assert!(
            ids.insert(e["id"].as_str().unwrap().to_string()),
            "ids are unique"
        );
        assert_eq!(
            h.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(h.header("aeg-subscription-name"), Some("everything"));
        assert_eq!(h.header("aeg-delivery-count"), Some("0"));
        assert_eq!(h.header("aeg-data-version"), Some("1.0"));
        assert_eq!(h.header("aeg-metadata-version"), Some("1"));
        assert!(h
            .header("user-agent")
            .unwrap()
            .starts_with("confab-webhooks/"));
        assert!(
            h.header("webhook-signature").is_none(),
            "no secret: unsigned"
        );
    }
    let of = |ty: &str| -> Vec<Value> {
        let full = format!("Microsoft.Communication.{ty}");
        all.iter()
            .map(Hit::event)
            .filter(|e| e["eventType"] == full)
            .collect()
    };
    let recipients = |events: &[Value]| -> BTreeSet<String> {
        events
            .iter()
            .map(|e| {
                e["data"]["recipientCommunicationIdentifier"]["rawId"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let th = ["threadId", "transactionId", "createTime", "version"];
    let m = [
        "threadId",
        "transactionId",
        "messageId",
        "senderCommunicationIdentifier",
        "senderDisplayName",
        "composeTime",
        "type",
        "version",
        "priority",
    ];
    let with = |base: &[&str], extra: &[&str]| -> BTreeSet<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };

    // Thread created: U to B only (never the creator), T once; no participant-added events.
    let u = of("ChatThreadCreatedWithUser");
    assert_eq!(recipients(&u), set(&[&b.id]));
    assert_eq!(
        u[0]["subject"],
        format!("thread/{t}/createdBy/{}/recipient/{}", a.id, b.id)
    );
    let d = &u[0]["data"];
    assert_eq!(
        keys(d),
        with(
            &th,
            &[
                "createdByCommunicationIdentifier",
                "properties",
                "metadata",
                "participants",
                "recipientCommunicationIdentifier"
            ]
        )
    );
    assert_eq!(d["threadId"], t.as_str());
    assert_eq!(d["transactionId"], create_tx.as_str());
    assert_eq!(d["createTime"], created_on.as_str());
    assert!(d["version"].is_i64());
    assert_eq!(d["createdByCommunicationIdentifier"], cim(&a.id));
    assert_eq!(d["properties"], json!({ "topic": "launch" }));
    assert_eq!(d["metadata"], json!({ "team": "rocket" }));
    let ps = d["participants"].as_array().unwrap();
    assert_eq!(ps.len(), 2);
    let bea = ps
        .iter()
        .find(|p| p["participantCommunicationIdentifier"]["rawId"] == b.id.as_str())
        .unwrap();
    assert_eq!(
        bea,
        &json!({ "displayName": "Bea", "participantCommunicationIdentifier": cim(&b.id), "metadata": { "role": "pm" } })
    );
    let tt = of("ChatThreadCreated");
    assert_eq!(tt.len(), 1);
    assert_eq!(tt[0]["subject"], format!("thread/{t}/createdBy/{}", a.id));
    assert_eq!(
        keys(&tt[0]["data"]),
        with(
            &th,
            &[
                "createdByCommunicationIdentifier",
                "properties",
                "metadata",
                "participants"
            ]
        )
    );
    let adds = of("ChatParticipantAddedToThreadWithUser");
    assert!(
        adds.iter().all(
            |e| e["data"]["participantAdded"]["participantCommunicationIdentifier"]["rawId"]
                == c.id.as_str()
        ),
        "only C's add; none at creation"
    );

    // Messages: to everyone but the sender; body, metadata, type names as ACS sends them.
    let u = of("ChatMessageReceived");
    assert_eq!(recipients(&u), set(&[&b.id]));
    assert_eq!(
        u[0]["subject"],
        format!("thread/{t}/sender/{}/recipient/{}", a.id, b.id)
    );
    let d = &u[0]["data"];
    assert_eq!(
        keys(d),
        with(
            &m,
            &[
                "messageBody",
                "metadata",
                "sentiment",
                "recipientCommunicationIdentifier"
            ]
        )
    );
    assert_eq!(d["transactionId"], send_tx.as_str());
    assert_eq!(d["messageId"], mid.as_str());
    assert_eq!(d["senderCommunicationIdentifier"], cim(&a.id));
    assert_eq!(d["senderDisplayName"], "Ann");
    assert_eq!(d["type"], "RichText/Html");
    assert_eq!(d["version"].as_i64().unwrap().to_string(), mid);
    assert_eq!(d["priority"], "normal");
    assert_eq!(d["messageBody"], "<b>hi</b>");
    assert_eq!(d["metadata"], json!({ "k": "v" }));
    let tt = of("ChatMessageReceivedInThread");
    assert_eq!(tt[0]["subject"], format!("thread/{t}/sender/{}", a.id));
    assert_eq!(
        keys(&tt[0]["data"]),
        with(&m, &["messageBody", "metadata", "sentiment"])
    );
    let u = of("ChatMessageEdited");
    assert_eq!(recipients(&u), set(&[&b.id]));
    assert_eq!(
        keys(&u[0]["data"]),
        with(
            &m,
            &[
                "messageBody",
                "metadata",
                "sentiment",
                "editTime",
                "recipientCommunicationIdentifier"
            ]
        )
    );
    assert_eq!(u[0]["data"]["messageBody"], "<i>hi</i>");
    assert!(u[0]["data"]["version"].as_i64().unwrap() > mid.parse::<i64>().unwrap());
    assert_eq!(
        keys(&of("ChatMessageEditedInThread")[0]["data"]),
        with(&m, &["messageBody", "metadata", "sentiment", "editTime"])
    );
    let u = of("ChatMessageDeleted");
    assert_eq!(recipients(&u), set(&[&b.id]));
    assert_eq!(
        keys(&u[0]["data"]),
        with(&m, &["deleteTime", "recipientCommunicationIdentifier"])
    );
    assert_eq!(
        keys(&of("ChatMessageDeletedInThread")[0]["data"]),
        with(&m, &["deleteTime"])
    );

    // Typing: thread level only, with the SDK-required fields filled.
    let ty = of("ChatTypingIndicatorReceivedInThread");
    assert_eq!(ty.len(), 1);
    assert_eq!(ty[0]["subject"], format!("thread/{t}/sender/{}", b.id));
    let d = &ty[0]["data"];
    assert_eq!(keys(d), with(&m, &["messageBody", "metadata"]));
    assert_eq!(
        (&d["type"], &d["messageBody"], &d["metadata"]),
        (&json!("Text"), &json!(""), &json!({}))
    );
    assert_eq!(d["messageId"], d["version"].as_i64().unwrap().to_string());
    assert_eq!(d["senderDisplayName"], "Bea");

    // Properties updated.
    let u = of("ChatThreadPropertiesUpdatedPerUser");
    assert_eq!(recipients(&u), set(&[&b.id]));
    assert_eq!(
        u[0]["subject"],
        format!("thread/{t}/editedBy/{}/recipient/{}", a.id, b.id)
    );
    assert_eq!(
        keys(&u[0]["data"]),
        with(
            &th,
            &[
                "editedByCommunicationIdentifier",
                "editTime",
                "properties",
                "metadata",
                "recipientCommunicationIdentifier"
            ]
        )
    );
    assert_eq!(u[0]["data"]["properties"], json!({ "topic": "liftoff" }));
    assert_eq!(u[0]["data"]["metadata"], json!({ "team": "rocket" }));
    let tt = of("ChatThreadPropertiesUpdated");
    assert_eq!(tt[0]["subject"], format!("thread/{t}/editedBy/{}", a.id));

    // Added: to the participants after the add (B and C), T subject in lower case.
    let u = of("ChatParticipantAddedToThreadWithUser");
    assert_eq!(recipients(&u), set(&[&b.id, &c.id]));
    let to_b = u
        .iter()
        .find(|e| e["data"]["recipientCommunicationIdentifier"]["rawId"] == b.id.as_str())
        .unwrap();
    assert_eq!(
        to_b["subject"],
        format!("thread/{t}/participantAdded/{}/recipient/{}", c.id, b.id)
    );
    assert_eq!(
        keys(&to_b["data"]),
        with(
            &th,
            &[
                "time",
                "addedByCommunicationIdentifier",
                "participantAdded",
                "recipientCommunicationIdentifier"
            ]
        )
    );
    assert_eq!(
        to_b["data"]["participantAdded"],
        json!({ "participantCommunicationIdentifier": cim(&c.id) })
    );
    assert_eq!(to_b["data"]["addedByCommunicationIdentifier"], cim(&a.id));
    let tt = of("ChatThreadParticipantAdded");
    assert_eq!(tt.len(), 1);
    assert_eq!(
        tt[0]["subject"],
        format!("thread/{t}/participantadded/{}", c.id)
    );

    // Removed: to the participants before the removal, the removed one included.
    let u = of("ChatParticipantRemovedFromThreadWithUser");
    assert_eq!(recipients(&u), set(&[&b.id, &c.id]));
    let to_c = u
        .iter()
        .find(|e| e["data"]["recipientCommunicationIdentifier"]["rawId"] == c.id.as_str())
        .unwrap();
    assert_eq!(
        to_c["subject"],
        format!("thread/{t}/participantRemoved/{}/recipient/{}", c.id, c.id)
    );
    assert_eq!(
        keys(&to_c["data"]),
        with(
            &th,
            &[
                "time",
                "removedByCommunicationIdentifier",
                "participantRemoved",
                "recipientCommunicationIdentifier"
            ]
        )
    );
    let tt = of("ChatThreadParticipantRemoved");
    assert_eq!(
        tt[0]["subject"],
        format!("thread/{t}/participantremoved/{}", c.id)
    );

    // Deleted: to the participants at deletion (C is gone).
    let u = of("ChatThreadWithUserDeleted");
    assert_eq!(recipients(&u), set(&[&b.id]));
    assert_eq!(
        u[0]["subject"],
        format!("thread/{t}/deletedBy/{}/recipient/{}", a.id, b.id)
    );
    assert_eq!(
        keys(&u[0]["data"]),
        with(
            &th,
            &[
                "deletedByCommunicationIdentifier",
                "deleteTime",
                "recipientCommunicationIdentifier"
            ]
        )
    );
    assert_eq!(
        of("ChatThreadDeleted")[0]["subject"],
        format!("thread/{t}/deletedBy/{}", a.id)
    );

    // 17 types, 19 deliveries in all: nothing extra.
    assert_eq!(
        all.len(),
        19,
        "{:#?}",
        all.iter()
            .map(|h| h.event()["eventType"].clone())
            .collect::<Vec<_>>()
    );
}

#[actix_web::test]
async fn cloud_events_handshake_and_envelope() {
    let app = app().await;
    let rx = Receiver::start();
    let v = subscribe(
        &app,
        "cloudy",
        json!({ "endpointUrl": rx.url, "eventDeliverySchema": "CloudEventSchemaV1_0",
                "includedEventTypes": ["Microsoft.Communication.ChatMessageReceivedInThread"] }),
        201,
    )
    .await;
    assert_eq!(v["provisioningState"], "Succeeded");
    let hs = rx.all();
    assert_eq!(hs[0].method, "OPTIONS");
    assert_eq!(hs[0].header("webhook-request-origin"), Some("127.0.0.1"));
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[&b]).await;
    let mid = app.send(&a, &t, "cloud").await;
    let hits = rx.wait("a cloud event", |h| !h.is_empty()).await;
    let h = &hits[0];
    assert_eq!(
        h.header("content-type"),
        Some("application/cloudevents+json; charset=utf-8")
    );
    let e = h.json();
    assert!(e.is_object(), "one structured object, not an array");
    assert_eq!(
        keys(&e),
        set(&[
            "specversion",
            "id",
            "source",
            "subject",
            "type",
            "time",
            "datacontenttype",
            "data"
        ])
    );
    assert_eq!(e["specversion"], "1.0");
    assert_eq!(e["source"], TOPIC);
    assert_eq!(
        e["type"],
        "Microsoft.Communication.ChatMessageReceivedInThread"
    );
    assert_eq!(e["datacontenttype"], "application/json");
    assert_eq!(e["subject"], format!("thread/{t}/sender/{}", a.id));
    assert_eq!(e["data"]["messageId"], mid.as_str());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.notifications().len(), 1, "only the included type");
}

#[actix_web::test]
async fn a_failing_receiver_gets_the_event_on_attempt_four() {
    let app = app().await;
    let rx = Receiver::start();
    rx.respond(&[(500, None), (502, None), (429, None)]);
    subscribe(
        &app,
        "flaky",
        json!({ "endpointUrl": rx.url, "includedEventTypes": ["ChatMessageReceivedInThread"] }),
        201,
    )
    .await;
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[&b]).await;
    app.send(&a, &t, "persist").await;
    let hits = rx.wait("four attempts", |h| h.len() >= 4).await;
    let counts: Vec<&str> = hits
        .iter()
        .map(|h| h.header("aeg-delivery-count").unwrap())
        .collect();
    assert_eq!(counts, ["0", "1", "2", "3"]);
    let ids: BTreeSet<String> = hits
        .iter()
        .map(|h| h.event()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "the same event every time");
    let rows = deliveries_until(&app, "flaky", "", |r| {
        r.first().is_some_and(|d| d["status"] == "Delivered")
    })
    .await;
    let d = &rows[0];
    assert_eq!(d["id"], hits[0].event()["id"]);
    assert_eq!(d["attempts"], 4);
    assert_eq!(d["lastStatusCode"], 200);
    assert_eq!(
        d["eventType"],
        "Microsoft.Communication.ChatMessageReceivedInThread"
    );
    assert!(d["nextAttemptOn"].is_null());
    assert!(d["deadLetterReason"].is_null());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.notifications().len(), 4, "nothing after success");
}

#[actix_web::test]
async fn max_attempts_and_retry_after() {
    let app = app().await;
    let rx = Receiver::start();
    rx.set_default(500);
    subscribe(&app, "capped", json!({ "endpointUrl": rx.url, "maxDeliveryAttempts": 2, "includedEventTypes": ["ChatMessageReceivedInThread"] }), 201).await;
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[&b]).await;
    app.send(&a, &t, "x").await;
    let rows = deliveries_until(&app, "capped", "?status=DeadLettered", |r| !r.is_empty()).await;
    assert_eq!(rows[0]["deadLetterReason"], "MaxDeliveryAttemptsExceeded");
    assert_eq!(rows[0]["attempts"], 2);
    assert_eq!(rows[0]["lastStatusCode"], 500);
    assert_eq!(rx.notifications().len(), 2);

    // 503 with Retry-After: 1 waits a second even though the scaled schedule says 10 ms.
    let rx2 = Receiver::start();
    rx2.respond(&[(503, Some("1"))]);
    subscribe(
        &app,
        "patient",
        json!({ "endpointUrl": rx2.url, "includedEventTypes": ["ChatMessageReceivedInThread"] }),
        201,
    )
    .await;
    app.send(&a, &t, "y").await;
    let hits = rx2.wait("two attempts", |h| h.len() >= 2).await;
    let gap = hits[1].at - hits[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After honoured: {gap:?}"
    );
}

#[actix_web::test]
async fn non_retryable_status_dead_letters_and_replay_delivers() {
    let app = app().await;
    let rx = Receiver::start();
    rx.respond(&[(400, None)]);
    subscribe(
        &app,
        "strict",
        json!({ "endpointUrl": rx.url, "includedEventTypes": ["ChatMessageReceivedInThread"] }),
        201,
    )
    .await;
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[&b]).await;
    app.send(&a, &t, "rejected").await;
    let rows = deliveries_until(&app, "strict", "?status=DeadLettered", |r| !r.is_empty()).await;
    assert_eq!(rows[0]["deadLetterReason"], "NonRetryableStatus");
    assert_eq!(rows[0]["attempts"], 1);
    assert_eq!(rows[0]["lastStatusCode"], 400);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.notifications().len(), 1, "no retry after 400");
    let id = rows[0]["id"].as_str().unwrap().to_string();

    let r = app
        .signed(
            Method::POST,
            &format!("/eventSubscriptions/strict/deliveries/{id}:replay"),
            "",
        )
        .await;
    assert_eq!(r.status(), 202);
    let hits = rx.wait("the replay", |h| h.len() >= 2).await;
    assert_eq!(hits[1].event()["id"], id.as_str(), "same webhook-id");
    assert_eq!(
        hits[1].header("aeg-delivery-count"),
        Some("0"),
        "attempts reset"
    );
    let rows = deliveries_until(&app, "strict", "", |r| r[0]["status"] == "Delivered").await;
    assert_eq!(rows[0]["attempts"], 1);
    let r = app
        .signed(
            Method::POST,
            "/eventSubscriptions/strict/deliveries/nope:replay",
            "",
        )
        .await;
    assert_error(r, 404, "NotFound").await;

    // Paging: newest first, nextLink to the rest, status filter validated.
    for i in 0..3 {
        app.send(&a, &t, &format!("m{i}")).await;
    }
    deliveries_until(&app, "strict", "?status=Delivered", |r| r.len() == 4).await;
    let (_, page) = get(&app, "/eventSubscriptions/strict/deliveries?maxPageSize=3").await;
    assert_eq!(page["value"].as_array().unwrap().len(), 3);
    let next = page["nextLink"].as_str().unwrap();
    let path = &next[next.find("/eventSubscriptions").unwrap()..];
    let (_, rest) = get(&app, path).await;
    assert_eq!(rest["value"].as_array().unwrap().len(), 1);
    assert_eq!(rest["value"][0]["id"], id.as_str(), "the oldest last");
    assert!(rest.get("nextLink").is_none());
    let r = app
        .signed(
            Method::GET,
            "/eventSubscriptions/strict/deliveries?status=Lost",
            "",
        )
        .await;
    assert_error(r, 400, "InvalidRequest").await;
}

#[actix_web::test]
async fn gone_disables_the_subscription_until_put_again() {
    let app = app().await;
    let rx = Receiver::start();
    rx.respond(&[(410, None)]);
    subscribe(
        &app,
        "gone",
        json!({ "endpointUrl": rx.url, "includedEventTypes": ["ChatMessageReceivedInThread"] }),
        201,
    )
    .await;
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[&b]).await;
    app.send(&a, &t, "one").await;
    let rows = deliveries_until(&app, "gone", "", |r| {
        r.first().is_some_and(|d| d["status"] == "DeadLettered")
    })
    .await;
    assert_eq!(rows[0]["deadLetterReason"], "EndpointGone");
    let (_, s) = get(&app, "/eventSubscriptions/gone").await;
    assert_eq!(s["status"], "Disabled");
    app.send(&a, &t, "two").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.notifications().len(),
        1,
        "nothing goes to a disabled subscription"
    );
    let v = subscribe(
        &app,
        "gone",
        json!({ "endpointUrl": rx.url, "includedEventTypes": ["ChatMessageReceivedInThread"] }),
        200,
    )
    .await;
    assert_eq!(v["status"], "Active");
    app.send(&a, &t, "three").await;
    let hits = rx.events_of("ChatMessageReceivedInThread", 2).await;
    assert_eq!(hits[1].event()["data"]["messageBody"], "three");
}

/// Standard Webhooks verification, written from the specification.
fn verify(secret: &str, h: &Hit) -> bool {
    let key = B64.decode(secret.trim_start_matches("whsec_")).unwrap();
    let id = h.header("webhook-id").unwrap();
    let ts = h.header("webhook-timestamp").unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{}", h.body).as_bytes());
    let want = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    h.header("webhook-signature")
        .unwrap()
        .split(' ')
        .any(|s| s == want)
}

#[actix_web::test]
async fn signatures_verify_and_rotate() {
    let app = app().await;
    let rx = Receiver::start();
    let secret = format!("whsec_{}", B64.encode([42u8; 32]));
    let wrong = format!("whsec_{}", B64.encode([43u8; 32]));
    let v = subscribe(&app, "signed", json!({ "endpointUrl": rx.url, "secret": secret, "includedEventTypes": ["ChatMessageReceivedInThread"] }), 201).await;
    assert_eq!(v["hasSecret"], true);
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[&b]).await;
    app.send(&a, &t, "sign me").await;
    let h = &rx.wait("a signed delivery", |h| !h.is_empty()).await[0];
    assert_eq!(
        h.header("webhook-id").unwrap(),
        h.event()["id"].as_str().unwrap()
    );
    let ts: u64 = h.header("webhook-timestamp").unwrap().parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(ts) < 60);
    assert!(verify(&secret, h));
    assert!(!verify(&wrong, h));

    // Rotation: for 24 h both secrets sign, as two space-separated entries.
    subscribe(&app, "signed", json!({ "endpointUrl": rx.url, "secret": wrong, "includedEventTypes": ["ChatMessageReceivedInThread"] }), 200).await;
    app.send(&a, &t, "rotated").await;
    let h = &rx.wait("a second delivery", |h| h.len() >= 2).await[1];
    assert_eq!(h.header("webhook-signature").unwrap().split(' ').count(), 2);
    assert!(verify(&secret, h) && verify(&wrong, h));
    let third = format!("whsec_{}", B64.encode([44u8; 32]));
    assert!(!verify(&third, h));
}

#[actix_web::test]
async fn private_endpoints_are_refused_without_the_flag() {
    let app = TestApp::spawn().await;
    let rx = Receiver::start();
    for url in [
        rx.url.clone(),
        format!("https://127.0.0.1:{}/hook", rx.port),
        format!("https://localhost:{}/hook", rx.port),
        "https://10.0.0.8/hook".to_string(),
        "https://169.254.169.254/latest".to_string(),
        "https://[::1]/hook".to_string(),
        "https://[::ffff:127.0.0.1]/hook".to_string(),
        // what the hardening probe got through: IPv4-compatible IPv6, IETF and benchmarking
        // ranges, NAT64 and 6to4 forms of internal addresses
        "https://[::127.0.0.1]/".to_string(),
        "https://192.0.0.8/hook".to_string(),
        "https://198.18.0.1/hook".to_string(),
        "https://[64:ff9b::7f00:1]/hook".to_string(),
        "https://[2002:7f00:1::1]/hook".to_string(),
    ] {
        let r = app
            .signed(
                Method::PUT,
                "/eventSubscriptions/inside",
                &json!({ "endpointUrl": url }).to_string(),
            )
            .await;
        assert_error(r, 400, "InvalidEndpoint").await;
    }
    assert!(
        rx.all().is_empty(),
        "nothing was sent to a refused endpoint"
    );

    // The check is on the address dialled, not only at PUT: the guarded client will not
    // connect to a name that resolves to loopback even when the URL passed its static check.
    let client = confab::events::client::client(false);
    let url = format!("http://localhost:{}/hook", rx.port);
    let r = confab::events::client::exchange(
        &client,
        actix_web::http::Method::POST,
        &url,
        true,
        vec![],
        None,
    )
    .await;
    let err = r.err().expect("refused at connect");
    assert!(err.contains("loopback, private or link-local"), "{err}");
    assert!(rx.all().is_empty());
}

#[actix_web::test]
async fn subscriptions_deliver_in_parallel_with_at_most_eight_in_flight_each() {
    let app = app().await;
    let (slow, fast) = (Receiver::start(), Receiver::start());
    slow.delay(Duration::from_millis(300));
    let only_messages = json!(["ChatMessageReceivedInThread"]);
    subscribe(
        &app,
        "slow",
        json!({ "endpointUrl": slow.url, "includedEventTypes": only_messages }),
        201,
    )
    .await;
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[&b]).await;
    for i in 0..24 {
        app.send(&a, &t, &format!("backlog {i}")).await;
    }
    // The slow endpoint's backlog (24 × 300 ms, 8 at a time) does not hold up another one.
    subscribe(
        &app,
        "fast",
        json!({ "endpointUrl": fast.url, "includedEventTypes": only_messages }),
        201,
    )
    .await;
    app.send(&a, &t, "for both").await;
    fast.wait("the fast endpoint's event", |h| !h.is_empty())
        .await;
    assert!(
        slow.notifications().len() < 25,
        "the fast endpoint was served before the slow backlog drained"
    );
    slow.wait("the whole backlog", |h| h.len() >= 25).await;
    assert_eq!(
        slow.max_in_flight(),
        8,
        "at most 8 in flight per subscription, and 8 used"
    );
}

#[actix_web::test]
async fn time_to_live_dead_letters_and_delete_drops_pending() {
    let app = app().await;
    let rx = Receiver::start();
    // a retry asked for in 2 minutes falls after a 1-minute time to live: dead at once
    rx.respond(&[(503, Some("120"))]);
    subscribe(
        &app,
        "short",
        json!({ "endpointUrl": rx.url, "eventTimeToLiveInMinutes": 1,
        "includedEventTypes": ["ChatMessageReceivedInThread"] }),
        201,
    )
    .await;
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[&b]).await;
    app.send(&a, &t, "late").await;
    let rows = deliveries_until(&app, "short", "?status=DeadLettered", |r| !r.is_empty()).await;
    assert_eq!(rows[0]["deadLetterReason"], "TimeToLiveExceeded");
    assert_eq!(rows[0]["attempts"], 1);
    assert_eq!(rows[0]["lastStatusCode"], 503);

    // DELETE drops what is still waiting: no attempt after it, and a new subscription of the
    // same name starts with an empty log.
    rx.set_default(500);
    app.send(&a, &t, "pending").await;
    rx.wait("a failed attempt", |h| h.len() >= 2).await;
    let r = app
        .signed(Method::DELETE, "/eventSubscriptions/short", "")
        .await;
    assert_eq!(r.status(), 204);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_delete = rx.notifications().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.notifications().len(),
        after_delete,
        "nothing sent after DELETE"
    );
    subscribe(&app, "short", json!({ "endpointUrl": rx.url }), 201).await;
    let (s, log) = get(&app, "/eventSubscriptions/short/deliveries").await;
    assert_eq!(s, 200);
    assert_eq!(log["value"], json!([]));
}
