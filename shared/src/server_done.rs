//! `server_done.v1`: the deploy stage of a server's destroy and of an
//! install's verify. Both did all their work in the provision stage (the
//! provider's resources and the target are gone; the app answered); the
//! pipeline still passes through the deploy stage, so this job only lets
//! the operation end `live`. Registered in every worker, like the probe,
//! so no worker needs to know servers or installs.

use crate::db::servers::DONE_JOB_KIND;
use crate::job::{Effects, JobContext, JobError, JobHandler};
use async_trait::async_trait;

pub struct ServerDone;

#[async_trait]
impl JobHandler for ServerDone {
    fn kind(&self) -> &'static str {
        DONE_JOB_KIND
    }

    async fn run(&self, ctx: &JobContext) -> Result<Effects, JobError> {
        let done = if ctx.info.deployment_kind == crate::db::installs::VERIFY_KIND {
            "the app answered; nothing left to do"
        } else {
            "the server's resources are gone; nothing left to do"
        };
        ctx.logs.info(done).await;
        Ok(Vec::new())
    }
}
