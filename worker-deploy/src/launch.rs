//! The steps of starting a release on a [`Site`]: its container spec, the
//! pull and `run` of its first container, the health check of each of its
//! containers (through a forward on an ssh target), and the removal of a
//! release that will not serve, with all its replicas.

use crate::engine::{ContainerSpec, EngineError};
use crate::health::{self, HealthCheck};
use crate::release;
use crate::replicas;
use crate::site::Site;
use crate::target::DeployTarget;
use slipway_shared::job::{JobContext, JobError};
use std::time::Duration;
use uuid::Uuid;

/// SIGTERM to SIGKILL when a release is stopped.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);
/// Log lines of a failed release quoted in the deployment's error.
const FAILED_LOG_LINES: usize = 20;

pub(crate) fn container_spec(
    site: &Site,
    app: &DeployTarget,
    deployment_id: Uuid,
) -> Result<ContainerSpec, JobError> {
    let mut spec =
        ContainerSpec::for_release(app.app_id, deployment_id, site.image_ref(app.image()?));
    spec.env = app.env.clone();
    spec.container_port = app.runtime.port;
    spec.memory = app.runtime.memory.clone();
    spec.cpus = match &app.runtime.cpus {
        None => None,
        Some(cpus) => Some(
            cpus.parse::<f64>()
                .ok()
                .filter(|c| *c > 0.0)
                .ok_or_else(|| {
                    JobError::permanent(
                        "invalid_runtime_settings",
                        format!("runtime.cpus {cpus:?} is not a positive number"),
                    )
                })?,
        ),
    };
    Ok(spec)
}

/// Pulls the image and starts the release; returns its host port.
pub(crate) async fn start(
    site: &Site,
    ctx: &JobContext,
    spec: &ContainerSpec,
    release_id: Uuid,
) -> Result<u16, JobError> {
    // A container of this name is a leftover of an earlier attempt.
    let _ = site.engine.remove(&spec.name).await;
    ctx.logs.info(format!("pulling {}", spec.image)).await;
    let pulled = tokio::select! {
        pulled = site.engine.pull(&spec.image, site.registry_tls_verify) => pulled,
        _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
    }
    .map_err(|e| e.into_job_error())?;
    ctx.logs
        .info(format!(
            "pulled in {:.2}s; starting {}",
            pulled.as_secs_f64(),
            spec.name
        ))
        .await;
    let running = site
        .engine
        .run(spec)
        .await
        .map_err(|e| e.into_job_error())?;
    release::set_port(&ctx.pool, release_id, running.host_port).await?;
    ctx.logs
        .info(format!(
            "started {} on 127.0.0.1:{} in {:.2}s",
            running.name,
            running.host_port,
            running.start_time.as_secs_f64()
        ))
        .await;
    Ok(running.host_port)
}

/// Checks one container of the release on `port` (the site's loopback);
/// returns what the check said.
pub(crate) async fn health_check(
    site: &Site,
    ctx: &JobContext,
    app: &DeployTarget,
    port: u16,
    name: &str,
) -> Result<String, JobError> {
    let check = HealthCheck {
        path: app.runtime.health_path.clone(),
        interval: app.runtime.health_interval,
        timeout: app.runtime.health_timeout,
        attempts: app.runtime.health_attempts,
    };
    ctx.logs
        .info(format!(
            "health check: GET {} (up to {} tries) of {name}",
            check.path, check.attempts
        ))
        .await;
    // On an ssh target the check goes through a forward to the
    // release's port there, held for the check's length.
    let (local_port, _forward) = site.reach(port).await?;
    let outcome = tokio::select! {
        outcome = health::wait_healthy(local_port, &check) => outcome,
        _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
    };
    match outcome {
        Ok(healthy) => {
            let said = format!(
                "GET {} answered {} after {} tries in {:.2}s",
                check.path,
                healthy.status,
                healthy.attempts,
                healthy.elapsed.as_secs_f64()
            );
            ctx.logs.info(format!("healthy: {said}")).await;
            Ok(said)
        }
        Err(error) => {
            let lines = site
                .engine
                .logs_tail(name, FAILED_LOG_LINES)
                .await
                .unwrap_or_default();
            for line in &lines {
                ctx.logs.line("stdout", format!("[release] {line}")).await;
            }
            Err(JobError::permanent(
                "health_check_failed",
                format!(
                    "{error}; the previous release keeps serving. Last lines of the release:\n{}",
                    lines.join("\n")
                ),
            ))
        }
    }
}

/// Removes a release that will not serve, with all its replicas.
pub(crate) async fn discard(site: &Site, ctx: &JobContext, name: &str, release_id: Uuid) {
    let names = replicas::release_containers(site, release_id, name)
        .await
        .unwrap_or_else(|_| vec![name.to_owned()]);
    for name in names {
        if let Err(error) = stop_and_remove(site, &name).await {
            ctx.logs
                .info(format!("could not remove {name}: {error}"))
                .await;
        }
    }
    let _ = release::mark_failed(&ctx.pool, release_id).await;
}

pub(crate) async fn stop_and_remove(site: &Site, name: &str) -> Result<(), EngineError> {
    site.engine.stop(name, STOP_GRACE).await?;
    site.engine.remove(name).await
}
