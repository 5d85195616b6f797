//! The engine command lines. buildah, podman and docker take nearly the same
//! flags; this is the only place they differ. docker's lines cannot be run
//! on the project's machines (no Docker engine) and are untested there.

use crate::config::{BuildSettings, Engine};
use std::path::Path;

pub struct BuildArgv<'a> {
    pub containerfile: &'a Path,
    pub context: &'a Path,
    pub ignore_file: Option<&'a Path>,
    pub tag: &'a str,
    /// Names only: the values travel in the environment, so they never show
    /// in a process listing.
    pub build_arg_names: Vec<&'a str>,
}

pub fn build(settings: &BuildSettings, a: &BuildArgv) -> Vec<String> {
    let mut argv: Vec<String> = match settings.engine {
        // --layers: cache every step, so an unchanged dependency install is
        // reused; --pull=false: pull a base image only when it is missing;
        // --force-rm: no intermediate containers are left by a failed build.
        Engine::Buildah => ["buildah", "bud", "--layers", "--pull=false", "--force-rm"]
            .map(String::from)
            .to_vec(),
        Engine::Podman => [
            "podman",
            "build",
            "--layers",
            "--pull=missing",
            "--force-rm",
        ]
        .map(String::from)
        .to_vec(),
        Engine::Docker => ["docker", "build", "--progress=plain", "--force-rm"]
            .map(String::from)
            .to_vec(),
    };
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
    if let Some(ignore) = a.ignore_file {
        // docker reads only the context's .dockerignore.
        if settings.engine != Engine::Docker {
            flag("--ignorefile", ignore.display().to_string());
        }
    }
    argv.push(a.context.display().to_string());
    argv
}

pub struct PushArgv<'a> {
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
    argv.push(a.tag.into());
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
            },
        )
    }

    #[test]
    fn buildah_builds_with_layers_limits_and_build_args_by_name() {
        assert_eq!(
            build_argv("buildah").join(" "),
            "buildah bud --layers --pull=false --force-rm -f /w/Containerfile \
             -t 127.0.0.1:5000/slipway/p-a:d1 --memory 2g --build-arg API_URL \
             --ignorefile /w/ignore /src"
        );
        assert!(build_argv("podman").starts_with(&["podman".into(), "build".into()]));
        let docker = build_argv("docker");
        assert!(!docker.contains(&"--ignorefile".to_string()));
    }

    #[test]
    fn push_writes_the_digest_and_skips_tls_for_loopback() {
        let argv = push(
            &settings("buildah"),
            &PushArgv {
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
