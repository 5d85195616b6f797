//! The steps of starting a release on a [`Site`]: its container spec, the
//! pull and `run` of its first container, the health check of each of its
//! containers (through a forward on an ssh target), and the removal of a
//! release that will not serve, with all its replicas.

use crate::engine::{ContainerSpec, EngineError};
use crate::health::{HealthRule, Unhealthy};
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

/// Checks one container of the release on `port` (the site's loopback)
/// by the app's [`HealthRule`]; returns what the check said. A failure
/// quotes the release's last lines and says the previous release keeps
/// serving only when `previous_serving`.
pub(crate) async fn health_check(
    site: &Site,
    ctx: &JobContext,
    app: &DeployTarget,
    port: u16,
    name: &str,
    previous_serving: bool,
) -> Result<String, JobError> {
    let rule = HealthRule::for_app(&app.runtime);
    ctx.logs
        .info(format!("health check of {name}: {}", rule.describe()))
        .await;
    let outcome = tokio::select! {
        outcome = rule.check(site, name, port) => outcome,
        _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
    };
    match outcome {
        Ok(said) => {
            ctx.logs.info(format!("healthy: {said}")).await;
            Ok(said)
        }
        Err(Unhealthy::Unchecked(error)) => Err(error),
        Err(Unhealthy::Failed(what)) => {
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
                failure_message(&what, previous_serving, &lines),
            ))
        }
    }
}

/// The error of a release that failed its check.
fn failure_message(what: &str, previous_serving: bool, lines: &[String]) -> String {
    let serving = match previous_serving {
        true => "; the previous release keeps serving",
        false => "",
    };
    match lines.is_empty() {
        true => format!("{what}{serving}. The release printed nothing."),
        false => format!(
            "{what}{serving}. Last lines of the release:\n{}",
            lines.join("\n")
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_mentions_a_previous_release_only_when_one_serves() {
        let what = "port 3000 inside the container: nothing listening after 15.0 s (no socket is listening in the container)";
        let lines = vec!["booting".to_owned(), "still booting".to_owned()];
        let first = failure_message(what, false, &lines);
        assert!(!first.contains("previous release"), "{first}");
        assert!(first.starts_with(what), "{first}");
        assert!(first.ends_with("Last lines of the release:\nbooting\nstill booting"));
        let again = failure_message(what, true, &lines);
        assert!(
            again.contains("; the previous release keeps serving."),
            "{again}"
        );
        let silent = failure_message(what, false, &[]);
        assert!(silent.ends_with("The release printed nothing."), "{silent}");
    }
}
