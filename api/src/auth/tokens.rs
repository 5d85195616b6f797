//! Project tokens: random 32-byte secrets stored as SHA-256, each with a
//! name, a role, an optional expiry and when it was last used. A revoked
//! or expired token is refused at once: every request reads its row.

use super::caller::TokenActor;
use super::{hash, Role};
use uuid::Uuid;

/// `last_used_at` is written at most this often per token, so a busy CI
/// token costs no write per request.
const LAST_USED_GRANULARITY_SECONDS: f64 = 60.0;

type Row = (
    Uuid,
    String,
    Uuid,
    String,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// The token's actor, if it is valid now.
pub async fn lookup(pool: &sqlx::PgPool, token: &str) -> Result<Option<TokenActor>, sqlx::Error> {
    let digest = hash(token);
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, name, project_id, role, last_used_at FROM api_tokens \
         WHERE token_sha256 = $1 AND revoked_at IS NULL \
           AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(&digest)
    .fetch_optional(pool)
    .await?;
    let Some((id, name, project_id, role, last_used)) = row else {
        return Ok(None);
    };
    let stale = last_used.is_none_or(|at| {
        (chrono::Utc::now() - at).as_seconds_f64() >= LAST_USED_GRANULARITY_SECONDS
    });
    if stale {
        // Conditional, so concurrent requests of one token write once.
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = now() WHERE id = $1 \
             AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        )
        .bind(id)
        .execute(pool)
        .await?;
    }
    let Some(role) = Role::parse(&role) else {
        return Ok(None);
    };
    Ok(Some(TokenActor {
        id,
        name,
        project_id,
        role,
    }))
}
