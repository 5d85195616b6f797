//! Fleet-wide gauges read from Postgres: jobs waiting per stage and the age
//! of the oldest, the outbox backlog, deployments by state. They describe
//! the whole fleet, not one process, so the API computes them when it is
//! scraped (several API replicas report the same values: aggregate them
//! with `max`, not `sum`).
//!
//! The cost is bounded: the queries read the waiting jobs through a partial
//! index (`jobs_waiting`), the outbox (small unless publishing is stuck) and
//! one grouped count of deployments; they run under a 2 s statement timeout,
//! at most once a second however often the endpoint is scraped, and one
//! scrape at a time. A refresh that fails leaves the last values and counts
//! `slipway_fleet_metrics_failures_total`.

use crate::job::Stage;
use prometheus::{GaugeVec, IntCounter, IntGauge, IntGaugeVec, Opts};
use sqlx::PgPool;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// How often Postgres is read at most; scrapes in between see the last values.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Job states that wait for a worker: `queued` (in the stage queue) and
/// `retry_wait` (in a delay queue, then the stage queue).
const WAITING: [&str; 2] = ["queued", "retry_wait"];

struct Fleet {
    queue_depth: IntGaugeVec,
    queue_oldest_age: GaugeVec,
    outbox_rows: IntGauge,
    outbox_failing_rows: IntGauge,
    outbox_oldest_age: prometheus::Gauge,
    failures: IntCounter,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(metric: T) -> T {
    prometheus::register(Box::new(metric.clone())).expect("metric names are unique");
    metric
}

static FLEET: LazyLock<Fleet> = LazyLock::new(|| {
    Fleet {
    queue_depth: register(
        IntGaugeVec::new(
            Opts::new(
                "slipway_queue_depth",
                "Jobs waiting for a worker, by stage and state (queued, retry_wait)",
            ),
            &["stage", "state"],
        )
        .expect("valid metric"),
    ),
    queue_oldest_age: register(
        GaugeVec::new(
            Opts::new(
                "slipway_queue_oldest_age_seconds",
                "How long the oldest waiting job has waited since it was created or last ran, by stage and state",
            ),
            &["stage", "state"],
        )
        .expect("valid metric"),
    ),
    outbox_rows: register(
        IntGauge::new("slipway_outbox_rows", "Outbox rows not yet published").expect("valid"),
    ),
    outbox_failing_rows: register(
        IntGauge::new(
            "slipway_outbox_failing_rows",
            "Outbox rows whose publishing failed at least once (returned or nacked)",
        )
        .expect("valid metric"),
    ),
    outbox_oldest_age: register(
        prometheus::Gauge::new(
            "slipway_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox row, fleet-wide",
        )
        .expect("valid metric"),
    ),
    failures: register(
        IntCounter::new(
            "slipway_fleet_metrics_failures_total",
            "Reads of the fleet-wide gauges from Postgres that failed (the last values stay)",
        )
        .expect("valid metric"),
    ),
}
});

static LAST: tokio::sync::Mutex<Option<Instant>> = tokio::sync::Mutex::const_new(None);

/// Reads the fleet-wide gauges from Postgres, unless another scrape did in
/// the last second.
pub async fn refresh(pool: &PgPool) {
    let fleet = &*FLEET;
    let mut last = LAST.lock().await;
    if last.is_some_and(|at| at.elapsed() < MIN_INTERVAL) {
        return;
    }
    match read(pool, fleet).await {
        Ok(()) => *last = Some(Instant::now()),
        Err(error) => {
            fleet.failures.inc();
            tracing::warn!(%error, "cannot read the fleet metrics");
        }
    }
}

async fn read(pool: &PgPool, fleet: &Fleet) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL statement_timeout = '2s'")
        .execute(&mut *tx)
        .await?;
    let waiting: Vec<(String, String, i64, f64)> = sqlx::query_as(
        "SELECT stage, state, count(*),
                COALESCE(EXTRACT(EPOCH FROM now() - min(COALESCE(heartbeat_at, created_at))), 0)::float8
         FROM jobs WHERE state IN ('queued', 'retry_wait') GROUP BY stage, state",
    )
    .fetch_all(&mut *tx)
    .await?;
    let (rows, failing, oldest): (i64, i64, f64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE attempts > 0),
                COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
         FROM outbox",
    )
    .fetch_one(&mut *tx)
    .await?;
    let deployments: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM deployments GROUP BY state")
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;

    // Every stage and waiting state is exported, at zero when empty, so an
    // empty queue reads 0 rather than "no data".
    for stage in Stage::ALL {
        for state in WAITING {
            let found = waiting
                .iter()
                .find(|(s, st, _, _)| s == stage.as_str() && st == state);
            let (count, age) = found.map_or((0, 0.0), |(_, _, n, age)| (*n, age.max(0.0)));
            let labels = [stage.as_str(), state];
            fleet.queue_depth.with_label_values(&labels).set(count);
            fleet.queue_oldest_age.with_label_values(&labels).set(age);
        }
    }
    fleet.outbox_rows.set(rows);
    fleet.outbox_failing_rows.set(failing);
    fleet.outbox_oldest_age.set(oldest.max(0.0));
    let by_state = &super::METRICS.deployments_by_state;
    for state in crate::state::DeploymentState::ALL {
        let n = deployments
            .iter()
            .find(|(s, _)| s == state.as_str())
            .map_or(0, |(_, n)| *n);
        by_state.with_label_values(&[state.as_str()]).set(n);
    }
    Ok(())
}
