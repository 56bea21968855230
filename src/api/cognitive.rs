//! confab's translation and speech-to-text routes (CONTRACT §10.3, §10.4).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::extract::{extension_prologue, rate_limit, AudioBody};
use super::messages::viewer;
use super::{check_thread_id, json, path_thread, Body, Params};
use crate::cognitive::{is_language_tag, speech, translate::CacheKey};
use crate::error::ApiError;
use crate::ids::parse_message_id;
use crate::ratelimit::Op;
use crate::state::AppState;
use crate::store::messages;

/// POST /chat/threads/{t}/messages/{m}:translate?to=<lang> — 200 `{"id","to","from","text",
/// "version"}`; participants only, with GET message's visibility.
pub async fn translate(
    req: HttpRequest,
    _body: Body,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let thread = path_thread(&req);
    let user = extension_prologue(&req, Op::GetMessage, Some(&thread)).await?;
    let Some(translator) = app.translator.clone() else {
        return Err(ApiError::feature_not_supported(
            "Translation (no --translator-url is configured)",
        ));
    };
    let to = Params::of(&req)
        .get("to")
        .cloned()
        .filter(|t| is_language_tag(t))
        .ok_or_else(|| {
            ApiError::invalid("to", "to must be a BCP-47 language tag, e.g. de or pt-BR.")
        })?;
    check_thread_id(&thread)?;
    let mid = req.match_info().query("m").to_string();
    let t = thread.clone();
    let m = app
        .store
        .read(move |c| {
            let v = viewer(c, &t, &user.id)?;
            let id = parse_message_id(&mid).ok_or_else(|| ApiError::not_found("Message"))?;
            messages::get(c, &t, id)?
                .filter(|m| v.can_see(m.created_at))
                .ok_or_else(|| ApiError::not_found("Message"))
        })
        .await?;
    let Some(content) = m.content.as_deref().filter(|_| !m.is_system()) else {
        return Err(ApiError::invalid(
            "id",
            "The message has no text to translate.",
        ));
    };
    let key = CacheKey {
        thread: thread.to_string(),
        message: m.id,
        version: m.version,
        to: to.clone(),
    };
    let done = translator
        .message(key, content, m.kind == "html")
        .await
        .map_err(|e| ApiError::dependency_unavailable("TranslatorUnavailable", "translator", e))?;
    json(
        StatusCode::OK,
        &json!({
            "id": m.id.to_string(), "to": to, "from": done.from, "text": done.text,
            "version": m.version.to_string(),
        }),
    )
}

/// POST /speech:transcribe?language=<tag> — the audio body → 200 `{"text","language"?}`.
/// Nothing is stored or sent anywhere else.
pub async fn transcribe(
    req: HttpRequest,
    body: AudioBody,
    app: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let user = extension_prologue(&req, Op::Transcribe, None).await?;
    let Some(transcriber) = app.transcriber.clone() else {
        return Err(ApiError::feature_not_supported(
            "Speech to text (no --speech-url is configured)",
        ));
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if speech::audio_type(&content_type).is_none() {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "Content-Type must be one of {}; got {content_type:?}.",
                speech::AUDIO_TYPES.join(", ")
            ),
        ));
    }
    let language = Params::of(&req).get("language").cloned();
    if language.as_deref().is_some_and(|l| !is_language_tag(l)) {
        return Err(ApiError::invalid(
            "language",
            "language must be a BCP-47 language tag, e.g. en-US.",
        ));
    }
    if body.0.is_empty() {
        return Err(ApiError::invalid("body", "The audio is empty."));
    }
    rate_limit(&app, Op::Transcribe, &user.id, None)?;
    let heard = transcriber
        .transcribe(body.0, &content_type, language.as_deref())
        .await;
    let outcome = if heard.is_ok() { "ok" } else { "failed" };
    metrics::counter!(crate::metrics::TRANSCRIPTIONS, "outcome" => outcome).increment(1);
    let heard = heard.map_err(|e| {
        ApiError::dependency_unavailable("TranscriberUnavailable", "transcriber", e)
    })?;
    let mut out = json!({ "text": heard.text });
    if let Some(l) = heard.language {
        out["language"] = l.into();
    }
    json(StatusCode::OK, &out)
}
