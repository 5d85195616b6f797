//! The deploy stage of app operations that start nothing, on the app's
//! [`Site`] (local or ssh target): stop (the route
//! answers 503 first, so no request reaches a stopping container, then the
//! container is stopped and the release is `paused`), destroy (route and
//! certificates removed, every container labelled with the app removed,
//! then the app row deleted with the job's outcome), and the check that
//! lets `start` of a running app change nothing.

use crate::engine::LABEL_APP;
use crate::launch::{stop_and_remove, STOP_GRACE};
use crate::release::{self, MarkPaused};
use crate::site::Site;
use crate::target::DeployTarget;
use crate::{replicas, routing};
use async_trait::async_trait;
use slipway_shared::addons::AddonServer;
use slipway_shared::job::{Effect, Effects, JobContext, JobError, JobInfo};
use sqlx::PgConnection;
use uuid::Uuid;

/// Stops the app on its site: route first (503), then every container of
/// its current release; the release becomes `paused`.
pub(crate) async fn stop(
    site: &Site,
    ctx: &JobContext,
    app: &DeployTarget,
) -> Result<Effects, JobError> {
    let current = release::current(&ctx.pool, app.app_id, Uuid::nil())
        .await?
        .ok_or_else(|| {
            JobError::permanent("not_deployed", "stop: the app has no current release")
        })?;
    let hosts = app.hosts(&site.base_domain);
    routing::publish_stopped(site, app.app_id, &hosts).await?;
    ctx.logs
        .info(format!("route {} -> 503 (stopped)", hosts.join(", ")))
        .await;
    for name in replicas::release_containers(site, current.id, &current.container_name).await? {
        site.engine
            .stop(&name, STOP_GRACE)
            .await
            .map_err(|e| e.into_job_error())?;
        ctx.logs.info(format!("stopped {name}")).await;
    }
    ctx.logs
        .info(format!(
            "the release of deployment {} is paused; start runs its image again",
            current.deployment_id
        ))
        .await;
    Ok(vec![Box::new(MarkPaused {
        release_id: current.id,
    })])
}

/// Whether the app's current release serves and its container runs on the
/// site (a `start` then has nothing to do).
pub(crate) async fn is_serving(
    site: &Site,
    ctx: &JobContext,
    app: &DeployTarget,
) -> Result<bool, JobError> {
    let Some(current) = release::current(&ctx.pool, app.app_id, Uuid::nil()).await? else {
        return Ok(false);
    };
    let running = site
        .engine
        .is_running(&current.container_name)
        .await
        .map_err(|e| e.into_job_error())?;
    if current.state == "live" && running {
        ctx.logs
            .info(format!(
                "start: {} already serves; nothing to do",
                current.container_name
            ))
            .await;
        return Ok(true);
    }
    Ok(false)
}

/// Removes the app's route, certificates and every container labelled with
/// the app on its site, then the add-ons the destroy was asked to purge,
/// then (with the job's outcome) the app. Containers
/// left on a target the app was moved away from are not on this site and
/// stay there (nothing removes them yet).
pub(crate) async fn destroy(
    site: &Site,
    ctx: &JobContext,
    app: &DeployTarget,
    server: &AddonServer,
) -> Result<Effects, JobError> {
    let hosts = app.hosts(&site.base_domain);
    // The route goes first: no request is sent to a container that is
    // about to disappear.
    let removed = routing::unpublish(site, app.app_id, &hosts).await?;
    ctx.logs
        .info(if removed {
            format!("route {} removed", hosts.join(", "))
        } else {
            "the app had no route".to_owned()
        })
        .await;
    let containers = site
        .engine
        .list(LABEL_APP, &app.app_id.to_string())
        .await
        .map_err(|e| e.into_job_error())?;
    for container in &containers {
        stop_and_remove(site, &container.name)
            .await
            .map_err(|e| e.into_job_error())?;
        ctx.logs
            .info(format!("removed container {}", container.name))
            .await;
    }
    for line in crate::addons::purge_destroyed(ctx, site, server, app.app_id).await? {
        ctx.logs.info(line).await;
    }
    ctx.logs
        .info(format!(
            "{} container(s) removed; the app {} goes with this deployment's outcome",
            containers.len(),
            app.app
        ))
        .await;
    Ok(vec![Box::new(DeleteApp { app_id: app.app_id })])
}

/// Deletes a destroyed app (its releases, variables, domains, versions and
/// the blobs no other app uses go with it). Its deployments stay readable
/// with no app; held ones are superseded.
pub struct DeleteApp {
    pub app_id: Uuid,
}

#[async_trait]
impl Effect for DeleteApp {
    async fn apply(&self, conn: &mut PgConnection, job: &JobInfo) -> sqlx::Result<()> {
        let blobs: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT sha256 FROM app_versions WHERE app_id = $1")
                .bind(self.app_id)
                .fetch_all(&mut *conn)
                .await?;
        sqlx::query(
            "WITH held AS (
                 UPDATE deployments SET state = 'superseded', updated_at = now(), finished_at = now()
                 WHERE app_id = $1 AND id <> $2 AND state = 'queued' AND NOT dispatched RETURNING id)
             INSERT INTO deployment_events (deployment_id, from_state, to_state, detail)
             SELECT id, 'queued', 'superseded', 'the app was destroyed' FROM held",
        )
        .bind(self.app_id)
        .bind(job.deployment_id)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM apps WHERE id = $1 AND destroying_at IS NOT NULL")
            .bind(self.app_id)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "DELETE FROM source_blobs b WHERE b.sha256 = ANY($1)
             AND NOT EXISTS (SELECT 1 FROM app_versions v WHERE v.sha256 = b.sha256)",
        )
        .bind(&blobs)
        .execute(conn)
        .await?;
        Ok(())
    }
}
