//! Browser sessions: a random secret in an HTTP-only, `SameSite=Lax`
//! cookie (`Secure` when the public URL is https), its SHA-256 and a CSRF
//! token in `sessions`. A session ends when idle for
//! `SLIPWAY_SESSION_IDLE_TIMEOUT`, `SLIPWAY_SESSION_LIFETIME` after
//! sign-in, when revoked, and with every other session of its user when
//! the password changes.

use super::caller::UserActor;
use super::hash;
use crate::state::AppState;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method};
use rand::RngCore;
use uuid::Uuid;

pub const COOKIE: &str = "slipway_session";
pub const SIGN_IN_PATH: &str = "/v1/sessions";

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The session secret in the request's cookies.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Signing in needs no CSRF token: there is no session to protect yet,
/// and a stale cookie must not stop a new sign-in.
pub fn is_sign_in(request: &Request) -> bool {
    request.method() == Method::POST && request.uri().path() == SIGN_IN_PATH
}

type Row = (
    Uuid,
    String,
    chrono::DateTime<chrono::Utc>,
    Uuid,
    String,
    bool,
);

/// The user and CSRF token of a live session.
pub async fn lookup(
    state: &AppState,
    secret: &str,
) -> Result<Option<(UserActor, String)>, sqlx::Error> {
    let idle = state.accounts.session_idle.as_secs_f64();
    let row: Option<Row> = sqlx::query_as(
        "SELECT s.id, s.csrf_token, s.last_seen_at, u.id, u.email, u.is_admin \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_sha256 = $1 AND s.revoked_at IS NULL AND s.expires_at > now() \
           AND s.last_seen_at > now() - make_interval(secs => $2) \
           AND u.disabled_at IS NULL",
    )
    .bind(hash(secret))
    .bind(idle)
    .fetch_optional(&state.pool)
    .await?;
    let Some((session_id, csrf, last_seen, user_id, email, is_admin)) = row else {
        return Ok(None);
    };
    if (chrono::Utc::now() - last_seen).num_seconds() >= 60 {
        sqlx::query(
            "UPDATE sessions SET last_seen_at = now() WHERE id = $1 \
             AND last_seen_at < now() - interval '1 minute'",
        )
        .bind(session_id)
        .execute(&state.pool)
        .await?;
    }
    let user = UserActor {
        id: user_id,
        email,
        is_admin,
        session_id,
    };
    Ok(Some((user, csrf)))
}

/// A new session: its id, cookie secret, CSRF token and absolute expiry.
pub struct NewSession {
    pub id: Uuid,
    pub secret: String,
    pub csrf_token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

pub async fn create(
    conn: &mut sqlx::PgConnection,
    state: &AppState,
    user_id: Uuid,
    address: Option<std::net::IpAddr>,
    user_agent: Option<&str>,
) -> Result<NewSession, sqlx::Error> {
    let session = NewSession {
        id: Uuid::now_v7(),
        secret: random_hex(),
        csrf_token: random_hex(),
        expires_at: chrono::Utc::now()
            + chrono::Duration::from_std(state.accounts.session_lifetime)
                .unwrap_or(chrono::Duration::days(7)),
    };
    sqlx::query(
        "INSERT INTO sessions (id, user_id, token_sha256, csrf_token, address, user_agent, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(session.id)
    .bind(user_id)
    .bind(hash(&session.secret))
    .bind(&session.csrf_token)
    .bind(address.map(|a| a.to_string()))
    .bind(user_agent.map(|ua| ua.chars().take(300).collect::<String>()))
    .bind(session.expires_at)
    .execute(conn)
    .await?;
    Ok(session)
}

/// `Set-Cookie` for a new session; `Secure` when served over HTTPS.
pub fn set_cookie(state: &AppState, session: &NewSession) -> HeaderValue {
    let max_age = state.accounts.session_lifetime.as_secs();
    let secure = if secure(state) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        session.secret
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("slipway_session=; Path=/; Max-Age=0"))
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(state: &AppState) -> HeaderValue {
    let secure = if secure(state) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("slipway_session=; Path=/; Max-Age=0"))
}

fn secure(state: &AppState) -> bool {
    state
        .accounts
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"))
}
