//! Shapes of people, sessions, members, tokens and audit rows.

use super::*;

/// A new project token; `token` is shown only in this answer.
#[derive(ToSchema)]
pub struct NewToken {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    #[schema(value_type = crate::auth::Role)]
    pub role: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Who made it: an email, `admin token` or `token NAME`.
    pub created_by: String,
    #[schema(example = "slw_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    pub token: String,
}

/// A project token as listed: never its secret.
#[derive(ToSchema)]
pub struct Token {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    #[schema(value_type = crate::auth::Role)]
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Written at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_by: Option<String>,
}

/// One recorded call.
#[derive(ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `admin_token`, `user`, `token`, `webhook` or `anonymous`.
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    /// An email, `token NAME`, `admin token`, `webhook` or `anonymous`.
    pub actor: String,
    pub project_id: Option<Uuid>,
    /// The operation id of the route called, e.g. `create_app`.
    pub action: String,
    pub method: String,
    /// The path called (never the body).
    pub resource: String,
    pub status: i32,
    /// `succeeded` (2xx/3xx), `refused` (4xx) or `failed` (5xx).
    pub outcome: String,
    pub source_address: Option<String>,
}

/// A page of the audit log, newest first.
#[derive(ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// The cursor of the next page (`?before=`); `null` on the last page.
    pub next: Option<i64>,
}

/// A person.
#[derive(ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub is_admin: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(ToSchema)]
pub struct UserRef {
    pub id: Uuid,
    pub email: String,
    pub is_admin: bool,
}

/// A new session: the cookie is set; send `csrf_token` as `X-CSRF-Token`
/// on state-changing requests.
#[derive(ToSchema)]
pub struct SignedIn {
    pub user: UserRef,
    pub session_id: Uuid,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
    /// After accepting an invitation: the project joined and the role.
    pub project: Option<Value>,
}

#[derive(ToSchema)]
pub struct Membership {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = crate::auth::Role)]
    pub role: String,
}

/// The signed-in person.
#[derive(ToSchema)]
pub struct Me {
    pub user: UserRef,
    pub session_id: Uuid,
    pub csrf_token: String,
    pub projects: Vec<Membership>,
}

/// A live session of the caller's.
#[derive(ToSchema)]
pub struct Session {
    pub id: Uuid,
    pub address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The session of this request.
    pub current: bool,
}

/// A one-use link; `token` is its secret, shown only here.
#[derive(ToSchema)]
pub struct Link {
    /// On `SLIPWAY_PUBLIC_URL`, or a path when none is set.
    pub url: String,
    pub token: String,
    pub expires_at: DateTime<Utc>,
    /// Whether it was also mailed (SMTP configured and the server took it).
    pub mailed: bool,
}

/// A project member.
#[derive(ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    #[schema(value_type = crate::auth::Role)]
    pub role: String,
    pub since: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

/// A new invitation; `url` and `token` are shown only here.
#[derive(ToSchema)]
pub struct Invitation {
    pub id: Uuid,
    pub project_id: Uuid,
    pub email: String,
    #[schema(value_type = crate::auth::Role)]
    pub role: String,
    pub expires_at: DateTime<Utc>,
    pub url: String,
    pub token: String,
    pub mailed: bool,
}

/// An open invitation as listed.
#[derive(ToSchema)]
pub struct InvitationListed {
    pub id: Uuid,
    pub project_id: Uuid,
    pub email: String,
    #[schema(value_type = crate::auth::Role)]
    pub role: String,
    pub invited_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}
