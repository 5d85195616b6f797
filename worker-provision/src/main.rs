//! `slipway-worker-provision`: settings, telemetry, run until SIGTERM.

use anyhow::Context;
use slipway_shared::config::WorkerSettings;

/// mimalloc: the hot paths allocate many small, short-lived buffers (rows,
/// JSON, AMQP frames) across threads, which it serves with less CPU than
/// the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = WorkerSettings::from_env(slipway_worker_provision::DEFAULT_STAGE_TIMEOUT)
        .context("invalid configuration")?;
    slipway_shared::telemetry::init("slipway-worker-provision", settings.common.log_json);
    let shutdown = slipway_shared::shutdown::on_signal();
    slipway_worker_provision::run(settings, shutdown).await
}
