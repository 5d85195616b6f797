//! An app's route on the target's Caddy, over HTTP and, when the target
//! serves HTTPS, through the TLS server in front of it (certificates from
//! Caddy's internal CA for exactly the app's hosts): pointed at a release's
//! upstreams, answering 503 while the app is stopped, or removed.

use crate::handler::{route_id, DeployHandler};
use slipway_shared::job::JobError;
use uuid::Uuid;

impl DeployHandler {
    /// Makes sure the apps server (and its TLS server) exist and the app's
    /// hosts have certificates.
    async fn prepare(&self, hosts: &[String]) -> Result<(), JobError> {
        let server = &self.target.caddy_server;
        let http = &self.target.caddy_http_addr;
        self.caddy.ensure_server(server, http).await?;
        if let Some(https) = &self.target.caddy_https_addr {
            self.caddy.ensure_tls_server(server, https, http).await?;
            self.caddy.add_tls_hosts(server, hosts).await?;
        }
        Ok(())
    }

    /// Sends requests for `hosts` to `upstreams` (`127.0.0.1:PORT`).
    pub(crate) async fn publish(
        &self,
        app_id: Uuid,
        hosts: &[String],
        upstreams: &[String],
    ) -> Result<(), JobError> {
        self.prepare(hosts).await?;
        self.caddy
            .set_route(
                &self.target.caddy_server,
                &route_id(app_id),
                hosts,
                upstreams,
            )
            .await?;
        Ok(())
    }

    /// Makes `hosts` answer 503: the app is stopped.
    pub(crate) async fn publish_stopped(
        &self,
        app_id: Uuid,
        hosts: &[String],
    ) -> Result<(), JobError> {
        self.prepare(hosts).await?;
        self.caddy
            .set_stopped_route(&self.target.caddy_server, &route_id(app_id), hosts)
            .await?;
        Ok(())
    }

    /// Removes the app's route and its hosts' certificates; true when there
    /// was a route.
    pub(crate) async fn unpublish(&self, app_id: Uuid, hosts: &[String]) -> Result<bool, JobError> {
        let removed = self.caddy.remove_route(&route_id(app_id)).await?;
        if self.target.caddy_https_addr.is_some() {
            self.caddy
                .remove_tls_hosts(&self.target.caddy_server, hosts)
                .await?;
        }
        Ok(removed)
    }
}
