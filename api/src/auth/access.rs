//! Authorization: one layer for sessions and tokens alike. A handler names
//! what it needs by its extractor — [`Admin`], or a project role
//! ([`Viewer`], [`Member`], [`Owner`]) — and gets the project it acts in.
//!
//! A route under `/v1/projects/{project_id}/…` acts in that project. Else
//! a token acts in its own, and a person (or the admin token) names the
//! project in the `Slipway-Project` header (its id or name). A project the caller is not
//! in answers 404, as any other project's resources do; a role too small
//! answers 403.

use super::caller::{Actor, Caller};
use super::Role;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use uuid::Uuid;

/// The request header naming the project a person acts in.
pub const PROJECT_HEADER: &str = "slipway-project";

/// The project a request acts in, and the caller's role there.
#[derive(Debug, Clone, Copy)]
pub struct Project {
    pub id: Uuid,
    pub role: Role,
}

/// The caller is a platform admin: the admin token or an admin user.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        match caller.actor {
            Actor::Anonymous | Actor::Invalid => Err(ApiError::Unauthorized),
            _ if caller.is_platform_admin() => Ok(Admin),
            _ => Err(ApiError::Forbidden),
        }
    }
}

/// The caller, if it may act in `project_id` with at least `needed`.
pub async fn authorize(
    state: &AppState,
    caller: &Caller,
    project_id: Uuid,
    needed: Role,
) -> Result<Project, ApiError> {
    let _ = caller.project.set(project_id);
    let role = match &caller.actor {
        Actor::Anonymous | Actor::Invalid => return Err(ApiError::Unauthorized),
        Actor::Token(token) if token.project_id == project_id => token.role,
        Actor::Token(_) => return Err(ApiError::NotFound("project")),
        Actor::AdminToken => admin_role(state, project_id).await?,
        Actor::User(user) if user.is_admin => admin_role(state, project_id).await?,
        Actor::User(user) => {
            let role: Option<String> = sqlx::query_scalar(
                "SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2",
            )
            .bind(project_id)
            .bind(user.id)
            .fetch_optional(&state.pool)
            .await?;
            role.as_deref()
                .and_then(Role::parse)
                .ok_or(ApiError::NotFound("project"))?
        }
    };
    if !role.covers(needed) {
        return Err(ApiError::Forbidden);
    }
    Ok(Project {
        id: project_id,
        role,
    })
}

/// A platform admin owns every project there is.
async fn admin_role(state: &AppState, project_id: Uuid) -> Result<Role, ApiError> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1)")
        .bind(project_id)
        .fetch_one(&state.pool)
        .await?;
    if exists {
        Ok(Role::Owner)
    } else {
        Err(ApiError::NotFound("project"))
    }
}

/// The project a request acts in: a token's own, else the header's.
pub async fn requested_project(
    headers: &axum::http::HeaderMap,
    state: &AppState,
    caller: &Caller,
) -> Result<Uuid, ApiError> {
    match &caller.actor {
        Actor::Anonymous | Actor::Invalid => return Err(ApiError::Unauthorized),
        Actor::Token(token) => return Ok(token.project_id),
        Actor::AdminToken | Actor::User(_) => {}
    }
    let named = headers
        .get(PROJECT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::refused(
                axum::http::StatusCode::BAD_REQUEST,
                "project_required",
                format!("name the project to act in with the `{PROJECT_HEADER}` header (its id or name)"),
            )
        })?;
    let id: Option<Uuid> = match named.parse::<Uuid>() {
        Ok(id) => {
            sqlx::query_scalar("SELECT id FROM projects WHERE id = $1")
                .bind(id)
                .fetch_optional(&state.pool)
                .await?
        }
        Err(_) => {
            sqlx::query_scalar("SELECT id FROM projects WHERE name = $1")
                .bind(named)
                .fetch_optional(&state.pool)
                .await?
        }
    };
    id.ok_or(ApiError::NotFound("project"))
}

/// The `{project_id}` of the route's path, if it has one.
async fn path_project(parts: &mut Parts, state: &AppState) -> Result<Option<Uuid>, ApiError> {
    let params = axum::extract::RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::Invalid {
            code: "bad_path",
            message: e.body_text(),
        })?;
    let Some((_, value)) = params.iter().find(|(name, _)| *name == "project_id") else {
        return Ok(None);
    };
    value.parse().map(Some).map_err(|_| ApiError::Invalid {
        code: "bad_path",
        message: format!("project_id: `{value}` is not a UUID"),
    })
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name(pub Project);

        impl std::ops::Deref for $name {
            type Target = Project;
            fn deref(&self) -> &Project {
                &self.0
            }
        }

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, ApiError> {
                let caller = Caller::from_request_parts(parts, state).await?;
                let project_id = match path_project(parts, state).await? {
                    Some(id) => id,
                    None => requested_project(&parts.headers, state, &caller).await?,
                };
                authorize(state, &caller, project_id, $role).await.map($name)
            }
        }
    };
}

role_extractor!(
    /// The caller may read the project (any role).
    Viewer,
    Role::Viewer
);
role_extractor!(
    /// The caller may ship code in the project: member or owner.
    Member,
    Role::Member
);
role_extractor!(
    /// The caller owns the project.
    Owner,
    Role::Owner
);

/// The caller is a person signed in with a session (not a token).
pub struct SignedIn(pub super::caller::UserActor);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        match caller.actor {
            Actor::User(user) => Ok(SignedIn(user)),
            Actor::Anonymous | Actor::Invalid => Err(ApiError::Unauthorized),
            _ => Err(ApiError::refused(
                axum::http::StatusCode::FORBIDDEN,
                "session_required",
                "this is for people signed in with a session, not for tokens",
            )),
        }
    }
}
