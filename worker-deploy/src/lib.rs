//! The deploy worker: consumes the `deploy` stage queue with the shared runtime
//! and runs the probe job, the deploy job (deploys and app operations) and
//! the deploy side of a target check; beside them, the health monitor and
//! the runtime-log collector of the apps on the local target.

pub mod addons;
pub mod caddy;
pub mod check;
pub mod engine;
pub mod handler;
pub mod health;
pub mod launch;
pub mod monitor;
pub mod operate;
pub mod release;
pub mod replicas;
pub mod routing;
pub mod runtime_logs;
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
    // The monitor and the log collector share one small pool of their own,
    // outside the job runtime's. Both know only this host's engine: they
    // touch apps on the local target only (ssh targets: not built yet).
    let side_pool = slipway_shared::db::pool(&settings.common.database_url, 2)?;
    let monitor = target
        .health_monitor_interval
        .map(|interval| tokio::spawn(monitor::run(side_pool.clone(), interval, shutdown.clone())));
    let collector = target.runtime_log_interval.map(|interval| {
        tokio::spawn(runtime_logs::run(
            side_pool.clone(),
            engine::Engine::local(target.containers_conf.clone()),
            interval,
            settings.common.log_retention,
            shutdown.clone(),
        ))
    });
    let deploy = std::sync::Arc::new(handler::DeployHandler::new(
        target,
        slipway_shared::config::worker_secret_box()?,
    )?);
    let result = slipway_shared::worker::run(
        STAGE,
        settings,
        |runtime| {
            runtime
                .with_handler(check::TargetCheck::new(deploy.clone()))
                .with_handler(handler::Shared(deploy))
        },
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    for task in [monitor, collector].into_iter().flatten() {
        let _ = task.await;
    }
    result
}
