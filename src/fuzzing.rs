//! Entry points of the fuzz targets in `fuzz/` (compiled only by `cargo fuzz`, which sets
//! `--cfg fuzzing`). Each takes arbitrary bytes, runs one parser of untrusted input the way a
//! request reaches it, and asserts what must hold whatever the input, besides not panicking.

use actix_codec::Decoder;
use actix_web::dev::{Path, ResourceDef, Url};
use bytes::{Bytes, BytesMut};

use crate::api::extract::{decode_sync_state, parse_json, parse_optional_json};
use crate::api::respond::encode_sync_state;
use crate::auth::hmac::{sign, AccessKeys, SignedRequest};
use crate::auth::token::Tokens;
use crate::hub::users::Cursor;
use crate::ids;
use crate::model::*;

const NOW: i64 = 1_796_000_000;
const RESOURCE: &str = "00000000-0000-4000-8000-000000000001";

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The access-key `Authorization` header and string-to-sign (CONTRACT §4.2): lines of method,
/// path and query, host, x-ms-date, x-ms-content-sha256, Authorization, then the body.
/// Nothing made up verifies; what `sign` signs always does.
pub fn hmac(data: &[u8]) {
    let keys = AccessKeys::new([crate::config::DEV_ACCESS_KEY]);
    let mut parts = data.splitn(7, |b| *b == b'\n');
    let mut field = || text(parts.next().unwrap_or_default());
    let (method, path, host, date, hash, auth) =
        (field(), field(), field(), field(), field(), field());
    let body = data
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(5)
        .map_or(&[][..], |(i, _)| &data[i + 1..]);
    let forged = SignedRequest {
        method: &method,
        path_and_query: &path,
        host: &host,
        date: Some(&date),
        content_hash: Some(&hash),
        authorization: Some(&auth),
        body,
    };
    assert!(
        keys.verify(&forged, None, NOW).is_err(),
        "a made-up signature verified"
    );
    let at =
        httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(NOW as u64));
    let s = sign(keys.primary(), &method, &path, &host, &at, body);
    let signed = SignedRequest {
        date: Some(&at),
        content_hash: Some(&s.content_hash),
        authorization: Some(&s.authorization),
        ..forged
    };
    assert!(
        keys.verify(&signed, None, NOW).is_ok(),
        "a signed request did not verify"
    );
}

/// User access tokens (JWT, CONTRACT §4.4): nothing but an issued token verifies.
pub fn jwt(data: &[u8]) {
    let tokens = Tokens::new(b"fuzzing secret".to_vec(), RESOURCE.into());
    let s = text(data);
    assert!(
        tokens.verify(&s, NOW).is_none(),
        "a made-up token verified: {s:?}"
    );
    let user = format!(
        "8:acs:{RESOURCE}_00000000-0000-4000-8000-{:012x}",
        data.len()
    );
    let (token, _) = tokens.issue(&user, &[crate::auth::token::Scope::Chat], NOW, 60);
    let claims = tokens
        .verify(&token, NOW)
        .expect("an issued token verifies");
    assert_eq!(claims.user_id().as_str(), user);
}

/// Real-time cursors (CONTRACT §6.2): what parses prints back the same.
pub fn cursor(data: &[u8]) {
    let s = text(data);
    if let Some(c) = Cursor::parse(&s) {
        assert_eq!(Cursor::parse(&format!("{}.{}", c.epoch, c.n)), Some(c));
    }
}

/// `syncState` continuation tokens of the message and thread lists (CONTRACT §2.3).
pub fn sync_state(data: &[u8]) {
    let s = text(data);
    if let Some(c) = decode_sync_state::<crate::api::messages::MessagesCursor>(&s) {
        let again = encode_sync_state(&c);
        assert!(decode_sync_state::<crate::api::messages::MessagesCursor>(&again).is_some());
    }
    if let Some(c) = decode_sync_state::<crate::api::threads::ThreadsCursor>(&s) {
        let again = encode_sync_state(&c);
        assert!(decode_sync_state::<crate::api::threads::ThreadsCursor>(&again).is_some());
    }
}

/// The `{t}` of a path as the router hands it to a handler.
fn routed(segment: &str) -> Option<String> {
    let uri: actix_web::http::Uri = format!("/chat/threads/{segment}/messages").parse().ok()?;
    let mut path = Path::new(Url::new(uri));
    ResourceDef::new("/chat/threads/{t}/messages")
        .capture_match_info(&mut path)
        .then(|| path.query("t").to_string())
}

/// Thread, user and message ids in paths, raw or percent-encoded (CONTRACT §2.1): a thread id
/// reaches the handler the same either way.
pub fn ids(data: &[u8]) {
    let s = text(data);
    if let Some(t) = routed(&s) {
        let _ = ids::is_thread_id(&t);
        let _ = ids::parse_message_id(&t);
        let _ = ids::is_own_user_id(&t, RESOURCE);
        let _ = ids::parse_time(&t);
    }
    if ids::is_thread_id(&s) {
        assert_eq!(routed(&s).as_deref(), Some(s.as_str()), "raw");
        assert_eq!(
            routed(&ids::encode_segment(&s)).as_deref(),
            Some(s.as_str()),
            "percent-encoded"
        );
    }
    if let Some(ms) = ids::parse_message_id(&s) {
        assert_eq!(ms.to_string().len() <= s.len(), true);
    }
    let _ = ids::parse_time(&s);
}

/// The JSON body of each route with a body, through the checks its handler makes before it
/// touches any state. The first byte picks the route.
pub fn bodies(data: &[u8]) {
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    let _ = route_body(route % 11, body);
}

fn route_body(route: u8, body: &[u8]) -> Result<(), crate::error::ApiError> {
    use crate::api::{identities, subscriptions, threads};
    match route {
        0 => {
            let r: CreateThreadRequest = parse_json(body)?;
            check_topic(r.topic.as_deref().unwrap_or_default())?;
            threads::new_participants(r.participants.unwrap_or_default(), "participants")?;
            check_metadata(
                &r.metadata.unwrap_or_default(),
                MAX_THREAD_METADATA_BYTES,
                "Thread",
            )?;
            if let Some(p) = r.retention_policy {
                p.validate()?;
            }
        }
        1 | 3 => {
            let patch = threads::patch_object(body)?;
            if let Some(serde_json::Value::String(t)) = patch.get("topic") {
                check_topic(t)?;
            }
            let limit = if route == 1 {
                MAX_THREAD_METADATA_BYTES
            } else {
                MAX_MESSAGE_METADATA_BYTES
            };
            MetaPatch::from_member(patch.get("metadata"), "metadata")?
                .check_sets(limit, "metadata")?;
            if let Some(serde_json::Value::String(p)) = patch.get("priority") {
                Priority::parse(p)?;
            }
        }
        2 => {
            let r: SendMessageRequest = parse_json(body)?;
            let kind = r
                .kind
                .as_deref()
                .map(MessageKind::parse)
                .transpose()?
                .unwrap_or_default();
            r.priority.as_deref().map(Priority::parse).transpose()?;
            check_display_name(&r.sender_display_name, "senderDisplayName")?;
            check_metadata(
                &r.metadata.unwrap_or_default(),
                MAX_MESSAGE_METADATA_BYTES,
                "Message",
            )?;
            let content = r.content.unwrap_or_default();
            let stored = if kind == MessageKind::Html {
                ammonia::clean(&content)
            } else {
                content
            };
            let preview = crate::text::preview(&crate::text::plain(kind.as_str(), &stored));
            assert!(
                preview.chars().count() <= 121,
                "a preview longer than 120 characters and …"
            );
            let milli = crate::sentiment::score(kind.as_str(), &stored);
            assert!(
                (-1000..=1000).contains(&milli),
                "sentiment {milli} out of range"
            );
        }
        4 => {
            let r: AddParticipantsRequest = parse_json(body)?;
            threads::new_participants(r.participants.unwrap_or_default(), "participants")?;
        }
        5 => {
            let r: CimIn = parse_json(body)?;
            r.resolve("participant")?;
        }
        6 => {
            let r: SendReadReceiptRequest = parse_json(body)?;
            let _ = ids::parse_message_id(r.chat_message_id.as_deref().unwrap_or_default());
        }
        7 => {
            let r: TypingRequest = parse_optional_json(body)?;
            check_display_name(&r.sender_display_name, "senderDisplayName")?;
        }
        8 => {
            let r: identities::CreateRequest = parse_optional_json(body)?;
            if let Some(s) = r.create_token_with_scopes {
                identities::scopes(&s)?;
            }
            identities::expires(r.expires_in_minutes)?;
        }
        9 => {
            let r: identities::TokenRequest = parse_json(body)?;
            identities::scopes(&r.scopes.unwrap_or_default())?;
            identities::expires(r.expires_in_minutes)?;
        }
        _ => {
            let r: subscriptions::PutBody = parse_json(body)?;
            subscriptions::validate(r)?;
        }
    }
    Ok(())
}

/// A WebSocket client's bytes, in chunks as the socket delivers them (the first byte sets the
/// chunk size), through the frame guard and the codec as a session reads them: no frame over
/// the limit is ever decoded, and text frames are classified.
pub fn ws_frames(data: &[u8]) {
    use futures_util::StreamExt;
    let Some((&size, rest)) = data.split_first() else {
        return;
    };
    let max = crate::hub::session::MAX_FRAME;
    let chunks: Vec<Result<Bytes, ()>> = rest
        .chunks(usize::from(size).max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut guard =
        crate::hub::frame_guard::FrameGuard::new(futures_util::stream::iter(chunks), max);
    let mut codec = actix_http::ws::Codec::new().max_size(max);
    let mut buf = BytesMut::new();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    // The guard answers Pending after each frame (so that the codec runs first) and for ever
    // after an oversized header: poll it a bounded number of times.
    for _ in 0..(rest.len() * 2 + 4) {
        match guard.poll_next_unpin(&mut cx) {
            std::task::Poll::Ready(None) | std::task::Poll::Ready(Some(Err(()))) => break,
            std::task::Poll::Pending => continue,
            std::task::Poll::Ready(Some(Ok(chunk))) => buf.extend_from_slice(&chunk),
        }
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(actix_http::ws::Frame::Text(t))) => {
                    assert!(t.len() <= max, "a {}-byte frame decoded", t.len());
                    let _ = crate::hub::session::is_ping(&String::from_utf8_lossy(&t));
                }
                Ok(Some(actix_http::ws::Frame::Binary(b))) => assert!(b.len() <= max),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}
