//! Participants: list, add, remove (operations 11–13).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::threads::new_participants;
use super::{chat_prologue, check_thread_id, empty, parse_json, path_thread, Body, Params};
use crate::error::ApiError;
use crate::hub::commands::{AddParticipants, RemoveParticipant};
use crate::ids::encode_segment;
use crate::ids::UserId;
use crate::model::{participant_out, AddParticipantsRequest, CimIn, Page};
use crate::ratelimit::Op;
use crate::state::AppState;
use crate::store::{parse_metadata, participants};

/// GET /chat/threads/{t}/participants — current participants in the order added (op 11).
pub async fn list(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let thread = path_thread(&req);
    let user = chat_prologue(&req, &body.0, Op::ListParticipants, Some(&thread)).await?;
    let params = Params::of(&req);
    let size = params.page_size()?;
    let skip = params.skip()?;
    check_thread_id(&thread)?;
    let t = thread.clone();
    let mut rows = app
        .store
        .read(move |c| {
            let v = super::messages::viewer(c, &t, &user.id)?;
            if !v.is_current() {
                return Err(ApiError::forbidden());
            }
            Ok(participants::current_page(c, &t, skip, size + 1)?)
        })
        .await?;
    let path = format!("/chat/threads/{}/participants", encode_segment(&thread));
    let next_link = super::skip_page(&req, &app, &path, &mut rows, size, skip, &params);
    let value = rows
        .into_iter()
        .map(|p| {
            participant_out(
                &p.user_id,
                p.display_name,
                p.share_history_time,
                parse_metadata(&p.metadata),
            )
        })
        .collect();
    super::json(StatusCode::OK, &Page { value, next_link })
}

/// POST /chat/threads/{t}/participants/:add — 201 `{}` or `{"invalidParticipants":[…]}` (op 12).
pub async fn add(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let thread = path_thread(&req);
    let user = chat_prologue(&req, &body.0, Op::Participants, Some(&thread)).await?;
    if !user.can_manage_participants() {
        return Err(ApiError::forbidden());
    }
    let parsed: AddParticipantsRequest = parse_json(&body.0)?;
    let list = parsed
        .participants
        .ok_or_else(|| ApiError::invalid("participants", "participants is required."))?;
    if list.is_empty() {
        return Err(ApiError::invalid(
            "participants",
            "participants must not be empty.",
        ));
    }
    let list = new_participants(list, "participants")?;
    check_thread_id(&thread)?;
    let invalid = app
        .hub
        .send(
            &thread,
            AddParticipants {
                request_id: super::request_id(&req),
                user: user.id,
                participants: list,
            },
        )
        .await?;
    let body = if invalid.is_empty() {
        json!({})
    } else {
        json!({ "invalidParticipants": invalid })
    };
    super::json(StatusCode::CREATED, &body)
}

/// POST /chat/threads/{t}/participants/:remove — body is a bare identifier; 204 (op 13).
pub async fn remove(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let thread = path_thread(&req);
    let user = chat_prologue(&req, &body.0, Op::Participants, Some(&thread)).await?;
    if !user.can_manage_participants() {
        return Err(ApiError::forbidden());
    }
    let target: CimIn = parse_json(&body.0)?;
    let target = target.resolve("body")?;
    check_thread_id(&thread)?;
    app.hub
        .send(
            &thread,
            RemoveParticipant {
                request_id: super::request_id(&req),
                user: user.id,
                target: UserId::from(target.raw_id),
            },
        )
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
