//! Building an image from a build plan with buildah/podman (docker where it
//! is the configured engine) and pushing it to the registry, tagged by app
//! and deployment and recorded by digest; plus pruning of old images.
//!
//! A build runs in its own work dir (generated Containerfile, ignore file,
//! transcript, digest file, the generated registries.conf and, 0600, the
//! pull and push credentials), with a clean environment holding only
//! `CONTAINERS_CONF`, `CONTAINERS_REGISTRIES_CONF` and the app's build
//! variables, under a time and memory limit. Cancel kills exactly this build
//! (see `run`).

mod argv;
pub mod base_mirror;
mod network_trouble;
mod prune;
mod pull_failure;
mod run;
mod storage_race;
mod tail;
mod work_dir;

pub use prune::{prune, PruneReport};

use crate::config::{BuildSettings, Engine};
use crate::plan::{BuildPlan, Containerfile};
use secrecy::ExposeSecret;
use slipway_shared::job::JobError;
use slipway_shared::logsink::LogHandle;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use work_dir::WorkDir;

/// Where an app's images live: `REGISTRY/slipway/<project>-<app>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRepository(String);

impl ImageRepository {
    /// Project and app names are reduced to what a repository name allows
    /// (lowercase letters, digits, `.`, `_`, `-`).
    pub fn new(registry: &str, project: &str, app: &str) -> Self {
        ImageRepository(format!(
            "{registry}/slipway/{}-{}",
            component(project),
            component(app)
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tag of one deployment's image.
    pub fn tag(&self, deployment_id: Uuid) -> String {
        format!("{}:{deployment_id}", self.0)
    }
}

fn component(name: &str) -> String {
    let lower: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = lower.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "x".into()
    } else {
        trimmed.to_string()
    }
}

/// One build: the fetched source, its plan and who it is for.
pub struct BuildRequest<'a> {
    /// The source tree (the build context).
    pub source_dir: &'a Path,
    pub plan: &'a BuildPlan,
    pub repository: &'a ImageRepository,
    pub deployment_id: Uuid,
    /// The app's build-time variables (name, value). Nothing else of the
    /// worker's environment reaches the build.
    pub build_vars: &'a [(String, String)],
}

/// A built image in local storage, tagged for the registry.
#[derive(Debug, Clone)]
pub struct LocalImage {
    /// `REGISTRY/slipway/<project>-<app>:<deployment id>`.
    pub tag: String,
    pub build_time: Duration,
}

/// The pushed image, addressed by digest.
#[derive(Debug, Clone)]
pub struct PushedImage {
    pub tag: String,
    /// `sha256:...` of the manifest in the registry.
    pub digest: String,
    /// `REGISTRY/slipway/<project>-<app>@sha256:...`: what a deploy pulls.
    pub reference: String,
    pub push_time: Duration,
}

/// The outcome of `build_and_push`.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub tag: String,
    pub digest: String,
    pub reference: String,
    pub build_time: Duration,
    pub push_time: Duration,
}

/// Builds the plan and pushes the image. Errors: `build_failed` (permanent,
/// the last lines of output as its message), `build_timeout` (permanent),
/// `registry_auth_failed` (permanent), a registry or network fault on push
/// (retryable), `Cancelled` when `cancel` fires (the build is killed at once).
pub async fn build_and_push(
    settings: &BuildSettings,
    request: &BuildRequest<'_>,
    logs: &LogHandle,
    cancel: &CancellationToken,
) -> Result<BuiltImage, JobError> {
    let work = WorkDir::create(settings, request.deployment_id).await?;
    let result = async {
        let local = build_in(settings, request, &work, logs, cancel).await?;
        let pushed = push_in(settings, None, &local.tag, &work, logs, cancel).await?;
        Ok(BuiltImage {
            tag: pushed.tag,
            digest: pushed.digest,
            reference: pushed.reference,
            build_time: local.build_time,
            push_time: pushed.push_time,
        })
    }
    .await;
    work.remove().await;
    result
}

/// Builds the image into local storage only.
pub async fn build(
    settings: &BuildSettings,
    request: &BuildRequest<'_>,
    logs: &LogHandle,
    cancel: &CancellationToken,
) -> Result<LocalImage, JobError> {
    let work = WorkDir::create(settings, request.deployment_id).await?;
    let result = build_in(settings, request, &work, logs, cancel).await;
    work.remove().await;
    result
}

/// Pushes a local image (by its tag) and returns its digest. Pushing an
/// image the registry already holds uploads no layers.
pub async fn push(
    settings: &BuildSettings,
    tag: &str,
    logs: &LogHandle,
    cancel: &CancellationToken,
) -> Result<PushedImage, JobError> {
    let work = WorkDir::create(settings, Uuid::new_v4()).await?;
    let result = push_in(settings, None, tag, &work, logs, cancel).await;
    work.remove().await;
    result
}

/// Pushes local image `source` to `destination` without tagging it so
/// here (a tag of the registry's would make a removal by id of the
/// registry's images take `source` with it). Docker pushes only tags: it
/// tags, pushes and removes that tag again.
pub async fn push_as(
    settings: &BuildSettings,
    source: &str,
    destination: &str,
    logs: &LogHandle,
    cancel: &CancellationToken,
) -> Result<PushedImage, JobError> {
    if settings.engine == Engine::Docker {
        let program = settings.engine.program();
        prune::engine(
            settings,
            &[program, "tag", source, destination],
            logs,
            cancel,
        )
        .await?;
        let pushed = push(settings, destination, logs, cancel).await;
        let _ = prune::engine(settings, &[program, "rmi", destination], logs, cancel).await;
        return pushed;
    }
    let work = WorkDir::create(settings, Uuid::new_v4()).await?;
    let result = push_in(settings, Some(source), destination, &work, logs, cancel).await;
    work.remove().await;
    result
}

async fn build_in(
    settings: &BuildSettings,
    request: &BuildRequest<'_>,
    work: &WorkDir,
    logs: &LogHandle,
    cancel: &CancellationToken,
) -> Result<LocalImage, JobError> {
    for line in request.plan.summary_lines() {
        logs.info(line).await;
    }
    let containerfile = match &request.plan.containerfile {
        Containerfile::Repository { path } => request.source_dir.join(path),
        // Outside the context, so the generated file never enters the image.
        Containerfile::Generated { text } => work.write("Containerfile", text).await?,
    };
    let ignore_file = if request.plan.ignore.is_empty() {
        None
    } else {
        Some(
            work.write("ignore", &(request.plan.ignore.join("\n") + "\n"))
                .await?,
        )
    };
    // Short names, mirrors and pull credentials are Slipway's settings,
    // not the host's registries.conf.
    let registries_conf = work
        .write("registries.conf", &settings.pull.registries_conf())
        .await?;
    let empty_dir = work.path.join("empty");
    tokio::fs::create_dir_all(&empty_dir)
        .await
        .map_err(|e| JobError::Retryable(format!("cannot create {}: {e}", empty_dir.display())))?;
    let pull_auth = match settings.pull.auth_json() {
        Some(json) => Some(work.write_secret("pull-auth.json", &json).await?),
        None => None,
    };
    let tag = request.repository.tag(request.deployment_id);
    let names: Vec<&str> = request.build_vars.iter().map(|(n, _)| n.as_str()).collect();
    let argv = argv::build(
        settings,
        &argv::BuildArgv {
            containerfile: &containerfile,
            context: request.source_dir,
            ignore_file: ignore_file.as_deref(),
            tag: &tag,
            build_arg_names: names,
            auth_file: pull_auth.as_deref(),
        },
    );
    let mut env = engine_env(settings);
    env.push((
        "CONTAINERS_REGISTRIES_CONF".into(),
        registries_conf.display().to_string(),
    ));
    env.extend(request.build_vars.iter().cloned());
    logs.info(format!(
        "building {tag} with {} (memory limit {}, time limit {})",
        settings.engine.program(),
        settings.memory_limit.as_deref().unwrap_or("none"),
        humantime::format_duration(settings.time_limit)
    ))
    .await;
    let started = Instant::now();
    let outcome = run::run(
        run::Invocation {
            argv,
            env,
            transcript: &work.path.join("build.log"),
            own_pid_namespace: settings.engine != Engine::Docker,
            hide_registries_d_with: Some(&empty_dir),
            time_limit: settings.time_limit,
        },
        logs,
        cancel,
    )
    .await
    .map_err(|stopped| match stopped {
        run::Stopped::Cancelled => JobError::Cancelled,
        run::Stopped::TimedOut => JobError::permanent(
            "build_timeout",
            format!(
                "the build did not finish within {} (SLIPWAY_BUILD_TIMEOUT)",
                humantime::format_duration(settings.time_limit)
            ),
        ),
        run::Stopped::Failed(error) => error,
    })?;
    let build_time = started.elapsed();
    if !outcome.success {
        logs.info(format!(
            "build failed (exit code {}) after {:.1} s",
            outcome.code.map_or("none".into(), |c| c.to_string()),
            build_time.as_secs_f64()
        ))
        .await;
        if let Some(error) = pull_failure::classify(&outcome.tail, &settings.pull) {
            logs.info(error.to_string()).await;
            return Err(error);
        }
        if storage_race::lost(&outcome.tail) {
            logs.info(
                "a cached layer was removed during the build (a concurrent prune); building again",
            )
            .await;
            return Err(JobError::Retryable(format!(
                "the engine's storage changed under the build: {}",
                outcome.tail.lines().last().unwrap_or_default()
            )));
        }
        if network_trouble::dropped(&outcome.tail) {
            logs.info("the network dropped under the build; building again")
                .await;
            return Err(JobError::Retryable(format!(
                "the network dropped under the build: {}",
                outcome.tail.lines().last().unwrap_or_default()
            )));
        }
        return Err(JobError::permanent("build_failed", outcome.tail));
    }
    logs.info(format!("built {tag} in {:.1} s", build_time.as_secs_f64()))
        .await;
    Ok(LocalImage { tag, build_time })
}

async fn push_in(
    settings: &BuildSettings,
    source: Option<&str>,
    tag: &str,
    work: &WorkDir,
    logs: &LogHandle,
    cancel: &CancellationToken,
) -> Result<PushedImage, JobError> {
    let digest_file = work.path.join("digest");
    let auth_file = match (&settings.registry.username, &settings.registry.password) {
        (Some(user), Some(password)) => {
            let json = crate::registries::auth_json(std::iter::once((
                settings.registry.address.as_str(),
                user.as_str(),
                password.expose_secret(),
            )));
            Some(work.write_secret("auth.json", &json).await?)
        }
        _ => None,
    };
    let argv = argv::push(
        settings,
        &argv::PushArgv {
            source,
            tag,
            digest_file: &digest_file,
            auth_file: auth_file.as_deref(),
        },
    );
    match source {
        Some(source) => logs.info(format!("pushing {source} as {tag}")).await,
        None => logs.info(format!("pushing {tag}")).await,
    }
    let started = Instant::now();
    let outcome = run::run(
        run::Invocation {
            argv,
            env: engine_env(settings),
            transcript: &work.path.join("push.log"),
            own_pid_namespace: false,
            hide_registries_d_with: None,
            // A push has no limit of its own; the stage timeout bounds it.
            time_limit: settings.time_limit,
        },
        logs,
        cancel,
    )
    .await
    .map_err(|stopped| match stopped {
        run::Stopped::Cancelled => JobError::Cancelled,
        run::Stopped::TimedOut => JobError::Retryable(format!("pushing {tag} timed out")),
        run::Stopped::Failed(error) => error,
    })?;
    if !outcome.success {
        return Err(classify_push_failure(tag, &outcome.tail));
    }
    let digest = match settings.engine {
        Engine::Docker => digest_in_output(&outcome.tail),
        _ => tokio::fs::read_to_string(&digest_file)
            .await
            .ok()
            .map(|d| d.trim().to_string()),
    }
    .filter(|d| d.starts_with("sha256:"))
    .ok_or_else(|| JobError::Retryable(format!("pushing {tag} reported no digest")))?;
    let repository = tag.rsplit_once(':').map_or(tag, |(repo, _)| repo);
    let push_time = started.elapsed();
    logs.info(format!(
        "pushed {repository}@{digest} in {:.1} s",
        push_time.as_secs_f64()
    ))
    .await;
    Ok(PushedImage {
        tag: tag.to_string(),
        reference: format!("{repository}@{digest}"),
        digest,
        push_time,
    })
}

/// A refused login fails the same way on every attempt; anything else
/// (connection refused, timeouts, a registry error) may pass next time.
fn classify_push_failure(tag: &str, tail: &str) -> JobError {
    let lower = tail.to_lowercase();
    if ["unauthorized", "authentication required", "denied"]
        .iter()
        .any(|s| lower.contains(s))
    {
        JobError::permanent(
            "registry_auth_failed",
            format!("the registry refused {tag}:\n{tail}"),
        )
    } else {
        JobError::Retryable(format!("pushing {tag} failed:\n{tail}"))
    }
}

/// `docker push` ends with `TAG: digest: sha256:... size: N`.
fn digest_in_output(output: &str) -> Option<String> {
    output.lines().rev().find_map(|line| {
        let rest = &line[line.find("digest: ")? + "digest: ".len()..];
        rest.split_whitespace().next().map(String::from)
    })
}

fn engine_env(settings: &BuildSettings) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(conf) = &settings.containers_conf {
        env.push(("CONTAINERS_CONF".into(), conf.display().to_string()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_are_made_valid() {
        let repo = ImageRepository::new("127.0.0.1:5000", "Team A", "My_App!");
        assert_eq!(repo.as_str(), "127.0.0.1:5000/slipway/team-a-my_app");
        let id = Uuid::nil();
        assert_eq!(
            repo.tag(id),
            "127.0.0.1:5000/slipway/team-a-my_app:00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(component("--"), "x");
    }

    #[test]
    fn push_failures_are_classified() {
        let auth = classify_push_failure("t", "Error: unauthorized: authentication required");
        assert!(matches!(auth, JobError::Permanent { code, .. } if code == "registry_auth_failed"));
        let net = classify_push_failure("t", "dial tcp 127.0.0.1:1: connect: connection refused");
        assert!(matches!(net, JobError::Retryable(_)));
    }

    #[test]
    fn docker_push_output_has_the_digest() {
        let out = "abc: Pushed\nd1: digest: sha256:0123 size: 1234\n";
        assert_eq!(digest_in_output(out).as_deref(), Some("sha256:0123"));
    }
}
