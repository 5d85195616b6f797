//! Structured `tracing` output: JSON in production, readable lines otherwise.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber once; later calls are ignored so tests
/// that start several services in one process can all call it.
pub fn init(service_name: &'static str, json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lapin=warn"));
    let result = if json {
        fmt()
            .json()
            .with_current_span(true)
            .with_env_filter(filter)
            .try_init()
    } else {
        fmt().with_env_filter(filter).try_init()
    };
    if result.is_ok() {
        tracing::info!(service = service_name, "telemetry started");
    }
}

/// A W3C `traceparent` value for a new trace; carried in message headers so
/// one deployment can be followed across processes.
pub fn new_traceparent() -> String {
    let trace: u128 = rand::random();
    let span: u64 = rand::random();
    format!("00-{trace:032x}-{span:016x}-01")
}

/// The trace id part of a `traceparent` value.
pub fn trace_id(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or(traceparent)
}
