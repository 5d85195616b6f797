//! The provision stage's jobs: `provision.v1` for an app's deployment and
//! `target_check.v1` for a target check. Both provision the deployment's
//! target — the local one or an ssh one — and differ only in how a target
//! that cannot be reached is treated: an app's deployment waits for it
//! (retryable), a check reports it at once (its answer is about now).
//! An app's deployment also creates the app's add-ons (volumes on its
//! target).

use crate::addons;
use crate::local::LocalProvision;
use crate::ssh;
use async_trait::async_trait;
use slipway_shared::db::targets::{self, Placement, SshTarget, CHECK_JOB_KIND};
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
                    let host = addons::VolumeHost::Local {
                        containers_conf: target.containers_conf.as_deref(),
                    };
                    let secrets = self.secrets.as_ref();
                    addons::provision(ctx, &target.addon_postgres, &host, secrets).await
                }
                other => other,
            },
            Placement::Ssh(mut target) => {
                let provisioned = tokio::select! {
                    outcome = ssh::provision(ctx, &target) => outcome,
                    _ = ctx.cancel.cancelled() => Err(JobError::Cancelled),
                };
                match provisioned {
                    Ok(engine) if app && addons::any(ctx).await? => {
                        // What provisioning just found, for a target it
                        // looked at the first time.
                        target.engine_found = Some(engine);
                        self.ssh_addons(ctx, &target).await
                    }
                    other => other.map(drop),
                }
            }
        };
        match outcome {
            Err(JobError::Retryable(message)) if self.kind == CHECK_JOB_KIND => {
                Err(JobError::permanent("target_unreachable", message))
            }
            other => other.map(|()| Vec::new()),
        }
    }
}

impl Provision {
    /// The app's add-ons for a release on an ssh target: databases on the
    /// add-on server (which that target must reach), volumes on the target.
    async fn ssh_addons(&self, ctx: &JobContext, target: &SshTarget) -> Result<(), JobError> {
        let files = target.key_files()?;
        let host = addons::VolumeHost::Ssh {
            files: &files,
            containers_conf: target.settings.containers_conf.as_deref(),
            engine: target.engine(),
        };
        let server = &self.local.target().addon_postgres;
        addons::provision(ctx, server, &host, self.secrets.as_ref()).await
    }
}
