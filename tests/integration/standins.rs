//! Small stand-ins for the services confab calls (CONTRACT §10.3, §10.4): each speaks one real
//! API shape, or fails in one way, and records what it was sent.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// LibreTranslate: `{"translatedText": "[<target>] <q>"}`, detected `en`.
    Libre,
    /// Azure Translator v3: `[{"translations":[{"text":"[<to>] <Text>"}]}]`, detected `en`.
    AzureTranslator,
    /// OpenAI-compatible transcriptions: `{"text": "hello world"}`.
    OpenAi,
    /// Azure Speech short audio: `Success`, `"Hello world."`.
    AzureSpeech,
    /// Azure Speech that heard nothing: `NoMatch`.
    AzureSilent,
    /// 500 to everything.
    Fail,
    /// Answers after a minute.
    Hang,
    /// 200 with a body that is not the shape asked for.
    Garbage,
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub struct Standin {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: actix_web::dev::ServerHandle,
}

impl Standin {
    pub fn start(mode: Mode) -> Standin {
        let seen: Arc<Mutex<Vec<Seen>>> = Default::default();
        let shared = seen.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(web::Data::new((mode, shared.clone())))
                        .app_data(web::PayloadConfig::new(32 * 1024 * 1024))
                        .default_service(web::to(answer))
                })
                .workers(1)
                .disable_signals()
                .bind(("127.0.0.1", 0))
                .unwrap();
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, server.handle())).unwrap();
                server.await.unwrap();
            })
        });
        let (port, server) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Standin {
            url: format!("http://127.0.0.1:{port}"),
            seen,
            server,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let s = self.server.clone();
        std::thread::spawn(move || actix_web::rt::System::new().block_on(s.stop(false)));
    }
}

type Shared = (Mode, Arc<Mutex<Vec<Seen>>>);

async fn answer(req: HttpRequest, body: web::Bytes, state: web::Data<Shared>) -> HttpResponse {
    let (mode, seen) = (state.0, &state.1);
    let hit = Seen {
        path: req.path().to_string(),
        query: req.query_string().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body: body.to_vec(),
    };
    seen.lock().unwrap().push(hit.clone());
    match mode {
        Mode::Libre => {
            let v = hit.json();
            HttpResponse::Ok().json(json!({
                "translatedText": format!("[{}] {}", v["target"].as_str().unwrap_or("?"),
                    v["q"].as_str().unwrap_or("?")),
                "detectedLanguage": {"confidence": 90.0, "language": "en"},
            }))
        }
        Mode::AzureTranslator => {
            let to = web::Query::<HashMap<String, String>>::from_query(req.query_string())
                .map(|q| q.get("to").cloned().unwrap_or_default())
                .unwrap_or_default();
            let v = hit.json();
            HttpResponse::Ok().json(json!([{
                "detectedLanguage": {"language": "en", "score": 1.0},
                "translations": [{"text": format!("[{to}] {}", v[0]["Text"].as_str().unwrap_or("?")), "to": to}],
            }]))
        }
        Mode::OpenAi => HttpResponse::Ok().json(json!({"text": "hello world"})),
        Mode::AzureSpeech => HttpResponse::Ok().json(json!({
            "RecognitionStatus": "Success", "DisplayText": "Hello world.", "Offset": 0, "Duration": 1,
        })),
        Mode::AzureSilent => HttpResponse::Ok().json(json!({"RecognitionStatus": "NoMatch"})),
        Mode::Fail => HttpResponse::InternalServerError().body("down"),
        Mode::Hang => {
            actix_web::rt::time::sleep(Duration::from_secs(60)).await;
            HttpResponse::Ok().finish()
        }
        Mode::Garbage => HttpResponse::Ok()
            .content_type("text/html")
            .body("<html>not what you asked for</html>"),
    }
}
