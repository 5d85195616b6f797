//! A release whose route was switched but whose deployment never became
//! `live` — cancelled between the switch and the commit that marks it live
//! (the HTTPS wait sits in that window) — is withdrawn: the app's route goes
//! back to what its current release serves (that release's containers, the
//! stopped app's 503, or no route for an app that had none here), then the
//! cancelled release's containers are removed. A cancel answered 2xx wins:
//! nothing of the cancelled deployment keeps serving.

use crate::launch::discard;
use crate::release::Release;
use crate::routing;
use crate::site::Site;
use slipway_shared::job::JobContext;
use uuid::Uuid;

/// What the route held before the switch.
pub(crate) struct Previous<'a> {
    pub release: Option<&'a Release>,
}

/// Whether the deployment was cancelled (rather than its lease taken back,
/// in which case whoever holds the job now carries on with the release).
pub(crate) async fn was_cancelled(ctx: &JobContext) -> bool {
    let state: Result<Option<String>, _> =
        sqlx::query_scalar("SELECT state FROM deployments WHERE id = $1")
            .bind(ctx.info.deployment_id)
            .fetch_optional(&ctx.pool)
            .await;
    matches!(state, Ok(Some(s)) if s == "cancelled")
}

pub(crate) async fn withdraw(
    site: &Site,
    ctx: &JobContext,
    app_id: Uuid,
    hosts: &[String],
    previous: Previous<'_>,
    container: &str,
    release_id: Uuid,
) {
    ctx.logs
        .info("cancelled after the route switch: the route goes back to the previous release")
        .await;
    if let Err(error) = restore_route(site, ctx, app_id, hosts, previous).await {
        // The reconciler puts the route of the app's current release back.
        ctx.logs
            .info(format!("could not restore the route: {error}"))
            .await;
    }
    discard(site, ctx, container, release_id).await;
}

async fn restore_route(
    site: &Site,
    ctx: &JobContext,
    app_id: Uuid,
    hosts: &[String],
    previous: Previous<'_>,
) -> Result<(), String> {
    let here = previous
        .release
        .filter(|release| release.target_id == site.target_id());
    let Some(release) = here else {
        routing::unpublish(site, app_id, hosts)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(());
    };
    if release.state == "paused" {
        return routing::publish_stopped(site, app_id, hosts)
            .await
            .map_err(|e| e.to_string());
    }
    let ports: Option<Vec<i32>> = sqlx::query_scalar(
        "SELECT COALESCE(host_ports, ARRAY[host_port]) FROM releases WHERE id = $1",
    )
    .bind(release.id)
    .fetch_optional(&ctx.pool)
    .await
    .map_err(|e| e.to_string())?
    .flatten();
    let upstreams: Vec<String> = ports
        .unwrap_or_default()
        .into_iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    if upstreams.is_empty() {
        return Err(format!(
            "release {} has no recorded port",
            release.container_name
        ));
    }
    routing::publish(site, app_id, hosts, &upstreams)
        .await
        .map_err(|e| e.to_string())
}
