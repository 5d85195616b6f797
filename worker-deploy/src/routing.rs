//! An app's route on the site's Caddy, over HTTP and, when the site serves
//! HTTPS (see [`Site`]), through the TLS server in front of it (certificates
//! from the site's issuer, Caddy's internal CA or ACME, for exactly the
//! app's hosts): pointed at a release's upstreams, answering 503 while the
//! app is stopped, or removed.

use crate::caddy::{route_json, stopped_route_json};
use crate::handler::route_id;
use crate::site::Site;
use serde_json::Value;
use slipway_shared::job::JobError;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a deploy waits for Caddy to issue the hosts' certificates.
const CERTIFICATE_WAIT: Duration = Duration::from_secs(30);

/// Makes sure the apps server (and its TLS server) exist and the app's
/// hosts have certificates; a server made new starts with `route` (see
/// [`crate::caddy::CaddyAdmin::ensure_server_with`]).
async fn prepare(site: &Site, hosts: &[String], route: &Value) -> Result<(), JobError> {
    let server = &site.caddy_server;
    let http = &site.apps_addr;
    site.caddy
        .ensure_server_with(server, http, Some(route))
        .await?;
    if let Some(https) = &site.https_addr {
        site.caddy.ensure_tls_server(server, https, http).await?;
        let issuer = site.tls_issuer.caddy_issuer();
        site.caddy.add_tls_hosts(server, hosts, &issuer).await?;
    }
    Ok(())
}

/// Sends requests for `hosts` to `upstreams` (`127.0.0.1:PORT` on the
/// site's host).
pub(crate) async fn publish(
    site: &Site,
    app_id: Uuid,
    hosts: &[String],
    upstreams: &[String],
) -> Result<(), JobError> {
    let id = route_id(app_id);
    prepare(site, hosts, &route_json(&id, hosts, upstreams)).await?;
    let before = route_hosts(site, app_id).await?;
    site.caddy
        .set_route(&site.caddy_server, &id, hosts, upstreams)
        .await?;
    forget_hosts(site, &before, hosts).await
}

/// The hosts the app's route matches now (none without a route).
async fn route_hosts(site: &Site, app_id: Uuid) -> Result<Vec<String>, JobError> {
    let id = route_id(app_id);
    Ok(site
        .caddy
        .routes(&site.caddy_server)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .map(|r| r.hosts)
        .unwrap_or_default())
}

/// Stops managing certificates for hosts the route no longer has (a
/// domain removed from the app).
async fn forget_hosts(site: &Site, before: &[String], now: &[String]) -> Result<(), JobError> {
    let gone: Vec<String> = before
        .iter()
        .filter(|h| !now.contains(h))
        .cloned()
        .collect();
    if !gone.is_empty() && site.https_addr.is_some() {
        site.caddy
            .remove_tls_hosts(&site.caddy_server, &gone)
            .await?;
    }
    Ok(())
}

/// Waits until every host answers over HTTPS (issuance runs in the
/// background and a config change restarts it). With Caddy's internal CA
/// the certificate is verified against that CA's root; with ACME only the
/// handshake is required (Caddy completes one only for a name it holds a
/// certificate for; the CA's root may be known to the target alone). On
/// an ssh target the check goes through a forward to its HTTPS address.
/// `Ok(None)` when the site serves no HTTPS; `Err` says what still fails
/// after [`CERTIFICATE_WAIT`].
pub(crate) async fn wait_https(site: &Site, hosts: &[String]) -> Result<Option<Duration>, String> {
    let Some(addr) = &site.https_addr else {
        return Ok(None);
    };
    let (socket, _forward) = site.reach_addr(addr).await.map_err(|e| e.to_string())?;
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(2));
    if site.tls_issuer.is_internal() {
        let root = site
            .caddy
            .local_ca_root()
            .await
            .map_err(|e| e.to_string())?;
        let certificate =
            reqwest::Certificate::from_pem(root.as_bytes()).map_err(|e| e.to_string())?;
        builder = builder.add_root_certificate(certificate);
    } else {
        builder = builder.danger_accept_invalid_certs(true);
    }
    for host in hosts {
        builder = builder.resolve(host, socket);
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    let started = Instant::now();
    for host in hosts {
        let url = format!("https://{host}:{}/", socket.port());
        loop {
            // Any HTTP answer means the TLS handshake succeeded.
            match client.get(&url).send().await {
                Ok(_) => break,
                Err(e) if started.elapsed() > CERTIFICATE_WAIT => {
                    return Err(format!("{url}: {e}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    Ok(Some(started.elapsed()))
}

/// Makes `hosts` answer 503: the app is stopped.
pub(crate) async fn publish_stopped(
    site: &Site,
    app_id: Uuid,
    hosts: &[String],
) -> Result<(), JobError> {
    let id = route_id(app_id);
    prepare(site, hosts, &stopped_route_json(&id, hosts)).await?;
    let before = route_hosts(site, app_id).await?;
    site.caddy
        .set_stopped_route(&site.caddy_server, &id, hosts)
        .await?;
    forget_hosts(site, &before, hosts).await
}

/// Removes the app's route and its hosts' certificates; true when there
/// was a route.
pub(crate) async fn unpublish(
    site: &Site,
    app_id: Uuid,
    hosts: &[String],
) -> Result<bool, JobError> {
    let removed = site.caddy.remove_route(&route_id(app_id)).await?;
    if site.https_addr.is_some() {
        site.caddy
            .remove_tls_hosts(&site.caddy_server, hosts)
            .await?;
    }
    Ok(removed)
}
