//! Replicas: a release runs `runtime.replicas` containers of its image
//! (default 1), each on its own loopback port and each health-checked
//! before any of them gets traffic; the app's route balances over all of
//! them. The first keeps the release's container name (so a re-run attempt
//! finds it); the others are named `NAME-rN`. Every one carries the
//! release's label, which is how stop and the replacement of a release find
//! them all.

use crate::engine::{ContainerSpec, LABEL_RELEASE};
use crate::site::Site;
use slipway_shared::job::{JobContext, JobError};
use uuid::Uuid;

pub use slipway_shared::operation::MAX_REPLICAS;

/// The container name of replica `index` of the release whose first
/// container is `first`.
pub fn replica_name(first: &str, index: u32) -> String {
    if index == 0 {
        first.to_owned()
    } else {
        format!("{first}-r{index}")
    }
}

/// The spec of replica `index` (0 is the release's own container).
pub fn replica_spec(spec: &ContainerSpec, index: u32) -> ContainerSpec {
    let mut replica = spec.clone();
    if index > 0 {
        replica.name = replica_name(&spec.name, index);
        replica.host_port = None;
    }
    replica
}

/// Starts replicas 1.. of a release whose first container runs already on
/// the site; returns their `(name, port)`s (ports on the site's loopback).
/// On failure the ones started are removed by the caller's discard (they
/// carry the release's label).
pub(crate) async fn start_more(
    site: &Site,
    ctx: &JobContext,
    spec: &ContainerSpec,
    replicas: u32,
) -> Result<Vec<(String, u16)>, JobError> {
    let mut started = Vec::new();
    for index in 1..replicas {
        let replica = replica_spec(spec, index);
        // A container of this name is a leftover of an earlier attempt.
        let _ = site.engine.remove(&replica.name).await;
        if ctx.cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        let running = site
            .engine
            .run(&replica)
            .await
            .map_err(|e| e.into_job_error())?;
        ctx.logs
            .info(format!(
                "started replica {} on 127.0.0.1:{} in {:.2}s",
                running.name,
                running.host_port,
                running.start_time.as_secs_f64()
            ))
            .await;
        started.push((running.name, running.host_port));
    }
    Ok(started)
}

/// Every container of a release on the site (all its replicas), by its
/// label.
pub(crate) async fn release_containers(
    site: &Site,
    release_id: Uuid,
    first: &str,
) -> Result<Vec<String>, JobError> {
    let mut names: Vec<String> = site
        .engine
        .list(LABEL_RELEASE, &release_id.to_string())
        .await
        .map_err(|e| e.into_job_error())?
        .into_iter()
        .map(|c| c.name)
        .collect();
    if !names.iter().any(|n| n == first) {
        names.push(first.to_owned());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_named_after_the_release() {
        let spec = ContainerSpec::for_release(Uuid::new_v4(), Uuid::new_v4(), "i");
        assert_eq!(replica_spec(&spec, 0).name, spec.name);
        assert_eq!(replica_spec(&spec, 2).name, format!("{}-r2", spec.name));
        assert_eq!(replica_spec(&spec, 2).labels, spec.labels);
    }
}
