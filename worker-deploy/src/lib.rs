//! The deploy worker: consumes the `deploy` stage queue with the shared runtime
//! and runs the probe job and the deploy job, and next to them the
//! reconciler that keeps the local target at the desired state.

pub mod caddy;
pub mod config;
pub mod engine;
pub mod handler;
pub mod health;
pub mod lock;
pub mod reconcile;
pub mod release;
pub mod target;

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
    let deploy = handler::DeployHandler::new(target.clone(), secrets.clone())?;
    let reconciler = match deploy_settings.reconcile_interval {
        Some(interval) => {
            let reconciler = reconcile::Reconciler {
                pool: slipway_shared::db::pool(
                    &settings.common.database_url,
                    RECONCILER_CONNECTIONS,
                )?,
                engine: engine::Engine::local(target.containers_conf.clone()),
                caddy: caddy::CaddyAdmin::new(&target.caddy_admin)?,
                target,
                secrets,
            };
            Some(tokio::spawn(reconciler.run(interval, shutdown.clone())))
        }
        None => {
            tracing::info!("reconciler off (SLIPWAY_RECONCILE_INTERVAL=off)");
            None
        }
    };
    let result = slipway_shared::worker::run(
        STAGE,
        settings,
        |runtime| runtime.with_handler(deploy),
        shutdown.clone(),
    )
    .await;
    // The runtime may end on its own (an error): the reconciler goes too.
    shutdown.cancel();
    if let Some(task) = reconciler {
        let _ = task.await;
    }
    result
}
