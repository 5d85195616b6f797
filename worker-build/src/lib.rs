//! The build worker: consumes the `build` stage queue with the shared runtime
//! and runs the probe job and the build job.

pub mod config;
pub mod image;
pub mod plan;
pub mod source;

use slipway_shared::config::WorkerSettings;
use slipway_shared::job::Stage;
use slipway_shared::worker::NotImplemented;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const STAGE: Stage = Stage::Build;
/// The stage's time limit unless `SLIPWAY_STAGE_TIMEOUT` says otherwise.
pub const DEFAULT_STAGE_TIMEOUT: Duration = Duration::from_secs(3600);

pub async fn run(settings: WorkerSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    slipway_shared::worker::run(
        STAGE,
        settings,
        |runtime| {
            runtime.with_handler(NotImplemented {
                kind: "build.v1",
                what: "Building an image from source",
            })
        },
        shutdown,
    )
    .await
}
