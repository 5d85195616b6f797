//! The API's one error type: 4xx answers carry a stable `code` and a clear
//! `message`; a 500 is logged with its cause chain and says nothing inside.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("missing, invalid, expired or revoked credentials")]
    Unauthorized,
    #[error("your role in this project may not do that")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A refusal whose status no other variant names (401 for webhooks,
    /// 413, 415).
    #[error("{message}")]
    Refused {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// Too many attempts: 429 with `Retry-After`.
    #[error("{message}")]
    TooManyRequests { retry_after: u64, message: String },
    /// The database cannot be reached right now: 503 with `Retry-After`.
    #[error("the database is not reachable right now; retry shortly")]
    DatabaseUnavailable,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECONDS: &str = "2";

impl ApiError {
    /// A request that parsed but breaks a rule (422 `validation_failed`).
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code: "validation_failed",
            message: message.into(),
        }
    }

    pub fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Refused {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
    }
}

impl ApiError {
    /// A transaction the database aborted (deadlock victim, serialization
    /// conflict): running it again is the answer (see [`crate::retry`]).
    pub fn is_abort(&self) -> bool {
        match self {
            ApiError::Unexpected(error) => error
                .chain()
                .filter_map(|cause| cause.downcast_ref::<sqlx::Error>())
                .any(crate::retry::is_abort),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if slipway_shared::db::is_unavailable(&error) {
            tracing::warn!(%error, "database unavailable");
            return ApiError::DatabaseUnavailable;
        }
        // Text and jsonb cannot hold a NUL character: Postgres refuses the
        // value (22021, 22P05). Only input can carry one, so it is the
        // caller's mistake, not a 500 (the fuzzer found these).
        let nul = error
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| code == "22021" || code == "22P05");
        if nul {
            return ApiError::validation("text may not contain NUL characters");
        }
        ApiError::Unexpected(anyhow::Error::new(error).context("database error"))
    }
}

/// Whether an unexpected error was, deep down, the database being away
/// (errors that travelled through `anyhow` before reaching a handler).
fn database_away(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<sqlx::Error>())
        .any(slipway_shared::db::is_unavailable)
}

impl From<slipway_shared::domain::Invalid> for ApiError {
    fn from(error: slipway_shared::domain::Invalid) -> Self {
        ApiError::Invalid {
            code: "validation_failed",
            message: error.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Invalid { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, *code),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, *code),
            ApiError::Refused { status, code, .. } => (*status, *code),
            ApiError::DatabaseUnavailable => return database_unavailable(),
            ApiError::TooManyRequests {
                retry_after,
                message,
            } => {
                let body = json!({"code": "too_many_attempts", "message": message});
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(axum::http::header::RETRY_AFTER, retry_after.to_string())],
                    Json(body),
                )
                    .into_response();
            }
            ApiError::Unexpected(error) if database_away(error) => {
                tracing::warn!(error = format!("{error:#}"), "database unavailable");
                return database_unavailable();
            }
            ApiError::Unexpected(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                let body =
                    json!({"code": "internal", "message": "internal error; see the server log"});
                return (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
            }
        };
        let status = match (&self, code) {
            (ApiError::Invalid { .. }, "malformed_json" | "bad_path" | "bad_query") => {
                StatusCode::BAD_REQUEST
            }
            _ => status,
        };
        (
            status,
            Json(json!({"code": code, "message": self.to_string()})),
        )
            .into_response()
    }
}

fn database_unavailable() -> Response {
    let body = json!({
        "code": "database_unavailable",
        "message": ApiError::DatabaseUnavailable.to_string(),
    });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, RETRY_AFTER_SECONDS)],
        Json(body),
    )
        .into_response()
}
