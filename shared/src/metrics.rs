//! Prometheus metrics every process exports, registered once in the default
//! registry, and the small HTTP server workers use to serve them. Labels are
//! bounded (stage, state, outcome, route): never a deployment or app id.
//! Fleet-wide gauges read from Postgres (queue depth, outbox backlog) live
//! in [`fleet`]; the API refreshes them when it is scraped.

pub mod fleet;

use crate::job::Stage;
use crate::state::DeploymentState;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec,
    Opts, TextEncoder,
};
use std::net::SocketAddr;
use std::sync::LazyLock;
use tokio_util::sync::CancellationToken;

pub struct Metrics {
    pub jobs_started: IntCounterVec,
    pub jobs_succeeded: IntCounterVec,
    pub jobs_retried: IntCounterVec,
    pub jobs_dead_lettered: IntCounterVec,
    pub jobs_failed: IntCounterVec,
    pub jobs_duplicate: IntCounterVec,
    pub jobs_rescued: IntCounterVec,
    pub job_duration: HistogramVec,
    pub jobs_in_flight: IntGaugeVec,
    pub outbox_lag_seconds: Gauge,
    pub outbox_published: IntCounter,
    pub log_lines_written: IntCounter,
    pub log_sink_lag: Histogram,
    pub log_sink_write_failures: IntCounter,
    pub leases_lost: IntCounterVec,
    pub deployments_ended: IntCounterVec,
    pub deployments_by_state: IntGaugeVec,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(metric: T) -> T {
    // Registration only fails for a duplicate name, which is a programming
    // error caught by the first test that touches metrics.
    prometheus::register(Box::new(metric.clone())).expect("metric names are unique");
    metric
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    Metrics {
    jobs_started: counter(
        "slipway_jobs_started_total",
        "Jobs claimed and started",
        &["stage"],
    ),
    jobs_succeeded: counter(
        "slipway_jobs_succeeded_total",
        "Jobs that succeeded",
        &["stage"],
    ),
    jobs_retried: counter(
        "slipway_jobs_retried_total",
        "Jobs scheduled for a retry",
        &["stage"],
    ),
    jobs_dead_lettered: counter(
        "slipway_jobs_dead_lettered_total",
        "Jobs sent to a dead-letter queue",
        &["stage"],
    ),
    jobs_failed: counter(
        "slipway_jobs_failed_total",
        "Jobs that failed permanently",
        &["stage"],
    ),
    jobs_duplicate: counter(
        "slipway_jobs_duplicate_deliveries_total",
        "Deliveries whose job was already claimed or finished",
        &["stage"],
    ),
    jobs_rescued: counter(
        "slipway_jobs_rescued_total",
        "Jobs taken back from a worker whose heartbeat stopped",
        &["stage"],
    ),
    job_duration: register(
        HistogramVec::new(
            HistogramOpts::new("slipway_job_duration_seconds", "Job run time by stage").buckets(
                vec![0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0],
            ),
            &["stage"],
        )
        .expect("valid metric"),
    ),
    jobs_in_flight: register(
        IntGaugeVec::new(
            Opts::new("slipway_jobs_in_flight", "Jobs running in this process"),
            &["stage"],
        )
        .expect("valid metric"),
    ),
    outbox_lag_seconds: register(
        Gauge::new(
            "slipway_outbox_lag_seconds",
            "Age of the oldest outbox row when the relay last looked",
        )
        .expect("valid metric"),
    ),
    outbox_published: register(
        IntCounter::new(
            "slipway_outbox_published_total",
            "Outbox rows published and confirmed",
        )
        .expect("valid metric"),
    ),
    log_lines_written: register(
        IntCounter::new(
            "slipway_log_lines_written_total",
            "Deployment log lines stored",
        )
        .expect("valid metric"),
    ),
    log_sink_lag: register(
        Histogram::with_opts(
            HistogramOpts::new(
                "slipway_log_sink_lag_seconds",
                "Time from a log line being produced to its batch being stored",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0]),
        )
        .expect("valid metric"),
    ),
    log_sink_write_failures: register(
        IntCounter::new(
            "slipway_log_sink_write_failures_total",
            "Log batches that could not be stored (kept and retried)",
        )
        .expect("valid metric"),
    ),
    leases_lost: counter(
        "slipway_leases_lost_total",
        "Running jobs whose lease was taken back (sweeper or cancel) before their outcome committed",
        &["stage"],
    ),
    deployments_ended: counter(
        "slipway_deployments_ended_total",
        "Deployments that ended, by outcome (live, failed, cancelled), counted where the ending commits",
        &["outcome"],
    ),
    deployments_by_state: register(
        IntGaugeVec::new(
            Opts::new("slipway_deployments", "Deployments by state"),
            &["state"],
        )
        .expect("valid metric"),
    ),
    http_requests: counter(
        "slipway_http_requests_total",
        "HTTP requests by route and status",
        &["method", "route", "status"],
    ),
    http_duration: register(
        HistogramVec::new(
            HistogramOpts::new(
                "slipway_http_request_duration_seconds",
                "HTTP latency by route",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0,
            ]),
            &["method", "route"],
        )
        .expect("valid metric"),
    ),
}
});

/// The outcomes `slipway_deployments_ended_total` counts. A superseded
/// deployment never ran: `slipway_deployments{state="superseded"}` shows those.
pub const ENDED_OUTCOMES: [DeploymentState; 3] = [
    DeploymentState::Live,
    DeploymentState::Failed,
    DeploymentState::Cancelled,
];

/// Counts `n` deployments that ended as `outcome`, after the commit that
/// ended them.
pub fn deployments_ended(outcome: DeploymentState, n: u64) {
    debug_assert!(ENDED_OUTCOMES.contains(&outcome));
    METRICS
        .deployments_ended
        .with_label_values(&[outcome.as_str()])
        .inc_by(n);
}

/// Creates the series a stage's worker exports at zero, so rates and
/// alerts see `0` rather than nothing before the first event.
pub fn init_stage(stage: Stage) {
    let m = &*METRICS;
    let stage = [stage.as_str()];
    for counter in [
        &m.jobs_started,
        &m.jobs_succeeded,
        &m.jobs_retried,
        &m.jobs_dead_lettered,
        &m.jobs_failed,
        &m.jobs_duplicate,
        &m.jobs_rescued,
        &m.leases_lost,
    ] {
        counter.with_label_values(&stage);
    }
    m.jobs_in_flight.with_label_values(&stage);
    m.job_duration.with_label_values(&stage);
}

fn init_outcomes() {
    for outcome in ENDED_OUTCOMES {
        METRICS
            .deployments_ended
            .with_label_values(&[outcome.as_str()]);
    }
}

/// The default registry in Prometheus' text format.
pub fn render() -> String {
    init_outcomes();
    let mut buffer = Vec::new();
    let families = prometheus::gather();
    if let Err(error) = TextEncoder::new().encode(&families, &mut buffer) {
        tracing::error!(%error, "cannot encode metrics");
    }
    String::from_utf8(buffer).unwrap_or_default()
}

/// Serves `/metrics` and `/healthz` for a worker until `shutdown`.
pub async fn serve(addr: SocketAddr, shutdown: CancellationToken) -> anyhow::Result<SocketAddr> {
    use axum::{routing::get, Router};
    LazyLock::force(&METRICS);
    let app = Router::new()
        .route("/metrics", get(|| async { render() }))
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "metrics server stopped");
        }
    });
    Ok(bound)
}
