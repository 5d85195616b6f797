//! The deploy worker: consumes the `deploy` stage queue with the shared runtime
//! and runs the probe job, the deploy job (deploys and app operations) and
//! the deploy side of a target check; beside them, the reconciler that keeps
//! every target (local and ssh) at the desired state, the health monitor
//! and the runtime-log collector of the apps on all of them.

pub mod addons;
pub mod caddy;
pub mod check;
pub mod config;
pub mod engine;
pub mod handler;
pub mod health;
pub mod launch;
pub mod lock;
pub mod monitor;
pub mod operate;
pub mod prune;
pub mod reconcile;
pub mod release;
pub mod replicas;
pub mod routing;
pub mod runtime_logs;
pub mod site;
pub mod sites;
pub mod target;
mod withdraw;

use slipway_shared::config::WorkerSettings;
use slipway_shared::job::Stage;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const STAGE: Stage = Stage::Deploy;
/// The stage's time limit unless `SLIPWAY_STAGE_TIMEOUT` says otherwise.
pub const DEFAULT_STAGE_TIMEOUT: Duration = Duration::from_secs(1800);
/// Connections of the reconciler's own pool: its pass lock, an app lock
/// and its queries.
const RECONCILER_CONNECTIONS: u32 = 3;

pub async fn run(settings: WorkerSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let deploy_settings = config::DeploySettings::from_env()?;
    let target = deploy_settings.target;
    let secrets = slipway_shared::config::worker_secret_box()?;
    // What the background tasks reach every target with (ssh targets
    // through a site per target and round, see `sites`).
    let sites = sites::Sites::new(target.clone(), secrets.clone())?;
    let reconciler = match deploy_settings.reconcile_interval {
        Some(interval) => {
            let reconciler = reconcile::Reconciler {
                pool: slipway_shared::db::pool(
                    &settings.common.database_url,
                    RECONCILER_CONNECTIONS,
                )?,
                sites: sites.clone(),
            };
            Some(tokio::spawn(reconciler.run(interval, shutdown.clone())))
        }
        None => {
            tracing::info!("reconciler off (SLIPWAY_RECONCILE_INTERVAL=off)");
            None
        }
    };
    // The monitor and the log collector share one small pool of their own,
    // outside the job runtime's.
    let side_pool = slipway_shared::db::pool(&settings.common.database_url, 2)?;
    let monitor = target.health_monitor_interval.map(|interval| {
        tokio::spawn(monitor::run(
            side_pool.clone(),
            sites.clone(),
            interval,
            shutdown.clone(),
        ))
    });
    let collector = target.runtime_log_interval.map(|interval| {
        tokio::spawn(runtime_logs::run(
            side_pool.clone(),
            sites.clone(),
            interval,
            settings.common.log_retention,
            shutdown.clone(),
        ))
    });
    let deploy = std::sync::Arc::new(handler::DeployHandler::new(target, secrets)?);
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
    // The runtime may end on its own (an error): the side tasks go too.
    shutdown.cancel();
    for task in [reconciler, monitor, collector].into_iter().flatten() {
        let _ = task.await;
    }
    result
}
