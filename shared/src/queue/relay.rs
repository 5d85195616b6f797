//! The outbox relay: publishes outbox rows with publisher confirms and the
//! `mandatory` flag, and deletes a row only after the broker confirmed it
//! and did not return it. Woken by LISTEN/NOTIFY, and also on a timer and
//! after every reconnect, because notifications sent while its connection
//! was down are gone. Several relays may run at once (SKIP LOCKED).

use crate::db::outbox::OutboxRow;
use crate::metrics::METRICS;
use crate::queue::amqp;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::Confirmation;
use lapin::{BasicProperties, Channel};
use secrecy::SecretString;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const BATCH: i64 = 500;
const RESCAN: Duration = Duration::from_secs(1);
/// A broker that stops confirming is treated as a lost connection.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs until `shutdown`, reconnecting to either side after a failure.
pub async fn run(pool: PgPool, amqp_url: SecretString, shutdown: CancellationToken) {
    let mut failures = 0u32;
    while !shutdown.is_cancelled() {
        match relay_once(&pool, &amqp_url, &shutdown).await {
            Ok(()) => return,
            Err(error) => {
                failures += 1;
                let wait = Duration::from_millis(100 * u64::from(failures.min(20)));
                tracing::warn!(
                    error = format!("{error:#}"),
                    ?wait,
                    "outbox relay interrupted; reconnecting"
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    }
}

async fn relay_once(
    pool: &PgPool,
    amqp_url: &SecretString,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let Some(connection) = amqp::connect(amqp_url, shutdown).await else {
        return Ok(());
    };
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen("slipway_outbox").await?;
    tracing::info!("outbox relay connected");
    loop {
        // Drain everything waiting; a batch with failures stops the drain so
        // an unroutable row is retried on the timer, not in a hot loop.
        loop {
            let (published, failed) = publish_batch(pool, &channel).await?;
            if failed > 0 || published < BATCH as usize {
                break;
            }
        }
        tokio::select! {
            notification = listener.recv() => { notification?; }
            _ = crate::db::outbox::wait_committed() => {}
            _ = tokio::time::sleep(RESCAN) => {}
            _ = shutdown.cancelled() => {
                let _ = connection.close(200, "shutdown".into()).await;
                return Ok(());
            }
        }
    }
}

/// Publishes one batch inside a transaction that holds the rows' locks.
/// Returns (published, failed).
async fn publish_batch(pool: &PgPool, channel: &Channel) -> anyhow::Result<(usize, usize)> {
    // The timer's rescans find the outbox empty nearly always: one
    // statement says so, where the transaction below takes three round
    // trips (every process runs a relay, each rescanning every second).
    let waiting: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM outbox)")
        .fetch_one(pool)
        .await?;
    if !waiting {
        METRICS.outbox_lag_seconds.set(0.0);
        return Ok((0, 0));
    }
    let mut tx = pool.begin().await?;
    let rows: Vec<OutboxRow> = sqlx::query_as(
        "SELECT id, exchange, routing_key, payload, headers, created_at FROM outbox
         ORDER BY attempts, id FOR UPDATE SKIP LOCKED LIMIT $1",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        METRICS.outbox_lag_seconds.set(0.0);
        return Ok((0, 0));
    }
    // The batch holds the oldest rows (by attempts, then id): their age is the lag.
    let oldest = rows.iter().map(|row| row.created_at).min();
    let lag = oldest.map(|at| (chrono::Utc::now() - at).num_milliseconds() as f64 / 1000.0);
    METRICS.outbox_lag_seconds.set(lag.unwrap_or(0.0).max(0.0));

    let mut pending = Vec::with_capacity(rows.len());
    for row in &rows {
        let payload = serde_json::to_vec(&row.payload)?;
        let confirm = channel
            .basic_publish(
                row.exchange.as_str().into(),
                row.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &payload,
                properties(row),
            )
            .await?;
        pending.push(confirm);
    }
    let mut done = Vec::with_capacity(rows.len());
    let mut failed: Vec<(i64, String)> = Vec::new();
    for (row, confirm) in rows.iter().zip(pending) {
        let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
            .await
            .map_err(|_| anyhow::anyhow!("no publisher confirm within {CONFIRM_TIMEOUT:?}"))??;
        match confirmation {
            Confirmation::Ack(None) => done.push(row.id),
            Confirmation::Ack(Some(returned)) => failed.push((
                row.id,
                format!(
                    "returned by the broker: {} (no queue {})",
                    returned.reply_text, row.routing_key
                ),
            )),
            Confirmation::Nack(_) => failed.push((row.id, "nacked by the broker".into())),
            Confirmation::NotRequested => {
                failed.push((row.id, "publisher confirms are off".into()))
            }
        }
    }
    // Planned per run (see `crate::db`): a backlog makes the outbox large.
    sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
        .persistent(false)
        .bind(&done)
        .execute(&mut *tx)
        .await?;
    for (id, error) in &failed {
        tracing::warn!(outbox_id = id, %error, "outbox row not delivered; will retry");
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1")
            .bind(id)
            .bind(error)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    METRICS.outbox_published.inc_by(done.len() as u64);
    Ok((done.len(), failed.len()))
}

fn properties(row: &OutboxRow) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(map) = row.headers.as_object() {
        for (key, value) in map {
            if let Some(text) = value.as_str() {
                headers.insert(
                    ShortString::from(key.as_str()),
                    AMQPValue::LongString(LongString::from(text.as_bytes().to_vec())),
                );
            }
        }
    }
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(format!("outbox-{}", row.id).into())
        .with_headers(headers)
}
