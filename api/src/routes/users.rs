//! People: platform admins list, disable, enable and delete users and
//! issue password-reset links; people change their own password (which
//! ends all their sessions); a reset link sets a new one.

use crate::auth::{self, password, Admin, SignedIn};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::openapi::{views, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// Creates a user (the first admin's command, invitations): 409
/// `email_taken` if the email is someone's.
pub async fn insert(
    conn: &mut sqlx::PgConnection,
    email: &str,
    password_hash: &str,
    is_admin: bool,
) -> Result<Uuid, ApiError> {
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, password_hash, is_admin, password_changed_at) \
         VALUES ($1, $2, $3, $4, now()) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(email)
    .bind(password_hash)
    .bind(is_admin)
    .execute(conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(ApiError::conflict(
            "email_taken",
            format!("a user with the email `{email}` exists"),
        ));
    }
    Ok(id)
}

/// An email as people type it: trimmed, one `@`, something either side.
pub fn parse_email(text: &str) -> Result<String, ApiError> {
    let email = text.trim();
    let valid = email.len() <= 320
        && email.split('@').count() == 2
        && email.split('@').all(|part| !part.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(ApiError::validation("email: must be an email address"));
    }
    Ok(email.to_owned())
}

type UserRow = (Uuid, String, bool, Option<DateTime<Utc>>, DateTime<Utc>);

fn user_view((id, email, is_admin, disabled_at, created_at): UserRow) -> Value {
    json!({"id": id, "email": email, "is_admin": is_admin, "disabled_at": disabled_at, "created_at": created_at})
}

/// List every user.
#[utoipa::path(get, path = "/v1/users", tag = "users", operation_id = "list_users",
    security(("admin_token" = [])),
    responses((status = 200, description = "Users, by email", body = views::Items<views::User>)))]
pub async fn list(_: Admin, State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let rows: Vec<UserRow> = sqlx::query_as(
        "SELECT id, email, is_admin, disabled_at, created_at FROM users ORDER BY lower(email)",
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(axum::Json(
        json!({"items": rows.into_iter().map(user_view).collect::<Vec<_>>()}),
    ))
}

/// Disable a user: their sessions end and they cannot sign in.
#[utoipa::path(post, path = "/v1/users/{id}/disable", tag = "users", operation_id = "disable_user",
    security(("admin_token" = [])), params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = views::User),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
    ))]
pub async fn disable(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let row: Option<UserRow> = sqlx::query_as(
        "UPDATE users SET disabled_at = coalesce(disabled_at, now()) WHERE id = $1 \
         RETURNING id, email, is_admin, disabled_at, created_at",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or(ApiError::NotFound("user"))?;
    end_sessions(&mut tx, id).await?;
    tx.commit().await?;
    Ok(axum::Json(user_view(row)))
}

/// Enable a disabled user.
#[utoipa::path(post, path = "/v1/users/{id}/enable", tag = "users", operation_id = "enable_user",
    security(("admin_token" = [])), params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = views::User),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
    ))]
pub async fn enable(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Value>, ApiError> {
    let row: Option<UserRow> = sqlx::query_as(
        "UPDATE users SET disabled_at = NULL WHERE id = $1 \
         RETURNING id, email, is_admin, disabled_at, created_at",
    )
    .bind(id)
    .fetch_optional(&state.pool)
    .await?;
    Ok(axum::Json(user_view(
        row.ok_or(ApiError::NotFound("user"))?,
    )))
}

/// Delete a user, their memberships and sessions. The last admin stays.
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users", operation_id = "delete_user",
    security(("admin_token" = [])), params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 409, description = "`last_admin`: the only enabled admin cannot be deleted", body = ErrorBody),
    ))]
pub async fn delete(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    // Admins are locked in one order so two deletes cannot both pass.
    let admins: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM users WHERE is_admin AND disabled_at IS NULL ORDER BY id FOR UPDATE",
    )
    .fetch_all(&mut *tx)
    .await?;
    if admins == [id] {
        return Err(ApiError::conflict(
            "last_admin",
            "this is the only enabled admin; make another admin first",
        ));
    }
    let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(ApiError::NotFound("user"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of a user.
pub async fn end_sessions(conn: &mut sqlx::PgConnection, user: Uuid) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Issue a one-use password-reset link for a user (mailed when SMTP is set).
#[utoipa::path(post, path = "/v1/users/{id}/password-reset", tag = "users", operation_id = "create_password_reset",
    security(("admin_token" = [])), params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 201, description = "The link, shown only here", body = views::Link),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
    ))]
pub async fn create_reset(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let email: Option<String> = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(&state.pool)
        .await?;
    let email = email.ok_or(ApiError::NotFound("user"))?;
    let secret = auth::random_secret();
    let expires_at = Utc::now()
        + chrono::Duration::from_std(state.accounts.reset_ttl)
            .unwrap_or(chrono::Duration::hours(1));
    sqlx::query("INSERT INTO password_resets (id, user_id, token_sha256, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(Uuid::now_v7())
        .bind(id)
        .bind(auth::hash(&secret))
        .bind(expires_at)
        .execute(&state.pool)
        .await?;
    let url = crate::mail::link(&state, &format!("/reset/{secret}"));
    let mailed = crate::mail::send(&state, &email, "Reset your Slipway password",
        &format!("Set a new password for {email} at:\n\n{url}\n\nThe link works once, until {expires_at}.\n")).await;
    Ok((
        StatusCode::CREATED,
        axum::Json(
            json!({"url": url, "token": secret, "expires_at": expires_at, "mailed": mailed}),
        ),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    #[schema(min_length = 12, max_length = 1024)]
    password: String,
}

/// Set a new password with a reset link's token; every session of the user ends.
#[utoipa::path(post, path = "/v1/password-resets/{token}", tag = "users", operation_id = "use_password_reset",
    request_body = NewPassword, params(("token" = String, Path, description = "The secret from the link")),
    responses(
        (status = 204, description = "The password is set"),
        (status = 404, description = "`not_found`: no such link, or it was used or has expired", body = ErrorBody),
        (status = 422, description = "`weak_password`", body = ErrorBody),
    ))]
pub async fn use_reset(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Json(body): Json<NewPassword>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    let found: Option<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT r.id, u.id, u.email FROM password_resets r JOIN users u ON u.id = r.user_id \
         WHERE r.token_sha256 = $1 AND r.used_at IS NULL AND r.expires_at > now() FOR UPDATE OF r",
    )
    .bind(auth::hash(&token))
    .fetch_optional(&mut *tx)
    .await?;
    let (reset, user, email) = found.ok_or(ApiError::NotFound("password reset"))?;
    password::check_strength(&body.password, &email)?;
    let hash = password::hash_blocking(body.password).await?;
    set_password(&mut tx, user, &hash).await?;
    sqlx::query("UPDATE password_resets SET used_at = now() WHERE id = $1")
        .bind(reset)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stores a new password hash and ends every session of the user.
async fn set_password(
    conn: &mut sqlx::PgConnection,
    user: Uuid,
    hash: &str,
) -> Result<(), ApiError> {
    sqlx::query("UPDATE users SET password_hash = $2, password_changed_at = now() WHERE id = $1")
        .bind(user)
        .bind(hash)
        .execute(&mut *conn)
        .await?;
    end_sessions(conn, user).await?;
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    #[schema(max_length = 1024)]
    current_password: String,
    #[schema(min_length = 12, max_length = 1024)]
    new_password: String,
}

/// Change one's own password: every session ends, this one included.
#[utoipa::path(post, path = "/v1/me/password", tag = "sessions", operation_id = "change_password",
    security(("session" = [])), request_body = ChangePassword,
    responses(
        (status = 204, description = "Changed; sign in again"),
        (status = 422, description = "`wrong_password`: the current password is wrong; `weak_password`", body = ErrorBody),
    ))]
pub async fn change_password(
    SignedIn(user): SignedIn,
    State(state): State<AppState>,
    Json(body): Json<ChangePassword>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let stored: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(user.id)
            .fetch_one(&state.pool)
            .await?;
    let current_ok =
        password::verify_blocking(body.current_password, stored.unwrap_or_default()).await?;
    if !current_ok {
        return Err(ApiError::Invalid {
            code: "wrong_password",
            message: "current_password: is not the account's password".into(),
        });
    }
    password::check_strength(&body.new_password, &user.email)?;
    let hash = password::hash_blocking(body.new_password).await?;
    let mut tx = state.pool.begin().await?;
    set_password(&mut tx, user.id, &hash).await?;
    tx.commit().await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(
            axum::http::header::SET_COOKIE,
            auth::session::clear_cookie(&state),
        )],
    )
        .into_response())
}
