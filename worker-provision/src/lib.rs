//! The provision worker: consumes the `provision` stage queue with the
//! shared runtime and runs the probe job, the provision job of app
//! deployments and the target check, on the local target or an ssh one,
//! the setup of a server as an ssh target, and the create and destroy of
//! servers bought from cloud accounts, and an install's check that its
//! app answers on its new server.

pub mod addons;
pub mod handler;
pub mod install_verify;
pub mod local;
pub mod server;
pub mod setup;
pub mod ssh;

use slipway_shared::config::WorkerSettings;
use slipway_shared::job::Stage;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const STAGE: Stage = Stage::Provision;
/// The stage's time limit unless `SLIPWAY_STAGE_TIMEOUT` says otherwise.
pub const DEFAULT_STAGE_TIMEOUT: Duration = Duration::from_secs(1800);

pub async fn run(settings: WorkerSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let target = slipway_shared::local_target::LocalTarget::from_env()?;
    let secrets = slipway_shared::config::worker_secret_box()?;
    let local = Arc::new(local::LocalProvision::new(target));
    let servers = Arc::new(server::Servers {
        secrets: secrets.clone(),
        settings: slipway_shared::config::server_settings()?,
        policy: Arc::new(slipway_shared::config::outbound_policy()?),
    });
    let verify = install_verify::InstallVerify::new()?;
    slipway_shared::worker::run(
        STAGE,
        settings,
        |runtime| {
            runtime
                .with_handler(handler::Provision::app(local.clone(), secrets.clone()))
                .with_handler(handler::Provision::check(local, secrets.clone()))
                .with_handler(setup::TargetSetup::new(secrets))
                .with_handler(server::create::ServerCreate(servers.clone()))
                .with_handler(server::destroy::ServerDestroy(servers))
                .with_handler(verify)
        },
        shutdown,
    )
    .await
}
