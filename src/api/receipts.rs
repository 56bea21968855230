//! Read receipts and typing (operations 14–16).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{
    chat_prologue, check_thread_id, empty, parse_json, parse_optional_json, path_thread, Body,
    Params,
};
use crate::error::ApiError;
use crate::hub::commands::{SendReceipt, Typing};
use crate::ids::{encode_segment, fmt_ms, parse_message_id};
use crate::model::{Cim, Page, ReadReceipt, SendReadReceiptRequest, TypingRequest};
use crate::ratelimit::Op;
use crate::state::AppState;
use crate::store::participants;

/// POST /chat/threads/{t}/readReceipts — 200, no body (op 14).
pub async fn send(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let thread = path_thread(&req);
    let user = chat_prologue(&req, &body.0, Op::SendReceipt, Some(&thread)).await?;
    let parsed: SendReadReceiptRequest = parse_json(&body.0)?;
    let raw = parsed
        .chat_message_id
        .ok_or_else(|| ApiError::invalid("chatMessageId", "chatMessageId is required."))?;
    check_thread_id(&thread)?;
    // A malformed id names no message: the actor answers 404 after checking membership.
    let message_id = parse_message_id(&raw).unwrap_or(-1);
    app.hub
        .send(
            &thread,
            SendReceipt {
                user: user.id,
                message_id,
            },
        )
        .await?;
    Ok(empty(StatusCode::OK))
}

/// GET /chat/threads/{t}/readReceipts — one per user, newest first; empty above the receipts
/// participant limit (op 15).
pub async fn list(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let thread = path_thread(&req);
    let user = chat_prologue(&req, &body.0, Op::GetReceipts, Some(&thread)).await?;
    let params = Params::of(&req);
    let size = params.page_size()?;
    let skip = params.skip()?;
    check_thread_id(&thread)?;
    let limit = app.config.receipts_max_participants as i64;
    let t = thread.clone();
    let mut rows = app
        .store
        .read(move |c| {
            let v = super::messages::viewer(c, &t, &user.id)?;
            if !v.is_current() {
                return Err(ApiError::forbidden());
            }
            if limit != 0 && participants::current_count(c, &t)? > limit {
                return Ok(Vec::new());
            }
            Ok(participants::receipts_page(c, &t, skip, size + 1)?)
        })
        .await?;
    let path = format!("/chat/threads/{}/readReceipts", encode_segment(&thread));
    let next_link = super::skip_page(&req, &app, &path, &mut rows, size, skip, &params);
    let value = rows
        .into_iter()
        .map(|r| ReadReceipt {
            sender_communication_identifier: Cim::from_raw(&r.user_id),
            chat_message_id: r.message_id.to_string(),
            read_on: fmt_ms(r.read_at),
        })
        .collect();
    super::json(StatusCode::OK, &Page { value, next_link })
}

/// POST /chat/threads/{t}/typing — 200, no body; body optional (op 16).
pub async fn typing(
    req: HttpRequest,
    body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let thread = path_thread(&req);
    let user = chat_prologue(&req, &body.0, Op::Typing, Some(&thread)).await?;
    let parsed: TypingRequest = parse_optional_json(&body.0)?;
    crate::model::check_display_name(&parsed.sender_display_name, "senderDisplayName")?;
    check_thread_id(&thread)?;
    app.hub
        .send(
            &thread,
            Typing {
                request_id: super::request_id(&req),
                user: user.id,
                display_name: parsed.sender_display_name,
            },
        )
        .await?;
    Ok(empty(StatusCode::OK))
}
