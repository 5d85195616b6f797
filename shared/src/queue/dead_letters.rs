//! Records every message that reaches a stage's dead-letter queue in
//! Postgres, with its reason, then acks it.

use crate::db;
use crate::job::Stage;
use crate::queue::amqp;
use crate::queue::topology::QueueNames;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Consumes `stage`'s dead queue on `channel` until it closes or `shutdown`.
pub async fn consume(
    channel: lapin::Channel,
    pool: PgPool,
    names: QueueNames,
    stage: Stage,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let queue = names.dead(stage);
    channel.basic_qos(16, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    loop {
        let delivery = tokio::select! {
            delivery = consumer.next() => delivery,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let Some(delivery) = delivery else {
            return Ok(());
        };
        let delivery = delivery?;
        record_with_retry(&pool, &names, stage, &queue, &delivery, &shutdown).await;
        if shutdown.is_cancelled() {
            return Ok(());
        }
        if !delivery.ack(BasicAckOptions::default()).await? {
            tracing::warn!("dead letter ack not sent; it will be redelivered and recorded once");
        }
    }
}

async fn record_with_retry(
    pool: &PgPool,
    names: &QueueNames,
    stage: Stage,
    queue: &str,
    delivery: &Delivery,
    shutdown: &CancellationToken,
) {
    let headers = delivery.properties.headers();
    let reason = amqp::header_text(headers, crate::db::outbox::DEAD_REASON)
        .or_else(|| {
            amqp::header_text(headers, "x-first-death-reason").map(|r| {
                let from = amqp::header_text(headers, "x-first-death-queue").unwrap_or_default();
                format!("{r} (from {from})")
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let payload = String::from_utf8_lossy(&delivery.data).into_owned();
    let message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.as_str().to_owned())
        .unwrap_or_else(|| {
            format!(
                "sha256-{}",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&delivery.data))
            )
        });
    let mut wait = Duration::from_millis(100);
    loop {
        match db::dead::record(pool, names, &message_id, stage, queue, &reason, &payload).await {
            Ok(()) => {
                crate::metrics::METRICS
                    .jobs_dead_lettered
                    .with_label_values(&[stage.as_str()])
                    .inc();
                tracing::warn!(%reason, %message_id, "dead job recorded");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot record dead job; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return,
                }
                wait = (wait * 2).min(Duration::from_secs(3));
            }
        }
    }
}
