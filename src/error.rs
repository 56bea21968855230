//! The one error type of the public API, rendered as ACS's `CommunicationErrorResponse`
//! (`{"error":{"code","message","target"?}}`, contract §2.8).
//!
//! Deterministic failures are always 4xx: the SDKs retry 408, 429 and 5xx up to ten times, so
//! a repeatable error reported as 5xx would turn into minutes of hidden retries. 5xx bodies are
//! generic; the cause goes to the log with the request id.

use std::fmt;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// An API failure with its status, ACS error code, message and optional target field.
/// The code of [`ApiError::membership_moved`].
const MEMBERSHIP_MOVED: &str = "ServiceUnavailable.ThreadChanged";

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub target: Option<String>,
    /// Seconds for `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
    /// `Allow` header value for 405.
    pub allow: Option<String>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            target: None,
            retry_after: None,
            allow: None,
        }
    }

    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// 400 `InvalidRequest` naming the offending field.
    pub fn invalid(target: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", message).with_target(target)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Request is not authorized.",
        )
    }

    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "User is not allowed to perform specified action.",
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{what} not found."),
        )
    }

    pub fn feature_not_supported(what: &str) -> Self {
        Self::bad_request(
            "FeatureNotSupported",
            format!("{what} is not supported by confab."),
        )
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Rate limit exceeded.",
        );
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 503 for a genuinely transient state (storage down, draining, writer saturated).
    pub fn unavailable(cause: impl fmt::Display) -> Self {
        tracing::warn!(%cause, "service unavailable");
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The server is currently unable to handle the request.",
        );
        e.retry_after = Some(1);
        e
    }

    /// 503 for a service confab depends on (`TranslatorUnavailable`, `TranscriberUnavailable`):
    /// unreachable, failing or too slow. The cause is logged, not sent.
    pub fn dependency_unavailable(
        code: &'static str,
        what: &str,
        cause: impl fmt::Display,
    ) -> Self {
        tracing::warn!(%cause, code, "a service confab depends on failed");
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            format!("The {what} is unavailable; retry later."),
        );
        e.retry_after = Some(5);
        e
    }

    /// Cluster mode: the thread's membership changed on another node since this node cached
    /// it. The thread actor reloads and runs the command again, so a client sees this (a
    /// retryable 503) only if the thread keeps changing under it.
    pub fn membership_moved() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            MEMBERSHIP_MOVED,
            "The thread changed on another node; retry.",
        );
        e.retry_after = Some(1);
        e
    }

    pub fn is_membership_moved(&self) -> bool {
        self.code == MEMBERSHIP_MOVED
    }

    /// 500 for a bug; the cause is logged, the body stays generic.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "An internal error occurred.",
        )
    }

    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestBodyTooLarge",
            format!("The request body exceeds the limit of {limit} bytes."),
        )
    }

    /// The JSON envelope, exactly as sent on the wire.
    pub fn envelope(&self) -> String {
        serde_json::to_string(&Envelope {
            error: Body {
                code: self.code,
                message: &self.message,
                target: self.target.as_deref(),
            },
        })
        .unwrap_or_else(|_| String::from(r#"{"error":{"code":"InternalServerError","message":"An internal error occurred."}}"#))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CONTENT_TYPE, "application/json; charset=utf-8"));
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(allow) = &self.allow {
            res.insert_header((header::ALLOW, allow.clone()));
        }
        res.body(self.envelope())
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &e {
            // Lock contention, lost connection, serialization failure: transient.
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _)
            | Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
            | Error::BrokenTransactionManager => ApiError::unavailable(e),
            // SQLite: another connection holds the lock; the disk is full (SQLITE_FULL) or
            // failing (SQLITE_IOERR): retry once the operator has made room.
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if ["locked", "busy", "disk is full", "disk I/O error"]
                    .iter()
                    .any(|m| info.message().contains(m)) =>
            {
                ApiError::unavailable(e)
            }
            _ => ApiError::internal(e),
        }
    }
}

impl From<r2d2::Error> for ApiError {
    fn from(e: r2d2::Error) -> Self {
        ApiError::unavailable(format!("database pool: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full or failing disk is a retryable 503, not a 500.
    #[test]
    fn a_full_disk_is_unavailable() {
        use diesel::result::{DatabaseErrorKind, Error};
        for m in ["database or disk is full", "disk I/O error"] {
            let e = ApiError::from(Error::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(m.to_string()),
            ));
            assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE, "{m}");
            assert_eq!(e.retry_after, Some(1));
        }
    }

    /// The envelope is byte-for-byte what ACS clients parse.
    #[test]
    fn envelope_json_is_pinned() {
        let e = ApiError::invalid("topic", "topic is required.");
        assert_eq!(
            e.envelope(),
            r#"{"error":{"code":"InvalidRequest","message":"topic is required.","target":"topic"}}"#
        );
        assert_eq!(
            ApiError::forbidden().envelope(),
            r#"{"error":{"code":"Forbidden","message":"User is not allowed to perform specified action."}}"#
        );
        assert_eq!(
            ApiError::unauthorized().envelope(),
            r#"{"error":{"code":"Unauthorized","message":"Request is not authorized."}}"#
        );
    }

    /// 429 and 503 always carry Retry-After of at least one second.
    #[test]
    fn retry_after_is_set() {
        let r = ApiError::too_many_requests(0).error_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers().get("retry-after").unwrap(), "1");
        let r = ApiError::unavailable("x").error_response();
        assert_eq!(r.headers().get("retry-after").unwrap(), "1");
    }
}
