//! Database access: the pool, migrations and the functions that change
//! deployments, jobs, the outbox, logs and dead jobs. Every state change is a
//! conditional update; functions take an executor so callers own the
//! transaction.
//!
//! Statements that join a parameter array to a table that grows (the batch
//! claims and outcomes, log sequence numbers, lease renewal, the relay's
//! delete) are sent unprepared, `.persistent(false)`, so each run is planned
//! for the arrays and table sizes at hand. Prepared, a connection fixes its
//! generic plan at the sixth run; on a young database (a fresh install, any
//! table before its first autoanalyze) that plan is a hash join over a
//! sequential scan of the whole table, kept as the table grows: seen as
//! 2,000-row scans to update two rows. Only these statements pay for the
//! planning (and one extra round trip); the rest, foreign-key checks
//! included, keep their cached plans.

pub mod addons;
pub mod dead;
pub mod deployments;
pub mod installs;
pub mod job_batches;
pub mod jobs;
pub mod logs;
pub mod outbox;
pub mod server_images;
pub mod servers;
pub mod sources;
pub mod target_setup;
pub mod targets;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A pool that connects lazily, so a process starts (and serves /healthz)
/// while Postgres is still down and reconnects after it restarts.
/// Every Slipway process names its connections so; the outbox trigger skips
/// the NOTIFY for them because they wake their own relay after committing.
pub const APPLICATION_NAME: &str = "slipway";

pub fn pool(url: &SecretString, max_connections: u32) -> anyhow::Result<PgPool> {
    pool_with_acquire_timeout(url, max_connections, Duration::from_secs(5))
}

/// How long an API request waits for a connection before it is told the
/// database is away (503): a client should hear within a second, and a
/// healthy pool hands out a connection in well under that even at the
/// API's full rate.
pub const API_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(800);

/// [`pool`] with another wait for a connection. While Postgres is down,
/// sqlx keeps trying to connect until this runs out.
pub fn pool_with_acquire_timeout(
    url: &SecretString,
    max_connections: u32,
    acquire_timeout: Duration,
) -> anyhow::Result<PgPool> {
    let options =
        PgConnectOptions::from_str(url.expose_secret())?.application_name(APPLICATION_NAME);
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(options))
}

/// Whether an error means the database cannot be reached or is shutting
/// down or starting: no fault of the request, so the API answers 503.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    ) || matches!(error, sqlx::Error::Database(db) if db.code().is_some_and(|c|
        // admin_shutdown, crash_shutdown, cannot_connect_now, and the
        // connection_exception class (08…)
        matches!(c.as_ref(), "57P01" | "57P02" | "57P03") || c.starts_with("08")))
}

/// Applies migrations, waiting for Postgres to come up first.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    use backon::{ExponentialBuilder, Retryable};
    (|| async { MIGRATOR.run(pool).await })
        .retry(
            ExponentialBuilder::default()
                .with_max_delay(Duration::from_secs(2))
                // About three minutes with the API's short acquire timeout.
                .with_max_times(90),
        )
        .notify(|error, wait| tracing::warn!(%error, ?wait, "migrations failed; retrying"))
        .await?;
    Ok(())
}

/// Whether an error means "the database is unreachable right now" (worth
/// waiting for) rather than a bug or a constraint.
pub fn is_transient(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_)
    ) || matches!(error, sqlx::Error::Database(db) if db.code().is_some_and(|c|
        // admin_shutdown, crash_shutdown, cannot_connect_now, serialization, deadlock
        matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "40001" | "40P01")))
}
