//! The `deploy.v1` job on the app's target (local, or an ssh one reached
//! through [`Site`]): pull the image by digest, start the release
//! (`runtime.replicas` containers) with the app's env and limits on fresh
//! ports, health-check each, switch the app's Caddy route to them — the
//! deployment is `live` from here — then drain (`runtime.drain_ms`) and
//! stop the release they replaced. If the new release fails its check
//! it is removed and the old one (if any) keeps serving; the deployment fails with
//! the reason and the release's last log lines. App operations (stop,
//! start, restart, destroy) are deployments of this job too: stop and
//! destroy are in [`crate::operate`], start and restart deploy a fresh
//! release of the current image like any other.
//!
//! When the app moved to another target since its serving release
//! started, that release and the app's route are removed from the target
//! it left (the release row records where it ran).
//!
//! A crash at any point leaves the old or the new release serving: the
//! route moves only to a healthy release, the old one stops only after the
//! switch, and a re-run attempt finds the release an earlier attempt
//! started (its container is named after the deployment) and carries on.
//!
//! A deploy holds the app's advisory lock (see `lock`) for its whole run, so
//! the reconciler never repairs an app while its route is being switched.

use crate::caddy::CaddyAdmin;
use crate::engine::Engine;
use crate::launch::{container_spec, discard, health_check, start, stop_and_remove};
use crate::lock;
use crate::release::{self, MarkLive};
use crate::site::Site;
use crate::target::DeployTarget;
use crate::{operate, replicas, routing, withdraw};
use async_trait::async_trait;
use slipway_shared::db::targets::{self, Placement};
use slipway_shared::job::{Effects, JobContext, JobError, JobHandler};
use slipway_shared::local_target::LocalTarget;
use slipway_shared::operation::AppAction;
use slipway_shared::secrets::SecretBox;
use std::time::Instant;
use uuid::Uuid;

pub const DEPLOY_KIND: &str = "deploy.v1";

pub struct DeployHandler {
    target: LocalTarget,
    engine: Engine,
    caddy: CaddyAdmin,
    secrets: Option<SecretBox>,
}

impl DeployHandler {
    pub fn new(target: LocalTarget, secrets: Option<SecretBox>) -> anyhow::Result<Self> {
        Ok(DeployHandler {
            engine: Engine::local(target.containers_conf.clone()),
            caddy: CaddyAdmin::new(&target.caddy_admin)?,
            target,
            secrets,
        })
    }

    /// Where this deployment runs, connected.
    pub async fn site(&self, ctx: &JobContext) -> Result<Site, JobError> {
        match targets::placement(&ctx.pool, ctx.info.deployment_id, self.secrets.as_ref()).await? {
            Placement::Local => Ok(Site::local(&self.target, &self.engine, &self.caddy)),
            Placement::Ssh(target) => Site::ssh(&target, &self.target).await,
        }
    }
}

/// A [`DeployHandler`] shared with the target check.
pub struct Shared(pub std::sync::Arc<DeployHandler>);

#[async_trait]
impl JobHandler for Shared {
    fn kind(&self) -> &'static str {
        DEPLOY_KIND
    }

    async fn run(&self, ctx: &JobContext) -> Result<Effects, JobError> {
        self.0.run(ctx).await
    }
}

/// The Caddy route of an app: one per app, replaced on every switch.
pub fn route_id(app_id: Uuid) -> String {
    format!("slipway-app-{}", app_id.simple())
}

#[async_trait]
impl JobHandler for DeployHandler {
    fn kind(&self) -> &'static str {
        DEPLOY_KIND
    }

    async fn run(&self, ctx: &JobContext) -> Result<Effects, JobError> {
        let app = DeployTarget::load_app(&ctx.pool, ctx.info.deployment_id).await?;
        let app_lock = tokio::select! {
            locked = lock::lock(&ctx.pool, lock::app_key(app.app_id)) => {
                locked.map_err(|e| JobError::Retryable(format!("database: {e}")))?
            }
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        let result = self.deploy(ctx, app).await;
        app_lock.release().await;
        // The error is stored apart from the log lines: it quotes the
        // release's last lines, which may echo a secret.
        let result = result.map_err(|error| match error {
            JobError::Permanent { code, message } => JobError::Permanent {
                code,
                message: ctx.logs.scrub(message),
            },
            JobError::Retryable(message) => JobError::Retryable(ctx.logs.scrub(message)),
            JobError::Cancelled => JobError::Cancelled,
        });
        ctx.logs.forget_redactions();
        result
    }
}

impl DeployHandler {
    async fn deploy(&self, ctx: &JobContext, app: DeployTarget) -> Result<Effects, JobError> {
        let deployment_id = ctx.info.deployment_id;
        let site = tokio::select! {
            site = self.site(ctx) => site?,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        let doing = match app.action {
            Some(action) => format!("{action} on"),
            None => "deploying to".to_owned(),
        };
        ctx.logs.info(format!("{doing} {}", site.describe())).await;
        match app.action {
            Some(AppAction::Stop) => return operate::stop(&site, ctx, &app).await,
            Some(AppAction::Destroy) => {
                return operate::destroy(&site, ctx, &app, &self.target.addon_postgres).await
            }
            Some(AppAction::Start) if operate::is_serving(&site, ctx, &app).await? => {
                return Ok(Vec::new())
            }
            // Start of a stopped app and restart: a fresh container of the
            // current release's image, deployed like any release.
            Some(AppAction::Start | AppAction::Restart) | None => {}
        }
        let app = app.with_env(&ctx.pool, self.secrets.as_ref()).await?;
        // Before anything the release prints is quoted in the logs.
        ctx.logs.redact(
            crate::target::hidden_values(&ctx.pool, app.app_id, self.secrets.as_ref()).await?,
        );
        let mut spec = container_spec(&site, &app, deployment_id)?;
        let server = &self.target.addon_postgres;
        crate::addons::link(ctx, &site, server, self.secrets.as_ref(), &mut spec).await?;
        let release = release::start(
            &ctx.pool,
            app.app_id,
            deployment_id,
            app.image()?,
            &spec.name,
            site.target_id(),
        )
        .await?;
        let previous = release::current(&ctx.pool, app.app_id, release.id).await?;

        let started = Instant::now();
        let port = match release.host_port {
            Some(port) if site.engine.is_running(&spec.name).await.unwrap_or(false) => {
                ctx.logs
                    .info(format!(
                        "release {} is already running on port {port} (an earlier attempt started it)",
                        spec.name
                    ))
                    .await;
                u16::try_from(port).unwrap_or_default()
            }
            _ => start(&site, ctx, &spec, release.id).await?,
        };
        let mut containers = vec![(spec.name.clone(), port)];
        match replicas::start_more(&site, ctx, &spec, app.runtime.replicas).await {
            Ok(more) => containers.extend(more),
            Err(error) => {
                discard(&site, ctx, &spec.name, release.id).await;
                return Err(error);
            }
        }
        let start_s = started.elapsed().as_secs_f64();

        let checked = Instant::now();
        let mut health = String::new();
        let previous_serving = previous.as_ref().is_some_and(|p| p.state == "live");
        for (name, port) in &containers {
            match health_check(&site, ctx, &app, *port, name, previous_serving).await {
                Ok(said) => health = said,
                Err(error) => {
                    discard(&site, ctx, &spec.name, release.id).await;
                    return Err(error);
                }
            }
        }
        let health_s = checked.elapsed().as_secs_f64();
        if ctx.cancel.is_cancelled() {
            discard(&site, ctx, &spec.name, release.id).await;
            return Err(JobError::Cancelled);
        }

        let switched = Instant::now();
        let hosts = app.hosts(&site.base_domain);
        let upstreams: Vec<String> = containers
            .iter()
            .map(|(_, port)| format!("127.0.0.1:{port}"))
            .collect();
        routing::publish(&site, app.app_id, &hosts, &upstreams).await?;
        let switch_s = switched.elapsed().as_secs_f64();
        let withdraw = || {
            let previous = withdraw::Previous {
                release: previous.as_ref(),
            };
            withdraw::withdraw(
                &site, ctx, app.app_id, &hosts, previous, &spec.name, release.id,
            )
        };
        // HTTP serves already; a certificate that is late is reported, not
        // fatal (Caddy keeps trying to issue it). A cancel meanwhile ends
        // the wait.
        let waited = tokio::select! {
            waited = routing::wait_https(&site, &hosts) => waited,
            _ = ctx.cancel.cancelled() => {
                withdraw().await;
                return Err(JobError::Cancelled);
            }
        };
        match waited {
            Ok(Some(waited)) => {
                ctx.logs
                    .info(format!(
                        "HTTPS certificates ready in {:.2}s",
                        waited.as_secs_f64()
                    ))
                    .await
            }
            Ok(None) => {}
            Err(error) => {
                ctx.logs
                    .info(format!("HTTPS is not answering yet: {error}"))
                    .await
            }
        }
        let url = site.app_url(&hosts[0]);
        let https_url = site.app_https_url(&hosts[0]);
        ctx.logs
            .info(format!(
                "route {} -> {} ({}); start {start_s:.2}s, health {health_s:.2}s, switch {switch_s:.2}s",
                hosts.join(", "),
                upstreams.join(", "),
                spec.name
            ))
            .await;

        // The new release serves: the deployment is `live` now, not after
        // the drain, and the app's next deployment may start its build.
        let marked = ctx
            .succeed_now(vec![Box::new(MarkLive {
                app_id: app.app_id,
                release_id: release.id,
                url: url.clone(),
                https_url: https_url.clone(),
                health,
                host_ports: containers.iter().map(|(_, p)| i32::from(*p)).collect(),
            })])
            .await
            .map_err(|e| JobError::Retryable(format!("database: {e}")))?;
        if !marked {
            // Cancelled: the cancel wins, the route goes back. The lease
            // taken back: whoever holds the job now carries on with this
            // release; both keep running meanwhile.
            if withdraw::was_cancelled(ctx).await {
                withdraw().await;
            }
            return Err(JobError::Cancelled);
        }
        match &https_url {
            Some(https) => ctx.logs.info(format!("live at {url} and {https}")).await,
            None => ctx.logs.info(format!("live at {url}")).await,
        }
        if let Some(previous) = previous.filter(|p| p.container_name != spec.name) {
            let drain = app.runtime.drain;
            ctx.logs
                .info(format!(
                    "draining the replaced release {} for {:.1}s",
                    previous.container_name,
                    drain.as_secs_f64()
                ))
                .await;
            tokio::time::sleep(drain).await;
            if previous.target_id == site.target_id() {
                retire(&site, ctx, &previous).await;
                crate::prune::old_images(&site, ctx, app.app_id, self.target.images_kept).await;
            } else {
                self.retire_elsewhere(ctx, &previous, &hosts, app.app_id)
                    .await;
            }
        }
        Ok(Vec::new())
    }
}

impl DeployHandler {
    /// The app moved to another target: its replaced release runs on the
    /// target it left, whose Caddy still routes the app there. Both go;
    /// if that target cannot be reached (or no longer exists) the log says
    /// what is left behind.
    async fn retire_elsewhere(
        &self,
        ctx: &JobContext,
        previous: &release::Release,
        hosts: &[String],
        app_id: Uuid,
    ) {
        let old_site = match previous.target_id {
            None => Ok(Some(Site::local(&self.target, &self.engine, &self.caddy))),
            Some(id) => match targets::by_id(&ctx.pool, id, self.secrets.as_ref()).await {
                Ok(Some(Placement::Ssh(target))) => {
                    Site::ssh(&target, &self.target).await.map(Some)
                }
                Ok(Some(Placement::Local)) => {
                    Ok(Some(Site::local(&self.target, &self.engine, &self.caddy)))
                }
                Ok(None) => Ok(None),
                Err(error) => Err(error),
            },
        };
        let old_site = match old_site {
            Ok(Some(site)) => site,
            Ok(None) => {
                ctx.logs
                    .info(format!(
                        "the replaced release {} ran on a target that no longer exists: nothing to remove",
                        previous.container_name
                    ))
                    .await;
                return;
            }
            Err(error) => {
                ctx.logs
                    .info(format!(
                        "cannot reach the target the app moved from to remove release {}: {error}",
                        previous.container_name
                    ))
                    .await;
                return;
            }
        };
        ctx.logs
            .info(format!(
                "the app moved from {}: removing its route and release there",
                old_site.describe()
            ))
            .await;
        match routing::unpublish(&old_site, app_id, hosts).await {
            Ok(true) => ctx.logs.info("its old route is removed").await,
            Ok(false) => {}
            Err(error) => {
                ctx.logs
                    .info(format!("could not remove its old route: {error}"))
                    .await
            }
        }
        retire(&old_site, ctx, previous).await;
    }
}

/// Stops and removes every container of a replaced release on `site`. The
/// route no longer points at it: a failure here costs resources, not
/// availability, and is logged (on a site the reconciler covers, it
/// finishes the job).
async fn retire(site: &Site, ctx: &JobContext, previous: &release::Release) {
    let names = replicas::release_containers(site, previous.id, &previous.container_name)
        .await
        .unwrap_or_else(|_| vec![previous.container_name.clone()]);
    for name in names {
        if let Err(error) = stop_and_remove(site, &name).await {
            ctx.logs
                .info(format!("could not stop {name}: {error}"))
                .await;
        }
    }
    ctx.logs
        .info(format!(
            "the replaced release {} is stopped",
            previous.container_name
        ))
        .await;
}
