//! `server_destroy.v1`: waits until the server's create has ended (a create
//! asked to stop records the provider's id before it does, so nothing it
//! bought is missed), then deletes at the provider everything made for the
//! server — found by recorded ids, labels and names — and its target. A
//! server the provider no longer has counts as deleted. The server becomes
//! `destroyed` when this operation ends `live` (a trigger, migration 0060).

use super::cloud::driver;
use super::resources::remove_all;
use super::target;
use super::Servers;
use async_trait::async_trait;
use slipway_shared::db::servers::{
    database, of_operation, ServerState, CREATE_KIND, DESTROY_JOB_KIND,
};
use slipway_shared::job::{Effects, JobContext, JobError, JobHandler};
use slipway_shared::state::DeploymentState;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a destroy waits for the create it follows to stop, per attempt.
const CREATE_WAIT: Duration = Duration::from_secs(300);

pub struct ServerDestroy(pub Arc<Servers>);

#[async_trait]
impl JobHandler for ServerDestroy {
    fn kind(&self) -> &'static str {
        DESTROY_JOB_KIND
    }

    async fn run(&self, ctx: &JobContext) -> Result<Effects, JobError> {
        let servers = &self.0;
        let server = of_operation(&ctx.pool, ctx.info.deployment_id).await?;
        if server.state() == Some(ServerState::Destroyed) {
            ctx.logs.info("the server is destroyed already").await;
            return Ok(Vec::new());
        }
        tokio::select! {
            waited = wait_for_create(ctx, server.id) => waited?,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        }
        // What the create recorded while it ran.
        let server = of_operation(&ctx.pool, ctx.info.deployment_id).await?;
        let driver = driver(
            &ctx.pool,
            server.account_id,
            servers.secrets.as_ref(),
            &servers.settings,
            &servers.policy,
        )
        .await?;
        remove_all(ctx, &*driver, &server, servers.settings.delete_timeout).await?;
        target::unregister(&ctx.pool, server.id).await?;
        ctx.logs
            .info(format!("server {} destroyed", server.name))
            .await;
        Ok(Vec::new())
    }
}

/// Waits until no create of server `id` is open.
async fn wait_for_create(ctx: &JobContext, id: uuid::Uuid) -> Result<(), JobError> {
    let deadline = Instant::now() + CREATE_WAIT;
    let mut told = false;
    loop {
        let open: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM deployments WHERE server_id = $1 AND kind = $2
                            AND state NOT IN {})",
            DeploymentState::TERMINAL_SQL
        ))
        .bind(id)
        .bind(CREATE_KIND)
        .fetch_one(&ctx.pool)
        .await
        .map_err(database)?;
        if !open {
            return Ok(());
        }
        if !told {
            ctx.logs
                .info(
                    "waiting for the server's create to stop (it records the provider's id first)",
                )
                .await;
            told = true;
        }
        if Instant::now() >= deadline {
            return Err(JobError::Retryable(format!(
                "the server's create is still running after {CREATE_WAIT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
