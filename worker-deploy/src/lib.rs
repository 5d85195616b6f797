//! The deploy worker: consumes the `deploy` stage queue with the shared runtime
//! and runs the probe job, the deploy job and the deploy side of a target
//! check.

pub mod addons;
pub mod caddy;
pub mod check;
pub mod engine;
pub mod handler;
pub mod health;
pub mod release;
pub mod site;
pub mod target;

use slipway_shared::config::WorkerSettings;
use slipway_shared::job::Stage;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const STAGE: Stage = Stage::Deploy;
/// The stage's time limit unless `SLIPWAY_STAGE_TIMEOUT` says otherwise.
pub const DEFAULT_STAGE_TIMEOUT: Duration = Duration::from_secs(1800);

pub async fn run(settings: WorkerSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let target = slipway_shared::local_target::LocalTarget::from_env()?;
    let deploy = std::sync::Arc::new(handler::DeployHandler::new(
        target,
        slipway_shared::config::worker_secret_box()?,
    )?);
    slipway_shared::worker::run(
        STAGE,
        settings,
        |runtime| {
            runtime
                .with_handler(check::TargetCheck::new(deploy.clone()))
                .with_handler(handler::Shared(deploy))
        },
        shutdown,
    )
    .await
}
