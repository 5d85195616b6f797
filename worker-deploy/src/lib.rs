//! The deploy worker: consumes the `deploy` stage queue with the shared runtime
//! and runs the probe job, the deploy job (deploys and app operations) and
//! the deploy side of a target check; beside them, the reconciler that keeps
//! every target (local and ssh) at the desired state, the health monitor
//! and the runtime logs of the apps on all of them. The worker talks to
//! every engine through its API: the local podman's service it supervises,
//! and each ssh target's through one persistent SSH session (`session`).
//! It works from their events: a dead app container is repaired at once
//! (`watch`) and every container's logs are followed (`follow`).

pub mod addons;
pub mod caddy;
pub mod check;
pub mod config;
pub mod engine;
pub mod follow;
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
pub mod session;
pub mod site;
pub mod sites;
pub mod target;
pub mod watch;
mod withdraw;

use secrecy::ExposeSecret;
use slipway_shared::config::WorkerSettings;
use slipway_shared::job::Stage;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const STAGE: Stage = Stage::Deploy;
/// The stage's time limit unless `SLIPWAY_STAGE_TIMEOUT` says otherwise.
pub const DEFAULT_STAGE_TIMEOUT: Duration = Duration::from_secs(1800);
/// Connections of the reconciler's own pool (opened when needed): its pass
/// lock, an app lock and its queries, and an app lock and a query
/// connection for each of the repairs engine events run at once.
const RECONCILER_CONNECTIONS: u32 = 2 + 2 * watch::PARALLEL_REPAIRS as u32;
/// Connections the log followers store their batches through (their locks
/// are on one more connection of their own).
const FOLLOWER_CONNECTIONS: u32 = 4;

pub async fn run(settings: WorkerSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let deploy_settings = config::DeploySettings::from_env()?;
    let target = deploy_settings.target;
    let secrets = slipway_shared::config::worker_secret_box()?;
    // What the background tasks reach every target with (ssh targets
    // over their persistent sessions, see `session` and `sites`).
    let mut sites = sites::Sites::new(target.clone(), secrets.clone())?;
    // The local engine's API: its events repair dead containers at once
    // and wake the log followers; the monitor and the reconciler look
    // into local containers through it.
    let (api, service) =
        engine::service::supervise(target.containers_conf.clone(), shutdown.clone()).await?;
    sites.engine = sites.engine.clone().with_api(api.clone());
    let reconciler = std::sync::Arc::new(reconcile::Reconciler {
        pool: slipway_shared::db::pool(&settings.common.database_url, RECONCILER_CONNECTIONS)?,
        sites: sites.clone(),
        event_repairs: Default::default(),
    });
    let pass = match deploy_settings.reconcile_interval {
        Some(interval) => Some(tokio::spawn(
            reconciler.as_ref().clone().run(interval, shutdown.clone()),
        )),
        None => {
            tracing::info!("reconciler off (SLIPWAY_RECONCILE_INTERVAL=off)");
            None
        }
    };
    let started = std::sync::Arc::new(tokio::sync::Notify::new());
    let watcher = watch::Watcher::new(api.clone(), None, reconciler.clone(), started.clone());
    let watcher = tokio::spawn(watcher.run(shutdown.clone()));
    // The monitor has a small pool of its own, outside the job runtime's.
    let side_pool = slipway_shared::db::pool(&settings.common.database_url, 2)?;
    let monitor = target.health_monitor_interval.map(|interval| {
        tokio::spawn(monitor::run(
            side_pool.clone(),
            sites.clone(),
            interval,
            shutdown.clone(),
        ))
    });
    let followers = match target.runtime_log_interval {
        Some(_) => Some(follow::Followers {
            pool: slipway_shared::db::pool(&settings.common.database_url, FOLLOWER_CONNECTIONS)?,
            database_url: settings.common.database_url.expose_secret().to_owned(),
            api: api.clone(),
            target: None,
            secrets: secrets.clone(),
            retention: settings.common.log_retention,
            wake: started.clone(),
            files: follow::FileWatch::new()
                .inspect_err(|error| {
                    tracing::warn!(%error, "log followers: no inotify; following through the API")
                })
                .ok(),
        }),
        None => None,
    };
    // The ssh targets: one persistent session each, carrying the same
    // watcher and followers on the target's engine API.
    let sessions = tokio::spawn(
        session::Supervisor {
            sessions: sites.sessions.clone(),
            reconciler: reconciler.clone(),
            followers: followers.clone(),
            registry: target.registry.clone(),
        }
        .run(shutdown.clone()),
    );
    let followers = followers.map(|followers| tokio::spawn(followers.run(shutdown.clone())));
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
    for task in [
        pass,
        monitor,
        followers,
        Some(sessions),
        Some(watcher),
        Some(service),
    ]
    .into_iter()
    .flatten()
    {
        let _ = task.await;
    }
    result
}
