//! Signing in and out: `POST /v1/sessions` trades an email and password
//! for a session cookie (and the CSRF token its state-changing requests
//! send); people list and revoke their own sessions.

use crate::auth::{password, ratelimit, session, Caller, SignedIn};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::openapi::{views, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    #[schema(example = "alice@example.com", max_length = 320)]
    email: String,
    #[schema(max_length = 1024)]
    password: String,
}

/// Sign in.
///
/// Failed attempts are limited per account and per client address:
/// past the limit the answer is `429` with `Retry-After`.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", operation_id = "sign_in",
    request_body = SignIn,
    responses(
        (status = 201, description = "Signed in: the `slipway_session` cookie is set", body = views::SignedIn,
         headers(("set-cookie" = String, description = "The session cookie (HttpOnly, SameSite=Lax)"))),
        (status = 401, description = "`invalid_credentials`: no such account, a wrong password or a disabled account", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: wait `Retry-After` seconds", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn sign_in(
    caller: Caller,
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<SignIn>,
) -> Result<Response, ApiError> {
    let email = body.email.trim().to_owned();
    let keys = ratelimit::Keys::new(&state.accounts.signin, &email, caller.address);
    ratelimit::check(&state.pool, &state.accounts.signin, &keys).await?;
    type Row = (Uuid, Option<String>, bool, bool);
    let account: Option<Row> = sqlx::query_as(
        "SELECT id, password_hash, disabled_at IS NOT NULL, is_admin FROM users WHERE lower(email) = lower($1)",
    )
    .bind(&email)
    .fetch_optional(&state.pool)
    .await?;
    // A missing account costs one verification too: timing tells nothing.
    let stored = account
        .as_ref()
        .and_then(|(_, hash, _, _)| hash.clone())
        .unwrap_or_else(|| password::decoy().to_owned());
    let matches = password::verify_blocking(body.password, stored).await?;
    let user = match account {
        Some((id, Some(_), false, is_admin)) if matches => (id, is_admin),
        _ => {
            ratelimit::record_failure(&state.pool, &state.accounts.signin, &keys).await?;
            return Err(ApiError::refused(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "the email or password is wrong, or the account is disabled",
            ));
        }
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let mut conn = state.pool.acquire().await?;
    let new = session::create(&mut conn, &state, user.0, caller.address, user_agent).await?;
    let body = json!({
        "user": {"id": user.0, "email": email, "is_admin": user.1},
        "session_id": new.id,
        "csrf_token": new.csrf_token,
        "expires_at": new.expires_at,
    });
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, session::set_cookie(&state, &new))],
        axum::Json(body),
    )
        .into_response())
}

/// Sign out: ends the session of this request and clears its cookie.
#[utoipa::path(delete, path = "/v1/session", tag = "sessions", operation_id = "sign_out",
    security(("session" = [])),
    responses((status = 204, description = "Signed out")))]
pub async fn sign_out(
    SignedIn(user): SignedIn,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(user.session_id)
        .execute(&state.pool)
        .await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session::clear_cookie(&state))],
    )
        .into_response())
}

/// Who is signed in, with the session's CSRF token and the projects.
#[utoipa::path(get, path = "/v1/me", tag = "sessions", operation_id = "me",
    security(("session" = [])),
    responses((status = 200, description = "The signed-in person", body = views::Me)))]
pub async fn me(
    SignedIn(user): SignedIn,
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, ApiError> {
    let csrf: String = sqlx::query_scalar("SELECT csrf_token FROM sessions WHERE id = $1")
        .bind(user.session_id)
        .fetch_one(&state.pool)
        .await?;
    let projects: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT p.id, p.name, m.role FROM project_members m JOIN projects p ON p.id = m.project_id \
         WHERE m.user_id = $1 ORDER BY p.name",
    )
    .bind(user.id)
    .fetch_all(&state.pool)
    .await?;
    let projects: Vec<Value> = projects
        .into_iter()
        .map(|(id, name, role)| json!({"id": id, "name": name, "role": role}))
        .collect();
    Ok(axum::Json(json!({
        "user": {"id": user.id, "email": user.email, "is_admin": user.is_admin},
        "session_id": user.session_id,
        "csrf_token": csrf,
        "projects": projects,
    })))
}

/// List one's own sessions that have not ended.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions", operation_id = "list_sessions",
    security(("session" = [])),
    responses((status = 200, description = "The caller's live sessions, newest first", body = views::Items<views::Session>)))]
pub async fn list(
    SignedIn(user): SignedIn,
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, ApiError> {
    type Row = (
        Uuid,
        Option<String>,
        Option<String>,
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, address, user_agent, created_at, last_seen_at, expires_at FROM sessions \
         WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() \
           AND last_seen_at > now() - make_interval(secs => $2) \
         ORDER BY created_at DESC",
    )
    .bind(user.id)
    .bind(state.accounts.session_idle.as_secs_f64())
    .fetch_all(&state.pool)
    .await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(id, address, user_agent, created_at, last_seen_at, expires_at)| {
            json!({
                "id": id, "address": address, "user_agent": user_agent, "created_at": created_at,
                "last_seen_at": last_seen_at, "expires_at": expires_at,
                "current": id == user.session_id,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}

/// Revoke one of one's own sessions.
#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "sessions", operation_id = "revoke_session",
    security(("session" = [])), params(("id" = Uuid, Path, description = "The session's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "`not_found`: no live session of the caller's with that id", body = ErrorBody),
    ))]
pub async fn revoke(
    SignedIn(user): SignedIn,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(user.id)
    .execute(&state.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound("session"));
    }
    Ok(StatusCode::NO_CONTENT)
}
