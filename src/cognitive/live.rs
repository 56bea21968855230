//! Live translation (CONTRACT §10.3): sessions opened with `?lang=<tag>` get, after each
//! `chatMessageReceived` / `chatMessageEdited` whose detected language differs, a
//! `chatMessageTranslated` event in that language. The original is delivered first and never
//! waits: delivery only queues a job here, and a full queue drops it (counted as a failure).

use std::sync::{Arc, Weak};

use serde_json::{json, Value};

use super::translate::{CacheKey, Translator};
use crate::hub::realtime::Event;
use crate::hub::users::Users;
use crate::ids::UserId;

/// Translations waiting at most; more are dropped.
const QUEUE: usize = 10_000;
/// Translator calls in flight at most.
const IN_FLIGHT: usize = 32;

struct Job {
    user: UserId,
    lang: Arc<str>,
    key: CacheKey,
    text: String,
    html: bool,
}

/// Starts the worker (its own thread and runtime: the HTTP client lives there) and hooks it
/// to `users`' deliveries. It stops when `users` is dropped.
pub fn start(translator: Arc<Translator>, users: &Arc<Users>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(QUEUE);
    let weak: Weak<Users> = Arc::downgrade(users);
    let spawned = std::thread::Builder::new()
        .name("confab-translate".into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
                while let Some(job) = rx.recv().await {
                    let Ok(slot) = slots.clone().acquire_owned().await else {
                        break;
                    };
                    let (translator, weak) = (translator.clone(), weak.clone());
                    actix_web::rt::spawn(async move {
                        run(&translator, &weak, job).await;
                        drop(slot);
                    });
                }
            })
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start live translation");
        return;
    }
    users.on_languages(Box::new(move |user, langs, event| {
        let Some((key, text, html)) = source(event) else {
            return;
        };
        for lang in langs {
            let job = Job {
                user: user.clone(),
                key: CacheKey {
                    to: lang.to_string(),
                    ..key.clone()
                },
                lang,
                text: text.clone(),
                html,
            };
            if tx.try_send(job).is_err() {
                metrics::counter!(crate::metrics::TRANSLATION_FAILURES).increment(1);
            }
        }
    }));
}

/// The message a message event carries: its cache key (without the language), text and kind.
fn source(event: &Event) -> Option<(CacheKey, String, bool)> {
    let d: Value = serde_json::from_str(&format!("{{{}}}", event.body())).ok()?;
    let text = d["message"].as_str()?.to_string();
    if text.is_empty() {
        return None;
    }
    let key = CacheKey {
        thread: d["threadId"].as_str()?.to_string(),
        message: d["id"].as_str()?.parse().ok()?,
        version: d["version"].as_str()?.parse().ok()?,
        to: String::new(),
    };
    Some((key, text, d["type"] == "html"))
}

/// The language subtag, lower-cased: `pt-BR` and `pt` are one language here.
fn primary(tag: &str) -> String {
    tag.split('-').next().unwrap_or(tag).to_ascii_lowercase()
}

async fn run(translator: &Translator, users: &Weak<Users>, job: Job) {
    let (thread, id, version) = (job.key.thread.clone(), job.key.message, job.key.version);
    // (a failure is counted and logged by the translator; no event is sent)
    let Ok(done) = translator.message(job.key, &job.text, job.html).await else {
        return;
    };
    if primary(&done.from) == primary(&job.lang) {
        return;
    }
    let Some(users) = users.upgrade() else {
        return;
    };
    let event = Event::for_language(
        "chatMessageTranslated",
        json!({
            "threadId": thread, "id": id.to_string(), "version": version.to_string(),
            "from": done.from, "to": &*job.lang, "text": done.text,
        }),
        job.lang.clone(),
    );
    users.publish(&[job.user], &event);
}
