//! Where a deploy happens and how the handler reaches it: the engine, the
//! Caddy admin API, the apps' server, and the loopback port a release is
//! health-checked on.
//!
//! On the local target that is all on this host. On an `ssh` target the
//! engine runs over SSH and one `ssh -N` process ([`Tunnel`]) lives for the
//! whole job (the deploy worker's background loops use the target's
//! persistent session instead, see `session`, or while it is down a
//! connection of the round's own). It
//! is the master of a control socket in the key files' folder, so the
//! engine's commands are sessions on its connection rather than new
//! connections (see `slipway_shared::ssh::Mux`), and it carries two
//! forwards:
//! - `-L`: the target's Caddy admin API on a loopback port here, so the
//!   same admin client (and its upstream-swap logic) drives the target's
//!   own Caddy without curl on the server and without exposing the API;
//! - `-R`: the platform's registry on a port of the target's loopback, so
//!   the target pulls the image by digest through the SSH connection. The
//!   alternative, `podman save | ssh podman load`, would need the image in
//!   this host's storage, copy every layer on every deploy and lose the
//!   digest check; a pull reuses the target's cached layers and verifies
//!   the content against the digest, which is also why TLS verification
//!   can be off for that pull: the SSH connection authenticates the other
//!   end and the digest the bytes.
//!
//! A release's port is only known once podman picked it on the target, so
//! its health check opens a second, short-lived forward to it.
//!
//! HTTPS: the local target serves it on `SLIPWAY_CADDY_HTTPS_ADDR` with
//! the issuer of `SLIPWAY_TLS_ISSUER` (Caddy's internal CA by default); an
//! ssh target when its settings name an `https_addr`, with their issuer
//! (ACME by default: a server's names are real ones).

use crate::caddy::CaddyAdmin;
use crate::engine::Engine;
use slipway_shared::db::targets::SshTarget;
use slipway_shared::job::JobError;
use slipway_shared::local_target::LocalTarget;
use slipway_shared::ssh::{SshHost, SshKeyFiles, Tunnel};
use slipway_shared::tls::TlsIssuer;
use std::sync::Arc;

pub struct Site {
    pub engine: Engine,
    pub caddy: CaddyAdmin,
    /// The Caddy server (under `apps.http.servers`) holding the apps' routes.
    pub caddy_server: String,
    /// Where that server listens.
    pub apps_addr: String,
    /// Where the same apps answer over HTTPS; `None` when the site serves
    /// no HTTPS.
    pub https_addr: Option<String>,
    /// Where the HTTPS certificates come from.
    pub tls_issuer: TlsIssuer,
    pub base_domain: String,
    pub registry_tls_verify: bool,
    ssh: Option<SshSite>,
}

struct SshSite {
    id: uuid::Uuid,
    name: String,
    host: SshHost,
    /// The port on the target's loopback that reaches the registry.
    registry_port: u16,
    registry: String,
    /// The connection the site's forwards are on, open while the site is
    /// used: its own ([`OwnConnection`]) or the target's persistent session.
    _connection: Arc<dyn Send + Sync>,
}

/// A site's own connection: the tunnel is killed before its key files go.
struct OwnConnection {
    _tunnel: Tunnel,
    _files: SshKeyFiles,
}

impl Site {
    pub fn local(target: &LocalTarget, engine: &Engine, caddy: &CaddyAdmin) -> Site {
        Site {
            engine: engine.clone(),
            caddy: caddy.clone(),
            caddy_server: target.caddy_server.clone(),
            apps_addr: target.caddy_http_addr.clone(),
            https_addr: target.caddy_https_addr.clone(),
            tls_issuer: target.tls_issuer.clone(),
            base_domain: target.base_domain.clone(),
            registry_tls_verify: target.registry_tls_verify,
            ssh: None,
        }
    }

    /// Connects to an ssh target: key files written, forwards open.
    pub async fn ssh(target: &SshTarget, local: &LocalTarget) -> Result<Site, JobError> {
        let files = target.key_files()?;
        // The job's connection: its forwards, and the master the engine's
        // commands share (see `Mux`).
        let tunnel = Tunnel::open_master(
            &files.host,
            std::slice::from_ref(&target.settings.caddy_admin),
            std::slice::from_ref(&local.registry),
        )
        .await
        .map_err(|e| e.into_job_error())?;
        let host = files.host.clone();
        let (caddy_port, registry_port) = (tunnel.local_port(0), tunnel.remote_port(0));
        let connection = Arc::new(OwnConnection {
            _tunnel: tunnel,
            _files: files,
        });
        Site::over(target, local, host, caddy_port, registry_port, connection)
    }

    /// The site of an ssh target over its persistent session (see
    /// `session`): no connection of its own; the engine's commands are
    /// sessions on the session's connection.
    pub fn over_session(
        session: Arc<crate::session::connect::Shared>,
        local: &LocalTarget,
    ) -> Result<Site, JobError> {
        let host = session.files.host.clone();
        let (caddy_port, registry_port) = (session.caddy_port, session.registry_port);
        let target = &session.target;
        Site::over(
            target,
            local,
            host,
            caddy_port,
            registry_port,
            session.clone(),
        )
    }

    fn over(
        target: &SshTarget,
        local: &LocalTarget,
        host: SshHost,
        caddy_port: u16,
        registry_port: u16,
        connection: Arc<dyn Send + Sync>,
    ) -> Result<Site, JobError> {
        let caddy = CaddyAdmin::forwarded(
            &format!("127.0.0.1:{caddy_port}"),
            &target.settings.caddy_admin,
        )
        .map_err(|e| e.into_job_error())?;
        let engine = Engine::ssh(
            host.clone(),
            target.engine(),
            target.settings.containers_conf.as_ref().map(Into::into),
        );
        Ok(Site {
            engine,
            caddy,
            caddy_server: local.caddy_server.clone(),
            apps_addr: target.settings.apps_addr.clone(),
            https_addr: target.settings.https_addr.clone(),
            tls_issuer: target.settings.tls.clone(),
            base_domain: local.base_domain.clone(),
            registry_tls_verify: false,
            ssh: Some(SshSite {
                id: target.id,
                name: target.name.clone(),
                host,
                registry_port,
                registry: local.registry.clone(),
                _connection: connection,
            }),
        })
    }

    /// Where the target pulls `image_ref` (`REGISTRY/REPO@DIGEST`) from: on
    /// an ssh target the registry's end of the reverse forward.
    pub fn image_ref(&self, image_ref: &str) -> String {
        match &self.ssh {
            Some(ssh) => match image_ref.strip_prefix(&format!("{}/", ssh.registry)) {
                Some(rest) => format!("127.0.0.1:{}/{rest}", ssh.registry_port),
                None => image_ref.to_owned(),
            },
            None => image_ref.to_owned(),
        }
    }

    /// A port here on which the release's `port` (on the site's loopback)
    /// answers, and the forward that must live while it is used.
    pub async fn reach(&self, port: u16) -> Result<(u16, Option<Tunnel>), JobError> {
        let Some(ssh) = &self.ssh else {
            return Ok((port, None));
        };
        let tunnel = Tunnel::open(&ssh.host, &[format!("127.0.0.1:{port}")], &[])
            .await
            .map_err(|e| e.into_job_error())?;
        Ok((tunnel.local_port(0), Some(tunnel)))
    }

    /// Where this host reaches `addr` (`HOST:PORT` as a server on the site
    /// listens on it; `0.0.0.0` is the site's loopback): the address itself
    /// on the local target, a forward over SSH on an ssh one.
    pub async fn reach_addr(
        &self,
        addr: &str,
    ) -> Result<(std::net::SocketAddr, Option<Tunnel>), JobError> {
        let invalid = || JobError::permanent("invalid_address", format!("{addr} is not HOST:PORT"));
        let (host, port) = addr.rsplit_once(':').ok_or_else(invalid)?;
        let port: u16 = port.parse().map_err(|_| invalid())?;
        let host = match host.trim_start_matches('[').trim_end_matches(']') {
            "0.0.0.0" | "" => "127.0.0.1",
            "::" => "::1",
            host => host,
        };
        let Some(ssh) = &self.ssh else {
            let ip: std::net::IpAddr = host.parse().map_err(|_| invalid())?;
            return Ok(((ip, port).into(), None));
        };
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let tunnel = Tunnel::open(&ssh.host, &[target], &[])
            .await
            .map_err(|e| e.into_job_error())?;
        let here = std::net::SocketAddr::from(([127, 0, 0, 1], tunnel.local_port(0)));
        Ok((here, Some(tunnel)))
    }

    /// Like [`Site::reach`] for several ports at once, through one
    /// forward on an ssh target: the ports here, in the order given.
    pub async fn reach_all(&self, ports: &[u16]) -> Result<(Vec<u16>, Option<Tunnel>), JobError> {
        let Some(ssh) = &self.ssh else {
            return Ok((ports.to_vec(), None));
        };
        if ports.is_empty() {
            return Ok((Vec::new(), None));
        }
        let to_target: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let tunnel = Tunnel::open(&ssh.host, &to_target, &[])
            .await
            .map_err(|e| e.into_job_error())?;
        let here = (0..ports.len()).map(|i| tunnel.local_port(i)).collect();
        Ok((here, Some(tunnel)))
    }

    /// The URL an app answers at through the site's Caddy.
    pub fn app_url(&self, host: &str) -> String {
        match self.apps_addr.rsplit_once(':').map(|(_, p)| p) {
            Some("80") | None => format!("http://{host}/"),
            Some(port) => format!("http://{host}:{port}/"),
        }
    }

    /// The HTTPS URL of an app, when the site serves HTTPS.
    pub fn app_https_url(&self, host: &str) -> Option<String> {
        let addr = self.https_addr.as_deref()?;
        Some(match addr.rsplit_once(':').map(|(_, p)| p) {
            Some("443") | None => format!("https://{host}/"),
            Some(port) => format!("https://{host}:{port}/"),
        })
    }

    /// The ssh target's id; `None` for the local target.
    pub fn target_id(&self) -> Option<uuid::Uuid> {
        self.ssh.as_ref().map(|s| s.id)
    }

    /// `local` or `ssh target NAME (user@host)`, for log lines.
    pub fn describe(&self) -> String {
        match &self.ssh {
            None => "the local target".into(),
            Some(ssh) => format!(
                "ssh target {} ({}, port {})",
                ssh.name, ssh.host.destination, ssh.host.port
            ),
        }
    }

    /// The port on the target's loopback that reaches the registry.
    pub fn registry_port_on_target(&self) -> Option<u16> {
        self.ssh.as_ref().map(|s| s.registry_port)
    }
}
