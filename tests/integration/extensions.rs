//! confab's extensions beyond ACS (CONTRACT §10): sentiment, read markers, unread counts and
//! previews.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{enc, TestApp};
use crate::realtime::Ws;

/// The sum of a counter's samples with `label` on the app's `/metrics`.
async fn counter(app: &TestApp, name: &str, label: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", app.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn get_message(app: &TestApp, user: &crate::common::User, t: &str, id: &str) -> Value {
    let r = app
        .chat(
            user,
            Method::GET,
            &format!("/chat/threads/{}/messages/{id}", enc(t)),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// §10.2: every text/html message and edit carries `sentiment` in REST, real-time and webhooks;
/// system and deleted messages have none; the labels follow the model for clear sentences.
#[tokio::test]
async fn sentiment_on_send_and_edit_everywhere() {
    let app = crate::webhooks::app().await;
    let rx = crate::webhooks::Receiver::start();
    crate::webhooks::subscribe(
        &app,
        "sentiment",
        json!({ "endpointUrl": rx.url, "includedEventTypes":
            ["ChatMessageReceivedInThread", "ChatMessageEditedInThread"] }),
        201,
    )
    .await;
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[&a, &b]).await;
    let mut ws = Ws::connect(&app, &b, None).await;
    let negatives = counter(&app, "confab_messages_sentiment_total", "negative").await;

    let happy = app
        .send(&a, &t, "I love this team, you did a wonderful job!")
        .await;
    let m = get_message(&app, &a, &t, &happy).await;
    assert_eq!(m["sentiment"]["label"], "positive", "{m}");
    let score = m["sentiment"]["score"].as_f64().unwrap();
    assert!(score > 0.5 && score <= 1.0, "{score}");
    assert_eq!((score * 1000.0).round() / 1000.0, score, "3 decimals");
    let e = ws.event().await;
    assert_eq!(e["type"], "chatMessageReceived");
    assert_eq!(e["data"]["sentiment"], m["sentiment"]);

    let plain = app.send(&a, &t, "The meeting is at 3 pm in room 4.").await;
    assert_eq!(
        get_message(&app, &a, &t, &plain).await["sentiment"]["label"],
        "neutral"
    );
    let r = app
        .chat(
            &a,
            Method::POST,
            &format!("/chat/threads/{}/messages", enc(&t)),
            Some(json!({"content": "<p>This is <b>awful</b>, I hate it &amp; I am furious.</p>", "type": "html"})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let angry = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get_message(&app, &a, &t, &angry).await["sentiment"]["label"],
        "negative"
    );

    // an edit is scored again
    let r = app
        .chat(
            &a,
            Method::PATCH,
            &format!("/chat/threads/{}/messages/{happy}", enc(&t)),
            Some(json!({"content": "Actually this is a terrible, horrible mess."})),
        )
        .await;
    assert_eq!(r.status(), 204);
    let m = get_message(&app, &a, &t, &happy).await;
    assert_eq!(m["sentiment"]["label"], "negative", "{m}");
    let edited = next_of(&mut ws, "chatMessageEdited").await;
    assert_eq!(edited["data"]["sentiment"], m["sentiment"]);

    // webhooks carry it too
    let got = rx.events_of("ChatMessageReceivedInThread", 3).await;
    let received: Vec<Value> = got
        .iter()
        .map(|h| h.event())
        .filter(|e| e["eventType"] == "Microsoft.Communication.ChatMessageReceivedInThread")
        .collect();
    let first = received
        .iter()
        .find(|e| e["data"]["messageId"] == happy.as_str())
        .expect("the first message's event");
    assert_eq!(first["data"]["sentiment"]["label"], "positive");
    let edits = rx.events_of("ChatMessageEditedInThread", 1).await;
    let edit = edits
        .iter()
        .map(|h| h.event())
        .find(|e| e["eventType"] == "Microsoft.Communication.ChatMessageEditedInThread")
        .unwrap();
    assert_eq!(edit["data"]["sentiment"]["label"], "negative");

    // deleted and system messages have none
    let r = app
        .chat(
            &a,
            Method::DELETE,
            &format!("/chat/threads/{}/messages/{angry}", enc(&t)),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    for m in app.all_messages(&a, &t, 50).await {
        let live_text = m["deletedOn"].is_null() && (m["type"] == "text" || m["type"] == "html");
        assert_eq!(!m["sentiment"].is_null(), live_text, "{m}");
    }
    let after = counter(&app, "confab_messages_sentiment_total", "negative").await;
    assert!(after >= negatives + 2.0, "{negatives} -> {after}");
}

/// `--sentiment off`: no field anywhere.
#[tokio::test]
async fn sentiment_off_adds_nothing() {
    let app = TestApp::spawn_with(&["--sentiment", "off"]).await;
    let a = app.user().await;
    let t = app.thread(&a, &[&a]).await;
    let id = app.send(&a, &t, "I love it!").await;
    let m = get_message(&app, &a, &t, &id).await;
    assert!(m.get("sentiment").is_none(), "{m}");
}

/// The caller's entry for `t` in its thread list (first page is enough here).
pub(crate) async fn listed(app: &TestApp, user: &crate::common::User, t: &str) -> Value {
    let r = app
        .chat(user, Method::GET, "/chat/threads?maxPageSize=50", None)
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == t)
        .cloned()
        .unwrap_or_else(|| panic!("{t} not listed: {v}"))
}

pub(crate) async fn read(app: &TestApp, user: &crate::common::User, t: &str, id: &str) {
    let r = app
        .chat(
            user,
            Method::POST,
            &format!("/chat/threads/{}/readReceipts", enc(t)),
            Some(json!({ "chatMessageId": id })),
        )
        .await;
    assert_eq!(r.status(), 200);
}

async fn send_json(app: &TestApp, user: &crate::common::User, t: &str, body: Value) -> String {
    let r = app
        .chat(
            user,
            Method::POST,
            &format!("/chat/threads/{}/messages", enc(t)),
            Some(body),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// §10.1: unread counts through sends, reads, edits, deletes and share-history limits; previews
/// (html stripped, entities decoded, cut on a character boundary); `readMarkerUpdated` on the
/// reader's other sessions; the same fields on the thread's properties.
#[tokio::test]
async fn unread_counts_previews_and_read_markers() {
    let app = TestApp::spawn_with(&["--receipts-max-participants", "2"]).await;
    let (a, b, c) = (app.user().await, app.user().await, app.user().await);
    let t = app.thread(&a, &[&a, &b]).await;
    let fresh = listed(&app, &b, &t).await;
    assert_eq!(fresh["unreadCount"], 0);
    assert!(fresh.get("lastMessage").is_none(), "{fresh}");

    let one = app.send(&a, &t, "one").await;
    let two = send_json(
        &app,
        &a,
        &t,
        json!({"type": "html", "content": "<p>Hello&nbsp;<b>world</b>  &amp;\n friends</p>", "senderDisplayName": "Ann"}),
    )
    .await;
    let long = "😀".repeat(130);
    let three = app.send(&a, &t, &long).await;
    app.send(&b, &t, "b's own message does not count for b")
        .await;

    let item = listed(&app, &b, &t).await;
    assert_eq!(item["unreadCount"], 3, "{item}");
    let last = &item["lastMessage"];
    assert_eq!(last["preview"], "b's own message does not count for b");
    assert_eq!(listed(&app, &a, &t).await["unreadCount"], 1);

    // b reads up to "two" on one device; its other session hears the marker move
    let mut other = Ws::connect(&app, &b, None).await;
    read(&app, &b, &t, &two).await;
    let e = next_of(&mut other, "readMarkerUpdated").await;
    let d = &e["data"];
    assert_eq!(d["threadId"], t.as_str());
    assert_eq!(d["chatMessageId"], two.as_str());
    assert!(d["sequenceId"].as_str().unwrap().parse::<i64>().unwrap() > 0);
    assert!(d["readOn"].as_str().unwrap().ends_with('Z'));
    // below the receipts limit the receipt itself follows, as in ACS
    assert_eq!(other.event().await["type"], "readReceiptReceived");
    assert_eq!(listed(&app, &b, &t).await["unreadCount"], 1);
    // a marker never moves back
    read(&app, &b, &t, &one).await;
    other.nothing_for(200).await;
    assert_eq!(listed(&app, &b, &t).await["unreadCount"], 1);

    // the long message: the preview is cut on a character boundary
    let r = app
        .chat(
            &a,
            Method::DELETE,
            &format!(
                "/chat/threads/{}/messages/{}",
                enc(&t),
                listed(&app, &a, &t).await["lastMessage"]["id"]
                    .as_str()
                    .unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(r.status(), 403, "only the sender deletes");
    let props = app
        .chat(&b, Method::GET, &format!("/chat/threads/{}", enc(&t)), None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(props["unreadCount"], 1);
    assert_eq!(
        props["lastMessage"]["preview"],
        "b's own message does not count for b"
    );
    let mine = listed(&app, &a, &t).await;
    assert_eq!(mine["lastMessage"]["type"], "text");

    // deletes: unread goes down, the preview falls back to the newest live message
    let bs = app.all_messages(&b, &t, 50).await;
    let b_own = bs
        .iter()
        .find(|m| m["content"]["message"] == "b's own message does not count for b")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (who, id) in [(&b, &b_own), (&a, &three)] {
        let r = app
            .chat(
                who,
                Method::DELETE,
                &format!("/chat/threads/{}/messages/{id}", enc(&t)),
                None,
            )
            .await;
        assert_eq!(r.status(), 204);
    }
    let item = listed(&app, &b, &t).await;
    assert_eq!(item["unreadCount"], 0, "{item}");
    let last = &item["lastMessage"];
    assert_eq!(last["id"], two.as_str());
    // the message's own sequenceId, a string as in ChatMessage (the demo page compares it with
    // the sequenceId of a late chatMessageReceived so as not to count a message twice)
    let seq = &get_message(&app, &b, &t, &two).await["sequenceId"];
    assert!(seq.is_string(), "{seq}");
    assert_eq!(&last["sequenceId"], seq);
    assert_eq!(last["type"], "html");
    assert_eq!(last["preview"], "Hello world & friends");
    assert_eq!(last["senderDisplayName"], "Ann");
    assert_eq!(
        last["senderCommunicationIdentifier"]["rawId"],
        a.id.as_str()
    );
    assert!(last["createdOn"].as_str().unwrap().ends_with('Z'));

    // a long one: cut to 120 characters plus the ellipsis, never inside an emoji
    app.send(&a, &t, &long).await;
    let p = listed(&app, &b, &t).await["lastMessage"]["preview"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(p, format!("{}…", "😀".repeat(120)));
    // an edit shows in the preview and keeps the count
    let r = app
        .chat(
            &a,
            Method::PATCH,
            &format!("/chat/threads/{}/messages/{two}", enc(&t)),
            Some(json!({"content": "<i>changed</i>"})),
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(listed(&app, &b, &t).await["unreadCount"], 1);

    // share history: c added without history sees nothing unread, then counts what follows
    let r = app
        .chat(
            &a,
            Method::POST,
            &format!("/chat/threads/{}/participants/:add", enc(&t)),
            Some(
                json!({"participants": [{"communicationIdentifier": {"rawId": c.id},
                "shareHistoryTime": "2100-01-01T00:00:00Z"}]}),
            ),
        )
        .await;
    assert_eq!(r.status(), 201);
    let item = listed(&app, &c, &t).await;
    assert_eq!(item["unreadCount"], 0, "{item}");
    assert!(item.get("lastMessage").is_none(), "{item}");

    // above the receipts limit (3 participants > 2): no receipt is listed or broadcast, but
    // the reader's marker moves and its sessions hear it
    let r = app
        .chat(
            &a,
            Method::POST,
            &format!("/chat/threads/{}/participants/:add", enc(&t)),
            Some(json!({"participants": [{"communicationIdentifier": {"rawId": c.id}}]})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let newest = app.send(&a, &t, "for everyone").await;
    assert_eq!(listed(&app, &b, &t).await["unreadCount"], 2);
    read(&app, &b, &t, &newest).await;
    let e = loop {
        let e = other.event().await;
        assert_ne!(e["type"], "readReceiptReceived", "{e}");
        if e["type"] == "readMarkerUpdated" {
            break e;
        }
    };
    assert_eq!(e["data"]["chatMessageId"], newest.as_str());
    assert_eq!(listed(&app, &b, &t).await["unreadCount"], 0);
    let receipts: Value = app
        .chat(
            &b,
            Method::GET,
            &format!("/chat/threads/{}/readReceipts", enc(&t)),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipts["value"], json!([]), "{receipts}");
}

use crate::common::assert_error;
use crate::standins::{Mode, Standin};

pub(crate) fn translator_args(s: &Standin, kind: &str) -> Vec<String> {
    vec![
        "--translator-url".into(),
        s.url.clone(),
        "--translator-kind".into(),
        kind.into(),
        "--translator-allow-private".into(),
    ]
}

async fn spawn(args: &[String]) -> TestApp {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    TestApp::spawn_with(&refs).await
}

pub(crate) async fn translate(
    app: &TestApp,
    user: &crate::common::User,
    t: &str,
    id: &str,
    to: &str,
) -> reqwest::Response {
    app.chat(
        user,
        Method::POST,
        &format!("/chat/threads/{}/messages/{id}:translate?to={to}", enc(t)),
        None,
    )
    .await
}

/// §10.3 with a LibreTranslate: the translation, its cache, a new one after an edit, and the
/// refusals of a participant's route.
#[tokio::test]
async fn translation_with_libretranslate_and_its_cache() {
    let s = Standin::start(Mode::Libre);
    let app = spawn(&translator_args(&s, "libretranslate")).await;
    let (a, b, outsider) = (app.user().await, app.user().await, app.user().await);
    let t = app.thread(&a, &[&a, &b]).await;
    let id = app.send(&a, &t, "good morning").await;

    let r = translate(&app, &b, &t, &id, "de").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["to"], "de");
    assert_eq!(v["from"], "en");
    assert_eq!(v["text"], "[de] good morning");
    let version = v["version"].as_str().unwrap().to_string();
    let seen = s.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/translate");
    let sent = seen[0].json();
    assert_eq!(
        sent["q"], "good morning",
        "the translator sees the text only"
    );
    assert_eq!(sent["source"], "auto");
    assert_eq!(sent["target"], "de");
    assert_eq!(sent["format"], "text");

    // cached per (message, version, language)
    let again: Value = translate(&app, &a, &t, &id, "de")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["text"], "[de] good morning");
    assert_eq!(s.seen().len(), 1, "served from the cache");
    translate(&app, &a, &t, &id, "fr").await;
    assert_eq!(s.seen().len(), 2, "another language is another translation");

    // an edit invalidates
    let r = app
        .chat(
            &a,
            Method::PATCH,
            &format!("/chat/threads/{}/messages/{id}", enc(&t)),
            Some(json!({"content": "good evening"})),
        )
        .await;
    assert_eq!(r.status(), 204);
    let v: Value = translate(&app, &b, &t, &id, "de")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["text"], "[de] good evening");
    assert_ne!(v["version"], version.as_str());
    assert_eq!(s.seen().len(), 3);

    // refusals
    let bad = translate(&app, &b, &t, &id, "not_a_tag").await;
    let e = assert_error(bad, 400, "InvalidRequest").await;
    assert_eq!(e["error"]["target"], "to");
    assert_error(
        translate(&app, &outsider, &t, &id, "de").await,
        403,
        "Forbidden",
    )
    .await;
    assert_error(
        translate(&app, &b, &t, "12345", "de").await,
        404,
        "NotFound",
    )
    .await;
    assert_eq!(s.seen().len(), 3, "refused requests reach no translator");
}

/// §10.3 with Azure Translator v3: its URL, headers and body shape.
#[tokio::test]
async fn translation_with_azure_translator() {
    let s = Standin::start(Mode::AzureTranslator);
    let mut args = translator_args(&s, "azure");
    args.extend([
        "--translator-key".into(),
        "sekrit".into(),
        "--translator-region".into(),
        "westeurope".into(),
    ]);
    let app = spawn(&args).await;
    let a = app.user().await;
    let t = app.thread(&a, &[&a]).await;
    let id = send_json(
        &app,
        &a,
        &t,
        json!({"type": "html", "content": "<b>hello</b>"}),
    )
    .await;
    let v: Value = translate(&app, &a, &t, &id, "pt-BR")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["text"], "[pt-BR] <b>hello</b>");
    assert_eq!(v["from"], "en");
    let seen = &s.seen()[0];
    assert_eq!(seen.path, "/translate");
    assert!(seen.query.contains("api-version=3.0"), "{}", seen.query);
    assert!(seen.query.contains("to=pt-BR"), "{}", seen.query);
    assert!(seen.query.contains("textType=html"), "{}", seen.query);
    assert_eq!(seen.headers["ocp-apim-subscription-key"], "sekrit");
    assert_eq!(seen.headers["ocp-apim-subscription-region"], "westeurope");
    assert_eq!(seen.json(), json!([{"Text": "<b>hello</b>"}]));
}

/// §10.3 errors: off, failing, garbled, too slow, and a private address without the flag; the
/// message itself is never affected.
#[tokio::test]
async fn translation_errors() {
    let off = TestApp::spawn().await;
    let a = off.user().await;
    let t = off.thread(&a, &[&a]).await;
    let id = off.send(&a, &t, "hi").await;
    assert_error(
        translate(&off, &a, &t, &id, "de").await,
        400,
        "FeatureNotSupported",
    )
    .await;

    for mode in [Mode::Fail, Mode::Garbage, Mode::Hang] {
        let s = Standin::start(mode);
        let app = spawn(&translator_args(&s, "libretranslate")).await;
        let a = app.user().await;
        let t = app.thread(&a, &[&a]).await;
        let id = app.send(&a, &t, "hi").await;
        let started = std::time::Instant::now();
        let r = translate(&app, &a, &t, &id, "de").await;
        assert!(r.headers().get("retry-after").is_some(), "{mode:?}");
        assert_error(r, 503, "TranslatorUnavailable").await;
        if mode == Mode::Hang {
            let waited = started.elapsed().as_secs_f64();
            assert!((9.0..20.0).contains(&waited), "gave up after {waited} s");
        }
        assert_eq!(
            get_message(&app, &a, &t, &id).await["content"]["message"],
            "hi"
        );
    }

    // a translator on loopback without --translator-allow-private is refused like a webhook
    let s = Standin::start(Mode::Libre);
    let app = spawn(&["--translator-url".into(), s.url.clone()]).await;
    let a = app.user().await;
    let t = app.thread(&a, &[&a]).await;
    let id = app.send(&a, &t, "hi").await;
    assert_error(
        translate(&app, &a, &t, &id, "de").await,
        503,
        "TranslatorUnavailable",
    )
    .await;
    assert!(s.seen().is_empty());
}

async fn transcribe(
    app: &TestApp,
    user: &crate::common::User,
    query: &str,
    content_type: &str,
    audio: Vec<u8>,
) -> reqwest::Response {
    app.client
        .post(format!("{}/speech:transcribe{query}", app.base))
        .bearer_auth(&user.token)
        .header("Content-Type", content_type)
        .body(audio)
        .send()
        .await
        .unwrap()
}

/// A short, valid WAV file (silence): what a browser's recorder might send.
fn wav() -> Vec<u8> {
    let samples = 1600u32; // 0.1 s at 16 kHz, 16-bit mono
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + samples * 2).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&16000u32.to_le_bytes());
    v.extend_from_slice(&32000u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(samples * 2).to_le_bytes());
    v.resize(v.len() + samples as usize * 2, 0);
    v
}

fn speech_args(s: &Standin, kind: &str) -> Vec<String> {
    vec![
        "--speech-url".into(),
        s.url.clone(),
        "--speech-kind".into(),
        kind.into(),
        "--speech-key".into(),
        "k3y".into(),
        "--speech-allow-private".into(),
        "--rate-limit-profile".into(),
        "default".into(),
    ]
}

/// §10.4 with an OpenAI-compatible server: multipart with the file, model and language; the
/// text comes back and nothing is stored.
#[tokio::test]
async fn transcription_with_an_openai_compatible_server() {
    let s = Standin::start(Mode::OpenAi);
    let app = spawn(&speech_args(&s, "openai")).await;
    let a = app.user().await;
    let r = transcribe(&app, &a, "?language=en-US", "audio/wav", wav()).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, json!({"text": "hello world", "language": "en-US"}));
    let seen = &s.seen()[0];
    assert_eq!(seen.path, "/v1/audio/transcriptions");
    assert_eq!(seen.headers["authorization"], "Bearer k3y");
    assert!(seen.headers["content-type"].starts_with("multipart/form-data; boundary="));
    let body = seen.text();
    assert!(
        body.contains("name=\"model\"\r\n\r\nwhisper-1\r\n"),
        "{body:.300}"
    );
    assert!(
        body.contains("name=\"language\"\r\n\r\nen\r\n"),
        "{body:.300}"
    );
    assert!(body.contains("name=\"file\"; filename=\"audio.wav\"\r\nContent-Type: audio/wav"));
    assert!(seen.body.windows(4).any(|w| w == b"RIFF"));
    // a minute of speech is megabytes, well above the JSON routes' body limit
    let mut long = wav();
    long.resize(3 * 1024 * 1024, 0);
    let r = transcribe(&app, &a, "", "audio/wav", long).await;
    assert_eq!(r.status(), 200);
    assert!(s.seen().last().unwrap().body.len() > 3 * 1024 * 1024);
    // webm from a browser, with codecs
    let r = transcribe(
        &app,
        &a,
        "",
        "audio/webm;codecs=opus",
        vec![0x1a, 0x45, 0xdf, 0xa3],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"text": "hello world"})
    );
}

/// §10.4 with Azure Speech: its URL, key header and raw audio body; an empty recognition is
/// an empty text.
#[tokio::test]
async fn transcription_with_azure_speech() {
    let s = Standin::start(Mode::AzureSpeech);
    let app = spawn(&speech_args(&s, "azure")).await;
    let a = app.user().await;
    let r = transcribe(&app, &a, "?language=de-DE", "audio/wav", wav()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["text"], "Hello world.");
    let seen = &s.seen()[0];
    assert_eq!(
        seen.path,
        "/speech/recognition/conversation/cognitiveservices/v1"
    );
    assert!(seen.query.contains("language=de-DE"), "{}", seen.query);
    assert_eq!(seen.headers["ocp-apim-subscription-key"], "k3y");
    assert_eq!(seen.headers["content-type"], "audio/wav");
    assert_eq!(seen.body, wav());

    let silent = Standin::start(Mode::AzureSilent);
    let app = spawn(&speech_args(&silent, "azure")).await;
    let r = transcribe(&app, &a_user(&app).await, "", "audio/ogg", vec![1, 2, 3]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["text"], "");
}

async fn a_user(app: &TestApp) -> crate::common::User {
    app.user().await
}

/// §10.4 errors: off, wrong type, too large, no token, a failing, garbled or hanging
/// transcriber, and the rate limit.
#[tokio::test]
async fn transcription_errors() {
    let off = TestApp::spawn().await;
    let a = off.user().await;
    assert_error(
        transcribe(&off, &a, "", "audio/wav", wav()).await,
        400,
        "FeatureNotSupported",
    )
    .await;

    let s = Standin::start(Mode::OpenAi);
    let app = spawn(&speech_args(&s, "openai")).await;
    let a = app.user().await;
    let r = transcribe(&app, &a, "", "text/plain", b"hello".to_vec()).await;
    assert_eq!(r.status(), 415);
    let r = transcribe(&app, &a, "", "audio/wav", vec![0; 10 * 1024 * 1024 + 1]).await;
    assert_error(r, 413, "RequestBodyTooLarge").await;
    let r = app
        .client
        .post(format!("{}/speech:transcribe", app.base))
        .header("Content-Type", "audio/wav")
        .body(wav())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        s.seen().is_empty(),
        "nothing refused reached the transcriber"
    );
    // ten a minute per user, the eleventh is refused
    for _ in 0..10 {
        assert_eq!(
            transcribe(&app, &a, "", "audio/wav", wav()).await.status(),
            200
        );
    }
    let r = transcribe(&app, &a, "", "audio/wav", wav()).await;
    assert_eq!(r.status(), 429);
    let b = app.user().await;
    assert_eq!(
        transcribe(&app, &b, "", "audio/wav", wav()).await.status(),
        200
    );

    for mode in [Mode::Fail, Mode::Garbage, Mode::Hang] {
        let s = Standin::start(mode);
        let app = spawn(&speech_args(&s, "openai")).await;
        let a = app.user().await;
        let started = std::time::Instant::now();
        let r = transcribe(&app, &a, "", "audio/wav", wav()).await;
        assert!(r.headers().get("retry-after").is_some(), "{mode:?}");
        assert_error(r, 503, "TranscriberUnavailable").await;
        if mode == Mode::Hang {
            let waited = started.elapsed().as_secs_f64();
            assert!((29.0..45.0).contains(&waited), "gave up after {waited} s");
        }
    }
}

/// The next event of `kind`, skipping others.
pub(crate) async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let e = ws.event().await;
        if e["type"] == kind {
            return e;
        }
    }
}

/// §10.3 real-time: a `?lang=` session gets `chatMessageTranslated` after the original (on
/// sends and edits); sessions without it, or in the detected language, get none; long-polls
/// with `?lang=` too; a failing translator sends nothing and counts.
#[tokio::test]
async fn live_translation_for_lang_sessions() {
    let s = Standin::start(Mode::Libre);
    let app = spawn(&translator_args(&s, "libretranslate")).await;
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[&a, &b]).await;
    let mut german = Ws::connect_with(&app, &b, "lang=de").await.unwrap();
    let mut plain = Ws::connect(&app, &b, None).await;
    let mut english = Ws::connect_with(&app, &b, "lang=en").await.unwrap();
    let bad = app
        .client
        .get(format!("{}/realtime/poll?lang=de_DE&timeout=0", app.base))
        .bearer_auth(&b.token)
        .send()
        .await
        .unwrap();
    assert_error(bad, 400, "InvalidRequest").await;
    // a long-poll in French: its first answer registers the language
    let first: Value = app
        .client
        .get(format!("{}/realtime/poll?lang=fr&timeout=0", app.base))
        .bearer_auth(&b.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut cursor = first["cursor"].as_str().unwrap().to_string();

    let id = app.send(&a, &t, "good morning").await;
    let original = german.event().await;
    assert_eq!(
        original["type"], "chatMessageReceived",
        "the original comes first"
    );
    let tr = german.event().await;
    assert_eq!(tr["type"], "chatMessageTranslated", "{tr}");
    let d = &tr["data"];
    assert_eq!(d["threadId"], t.as_str());
    assert_eq!(d["id"], id.as_str());
    assert_eq!(d["version"], original["data"]["version"]);
    assert_eq!(d["from"], "en");
    assert_eq!(d["to"], "de");
    assert_eq!(d["text"], "[de] good morning");
    assert_eq!(d["recipient"]["rawId"], b.id.as_str());
    assert!(tr["cursor"].as_str().unwrap().contains('.'));
    assert_eq!(plain.event().await["type"], "chatMessageReceived");
    assert_eq!(english.event().await["type"], "chatMessageReceived");

    // an edit is translated again, at its new version
    let r = app
        .chat(
            &a,
            Method::PATCH,
            &format!("/chat/threads/{}/messages/{id}", enc(&t)),
            Some(json!({"content": "good night"})),
        )
        .await;
    assert_eq!(r.status(), 204);
    let edited = german.event().await;
    assert_eq!(edited["type"], "chatMessageEdited");
    let tr = german.event().await;
    assert_eq!(tr["type"], "chatMessageTranslated");
    assert_eq!(tr["data"]["text"], "[de] good night");
    assert_eq!(tr["data"]["version"], edited["data"]["version"]);
    // the sessions that did not ask (or read English already) got only the edit
    assert_eq!(plain.event().await["type"], "chatMessageEdited");
    plain.nothing_for(300).await;
    assert_eq!(english.event().await["type"], "chatMessageEdited");
    english.nothing_for(100).await;

    // the long-poll in French sees its translations, not the German ones
    let mut french = Vec::new();
    for _ in 0..20 {
        let v: Value = app
            .client
            .get(format!(
                "{}/realtime/poll?lang=fr&timeout=2&cursor={cursor}",
                app.base
            ))
            .bearer_auth(&b.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        cursor = v["cursor"].as_str().unwrap().to_string();
        for e in v["events"].as_array().unwrap() {
            if e["type"] == "chatMessageTranslated" {
                french.push(e["data"]["text"].as_str().unwrap().to_string());
            }
        }
        if french.len() >= 2 {
            break;
        }
    }
    assert_eq!(french, ["[fr] good morning", "[fr] good night"]);

    // a failing translator: the original arrives, no translation, a failure counted
    let down = Standin::start(Mode::Fail);
    let app = spawn(&translator_args(&down, "libretranslate")).await;
    let (a, b) = (app.user().await, app.user().await);
    let t = app.thread(&a, &[&a, &b]).await;
    let mut german = Ws::connect_with(&app, &b, "lang=de").await.unwrap();
    let failures = counter(&app, "confab_translation_failures_total", "").await;
    app.send(&a, &t, "hello").await;
    assert_eq!(german.event().await["type"], "chatMessageReceived");
    german.nothing_for(500).await;
    assert!(!down.seen().is_empty());
    let after = counter(&app, "confab_translation_failures_total", "").await;
    assert!(after >= failures + 1.0, "{failures} -> {after}");
}
