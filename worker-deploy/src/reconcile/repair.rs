//! Bringing one app back to its live release: its container running (started
//! again, or re-created from the release's image on its port), then the
//! apps' Caddy server and the app's route pointing at it, then no other
//! container of the app left (a release a crashed deploy started or did
//! not get to stop).
//!
//! A re-created container gets the app's env and runtime settings as they
//! are now (the release keeps no copy of them); its image is the release's,
//! by digest.

use super::{repaired, LiveRelease, Reconciler};
use crate::caddy::RouteChange;
use crate::engine::{ContainerInfo, EngineError, LABEL_APP, LABEL_RELEASE};
use crate::handler::{container_spec, route_id};
use crate::health::{self, HealthCheck};
use crate::release;
use crate::target::DeployTarget;

impl Reconciler {
    /// Repairs the app; returns how many repairs that took.
    pub(super) async fn repair(
        &self,
        release: &LiveRelease,
        server_checked: &mut bool,
    ) -> anyhow::Result<usize> {
        let mut repairs = 0;
        let port = self.ensure_container(release, &mut repairs).await?;
        if !*server_checked {
            let server = &self.target.caddy_server;
            if self
                .caddy
                .ensure_server(server, &self.target.caddy_http_addr)
                .await?
            {
                repaired(
                    "caddy_server_restored",
                    release,
                    &format!("Caddy server {server} re-created"),
                );
                repairs += 1;
            }
            *server_checked = true;
        }
        let host = format!(
            "{}.{}.{}",
            release.app, release.project, self.target.base_domain
        );
        let upstream = format!("127.0.0.1:{port}");
        let change = self
            .caddy
            .set_route(
                &self.target.caddy_server,
                &route_id(release.app_id),
                std::slice::from_ref(&host),
                std::slice::from_ref(&upstream),
            )
            .await?;
        let kind = match change {
            // Other containers go only once the route has pointed away
            // from them for a whole pass: requests to them can finish.
            RouteChange::Unchanged => return Ok(repairs + self.remove_others(release).await?),
            RouteChange::Created => "route_restored",
            RouteChange::UpstreamsSwitched | RouteChange::Replaced => "route_corrected",
        };
        repaired(kind, release, &format!("route {host} -> {upstream}"));
        Ok(repairs + 1)
    }

    /// Removes the app's containers other than the live release's. No
    /// deploy of the app is in flight (the caller holds the app's lock and
    /// checked), so none of them is about to serve.
    async fn remove_others(&self, release: &LiveRelease) -> anyhow::Result<usize> {
        let containers = self
            .engine
            .list(LABEL_APP, &release.app_id.to_string())
            .await?;
        let mut removed = 0;
        for other in containers
            .iter()
            .filter(|c| c.name != release.container_name)
        {
            self.engine.remove(&other.name).await?;
            repaired(
                "stale_container_removed",
                release,
                &format!(
                    "removed {} ({}), not the live release",
                    other.name, other.state
                ),
            );
            removed += 1;
        }
        Ok(removed)
    }

    /// Makes sure the release's container runs; returns its host port. A
    /// container that had to be started or re-created passes the app's
    /// health check before its route is touched.
    async fn ensure_container(
        &self,
        release: &LiveRelease,
        repairs: &mut usize,
    ) -> anyhow::Result<u16> {
        let listed = self
            .engine
            .list(LABEL_RELEASE, &release.deployment_id.to_string())
            .await?;
        let found = listed
            .into_iter()
            .find(|c| c.name == release.container_name);
        let known_port = |c: &ContainerInfo| {
            c.host_port
                .or_else(|| release.host_port.and_then(|p| u16::try_from(p).ok()))
        };
        if let Some(port) = found
            .as_ref()
            .filter(|c| c.is_running())
            .and_then(known_port)
        {
            return Ok(port);
        }
        let app =
            DeployTarget::load(&self.pool, release.deployment_id, self.secrets.as_ref()).await?;
        let port = match found.as_ref().and_then(|c| known_port(c).map(|p| (c, p))) {
            Some((container, port)) => match self.engine.start(&container.name).await {
                Ok(()) => {
                    repaired(
                        "container_started",
                        release,
                        &format!("container was {}; started again", container.state),
                    );
                    port
                }
                Err(error) => {
                    tracing::warn!(%error, release = %release.container_name,
                        "reconciler: the stopped container does not start; re-creating it");
                    self.engine.remove(&container.name).await?;
                    self.recreate(release, &app).await?
                }
            },
            None => {
                self.engine.remove(&release.container_name).await?;
                self.recreate(release, &app).await?
            }
        };
        *repairs += 1;
        let check = HealthCheck {
            path: app.runtime.health_path.clone(),
            interval: app.runtime.health_interval,
            timeout: app.runtime.health_timeout,
            attempts: app.runtime.health_attempts,
        };
        health::wait_healthy(port, &check).await?;
        Ok(port)
    }

    /// Runs the release again from its image, on its old port if that is
    /// still free.
    async fn recreate(&self, release: &LiveRelease, app: &DeployTarget) -> anyhow::Result<u16> {
        let mut spec = container_spec(app, release.deployment_id)?;
        anyhow::ensure!(
            spec.name == release.container_name,
            "release {} has container {}, expected {}",
            release.id,
            release.container_name,
            spec.name
        );
        let old_port = release.host_port.and_then(|p| u16::try_from(p).ok());
        spec.host_port = old_port;
        self.engine
            .pull(&spec.image, self.target.registry_tls_verify)
            .await?;
        let running = match self.engine.run(&spec).await {
            Ok(running) => running,
            Err(EngineError::StartFailed { stderr, .. })
                if old_port.is_some() && stderr.contains("address already in use") =>
            {
                spec.host_port = None;
                self.engine.run(&spec).await?
            }
            Err(error) => return Err(error.into()),
        };
        if Some(running.host_port) != old_port {
            release::set_port(&self.pool, release.id, running.host_port).await?;
        }
        repaired(
            "container_recreated",
            release,
            &format!(
                "container was gone; re-created from {} on 127.0.0.1:{}",
                spec.image, running.host_port
            ),
        );
        Ok(running.host_port)
    }
}
