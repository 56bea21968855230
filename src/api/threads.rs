//! Chat threads: create, list, get, update, delete (operations 1–5).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    base_url, chat_prologue, check_thread_id, empty, encode_sync_state, idempotency, json,
    parse_json, path_thread, Body, Params,
};
use crate::error::ApiError;
use crate::hub::commands::{CreateThread, DeleteThread, NewParticipant, UpdateThread};
use crate::ids::{
    encode_query, encode_segment, fmt_ms, new_thread_id, parse_time, ThreadId, UserId,
};
use crate::model::{
    check_display_name, check_metadata, check_topic, Cim, CreateThreadRequest, MetaPatch, Page,
    ParticipantIn, RetentionPolicy, ThreadItem, ThreadProperties, MAX_PARTICIPANTS_PER_REQUEST,
    MAX_THREAD_METADATA_BYTES,
};
use crate::ratelimit::Op;
use crate::state::AppState;
use crate::store::{parse_metadata, participants, threads};

/// Resolves and checks requested participants (shape and per-participant limits).
pub fn new_participants(
    list: Vec<ParticipantIn>,
    field: &str,
) -> Result<Vec<NewParticipant>, ApiError> {
    if list.len() > MAX_PARTICIPANTS_PER_REQUEST {
        return Err(ApiError::bad_request(
            "TooManyParticipants",
            format!(
                "{} participants in one request; the limit is {MAX_PARTICIPANTS_PER_REQUEST}.",
                list.len()
            ),
        ));
    }
    list.into_iter()
        .enumerate()
        .map(|(i, p)| {
            let target = format!("{field}[{i}]");
            let r = p
                .communication_identifier
                .resolve(&format!("{target}.communicationIdentifier"))?;
            check_display_name(&p.display_name, &format!("{target}.displayName"))?;
            let metadata = p.metadata.unwrap_or_default();
            check_metadata(&metadata, MAX_THREAD_METADATA_BYTES, "Participant")?;
            let share_history_time = p
                .share_history_time
                .map(|s| {
                    parse_time(&s).ok_or_else(|| {
                        ApiError::invalid(
                            format!("{target}.shareHistoryTime"),
                            format!("Not an RFC 3339 time: {s:?}."),
                        )
                    })
                })
                .transpose()?;
            Ok(NewParticipant {
                raw_id: UserId::from(r.raw_id),
                is_communication_user: r.is_communication_user,
                display_name: p.display_name,
                metadata,
                share_history_time,
            })
        })
        .collect()
}

/// POST /chat/threads — 201 `CreateChatThreadResult` + `Location` (operation 1).
pub async fn create(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let user = chat_prologue(&req, &body.0, Op::CreateThread, None).await?;
    if !user.can_create_thread() {
        return Err(ApiError::forbidden());
    }
    let parsed: CreateThreadRequest = parse_json(&body.0)?;
    let topic = parsed
        .topic
        .ok_or_else(|| ApiError::invalid("topic", "topic is required."))?;
    check_topic(&topic)?;
    let metadata = parsed.metadata.unwrap_or_default();
    check_metadata(&metadata, MAX_THREAD_METADATA_BYTES, "Thread")?;
    if let Some(r) = &parsed.retention_policy {
        r.validate()?;
    }
    let participants = new_participants(parsed.participants.unwrap_or_default(), "participants")?;
    let id = new_thread_id();
    let location = format!(
        "{}/chat/threads/{}",
        base_url(&req, &app),
        encode_segment(&id)
    );
    idempotency::once(
        &req,
        &app,
        &user.id,
        idempotency::Scope::CreateThread,
        &body.0,
        |idem| {
            let cmd = CreateThread {
                request_id: super::request_id(&req),
                creator: user.id.clone(),
                topic,
                participants,
                metadata,
                retention: parsed.retention_policy,
                location,
                idem,
            };
            app.hub.send(&id, cmd)
        },
    )
    .await
}

#[derive(Serialize, Deserialize)]
pub(crate) struct ThreadsCursor {
    /// lastMessageReceivedOn of the last item returned
    t: i64,
    /// id of the last item returned
    i: String,
    /// startTime filter of the first page
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<i64>,
}

/// GET /chat/threads — the caller's threads, newest activity first (operation 2).
pub async fn list(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let user = chat_prologue(&req, &body.0, Op::GetThread, None).await?;
    let params = Params::of(&req);
    let size = params.page_size()?;
    let cursor: Option<ThreadsCursor> = params.sync_state()?;
    let start = match &cursor {
        Some(c) => c.s,
        None => params.start_time()?,
    };
    let uid = user.id.clone();
    let rows = app
        .store
        .read({
            // (read before the query: see `threads::for_user`)
            let settled = app.store.settled_rowid();
            move |c| Ok(threads::for_user(c, &uid, settled)?)
        })
        .await?;
    // (effective lastMessageReceivedOn, item); a former participant's is capped at its removal.
    let mut items: Vec<(i64, ThreadItem)> = rows
        .into_iter()
        .filter_map(|(t, p)| {
            let last = match p.removed_at {
                Some(r) => t.last_message_at.min(r),
                None => t.last_message_at,
            };
            let activity = last.max(t.deleted_at.unwrap_or(i64::MIN));
            if start.is_some_and(|s| activity < s) {
                return None;
            }
            Some((
                last,
                ThreadItem {
                    id: t.id,
                    topic: t.topic,
                    last_message_received_on: fmt_ms(last),
                    deleted_on: t.deleted_at.map(fmt_ms),
                    unread_count: None,
                    last_message: None,
                },
            ))
        })
        .collect();
    items.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.id.cmp(&a.1.id)));
    let after = items
        .into_iter()
        .filter(|(t, item)| match &cursor {
            Some(c) => (*t, item.id.as_str()) < (c.t, c.i.as_str()),
            None => true,
        })
        .take(size as usize + 1);
    let mut page: Vec<(i64, ThreadItem)> = after.collect();
    let next_link = if page.len() > size as usize {
        page.truncate(size as usize);
        let (t, last) = page
            .last()
            .map(|(t, i)| (*t, i.id.clone()))
            .unwrap_or_default();
        let token = encode_sync_state(&ThreadsCursor {
            t,
            i: last,
            s: start,
        });
        Some(format!(
            "{}/chat/threads?syncState={token}&maxPageSize={size}&api-version={}",
            base_url(&req, &app),
            encode_query(params.api_version())
        ))
    } else {
        None
    };
    // unread counts and previews of the page (CONTRACT §10.1): two queries for the page
    let ids: Vec<String> = page.iter().map(|(_, i)| i.id.clone()).collect();
    let uid = user.id.clone();
    let mut inbox = app
        .store
        .read(move |c| Ok(participants::inbox(c, &uid, &ids)?))
        .await?;
    let value = page
        .into_iter()
        .map(|(_, mut item)| {
            let entry = inbox.remove(&item.id);
            item.unread_count = Some(entry.as_ref().map_or(0, |e| e.unread));
            item.last_message = entry.and_then(|e| e.last).map(|m| last_message(&m));
            item
        })
        .collect();
    json(StatusCode::OK, &Page { value, next_link })
}

/// `lastMessage` (CONTRACT §10.1): a text/html message as a thread list shows it.
fn last_message(m: &crate::store::models::Message) -> Value {
    let plain = crate::text::plain(&m.kind, m.content.as_deref().unwrap_or_default());
    let mut o = serde_json::json!({
        "id": m.id.to_string(),
        "sequenceId": m.seq.to_string(),
        "type": m.kind,
        "senderCommunicationIdentifier": m.sender_id.as_deref().map(Cim::from_raw),
        "preview": crate::text::preview(&plain),
        "createdOn": fmt_ms(m.created_at),
    });
    if let Some(name) = m.sender_display_name.as_deref().filter(|n| !n.is_empty()) {
        o["senderDisplayName"] = Value::from(name);
    }
    o
}

/// GET /chat/threads/{t} — `ChatThreadProperties` for current and former participants (op 3).
pub async fn get(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let thread = path_thread(&req);
    let user = chat_prologue(&req, &body.0, Op::GetThread, Some(&thread)).await?;
    check_thread_id(&thread)?;
    let (t, p, mut inbox) = app
        .store
        .read(move |c| {
            let t = threads::get(c, &thread)?;
            let p = match &t {
                Some(t) => participants::get(c, &ThreadId::new(t.id.as_str()), &user.id)?,
                None => None,
            };
            let inbox = match &t {
                Some(t) if p.is_some() => {
                    participants::inbox(c, &user.id, std::slice::from_ref(&t.id))?
                }
                _ => Default::default(),
            };
            Ok((t, p, inbox))
        })
        .await?;
    let t = t
        .filter(|t| t.deleted_at.is_none())
        .ok_or_else(|| ApiError::not_found("Thread"))?;
    if p.is_none() {
        return Err(ApiError::forbidden());
    }
    let metadata = parse_metadata(&t.metadata);
    let mine = inbox.remove(&t.id);
    json(
        StatusCode::OK,
        &ThreadProperties {
            id: t.id,
            topic: t.topic,
            created_on: fmt_ms(t.created_at),
            created_by_communication_identifier: Cim::from_raw(&t.created_by),
            metadata: (!metadata.is_empty()).then_some(metadata),
            retention_policy: t.retention.and_then(|r| serde_json::from_str(&r).ok()),
            deleted_on: None,
            unread_count: Some(mine.as_ref().map_or(0, |e| e.unread)),
            last_message: mine.and_then(|e| e.last).map(|m| last_message(&m)),
        },
    )
}

/// Parses a merge-patch body: a JSON object.
pub fn patch_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    match parse_json::<Value>(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::invalid(
            "body",
            "The request body must be a JSON object.",
        )),
    }
}

/// PATCH /chat/threads/{t} — merge-patch of topic, metadata, retentionPolicy; 204 (op 4).
pub async fn update(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let thread = path_thread(&req);
    let user = chat_prologue(&req, &body.0, Op::UpdateThread, Some(&thread)).await?;
    let patch = patch_object(&body.0)?;
    let topic = match patch.get("topic") {
        None => None,
        Some(Value::String(s)) => {
            check_topic(s)?;
            Some(s.clone())
        }
        Some(Value::Null) => return Err(ApiError::invalid("topic", "topic cannot be null.")),
        Some(_) => return Err(ApiError::invalid("topic", "topic must be a string.")),
    };
    let metadata = MetaPatch::from_member(patch.get("metadata"), "metadata")?;
    let retention = match patch.get("retentionPolicy") {
        None => None,
        Some(Value::Null) => Some(RetentionPolicy::None),
        Some(v) => {
            let r: RetentionPolicy = serde_json::from_value(v.clone()).map_err(|e| {
                ApiError::invalid("retentionPolicy", format!("Invalid retentionPolicy: {e}."))
            })?;
            r.validate()?;
            Some(r)
        }
    };
    metadata.check_sets(MAX_THREAD_METADATA_BYTES, "Thread")?;
    check_thread_id(&thread)?;
    let cmd = UpdateThread {
        request_id: super::request_id(&req),
        user: user.id,
        topic,
        metadata,
        retention,
    };
    app.hub.send(&thread, cmd).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// DELETE /chat/threads/{t} — 204 (op 5).
pub async fn delete(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let thread = path_thread(&req);
    let user = chat_prologue(&req, &body.0, Op::DeleteThread, Some(&thread)).await?;
    check_thread_id(&thread)?;
    app.hub
        .send(
            &thread,
            DeleteThread {
                user: user.id,
                request_id: super::request_id(&req),
            },
        )
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
