//! The deploy stage of a target check (`target_check.v1`): what a deploy
//! needs from this worker's side — the target reached over SSH with the
//! forwards a deploy uses (the target's Caddy admin API here, the
//! platform's registry on the target) and Caddy answering through them; on
//! the local target, its Caddy admin API. Nothing is changed.

use crate::handler::DeployHandler;
use async_trait::async_trait;
use slipway_shared::db::targets::CHECK_JOB_KIND;
use slipway_shared::job::{Effects, JobContext, JobError, JobHandler};
use std::sync::Arc;

pub struct TargetCheck {
    deploy: Arc<DeployHandler>,
}

impl TargetCheck {
    pub fn new(deploy: Arc<DeployHandler>) -> Self {
        TargetCheck { deploy }
    }
}

#[async_trait]
impl JobHandler for TargetCheck {
    fn kind(&self) -> &'static str {
        CHECK_JOB_KIND
    }

    async fn run(&self, ctx: &JobContext) -> Result<Effects, JobError> {
        // A check reports the state now: a target out of reach fails it at
        // once instead of waiting through retries.
        let now = |e: JobError| match e {
            JobError::Retryable(message) => JobError::permanent("target_unreachable", message),
            other => other,
        };
        let site = tokio::select! {
            site = self.deploy.site(ctx) => site.map_err(now)?,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        if let Some(port) = site.registry_port_on_target() {
            ctx.logs
                .info(format!(
                    "{}: SSH forwards up; the registry answers on the target at 127.0.0.1:{port}",
                    site.describe()
                ))
                .await;
        }
        let routes = site
            .caddy
            .routes(&site.caddy_server)
            .await
            .map_err(|e| now(e.into_job_error()))?;
        ctx.logs
            .info(format!(
                "Caddy admin API of {} answers; server {} has {} app route(s)",
                site.describe(),
                site.caddy_server,
                routes.len()
            ))
            .await;
        ctx.logs.info("target check passed").await;
        Ok(Vec::new())
    }
}
