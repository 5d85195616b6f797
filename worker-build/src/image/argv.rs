//! The engine command lines. buildah, podman and docker take nearly the same
//! flags; this is the only place they differ. docker's lines cannot be run
//! on the project's machines (no Docker engine) and are untested there.

use crate::config::{BuildSettings, Engine};
use crate::registries::PullPolicy;
use std::path::Path;

pub struct BuildArgv<'a> {
    pub containerfile: &'a Path,
    pub context: &'a Path,
    pub ignore_file: Option<&'a Path>,
    pub tag: &'a str,
    /// Names only: the values travel in the environment, so they never show
    /// in a process listing.
    pub build_arg_names: Vec<&'a str>,
    /// The pull credentials (a 0600 auth.json in the work dir), never argv values.
    pub auth_file: Option<&'a Path>,
}

pub fn build(settings: &BuildSettings, a: &BuildArgv) -> Vec<String> {
    // --layers: cache every step, so an unchanged dependency install is
    // reused; --force-rm: no intermediate containers are left by a failed
    // build; --pull: the refresh policy of cached base images.
    let mut argv: Vec<String> = match settings.engine {
        Engine::Buildah => vec!["buildah".into(), "bud".into(), "--layers".into()],
        Engine::Podman => vec!["podman".into(), "build".into(), "--layers".into()],
        Engine::Docker => vec!["docker".into(), "build".into(), "--progress=plain".into()],
    };
    argv.extend(pull_flag(settings.engine, settings.pull.policy));
    argv.push("--force-rm".into());
    let mut flag = |name: &str, value: String| {
        argv.push(name.to_string());
        argv.push(value);
    };
    flag("-f", a.containerfile.display().to_string());
    flag("-t", a.tag.to_string());
    if let Some(memory) = &settings.memory_limit {
        flag("--memory", memory.clone());
    }
    for name in &a.build_arg_names {
        flag("--build-arg", name.to_string());
    }
    if let Some(auth) = a.auth_file {
        // docker logs in through its own config.
        if settings.engine != Engine::Docker {
            flag("--authfile", auth.display().to_string());
        }
    }
    if let Some(ignore) = a.ignore_file {
        // docker reads only the context's .dockerignore.
        if settings.engine != Engine::Docker {
            flag("--ignorefile", ignore.display().to_string());
        }
    }
    argv.push(a.context.display().to_string());
    argv
}

/// The engines spell the policies differently: buildah 1.28 reads `true`
/// as "newer" and `false` as "missing" (and anything unknown as missing);
/// podman takes the words, and reads `false` as never; docker has only
/// `--pull` (always try for a newer image).
fn pull_flag(engine: Engine, policy: PullPolicy) -> Option<String> {
    let value = match (engine, policy) {
        (Engine::Buildah, PullPolicy::Missing) => "false",
        (Engine::Buildah, PullPolicy::Newer) => "true",
        (Engine::Podman, PullPolicy::Missing) => "missing",
        (Engine::Podman, PullPolicy::Newer) => "newer",
        (Engine::Buildah | Engine::Podman, PullPolicy::Always) => "always",
        (Engine::Docker, PullPolicy::Missing) => return None,
        (Engine::Docker, PullPolicy::Newer | PullPolicy::Always) => return Some("--pull".into()),
    };
    Some(format!("--pull={value}"))
}

pub struct PushArgv<'a> {
    /// The local image pushed; `None`: the one tagged `tag`.
    pub source: Option<&'a str>,
    /// Where it goes (`registry/path:tag`).
    pub tag: &'a str,
    pub digest_file: &'a Path,
    pub auth_file: Option<&'a Path>,
}

pub fn push(settings: &BuildSettings, a: &PushArgv) -> Vec<String> {
    if settings.engine == Engine::Docker {
        // docker push prints the digest; it logs in through its own config.
        return vec!["docker".into(), "push".into(), a.tag.into()];
    }
    let mut argv = vec![
        settings.engine.program().to_string(),
        "push".into(),
        format!("--tls-verify={}", settings.registry.tls_verify),
        "--digestfile".into(),
        a.digest_file.display().to_string(),
    ];
    if let Some(auth) = a.auth_file {
        argv.push("--authfile".into());
        argv.push(auth.display().to_string());
    }
    argv.push(a.source.unwrap_or(a.tag).into());
    argv.push(format!("docker://{}", a.tag));
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(engine: &str) -> BuildSettings {
        let conf = tempfile::NamedTempFile::new().unwrap();
        let vars = HashMap::from([
            ("SLIPWAY_BUILD_ENGINE", engine.to_string()),
            ("SLIPWAY_CONTAINERS_CONF", conf.path().display().to_string()),
            ("SLIPWAY_BUILD_MEMORY", "2g".to_string()),
        ]);
        BuildSettings::from_lookup(|n| vars.get(n).cloned()).unwrap()
    }

    fn build_argv(engine: &str) -> Vec<String> {
        build(
            &settings(engine),
            &BuildArgv {
                containerfile: Path::new("/w/Containerfile"),
                context: Path::new("/src"),
                ignore_file: Some(Path::new("/w/ignore")),
                tag: "127.0.0.1:5000/slipway/p-a:d1",
                build_arg_names: vec!["API_URL"],
                auth_file: Some(Path::new("/w/pull-auth.json")),
            },
        )
    }

    #[test]
    fn buildah_builds_with_layers_limits_and_build_args_by_name() {
        assert_eq!(
            build_argv("buildah").join(" "),
            "buildah bud --layers --pull=false --force-rm -f /w/Containerfile \
             -t 127.0.0.1:5000/slipway/p-a:d1 --memory 2g --build-arg API_URL \
             --authfile /w/pull-auth.json --ignorefile /w/ignore /src"
        );
        assert!(build_argv("podman").starts_with(&["podman".into(), "build".into()]));
        let docker = build_argv("docker");
        assert!(!docker.contains(&"--ignorefile".to_string()));
        assert!(!docker.contains(&"--authfile".to_string()));
    }

    #[test]
    fn each_engine_gets_the_pull_policy_in_its_own_words() {
        let cases = [
            (Engine::Buildah, PullPolicy::Missing, Some("--pull=false")),
            (Engine::Buildah, PullPolicy::Newer, Some("--pull=true")),
            (Engine::Buildah, PullPolicy::Always, Some("--pull=always")),
            (Engine::Podman, PullPolicy::Missing, Some("--pull=missing")),
            (Engine::Podman, PullPolicy::Newer, Some("--pull=newer")),
            (Engine::Podman, PullPolicy::Always, Some("--pull=always")),
            (Engine::Docker, PullPolicy::Missing, None),
            (Engine::Docker, PullPolicy::Always, Some("--pull")),
        ];
        for (engine, policy, expected) in cases {
            assert_eq!(
                pull_flag(engine, policy).as_deref(),
                expected,
                "{engine:?} {policy:?}"
            );
        }
    }

    #[test]
    fn push_writes_the_digest_and_skips_tls_for_loopback() {
        let argv = push(
            &settings("buildah"),
            &PushArgv {
                source: None,
                tag: "127.0.0.1:5000/slipway/p-a:d1",
                digest_file: Path::new("/w/digest"),
                auth_file: None,
            },
        );
        assert_eq!(
            argv.join(" "),
            "buildah push --tls-verify=false --digestfile /w/digest \
             127.0.0.1:5000/slipway/p-a:d1 docker://127.0.0.1:5000/slipway/p-a:d1"
        );
    }
}
