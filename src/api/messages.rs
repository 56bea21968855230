//! Chat messages: send, list, get, update, delete (operations 6–10).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::threads::patch_object;
use super::{
    base_url, chat_prologue, check_thread_id, empty, encode_sync_state, idempotency, json,
    parse_json, path_thread, Body, Params,
};
use crate::error::ApiError;
use crate::hub::commands::{DeleteMessage, EditMessage, SendMessage};
use crate::ids::{encode_query, encode_segment, fmt_ms, parse_message_id, ThreadId, UserId};
use crate::model::{
    check_display_name, check_metadata, ChatMessage, Cim, MessageContent, MessageKind, MetaPatch,
    Page, Priority, SendMessageRequest, MAX_MESSAGE_METADATA_BYTES,
};
use crate::ratelimit::Op;
use crate::state::AppState;
use crate::store::models::{Message, Participant};
use crate::store::{messages, parse_metadata, participants, threads, DbConn};

/// The wire form of a stored message (tombstones lose content and metadata).
pub fn to_wire(m: Message) -> ChatMessage {
    let system = m.is_system();
    let deleted = m.deleted_at.is_some();
    let content = if system {
        m.system
            .as_deref()
            .and_then(|s| serde_json::from_str::<MessageContent>(s).ok())
    } else if deleted {
        None
    } else {
        Some(MessageContent {
            message: m.content,
            ..Default::default()
        })
    };
    let metadata = parse_metadata(&m.metadata);
    ChatMessage {
        id: m.id.to_string(),
        kind: m.kind,
        sequence_id: m.seq.to_string(),
        version: m.version.to_string(),
        content,
        sender_display_name: if system { None } else { m.sender_display_name },
        created_on: fmt_ms(m.created_at),
        sender_communication_identifier: m.sender_id.as_deref().map(Cim::from_raw),
        deleted_on: m.deleted_at.map(fmt_ms),
        edited_on: m.edited_at.map(fmt_ms),
        metadata: (!system && !deleted && !metadata.is_empty()).then_some(metadata),
        priority: m.priority,
        sentiment: m
            .sentiment
            .filter(|_| !system && !deleted)
            .map(crate::sentiment::to_json),
    }
}

/// Checks content: present, non-empty, within the byte limit (counted before sanitizing).
fn check_content(content: Option<&str>, max: usize) -> Result<&str, ApiError> {
    let c = content.ok_or_else(|| ApiError::invalid("content", "content is required."))?;
    if c.is_empty() {
        return Err(ApiError::invalid("content", "content must not be empty."));
    }
    if c.len() > max {
        return Err(ApiError::bad_request(
            "MessageTooLarge",
            format!("content is {} bytes; the limit is {max} bytes.", c.len()),
        ));
    }
    Ok(c)
}

/// POST /chat/threads/{t}/messages — 201 `{"id"}` + `Location` (op 6).
pub async fn send(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let thread = path_thread(&req);
    let user = chat_prologue(&req, &body.0, Op::WriteMessage, Some(&thread)).await?;
    let parsed: SendMessageRequest = parse_json(&body.0)?;
    let kind = parsed
        .kind
        .as_deref()
        .map(MessageKind::parse)
        .transpose()?
        .unwrap_or_default();
    let priority = parsed
        .priority
        .as_deref()
        .map(Priority::parse)
        .transpose()?
        .unwrap_or_default();
    check_display_name(&parsed.sender_display_name, "senderDisplayName")?;
    check_thread_id(&thread)?;
    let content = check_content(
        parsed.content.as_deref(),
        app.config.max_message_bytes as usize,
    )?;
    let metadata = parsed.metadata.unwrap_or_default();
    check_metadata(&metadata, MAX_MESSAGE_METADATA_BYTES, "Message")?;
    let content = if kind == MessageKind::Html {
        ammonia::clean(content)
    } else {
        content.to_string()
    };
    // scored here, on the request's worker, not on the thread's commit path
    let sentiment = app
        .config
        .sentiment
        .on()
        .then(|| crate::sentiment::score(kind.as_str(), &content));
    let location_prefix = format!(
        "{}/chat/threads/{}/messages/",
        base_url(&req, &app),
        encode_segment(&thread)
    );
    idempotency::once(
        &req,
        &app,
        &user.id,
        idempotency::Scope::Send(&thread),
        &body.0,
        |idem| {
            let cmd = SendMessage {
                request_id: super::request_id(&req),
                user: user.id.clone(),
                content,
                kind,
                display_name: parsed.sender_display_name,
                metadata,
                priority,
                sentiment,
                location_prefix,
                idem,
            };
            app.hub.send(&thread, cmd)
        },
    )
    .await
}

/// The caller's participant row in a live thread: 404 if the thread is missing or deleted,
/// 403 if the caller never was a participant. Former participants are returned.
pub fn viewer(c: &mut DbConn, thread: &ThreadId, user: &UserId) -> Result<Participant, ApiError> {
    threads::get(c, thread)?
        .filter(|t| t.deleted_at.is_none())
        .ok_or_else(|| ApiError::not_found("Thread"))?;
    participants::get(c, thread, user)?.ok_or_else(ApiError::forbidden)
}

#[derive(Serialize, Deserialize)]
pub(crate) struct MessagesCursor {
    /// sequenceId of the last message returned: the next page starts strictly below it
    q: i64,
    /// startTime filter of the first page
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<i64>,
}

/// GET /chat/threads/{t}/messages — newest first, keyset-paged by sequenceId (op 7).
pub async fn list(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let thread = path_thread(&req);
    let user = chat_prologue(&req, &body.0, Op::ListMessages, Some(&thread)).await?;
    let params = Params::of(&req);
    let size = params.page_size()?;
    let cursor: Option<MessagesCursor> = params.sync_state()?;
    let start = match &cursor {
        Some(c) => c.s,
        None => params.start_time()?,
    };
    check_thread_id(&thread)?;
    let before = cursor.as_ref().map(|c| c.q);
    let t = thread.clone();
    let mut rows = app
        .store
        .read(move |c| {
            let v = viewer(c, &t, &user.id)?;
            Ok(messages::visible_page(c, &t, &v, before, start, size + 1)?)
        })
        .await?;
    let next_link = if rows.len() > size as usize {
        rows.truncate(size as usize);
        let q = rows.last().map(|m| m.seq).unwrap_or_default();
        let token = encode_sync_state(&MessagesCursor { q, s: start });
        Some(format!(
            "{}/chat/threads/{}/messages?syncState={token}&maxPageSize={size}&api-version={}",
            base_url(&req, &app),
            encode_segment(&thread),
            encode_query(params.api_version())
        ))
    } else {
        None
    };
    json(
        StatusCode::OK,
        &Page {
            value: rows.into_iter().map(to_wire).collect(),
            next_link,
        },
    )
}

/// GET /chat/threads/{t}/messages/{m} — a message the caller can see, else 404 (op 8).
pub async fn get(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let thread = path_thread(&req);
    let user = chat_prologue(&req, &body.0, Op::GetMessage, Some(&thread)).await?;
    check_thread_id(&thread)?;
    let mid = req.match_info().query("m").to_string();
    let m = app
        .store
        .read(move |c| {
            let v = viewer(c, &thread, &user.id)?;
            let id = parse_message_id(&mid).ok_or_else(|| ApiError::not_found("Message"))?;
            messages::get(c, &thread, id)?
                .filter(|m| v.can_see(m.created_at))
                .ok_or_else(|| ApiError::not_found("Message"))
        })
        .await?;
    json(StatusCode::OK, &to_wire(m))
}

/// The `{m}` path segment. A malformed id names no message; it becomes an id that never exists
/// so that the actor still checks membership (403) before the message (404).
fn message_id(req: &HttpRequest) -> i64 {
    parse_message_id(req.match_info().query("m")).unwrap_or(-1)
}

/// PATCH /chat/threads/{t}/messages/{m} — merge-patch of content, metadata, priority; 204 (op 9).
pub async fn update(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let thread = path_thread(&req);
    let user = chat_prologue(&req, &body.0, Op::WriteMessage, Some(&thread)).await?;
    let patch = patch_object(&body.0)?;
    let content = match patch.get("content") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) => return Err(ApiError::invalid("content", "content cannot be null.")),
        Some(_) => return Err(ApiError::invalid("content", "content must be a string.")),
    };
    let priority = match patch.get("priority") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(Priority::parse(p)?),
        Some(_) => return Err(ApiError::invalid("priority", "priority must be a string.")),
    };
    let metadata = MetaPatch::from_member(patch.get("metadata"), "metadata")?;
    check_thread_id(&thread)?;
    let message_id = message_id(&req);
    if content.is_some() {
        check_content(content.as_deref(), app.config.max_message_bytes as usize)?;
    }
    metadata.check_sets(MAX_MESSAGE_METADATA_BYTES, "Message")?;
    let cmd = EditMessage {
        request_id: super::request_id(&req),
        user: user.id,
        message_id,
        content,
        metadata,
        priority,
    };
    app.hub.send(&thread, cmd).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// DELETE /chat/threads/{t}/messages/{m} — leaves a tombstone; 204 (op 10).
pub async fn delete(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let thread = path_thread(&req);
    let user = chat_prologue(&req, &body.0, Op::WriteMessage, Some(&thread)).await?;
    check_thread_id(&thread)?;
    let message_id = message_id(&req);
    app.hub
        .send(
            &thread,
            DeleteMessage {
                request_id: super::request_id(&req),
                user: user.id,
                message_id,
            },
        )
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
