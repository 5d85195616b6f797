//! Provisioning the `local` target: check that what a deploy
//! needs on this host is there — the container engine, the registry the
//! image comes from and Caddy's admin API — and say exactly what is missing.
//! The local target has nothing to create, so provisioning it again
//! changes nothing, and the log says so.

use slipway_shared::job::{JobContext, JobError};
use slipway_shared::local_target::LocalTarget;
use std::time::Duration;

pub struct LocalProvision {
    target: LocalTarget,
}

impl LocalProvision {
    pub fn new(target: LocalTarget) -> Self {
        LocalProvision { target }
    }

    pub fn target(&self) -> &LocalTarget {
        &self.target
    }
}

/// One requirement of the target and what was found.
struct Check {
    what: String,
    found: Result<String, String>,
}

impl LocalProvision {
    pub async fn provision(&self, ctx: &JobContext) -> Result<(), JobError> {
        let checks = tokio::select! {
            checks = self.check() => checks,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        let mut missing = Vec::new();
        for check in &checks {
            match &check.found {
                Ok(found) => ctx.logs.info(format!("{}: {found}", check.what)).await,
                Err(problem) => {
                    ctx.logs
                        .info(format!("{}: MISSING: {problem}", check.what))
                        .await;
                    missing.push(format!("{} ({problem})", check.what));
                }
            }
        }
        if !missing.is_empty() {
            return Err(JobError::permanent(
                "target_not_ready",
                format!("the local target lacks: {}", missing.join("; ")),
            ));
        }
        ctx.logs.info("local target ready; nothing to change").await;
        Ok(())
    }

    async fn check(&self) -> Vec<Check> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        let scheme = if self.target.registry_tls_verify {
            "https"
        } else {
            "http"
        };
        let registry = format!("{scheme}://{}/v2/", self.target.registry);
        let caddy = format!("{}/config/", self.target.caddy_admin);
        let (engine, registry_ok, caddy_ok) = tokio::join!(
            podman_version(&self.target),
            answers(&client, &registry, &[200, 401]),
            answers(&client, &caddy, &[200]),
        );
        vec![
            Check {
                what: "container engine (podman)".into(),
                found: engine,
            },
            Check {
                what: format!("registry {registry}"),
                found: registry_ok,
            },
            Check {
                what: format!("Caddy admin API {caddy}"),
                found: caddy_ok,
            },
        ]
    }
}

async fn podman_version(target: &LocalTarget) -> Result<String, String> {
    let mut command = slipway_shared::process::clean_command("podman");
    command.args(["version", "--format", "{{.Client.Version}}"]);
    if let Some(conf) = &target.containers_conf {
        command.env("CONTAINERS_CONF", conf);
    }
    let output = tokio::time::timeout(Duration::from_secs(15), command.output())
        .await
        .map_err(|_| "podman did not answer within 15 s".to_owned())?
        .map_err(|e| {
            format!("cannot run podman: {e} (install podman, see scripts/build-tools.sh)")
        })?;
    if output.status.success() {
        Ok(format!(
            "podman {}",
            String::from_utf8_lossy(&output.stdout).trim()
        ))
    } else {
        Err(format!(
            "podman failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

async fn answers(client: &reqwest::Client, url: &str, ok: &[u16]) -> Result<String, String> {
    match client.get(url).send().await {
        Ok(answer) if ok.contains(&answer.status().as_u16()) => {
            Ok(format!("answers {}", answer.status()))
        }
        Ok(answer) => Err(format!("answers {}", answer.status())),
        Err(error) => Err(format!("not reachable: {error}")),
    }
}
