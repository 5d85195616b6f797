//! The transactional outbox: a message is written in the transaction that
//! causes it and published by the relay after commit.

use crate::job::JobMessage;
use sqlx::PgConnection;
use std::sync::LazyLock;
use tokio::sync::Notify;

static COMMITTED: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Tells this process' relay that a transaction which wrote outbox rows has
/// committed. Cheaper than NOTIFY (which serialises commits cluster-wide);
/// other processes' relays hear the trigger's NOTIFY or their timer.
pub fn committed() {
    // `notify_one` keeps a permit when the relay is busy, so no wake is lost.
    COMMITTED.notify_one();
}

/// Resolves at the next `committed()` (or at once if one is pending).
pub async fn wait_committed() {
    COMMITTED.notified().await;
}

/// Headers carried on every job message.
pub const TRACEPARENT: &str = "traceparent";
pub const DEAD_REASON: &str = "x-slipway-dead-reason";

/// The headers an outbox row carries to the broker.
pub fn headers(traceparent: &str, dead_reason: Option<&str>) -> serde_json::Value {
    let mut headers = serde_json::json!({ TRACEPARENT: traceparent });
    if let Some(reason) = dead_reason {
        headers[DEAD_REASON] = reason.into();
    }
    headers
}

/// Queues `message` for publishing to queue `routing_key` (default exchange).
pub async fn enqueue(
    conn: &mut PgConnection,
    routing_key: &str,
    message: &JobMessage,
    traceparent: &str,
    dead_reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO outbox (exchange, routing_key, payload, headers) VALUES ('', $1, $2, $3)",
    )
    .bind(routing_key)
    .bind(sqlx::types::Json(message))
    .bind(headers(traceparent, dead_reason))
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub exchange: String,
    pub routing_key: String,
    pub payload: serde_json::Value,
    pub headers: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}
