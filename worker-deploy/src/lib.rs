//! The deploy worker: consumes the `deploy` stage queue with the shared runtime
//! and runs the probe job and the deploy job.

pub mod caddy;
pub mod engine;
pub mod health;

use slipway_shared::config::WorkerSettings;
use slipway_shared::job::Stage;
use slipway_shared::worker::NotImplemented;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const STAGE: Stage = Stage::Deploy;
/// The stage's time limit unless `SLIPWAY_STAGE_TIMEOUT` says otherwise.
pub const DEFAULT_STAGE_TIMEOUT: Duration = Duration::from_secs(1800);

pub async fn run(settings: WorkerSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    slipway_shared::worker::run(
        STAGE,
        settings,
        |runtime| {
            runtime.with_handler(NotImplemented {
                kind: "deploy.v1",
                what: "Deploying a release",
            })
        },
        shutdown,
    )
    .await
}
