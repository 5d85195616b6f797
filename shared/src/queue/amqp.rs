//! Broker connections with backoff, and reading message headers.

use backon::{BackoffBuilder, ExponentialBuilder};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// AMQP heartbeat unless the URL sets one: the broker declares a hung
/// worker dead after about two missed beats and requeues what was in its
/// prefetch window, so a stopped process cannot sit on re-enqueued jobs for
/// long (the broker's default of 60 s would hold them for minutes).
pub const DEFAULT_HEARTBEAT_SECS: u16 = 10;
/// A broker that accepts TCP but never answers (wedged) must not hang us.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects, retrying with capped exponential backoff until the broker
/// answers or `shutdown` fires (then `None`).
pub async fn connect(url: &SecretString, shutdown: &CancellationToken) -> Option<Connection> {
    let mut uri: lapin::uri::AMQPUri = match url.expose_secret().parse() {
        Ok(uri) => uri,
        Err(error) => {
            tracing::error!(%error, "SLIPWAY_AMQP_URL is not an AMQP URL");
            shutdown.cancelled().await;
            return None;
        }
    };
    uri.query.heartbeat.get_or_insert(DEFAULT_HEARTBEAT_SECS);
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(3))
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        let attempt = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect_uri(uri.clone(), ConnectionProperties::default()),
        );
        let result = tokio::select! {
            result = attempt => result.unwrap_or_else(|_| Err(lapin::Error::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the broker did not complete the AMQP handshake",
            )))),
            _ = shutdown.cancelled() => return None,
        };
        match result {
            Ok(connection) => return Some(connection),
            Err(error) => {
                let wait = delays.next().unwrap_or(Duration::from_secs(3));
                tracing::warn!(%error, ?wait, "cannot reach RabbitMQ; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return None,
                }
            }
        }
    }
}

/// A header as text, whatever AMQP type the broker chose for it.
pub fn header_text(headers: &Option<FieldTable>, key: &str) -> Option<String> {
    let value = headers.as_ref()?.inner().get(key)?;
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        other => header_int_value(other).map(|n| n.to_string()),
    }
}

pub fn header_int(headers: &Option<FieldTable>, key: &str) -> Option<i64> {
    header_int_value(headers.as_ref()?.inner().get(key)?)
}

fn header_int_value(value: &AMQPValue) -> Option<i64> {
    Some(match value {
        AMQPValue::ShortShortInt(n) => i64::from(*n),
        AMQPValue::ShortShortUInt(n) => i64::from(*n),
        AMQPValue::ShortInt(n) => i64::from(*n),
        AMQPValue::ShortUInt(n) => i64::from(*n),
        AMQPValue::LongInt(n) => i64::from(*n),
        AMQPValue::LongUInt(n) => i64::from(*n),
        AMQPValue::LongLongInt(n) => *n,
        _ => return None,
    })
}
