//! `install_verify.v1`: an install's last step. Its app went live on the
//! install's server; this checks from Slipway's side what a visitor will
//! see: `GET http://IPV4/` with the app's host name (the install's domain,
//! or for an install without one the server's address, which the install
//! made one of the app's hosts) answers with a success or a redirect,
//! within [`VERIFY_TIMEOUT`].

use async_trait::async_trait;
use slipway_shared::db::installs::VERIFY_JOB_KIND;
use slipway_shared::db::servers::database;
use slipway_shared::job::{Effects, JobContext, JobError, JobHandler};
use std::time::Duration;

/// How long the app has to answer at the server's address after its
/// deployment went live (the server's Caddy may still be applying the
/// route on a slow machine).
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(60);
/// One request's limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause between two tries.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

pub struct InstallVerify {
    client: reqwest::Client,
}

impl InstallVerify {
    pub fn new() -> anyhow::Result<InstallVerify> {
        // The server's address, directly: never through a proxy.
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(InstallVerify { client })
    }
}

#[async_trait]
impl JobHandler for InstallVerify {
    fn kind(&self) -> &'static str {
        VERIFY_JOB_KIND
    }

    async fn run(&self, ctx: &JobContext) -> Result<Effects, JobError> {
        let found: Option<(Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT s.ipv4, i.domain FROM installs i JOIN servers s ON s.id = i.server_id
             WHERE i.verify_id = $1",
        )
        .bind(ctx.info.deployment_id)
        .fetch_optional(&ctx.pool)
        .await
        .map_err(database)?;
        let (ipv4, domain) = found.ok_or_else(|| {
            JobError::permanent("install_not_found", "this verify belongs to no install")
        })?;
        let ipv4 = ipv4.ok_or_else(|| {
            JobError::permanent("server_invalid", "the install's server has no IPv4 address")
        })?;
        let host = domain.unwrap_or_else(|| ipv4.clone());
        let url = format!("http://{ipv4}/");
        ctx.logs
            .info(&format!(
                "verify: GET {url} with Host {host}, for at most {VERIFY_TIMEOUT:?}"
            ))
            .await;
        let deadline = tokio::time::Instant::now() + VERIFY_TIMEOUT;
        let mut tries = 0;
        loop {
            tries += 1;
            let last = match self.client.get(&url).header("host", &host).send().await {
                // Success or a redirect is the app's; anything else (the
                // proxy's 404 for a host it has no route for yet, its 502
                // while the upstream starts) is worth another try.
                Ok(answer) if answer.status().is_success() || answer.status().is_redirection() => {
                    ctx.logs
                        .info(&format!(
                            "the app answered {} at {url} (try {tries})",
                            answer.status()
                        ))
                        .await;
                    return Ok(Vec::new());
                }
                Ok(answer) => format!("it answered {}", answer.status()),
                Err(error) => format!("{error}"),
            };
            if tokio::time::Instant::now() + RETRY_PAUSE >= deadline {
                return Err(JobError::permanent(
                    "app_unreachable",
                    format!(
                        "the app did not answer at {url} (Host {host}) within {VERIFY_TIMEOUT:?}, {tries} tries; last: {last}"
                    ),
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY_PAUSE) => {}
                _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
            }
        }
    }
}
