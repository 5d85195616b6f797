//! Bringing one app back to its current release on its target's [`Site`]:
//! for a live release, every container of the release (each replica)
//! running (started again, or re-created from the release's image on its
//! port), then the apps' Caddy server (and, when the site serves HTTPS, its
//! TLS server and the app's certificates) and the app's route pointing at
//! all of them, then no other container of the app left (a release a
//! crashed deploy started or did not get to stop). For a paused release
//! (a stopped app) only the server and the app's 503 route: its containers
//! stay stopped, and `start` runs a fresh one.
//!
//! On an ssh target the same steps run through the site: podman over SSH,
//! the target's Caddy through the site's forward, a re-created container's
//! image pulled through the registry forward and its health check (the
//! app's rule, see `health`) over SSH as well.
//!
//! A re-created container gets the app's env and runtime settings as they
//! are now (the release keeps no copy of them); its image is the release's,
//! by digest. The route keeps the hosts it has (a domain changed since the
//! last deploy waits for the next deploy, start or restart); a route that is
//! gone is re-created with the app's hosts as they are now.

use super::{repaired, LiveRelease, Reconciler};
use crate::caddy::{RouteChange, RouteInfo};
use crate::engine::{ContainerInfo, EngineError, Host, LABEL_APP, LABEL_RELEASE};
use crate::handler::route_id;
use crate::health::{HealthRule, Unhealthy};
use crate::launch::container_spec;
use crate::release;
use crate::replicas::{replica_name, replica_spec};
use crate::site::Site;
use crate::target::DeployTarget;

impl LiveRelease {
    /// The port each replica was last recorded on.
    fn ports(&self) -> Vec<Option<u16>> {
        let port = |p: &i32| u16::try_from(*p).ok();
        match self.host_ports.as_deref() {
            Some(ports) if !ports.is_empty() => ports.iter().map(port).collect(),
            _ => vec![self.host_port.as_ref().and_then(port)],
        }
    }

    /// Whether a live release is as it should be by a pass's one look at
    /// its target: every replica running on its recorded port, the app's
    /// route pointing at all of them, no other container of the app. Such
    /// an app needs no repair, so the pass spends nothing more on it.
    pub(super) fn in_order(&self, listed: &[ContainerInfo], routes: &[RouteInfo]) -> bool {
        if self.is_paused() {
            return false;
        }
        let mut names = Vec::new();
        let mut upstreams = Vec::new();
        for (index, port) in (0u32..).zip(self.ports()) {
            let name = replica_name(&self.container_name, index);
            let Some(port) = port else {
                return false;
            };
            let running = listed
                .iter()
                .any(|c| c.name == name && c.is_running() && c.host_port == Some(port));
            if !running {
                return false;
            }
            names.push(name);
            upstreams.push(format!("127.0.0.1:{port}"));
        }
        let id = route_id(self.app_id);
        let routed = routes
            .iter()
            .any(|r| r.id == id && !r.hosts.is_empty() && r.upstreams == upstreams);
        let app = self.app_id.to_string();
        let others = listed
            .iter()
            .any(|c| c.labels.get(LABEL_APP) == Some(&app) && !names.contains(&c.name));
        routed && !others
    }
}

impl Reconciler {
    /// Repairs the app on `site`; returns how many repairs that took.
    pub(super) async fn repair(
        &self,
        site: &Site,
        release: &LiveRelease,
        server_checked: &mut bool,
    ) -> anyhow::Result<usize> {
        let mut repairs = 0;
        let app = DeployTarget::load_app(&self.pool, release.deployment_id).await?;
        if !*server_checked {
            repairs += self.ensure_servers(site, release).await?;
            *server_checked = true;
        }
        if release.is_paused() {
            return Ok(repairs + self.ensure_stopped_route(site, release, &app).await?);
        }
        let listed = site
            .engine
            .list(LABEL_RELEASE, &release.deployment_id.to_string())
            .await?;
        let mut names = Vec::new();
        let mut upstreams = Vec::new();
        for (index, known) in (0u32..).zip(release.ports()) {
            let name = replica_name(&release.container_name, index);
            let found = listed.iter().find(|c| c.name == name);
            let port = self
                .ensure_container(site, release, &app, index, found, known, &mut repairs)
                .await?;
            names.push(name);
            upstreams.push(format!("127.0.0.1:{port}"));
        }
        let server = &site.caddy_server;
        let hosts = self.route_hosts(site, release, &app).await?;
        let id = route_id(release.app_id);
        let change = site
            .caddy
            .set_route(server, &id, &hosts, &upstreams)
            .await?;
        let kind = match change {
            // Other containers go only once the route has pointed away
            // from them for a whole pass: requests to them can finish.
            RouteChange::Unchanged => {
                return Ok(repairs + self.remove_others(site, release, &names).await?)
            }
            RouteChange::Created => "route_restored",
            RouteChange::UpstreamsSwitched | RouteChange::Replaced => "route_corrected",
        };
        repaired(
            kind,
            release,
            &format!("route {} -> {}", hosts.join(", "), upstreams.join(", ")),
        );
        Ok(repairs + 1)
    }

    /// The apps' Caddy server on the site, and its TLS server when the
    /// site serves HTTPS, re-created when missing; checked once per site
    /// and pass.
    pub(super) async fn ensure_servers(
        &self,
        site: &Site,
        release: &LiveRelease,
    ) -> anyhow::Result<usize> {
        let mut repairs = 0;
        let server = &site.caddy_server;
        let http = &site.apps_addr;
        if site.caddy.ensure_server(server, http).await? {
            repaired(
                "caddy_server_restored",
                release,
                &format!("Caddy server {server} on {} re-created", site.describe()),
            );
            repairs += 1;
        }
        if let Some(https) = &site.https_addr {
            if site.caddy.ensure_tls_server(server, https, http).await? {
                repaired(
                    "caddy_server_restored",
                    release,
                    &format!("TLS server of {server} on {https} re-created"),
                );
                repairs += 1;
            }
        }
        Ok(repairs)
    }

    /// The hosts the app's route is for: the ones it has (a domain changed
    /// since the last deploy waits for the next deploy, start or restart),
    /// or the app's hosts as they are now when the route is gone. When the
    /// site serves HTTPS, the hosts' certificates are managed again.
    async fn route_hosts(
        &self,
        site: &Site,
        release: &LiveRelease,
        app: &DeployTarget,
    ) -> anyhow::Result<Vec<String>> {
        let id = route_id(release.app_id);
        let hosts = match site
            .caddy
            .routes(&site.caddy_server)
            .await?
            .into_iter()
            .find(|r| r.id == id)
        {
            Some(route) if !route.hosts.is_empty() => route.hosts,
            _ => app.hosts(&site.base_domain),
        };
        if site.https_addr.is_some() {
            // Adds only what is missing (a Caddy that lost its config).
            let issuer = site.tls_issuer.caddy_issuer();
            site.caddy
                .add_tls_hosts(&site.caddy_server, &hosts, &issuer)
                .await?;
        }
        Ok(hosts)
    }

    /// A stopped app's route answers 503 again (restored after a Caddy
    /// restart, corrected when it says anything else).
    async fn ensure_stopped_route(
        &self,
        site: &Site,
        release: &LiveRelease,
        app: &DeployTarget,
    ) -> anyhow::Result<usize> {
        let hosts = self.route_hosts(site, release, app).await?;
        let change = site
            .caddy
            .set_stopped_route(&site.caddy_server, &route_id(release.app_id), &hosts)
            .await?;
        let kind = match change {
            RouteChange::Unchanged => return Ok(0),
            RouteChange::Created => "route_restored",
            RouteChange::UpstreamsSwitched | RouteChange::Replaced => "route_corrected",
        };
        repaired(
            kind,
            release,
            &format!("route {} -> 503 (the app is stopped)", hosts.join(", ")),
        );
        Ok(1)
    }

    /// Removes the app's containers other than the live release's (all its
    /// replicas, `keep`). No deploy of the app is in flight (the caller
    /// holds the app's lock and checked), so none of them is about to serve.
    async fn remove_others(
        &self,
        site: &Site,
        release: &LiveRelease,
        keep: &[String],
    ) -> anyhow::Result<usize> {
        let containers = site
            .engine
            .list(LABEL_APP, &release.app_id.to_string())
            .await?;
        let mut removed = 0;
        for other in containers.iter().filter(|c| !keep.contains(&c.name)) {
            site.engine.remove(&other.name).await?;
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

    /// Makes sure replica `index` of the release runs; returns its host
    /// port. A container that had to be started or re-created passes the
    /// app's health check before the route is touched.
    #[allow(clippy::too_many_arguments)]
    async fn ensure_container(
        &self,
        site: &Site,
        release: &LiveRelease,
        app: &DeployTarget,
        index: u32,
        found: Option<&ContainerInfo>,
        recorded: Option<u16>,
        repairs: &mut usize,
    ) -> anyhow::Result<u16> {
        let known_port = |c: &ContainerInfo| c.host_port.or(recorded);
        if let Some(port) = found.filter(|c| c.is_running()).and_then(known_port) {
            return Ok(port);
        }
        let name = replica_name(&release.container_name, index);
        let port = match found.and_then(|c| known_port(c).map(|p| (c, p))) {
            Some((container, _)) => match site
                .engine
                .start_published(&container.name, app.runtime.port)
                .await
            {
                // Docker publishes an unfixed host port anew on each start.
                Ok(port) => {
                    repaired(
                        "container_started",
                        release,
                        &format!("container {name} was {}; started again", container.state),
                    );
                    port
                }
                Err(error) => {
                    tracing::warn!(%error, container = %name,
                        "reconciler: the stopped container does not start; re-creating it");
                    site.engine.remove(&container.name).await?;
                    self.recreate(site, release, index, recorded).await?
                }
            },
            None => {
                site.engine.remove(&name).await?;
                self.recreate(site, release, index, recorded).await?
            }
        };
        *repairs += 1;
        match HealthRule::for_app(&app.runtime)
            .check(site, &name, port)
            .await
        {
            Ok(_) => Ok(port),
            Err(Unhealthy::Failed(what)) => anyhow::bail!("{name} is not healthy: {what}"),
            Err(Unhealthy::Unchecked(error)) => Err(error.into()),
        }
    }

    /// Runs replica `index` of the release again from its image, on its old
    /// port if that is still free.
    async fn recreate(
        &self,
        site: &Site,
        release: &LiveRelease,
        index: u32,
        old_port: Option<u16>,
    ) -> anyhow::Result<u16> {
        let secrets = self.sites.secrets.as_ref();
        let app = DeployTarget::load(&self.pool, release.deployment_id, secrets).await?;
        // On an ssh target the image comes through the site's registry
        // forward (its port is this pass's).
        let mut first = container_spec(site, &app, release.deployment_id)?;
        let local = matches!(site.engine.host(), Host::Local);
        let server = &self.sites.local.addon_postgres;
        crate::addons::apply(
            &self.pool,
            release.deployment_id,
            local,
            server,
            secrets,
            &mut first,
        )
        .await?;
        anyhow::ensure!(
            first.name == release.container_name,
            "release {} has container {}, expected {}",
            release.id,
            release.container_name,
            first.name
        );
        let mut spec = replica_spec(&first, index);
        spec.host_port = old_port;
        site.engine
            .pull(&spec.image, site.registry_tls_verify)
            .await?;
        let running = match site.engine.run(&spec).await {
            Ok(running) => running,
            // Another container took the port while this one was dead:
            // a fresh port (recorded below; the route follows it). The
            // failed run left a container of this name behind, created but
            // not started, which would refuse the second run's name.
            Err(EngineError::StartFailed { stderr, .. })
                if old_port.is_some() && stderr.contains("address already in use") =>
            {
                site.engine.remove(&spec.name).await?;
                spec.host_port = None;
                site.engine.run(&spec).await?
            }
            Err(error) => return Err(error.into()),
        };
        if Some(running.host_port) != old_port {
            release::set_replica_port(&self.pool, release.id, index, running.host_port).await?;
        }
        repaired(
            "container_recreated",
            release,
            &format!(
                "container {} was gone; re-created from {} on 127.0.0.1:{} of {}",
                spec.name,
                spec.image,
                running.host_port,
                site.describe()
            ),
        );
        Ok(running.host_port)
    }
}
