//! Pruning local storage: an app keeps its newest `SLIPWAY_IMAGES_KEPT`
//! images (the releases a rollback may need; the registry keeps its copies
//! regardless), older ones are removed, then build cache that no kept image
//! uses and leftovers of killed builds are removed.
//!
//! Call semantics: call it after an app's build has finished (successfully
//! or not), with the app's repository; safe to call at any time and from
//! several workers. It never touches what a running build uses: working
//! containers are removed only when they are older than the build time
//! limit, which no running build can be, and dangling cache images only
//! when a day old (a build may reuse one made long before it).

use super::run;
use super::ImageRepository;
use crate::config::{BuildSettings, Engine};
use slipway_shared::job::JobError;
use slipway_shared::logsink::LogHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Tags of the app's images that were removed, oldest first.
    pub removed_images: Vec<String>,
    /// Tags of the app's images that were kept, newest first.
    pub kept_images: Vec<String>,
    /// Working containers of killed builds that were removed.
    pub removed_containers: usize,
}

/// One tagged image of the app in local storage.
#[derive(Debug, Clone)]
struct Tagged {
    tag: String,
    created: i64,
}

pub async fn prune(
    settings: &BuildSettings,
    repository: &ImageRepository,
    logs: &LogHandle,
    cancel: &CancellationToken,
) -> Result<PruneReport, JobError> {
    let mut report = PruneReport::default();
    let mut images = app_images(settings, repository).await?;
    images.sort_by(|a, b| b.created.cmp(&a.created).then(b.tag.cmp(&a.tag)));
    let old = images.split_off(settings.images_kept.min(images.len()));
    report.kept_images = images.into_iter().map(|i| i.tag).collect();
    for image in old.into_iter().rev() {
        let program = settings.engine.program();
        match engine(settings, &[program, "rmi", &image.tag], logs, cancel).await {
            Ok(_) => {}
            // Another worker's prune got there first: the image is gone either way.
            Err(JobError::Retryable(message) | JobError::Permanent { message, .. })
                if message.contains("image not known") || message.contains("No such image") => {}
            Err(error) => return Err(error),
        }
        report.removed_images.push(image.tag);
    }
    if settings.engine == Engine::Docker {
        let until = format!("until={}s", cache_kept(settings).as_secs());
        engine(
            settings,
            &["docker", "image", "prune", "-f", "--filter", &until],
            logs,
            cancel,
        )
        .await?;
        return Ok(report);
    }
    report.removed_containers = remove_stale_containers(settings, logs, cancel).await?;
    // Each pass frees the parents of what the previous one removed.
    let until = format!("until={}s", cache_kept(settings).as_secs());
    for _ in 0..10 {
        let removed = engine(
            settings,
            &["podman", "image", "prune", "-f", "--filter", &until],
            logs,
            cancel,
        )
        .await?;
        if removed.trim().is_empty() {
            break;
        }
    }
    logs.info(format!(
        "pruned {}: kept {} image(s), removed {} image(s) and {} stale build container(s)",
        repository.as_str(),
        report.kept_images.len(),
        report.removed_images.len(),
        report.removed_containers
    ))
    .await;
    Ok(report)
}

/// Nothing a running build uses is older than this.
fn stale_after(settings: &BuildSettings) -> Duration {
    settings.time_limit + Duration::from_secs(600)
}

/// How old a dangling cache image (a step's cached result) must be to go:
/// a day, and never less than [`stale_after`]. Its age is when it was made,
/// not when a build last used it: a build an hour ago that found a step
/// cached from the morning made nothing newer, and pruning that cache image
/// at the build time limit (as was done) made the app's next build, with
/// the same dependencies, install them again (seen in CI, where runs an
/// hour apart share this machine's storage).
fn cache_kept(settings: &BuildSettings) -> Duration {
    stale_after(settings).max(Duration::from_secs(24 * 3600))
}

async fn app_images(
    settings: &BuildSettings,
    repository: &ImageRepository,
) -> Result<Vec<Tagged>, JobError> {
    // buildah shares podman's storage; podman's listing has the fields needed.
    let program = match settings.engine {
        Engine::Docker => "docker",
        _ => "podman",
    };
    let output = list_images(settings, program).await?;
    let list: Vec<serde_json::Value> = serde_json::from_str(output.trim())
        .or_else(|_| serde_json::from_str("[]"))
        .map_err(|e: serde_json::Error| JobError::Retryable(e.to_string()))?;
    let prefix = format!("{}:", repository.as_str());
    let mut tagged = Vec::new();
    for image in list {
        let created = image["Created"].as_i64().unwrap_or(0);
        let names = image["Names"].as_array().cloned().unwrap_or_default();
        for name in names.iter().filter_map(|n| n.as_str()) {
            // podman may list one image more than once (seen with images
            // that are also parents of others): one entry per tag.
            if name.starts_with(&prefix) && !tagged.iter().any(|t: &Tagged| t.tag == name) {
                tagged.push(Tagged {
                    tag: name.to_string(),
                    created,
                });
            }
        }
    }
    Ok(tagged)
}

/// The engine's image list. An image removed while the list is made (a
/// build or prune beside this one) fails the whole listing with "image not
/// known"; a listing made again does not list it.
async fn list_images(settings: &BuildSettings, program: &str) -> Result<String, JobError> {
    const TRIES: usize = 3;
    let argv = [program, "images", "--format", "json"];
    let mut tries = 1;
    loop {
        match query(settings, &argv).await {
            Err(JobError::Retryable(message))
                if message.contains("image not known") && tries < TRIES =>
            {
                tries += 1;
            }
            other => return other,
        }
    }
}

/// buildah working containers left by builds that were killed.
async fn remove_stale_containers(
    settings: &BuildSettings,
    logs: &LogHandle,
    cancel: &CancellationToken,
) -> Result<usize, JobError> {
    let output = query(
        settings,
        &["podman", "ps", "--all", "--external", "--format", "json"],
    )
    .await?;
    let list: Vec<serde_json::Value> = serde_json::from_str(output.trim()).unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let limit = stale_after(settings).as_secs() as i64;
    let stale: Vec<String> = list
        .iter()
        .filter(|c| c["State"] == "storage")
        .filter(|c| c["Created"].as_i64().is_some_and(|t| now - t > limit))
        .filter_map(|c| c["Id"].as_str().map(String::from))
        .collect();
    for id in &stale {
        engine(settings, &["buildah", "rm", id], logs, cancel).await?;
    }
    Ok(stale.len())
}

/// A state-changing engine command, logged like a build step.
pub(super) async fn engine(
    settings: &BuildSettings,
    argv: &[&str],
    logs: &LogHandle,
    cancel: &CancellationToken,
) -> Result<String, JobError> {
    let dir = tempfile_dir()?;
    let transcript = dir.join("prune.log");
    let outcome = run::run(
        run::Invocation {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: super::engine_env(settings),
            transcript: &transcript,
            own_pid_namespace: false,
            hide_registries_d_with: None,
            time_limit: Duration::from_secs(300),
        },
        logs,
        cancel,
    )
    .await;
    let text = tokio::fs::read_to_string(&transcript)
        .await
        .unwrap_or_default();
    let _ = tokio::fs::remove_dir_all(&dir).await;
    match outcome {
        Ok(outcome) if outcome.success => Ok(text),
        Ok(outcome) => Err(JobError::Retryable(format!(
            "{} failed: {}",
            argv.join(" "),
            outcome.tail
        ))),
        Err(run::Stopped::Cancelled) => Err(JobError::Cancelled),
        Err(_) => Err(JobError::Retryable(format!("{} timed out", argv.join(" ")))),
    }
}

fn tempfile_dir() -> Result<std::path::PathBuf, JobError> {
    let dir = std::env::temp_dir().join(format!("slipway-prune-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| JobError::Retryable(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

/// A read-only engine query; its output is data, not log lines.
async fn query(settings: &BuildSettings, argv: &[&str]) -> Result<String, JobError> {
    let mut command = slipway_shared::process::clean_command(argv[0]);
    command.args(&argv[1..]).stdin(std::process::Stdio::null());
    for (name, value) in super::engine_env(settings) {
        command.env(name, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .map_err(|_| JobError::Retryable(format!("{} timed out", argv.join(" "))))?
        .map_err(|e| JobError::Retryable(format!("cannot run {}: {e}", argv[0])))?;
    if !output.status.success() {
        return Err(JobError::Retryable(format!(
            "{} failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
