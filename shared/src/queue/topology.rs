//! Queue names and their idempotent declaration: one durable quorum queue
//! per stage, a dead-letter queue per stage behind a dead-letter exchange,
//! and one delay queue per backoff tier whose fixed TTL dead-letters the
//! message back into the stage queue.
//!
//! Queue arguments cannot change once a queue exists, so only structural
//! arguments are set here; tunables (delivery limit, max length) come from a
//! broker policy (`scripts/services.sh`), and the consumer enforces the
//! delivery limit itself as well in case the policy is missing.

use crate::job::Stage;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct QueueNames {
    prefix: String,
}

impl QueueNames {
    /// `prefix` namespaces every name, e.g. `t1a2b3c4d.` in tests.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn stage(&self, stage: Stage) -> String {
        format!("{}slipway.{}", self.prefix, stage)
    }

    pub fn delay(&self, stage: Stage, delay: Duration) -> String {
        format!(
            "{}slipway.{}.delay.{}ms",
            self.prefix,
            stage,
            delay.as_millis()
        )
    }

    pub fn dead(&self, stage: Stage) -> String {
        format!("{}slipway.{}.dead", self.prefix, stage)
    }

    pub fn dead_letter_exchange(&self) -> String {
        format!("{}slipway.dlx", self.prefix)
    }
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()))
}

fn args(pairs: Vec<(&str, AMQPValue)>) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in pairs {
        table.insert(ShortString::from(key), value);
    }
    table
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// Declares a stage's queues; safe to call any number of times, from any
/// process, after every reconnect.
pub async fn declare_stage(
    channel: &Channel,
    names: &QueueNames,
    stage: Stage,
    delay_tiers: &[Duration],
) -> lapin::Result<()> {
    let dlx = names.dead_letter_exchange();
    channel
        .exchange_declare(
            dlx.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let dead = names.dead(stage);
    channel
        .queue_declare(
            dead.as_str().into(),
            durable(),
            args(vec![("x-queue-type", text("quorum"))]),
        )
        .await?;
    channel
        .queue_bind(
            dead.as_str().into(),
            dlx.as_str().into(),
            stage.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let work = names.stage(stage);
    channel
        .queue_declare(
            work.as_str().into(),
            durable(),
            args(vec![
                ("x-queue-type", text("quorum")),
                ("x-dead-letter-exchange", text(&dlx)),
                ("x-dead-letter-routing-key", text(stage.as_str())),
                ("x-dead-letter-strategy", text("at-least-once")),
                ("x-overflow", text("reject-publish")),
            ]),
        )
        .await?;
    for tier in delay_tiers {
        let delay_ms = i64::try_from(tier.as_millis()).unwrap_or(i64::MAX);
        channel
            .queue_declare(
                names.delay(stage, *tier).as_str().into(),
                durable(),
                args(vec![
                    ("x-queue-type", text("quorum")),
                    ("x-message-ttl", AMQPValue::LongLongInt(delay_ms)),
                    ("x-dead-letter-exchange", text("")),
                    ("x-dead-letter-routing-key", text(&work)),
                    ("x-dead-letter-strategy", text("at-least-once")),
                    ("x-overflow", text("reject-publish")),
                ]),
            )
            .await?;
    }
    Ok(())
}
