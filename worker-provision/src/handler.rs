//! The provision stage's jobs: `provision.v1` for an app's deployment and
//! `target_check.v1` for a target check. Both provision the deployment's
//! target — the local one or an ssh one — and differ only in how a target
//! that cannot be reached is treated: an app's deployment waits for it
//! (retryable), a check reports it at once (its answer is about now).
//! An app's deployment on the local target also creates the app's add-ons.

use crate::addons;
use crate::local::LocalProvision;
use crate::ssh;
use async_trait::async_trait;
use slipway_shared::db::targets::{self, Placement, CHECK_JOB_KIND};
use slipway_shared::job::{Effects, JobContext, JobError, JobHandler};
use slipway_shared::secrets::SecretBox;
use std::sync::Arc;

pub const PROVISION_KIND: &str = "provision.v1";

pub struct Provision {
    kind: &'static str,
    local: Arc<LocalProvision>,
    secrets: Option<SecretBox>,
}

impl Provision {
    /// The handler of app deployments.
    pub fn app(local: Arc<LocalProvision>, secrets: Option<SecretBox>) -> Self {
        Provision {
            kind: PROVISION_KIND,
            local,
            secrets,
        }
    }

    /// The handler of target checks.
    pub fn check(local: Arc<LocalProvision>, secrets: Option<SecretBox>) -> Self {
        Provision {
            kind: CHECK_JOB_KIND,
            local,
            secrets,
        }
    }
}

#[async_trait]
impl JobHandler for Provision {
    fn kind(&self) -> &'static str {
        self.kind
    }

    async fn run(&self, ctx: &JobContext) -> Result<Effects, JobError> {
        let placement =
            targets::placement(&ctx.pool, ctx.info.deployment_id, self.secrets.as_ref()).await?;
        let app = self.kind == PROVISION_KIND;
        let outcome = match placement {
            Placement::Local => match self.local.provision(ctx).await {
                Ok(()) if app => {
                    let target = self.local.target();
                    let conf = target.containers_conf.as_deref();
                    let secrets = self.secrets.as_ref();
                    addons::provision(ctx, &target.addon_postgres, conf, secrets).await
                }
                other => other,
            },
            Placement::Ssh(_) if app && addons::any(ctx).await? => Err(JobError::permanent(
                "addons_unsupported_on_target",
                "add-ons run on the local target only; this app is placed on an ssh target",
            )),
            Placement::Ssh(target) => tokio::select! {
                outcome = ssh::provision(ctx, &target) => outcome,
                _ = ctx.cancel.cancelled() => Err(JobError::Cancelled),
            },
        };
        match outcome {
            Err(JobError::Retryable(message)) if self.kind == CHECK_JOB_KIND => {
                Err(JobError::permanent("target_unreachable", message))
            }
            other => other.map(|()| Vec::new()),
        }
    }
}
