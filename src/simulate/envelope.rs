//! The `{"code","message","data"}` envelope of every non-token answer
//! (docs/protocol.md §3), and `Refusal`, the one place where a refused request is
//! mapped to its HTTP status and library code.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

/// The library's code for success.
pub(crate) const SUCCESS: &str = "000000";

/// A 200 answer carrying `data`.
pub(crate) fn success(data: impl Serialize) -> Response {
    Json(json!({"code": SUCCESS, "message": "成功", "data": data})).into_response()
}

/// Why the library refused a request, one variant per code of docs/protocol.md §3.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// 400 400001: the body or the headers do not have the required shape.
    #[error("malformed batch: {0}")]
    Malformed(String),
    /// 400 400002: a record `hash` or the batch `digest` does not match.
    #[error("hash mismatch: {0}")]
    Mismatch(String),
    /// 400 400003: the category/resource pair is not a known route.
    #[error("unknown category/resource {0}")]
    UnknownRoute(String),
    /// 400 400003 as well: the route carries another dataset.
    #[error("route {route} carries dataset {carries}, not {dataset}")]
    WrongDataset {
        route: String,
        carries: String,
        dataset: String,
    },
    /// 401 401001.
    #[error("token invalid or expired")]
    Unauthorized,
    /// 403 403001: the batch's `sender` is not the one the credential is
    /// registered for.
    #[error("sender {sender:?} is not the sender this credential is registered for")]
    ForeignSender { sender: String },
    /// 409 409001: the sender reused a batchId for different content.
    #[error("batchId {0} was accepted before with a different digest")]
    Conflict(String),
    /// 413 413001.
    #[error("batch too large: {0}")]
    TooLarge(String),
    /// 503 with `Retry-After`: an injected overload.
    #[error("overloaded (injected fault), retry later")]
    Overloaded { retry_after_secs: u64 },
    /// 500: the simulator itself failed (its database, typically).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::Malformed(_)
            | Refusal::Mismatch(_)
            | Refusal::UnknownRoute(_)
            | Refusal::WrongDataset { .. } => StatusCode::BAD_REQUEST,
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::ForeignSender { .. } => StatusCode::FORBIDDEN,
            Refusal::Conflict(_) => StatusCode::CONFLICT,
            Refusal::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The library code carried in the envelope.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "400001",
            Refusal::Mismatch(_) => "400002",
            Refusal::UnknownRoute(_) | Refusal::WrongDataset { .. } => "400003",
            Refusal::Unauthorized => "401001",
            Refusal::ForeignSender { .. } => "403001",
            Refusal::Conflict(_) => "409001",
            Refusal::TooLarge(_) => "413001",
            Refusal::Overloaded { .. } => "503001",
            Refusal::Internal(_) => "500001",
        }
    }

    /// The `/sim/stats` counter this refusal is counted under.
    pub(crate) fn counter(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::Mismatch(_) => "mismatched",
            Refusal::UnknownRoute(_) | Refusal::WrongDataset { .. } => "unknown_route",
            Refusal::Unauthorized => "unauthorized",
            Refusal::ForeignSender { .. } => "foreign_sender",
            Refusal::Conflict(_) => "conflicts",
            Refusal::TooLarge(_) => "too_large",
            Refusal::Overloaded { .. } => "faults_injected",
            Refusal::Internal(_) => "internal_errors",
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = Json(json!({
            "code": self.code(),
            "message": self.to_string(),
            "data": null,
        }));
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        match self {
            Refusal::Overloaded { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            Refusal::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            _ => {}
        }
        response
    }
}
