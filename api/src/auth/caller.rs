//! Who is calling: resolved once per request by the [`authenticate`]
//! middleware from a bearer token or a session cookie, and stored in the
//! request's extensions for the authorization extractors
//! ([`super::access`]) and the audit log ([`crate::audit`]).
//!
//! Credentials that are present but not valid (unknown, revoked, expired,
//! a disabled user) do not stop the request here: public routes ignore
//! them, and every guarded route answers 401.

use super::{address, hash, session, Role, TOKEN_PREFIX};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// The request header a browser session's state-changing requests carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Debug, Clone)]
pub enum Actor {
    /// `SLIPWAY_ADMIN_TOKEN`: a platform admin.
    AdminToken,
    /// A person signed in with a session cookie.
    User(UserActor),
    /// A project token.
    Token(TokenActor),
    /// No credentials.
    Anonymous,
    /// Credentials that are not (or no longer) valid.
    Invalid,
}

#[derive(Debug, Clone)]
pub struct UserActor {
    pub id: Uuid,
    pub email: String,
    pub is_admin: bool,
    pub session_id: Uuid,
}

#[derive(Debug, Clone)]
pub struct TokenActor {
    pub id: Uuid,
    pub name: String,
    pub project_id: Uuid,
    pub role: Role,
}

/// The resolved caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    /// The client's address: the peer's, or from `X-Forwarded-For` when the
    /// peer is a trusted proxy.
    pub address: Option<IpAddr>,
    /// The project the request acted in, once authorization resolved it:
    /// shared with the audit log, which writes it after the answer.
    pub project: std::sync::Arc<std::sync::OnceLock<Uuid>>,
}

impl Caller {
    pub fn new(actor: Actor, address: Option<IpAddr>) -> Caller {
        let project = std::sync::Arc::new(std::sync::OnceLock::new());
        if let Actor::Token(token) = &actor {
            let _ = project.set(token.project_id);
        }
        Caller {
            actor,
            address,
            project,
        }
    }

    pub fn is_platform_admin(&self) -> bool {
        match &self.actor {
            Actor::AdminToken => true,
            Actor::User(user) => user.is_admin,
            _ => false,
        }
    }

    /// For the audit log: the kind of actor, its id and a label people read.
    pub fn describe(&self) -> (&'static str, Option<Uuid>, String) {
        match &self.actor {
            Actor::AdminToken => ("admin_token", None, "admin token".to_owned()),
            Actor::User(user) => ("user", Some(user.id), user.email.clone()),
            Actor::Token(token) => ("token", Some(token.id), format!("token {}", token.name)),
            Actor::Anonymous | Actor::Invalid => ("anonymous", None, "anonymous".to_owned()),
        }
    }
}

/// Resolves the caller and checks a cookie session's CSRF token; answers
/// 503 when the database is away, 403 `csrf_failed` for a cookie request
/// that changes state without the session's token.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let address = address::client(&request, &state.accounts.trusted_proxies);
    let resolved = resolve(&state, request.headers()).await;
    let (actor, csrf) = match resolved {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    if let Some(expected) = csrf {
        if changes_state(request.method()) && !session::is_sign_in(&request) {
            let given = request
                .headers()
                .get(CSRF_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !bool::from(given.ct_eq(expected.as_bytes())) {
                let caller = Caller::new(actor, address);
                request.extensions_mut().insert(caller);
                return crate::audit::refused_early(&state, request, csrf_failed()).await;
            }
        }
    }
    request.extensions_mut().insert(Caller::new(actor, address));
    next.run(request).await
}

fn csrf_failed() -> ApiError {
    ApiError::refused(
        axum::http::StatusCode::FORBIDDEN,
        "csrf_failed",
        format!("a request made with a session cookie must send the session's CSRF token in `{CSRF_HEADER}`"),
    )
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The actor, and for a cookie session the CSRF token it must echo.
async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Actor, Option<String>), ApiError> {
    if let Some(token) = bearer(headers) {
        if bool::from(hash(token).ct_eq(&state.admin_token_hash)) {
            return Ok((Actor::AdminToken, None));
        }
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok((Actor::Invalid, None));
        }
        let actor = super::tokens::lookup(&state.pool, token).await?;
        return Ok((actor.map_or(Actor::Invalid, Actor::Token), None));
    }
    if let Some(secret) = session::cookie(headers) {
        return Ok(match session::lookup(state, secret).await? {
            Some((user, csrf)) => (Actor::User(user), Some(csrf)),
            None => (Actor::Invalid, None),
        });
    }
    Ok((Actor::Anonymous, None))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl axum::extract::FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &AppState,
    ) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::Unexpected(anyhow::anyhow!(
                "no caller: the authenticate middleware is missing"
            ))
        })
    }
}
