//! The API's errors: `{"error": CODE, "message": TEXT}` with the code's status
//! (`live::errors::ErrorCode`), for the API's own refusals and for what axum refuses
//! before a handler runs.

use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::live::errors::ErrorCode;

/// A refusal, as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Sent as `Retry-After` (rate limits, a store that cannot be reached).
    pub retry_after: Option<Duration>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'static str,
    message: &'a str,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), retry_after: None }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub(super) fn unavailable() -> ApiError {
        ApiError::new(ErrorCode::EngineUnavailable, "the engine is stopping or not running")
    }

    pub(super) fn not_ready() -> ApiError {
        ApiError::new(ErrorCode::NotReady, "the engine is recovering, or its store is not taking writes; nothing was changed, try again shortly")
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Forbidden, message)
    }

    /// A request that failed on the way: 503 `store_unavailable` (with Retry-After) when
    /// the database cannot be reached just now, 500 `internal` for anything else.
    pub fn failed(e: anyhow::Error) -> ApiError {
        if crate::live::store::is_unavailable(&e) {
            tracing::warn!(error = %format!("{e:#}"), "HTTP request refused: the store is unavailable");
            let mut out = ApiError::new(ErrorCode::StoreUnavailable, "the database cannot be reached just now; try again shortly");
            out.retry_after = Some(Duration::from_secs(5));
            return out;
        }
        tracing::error!(error = %format!("{e:#}"), "HTTP request failed");
        ApiError::new(ErrorCode::Internal, "something went wrong; see the engine's log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = axum::Json(Body { error: self.code.as_str(), message: &self.message });
        let mut r = (self.code.status(), body).into_response();
        if let Some(wait) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, wait.as_secs().max(1).to_string().parse().expect("digits"));
        }
        r
    }
}

/// The API's own refusals are JSON already. What axum refuses before a handler runs (a
/// path or query that does not parse, a method the path does not take) comes as text:
/// it gets the same `{"error", "message"}` shape, so an API client reads every error
/// one way.
pub(super) async fn json_errors(r: Response) -> Response {
    let status = r.status();
    let json = r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return r;
    }
    let code = match status {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::BodyTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        s if s.is_client_error() => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    };
    let (parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.map(|b| String::from_utf8_lossy(&b).trim().to_owned()).unwrap_or_default();
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("refused").to_lowercase() } else { text };
    // The status axum chose stays (a 4xx without a code of its own is `bad_request`).
    let (mut head, body) = ApiError::new(code, message).into_response().into_parts();
    head.status = status;
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        head.headers.insert(header::ALLOW, allow.clone());
    }
    Response::from_parts(head, body)
}
