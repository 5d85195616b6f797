//! The provision worker: consumes the `provision` stage queue with the shared runtime
//! and runs the probe job and the provision job.

pub mod local;

use slipway_shared::config::WorkerSettings;
use slipway_shared::job::Stage;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const STAGE: Stage = Stage::Provision;
/// The stage's time limit unless `SLIPWAY_STAGE_TIMEOUT` says otherwise.
pub const DEFAULT_STAGE_TIMEOUT: Duration = Duration::from_secs(1800);

pub async fn run(settings: WorkerSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let target = slipway_shared::local_target::LocalTarget::from_env()?;
    slipway_shared::worker::run(
        STAGE,
        settings,
        |runtime| runtime.with_handler(local::LocalProvision::new(target)),
        shutdown,
    )
    .await
}
