//! Invitations (owners make them): one-use links that make a new or
//! existing account a member of the project with the invited role.

use super::users::{insert, parse_email};
use crate::auth::{self, password, session, Caller, Owner, Role};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::openapi::{views, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    #[schema(example = "bob@example.com", max_length = 320)]
    email: String,
    role: Role,
}

/// Invite a person to the project with a role: the answer holds the
/// one-use link (also mailed when SMTP is configured).
#[utoipa::path(post, path = "/v1/projects/{project_id}/invitations", tag = "members", operation_id = "create_invitation",
    security(("project_token" = ["owner"])), request_body = Invite,
    params(("project_id" = Uuid, Path, description = "The project's id")),
    responses(
        (status = 201, description = "The invitation and its link, shown only here", body = views::Invitation),
        (status = 404, description = "`not_found`: no such project", body = ErrorBody),
        (status = 409, description = "`already_member`: that person is a member; `already_invited`: an open invitation exists", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn invite(
    _: Owner,
    caller: Caller,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
    Json(body): Json<Invite>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let email = parse_email(&body.email)?;
    let member: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM project_members m JOIN users u ON u.id = m.user_id \
         WHERE m.project_id = $1 AND lower(u.email) = lower($2))",
    )
    .bind(project_id)
    .bind(&email)
    .fetch_one(&state.pool)
    .await?;
    if member {
        return Err(ApiError::conflict(
            "already_member",
            format!("`{email}` is a member of this project"),
        ));
    }
    let secret = auth::random_secret();
    let id = Uuid::now_v7();
    let expires_at = Utc::now()
        + chrono::Duration::from_std(state.accounts.invitation_ttl)
            .unwrap_or(chrono::Duration::days(7));
    let inserted = sqlx::query(
        "INSERT INTO invitations (id, project_id, email, role, token_sha256, invited_by, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(project_id)
    .bind(&email)
    .bind(body.role.as_str())
    .bind(auth::hash(&secret))
    .bind(caller.describe().2)
    .bind(expires_at)
    .execute(&state.pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(ApiError::conflict(
            "already_invited",
            format!("`{email}` has an open invitation; revoke it to send another"),
        ));
    }
    let url = crate::mail::link(&state, &format!("/invite/{secret}"));
    let mailed = crate::mail::send(&state, &email, "You are invited to a Slipway project",
        &format!("You are invited as {} to a Slipway project. Accept at:\n\n{url}\n\nThe link works once, until {expires_at}.\n", body.role)).await;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "id": id, "project_id": project_id, "email": email, "role": body.role,
            "expires_at": expires_at, "url": url, "token": secret, "mailed": mailed,
        })),
    ))
}

/// List the project's open invitations (never their links).
#[utoipa::path(get, path = "/v1/projects/{project_id}/invitations", tag = "members", operation_id = "list_invitations",
    security(("project_token" = ["owner"])), params(("project_id" = Uuid, Path, description = "The project's id")),
    responses((status = 200, description = "Open invitations, newest first", body = views::Items<views::InvitationListed>)))]
pub async fn list(
    _: Owner,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
) -> Result<axum::Json<Value>, ApiError> {
    type Row = (Uuid, String, String, String, DateTime<Utc>, DateTime<Utc>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, email, role, invited_by, created_at, expires_at FROM invitations \
         WHERE project_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now() \
         ORDER BY created_at DESC",
    )
    .bind(project_id)
    .fetch_all(&state.pool)
    .await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(id, email, role, invited_by, created_at, expires_at)| {
            json!({
                "id": id, "project_id": project_id, "email": email, "role": role,
                "invited_by": invited_by, "created_at": created_at, "expires_at": expires_at,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}

/// Revoke an open invitation.
#[utoipa::path(delete, path = "/v1/projects/{project_id}/invitations/{invitation_id}", tag = "members", operation_id = "revoke_invitation",
    security(("project_token" = ["owner"])),
    params(("project_id" = Uuid, Path, description = "The project's id"), ("invitation_id" = Uuid, Path, description = "The invitation's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "`not_found`: no open invitation with that id", body = ErrorBody),
    ))]
pub async fn revoke(
    _: Owner,
    State(state): State<AppState>,
    Path((project_id, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let done = sqlx::query(
        "UPDATE invitations SET revoked_at = now() WHERE id = $1 AND project_id = $2 \
         AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(project_id)
    .execute(&state.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound("invitation"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    /// A new account's password, or an existing account's current one.
    #[schema(max_length = 1024)]
    password: String,
}

/// Accept an invitation: a new account is created with this password (an
/// existing one proves itself with its password), becomes a member with
/// the invited role, and is signed in.
#[utoipa::path(post, path = "/v1/invitations/{token}/accept", tag = "members", operation_id = "accept_invitation",
    request_body = Accept, params(("token" = String, Path, description = "The secret from the link")),
    responses(
        (status = 201, description = "A member, signed in (the session cookie is set)", body = views::SignedIn),
        (status = 401, description = "`invalid_credentials`: the existing account's password is wrong or it is disabled", body = ErrorBody),
        (status = 404, description = "`not_found`: no such open invitation", body = ErrorBody),
        (status = 422, description = "`weak_password`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn accept(
    caller: Caller,
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Path(token): Path<String>,
    Json(body): Json<Accept>,
) -> Result<Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    let found: Option<(Uuid, Uuid, String, String)> = sqlx::query_as(
        "SELECT id, project_id, email, role FROM invitations WHERE token_sha256 = $1 \
         AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now() FOR UPDATE",
    )
    .bind(auth::hash(&token))
    .fetch_optional(&mut *tx)
    .await?;
    let (invitation, project_id, email, role) = found.ok_or(ApiError::NotFound("invitation"))?;
    let _ = caller.project.set(project_id);
    let existing: Option<(Uuid, Option<String>, bool, bool)> = sqlx::query_as(
        "SELECT id, password_hash, disabled_at IS NOT NULL, is_admin FROM users WHERE lower(email) = lower($1)",
    )
    .bind(&email)
    .fetch_optional(&mut *tx)
    .await?;
    let (user_id, is_admin) = match existing {
        Some((id, stored, disabled, is_admin)) => {
            let ok = password::verify_blocking(body.password, stored.unwrap_or_default()).await?;
            if !ok || disabled {
                return Err(ApiError::refused(
                    StatusCode::UNAUTHORIZED,
                    "invalid_credentials",
                    "an account with this email exists: give its current password",
                ));
            }
            (id, is_admin)
        }
        None => {
            password::check_strength(&body.password, &email)?;
            let hash = password::hash_blocking(body.password).await?;
            (insert(&mut tx, &email, &hash, false).await?, false)
        }
    };
    sqlx::query("INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(project_id)
        .bind(user_id)
        .bind(&role)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE invitations SET accepted_at = now() WHERE id = $1")
        .bind(invitation)
        .execute(&mut *tx)
        .await?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let new = session::create(&mut tx, &state, user_id, caller.address, user_agent).await?;
    tx.commit().await?;
    let answer = json!({
        "user": {"id": user_id, "email": email, "is_admin": is_admin},
        "session_id": new.id, "csrf_token": new.csrf_token, "expires_at": new.expires_at,
        "project": {"id": project_id, "role": role},
    });
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, session::set_cookie(&state, &new))],
        axum::Json(answer),
    )
        .into_response())
}
