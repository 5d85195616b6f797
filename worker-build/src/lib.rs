//! The build worker: consumes the `build` stage queue with the shared runtime
//! and runs the probe job and the build job.

pub mod config;
pub mod handler;
pub mod image;
pub mod plan;
pub mod registries;
pub mod reuse;
pub mod source;
pub mod target;

use slipway_shared::config::WorkerSettings;
use slipway_shared::job::Stage;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const STAGE: Stage = Stage::Build;
/// The stage's time limit unless `SLIPWAY_STAGE_TIMEOUT` says otherwise.
pub const DEFAULT_STAGE_TIMEOUT: Duration = Duration::from_secs(3600);

pub async fn run(settings: WorkerSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let build = handler::BuildWorkerSettings::from_env()?;
    slipway_shared::worker::run(
        STAGE,
        settings,
        |runtime| runtime.with_handler(handler::BuildHandler::new(build)),
        shutdown,
    )
    .await
}
