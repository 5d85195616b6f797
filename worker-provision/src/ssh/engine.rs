//! Which container engine an ssh target's releases run under: podman, or
//! Docker with its daemon answering. The remote part ([`SCRIPT`]) reports
//! both as `podman=…` and `docker=…` lines; [`choose`] picks the engine the
//! target asks for, or podman before Docker, and names what is wrong when
//! neither works.

use slipway_shared::target::EngineKind;

/// Shell lines reporting each engine as `ENGINE=ok VERSION`,
/// `ENGINE=broken OUTPUT` or `ENGINE=missing`. Docker's check asks its
/// daemon (the server version): a client alone runs nothing.
pub(super) const SCRIPT: &str = r#"if command -v podman >/dev/null 2>&1; then
  if v=$(podman version --format '{{.Client.Version}}' 2>&1); then echo "podman=ok $v"
  else echo "podman=broken $(echo "$v" | tr '\n' ' ')"; fi
else echo "podman=missing"; fi
if command -v docker >/dev/null 2>&1; then
  if v=$(docker version --format '{{.Server.Version}}' 2>&1); then echo "docker=ok $v"
  else echo "docker=broken $(echo "$v" | tr '\n' ' ')"; fi
else echo "docker=missing"; fi
"#;

/// What the script found of one engine.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Works(String),
    Broken(String),
    Missing,
}

fn probe(report: &str, engine: EngineKind) -> Probe {
    let prefix = format!("{}=", engine.as_str());
    let Some(value) = report.lines().find_map(|l| l.strip_prefix(&prefix)) else {
        return Probe::Missing;
    };
    let (status, detail) = value.split_once(' ').unwrap_or((value, ""));
    match status {
        "ok" => Probe::Works(detail.trim().to_owned()),
        "broken" => Probe::Broken(detail.trim().to_owned()),
        _ => Probe::Missing,
    }
}

/// Why `engine` cannot run releases, or `None` when it can.
fn problem(engine: EngineKind, probe: &Probe) -> Option<String> {
    match (engine, probe) {
        (_, Probe::Works(_)) => None,
        (EngineKind::Podman, Probe::Broken(out)) => {
            Some(format!("podman is installed but fails: {out}"))
        }
        (EngineKind::Docker, Probe::Broken(out)) => Some(format!(
            "docker is installed but its daemon does not answer: {out}"
        )),
        (EngineKind::Podman, Probe::Missing) => {
            Some("podman is not installed (apt-get install podman)".into())
        }
        (EngineKind::Docker, Probe::Missing) => {
            Some("docker is not installed (apt-get install docker.io)".into())
        }
    }
}

/// The engine to run releases under and what was found of it (`podman
/// 4.3.1`), or why none can.
pub(super) fn choose(
    asked: Option<EngineKind>,
    report: &str,
) -> Result<(EngineKind, String), String> {
    let candidates = match asked {
        Some(engine) => vec![engine],
        None => vec![EngineKind::Podman, EngineKind::Docker],
    };
    let mut problems = Vec::new();
    for engine in &candidates {
        let found = probe(report, *engine);
        match (&found, problem(*engine, &found)) {
            (Probe::Works(version), None) => {
                return Ok((*engine, format!("{} {version}", engine.as_str())));
            }
            (_, Some(problem)) => problems.push(problem),
            (_, None) => {}
        }
    }
    let all_missing = candidates
        .iter()
        .all(|e| probe(report, *e) == Probe::Missing);
    if asked.is_none() && all_missing {
        return Err(
            "neither podman nor Docker is installed (apt-get install podman, or docker.io)".into(),
        );
    }
    Err(problems.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: &str = "podman=ok 4.3.1\ndocker=ok 20.10.24\n";

    #[test]
    fn podman_comes_before_docker_unless_docker_is_asked_for() {
        assert_eq!(
            choose(None, BOTH),
            Ok((EngineKind::Podman, "podman 4.3.1".into()))
        );
        assert_eq!(
            choose(Some(EngineKind::Docker), BOTH),
            Ok((EngineKind::Docker, "docker 20.10.24".into()))
        );
        let docker_only = "podman=missing\ndocker=ok 20.10.24\n";
        assert_eq!(choose(None, docker_only).unwrap().0, EngineKind::Docker);
    }

    #[test]
    fn what_is_wrong_is_named() {
        let report = "podman=broken bad conf\ndocker=broken Cannot connect to the Docker daemon\n";
        let err = choose(None, report).unwrap_err();
        assert!(
            err.contains("podman is installed but fails: bad conf"),
            "{err}"
        );
        assert!(
            err.contains("docker is installed but its daemon does not answer: Cannot connect"),
            "{err}"
        );
        let err = choose(Some(EngineKind::Docker), "podman=ok 4\ndocker=missing\n").unwrap_err();
        assert_eq!(err, "docker is not installed (apt-get install docker.io)");
        let err = choose(None, "podman=missing\ndocker=missing\n").unwrap_err();
        assert!(err.starts_with("neither podman nor Docker"), "{err}");
        // A partial report (a script that died) counts as missing.
        assert!(choose(Some(EngineKind::Podman), "").is_err());
    }
}
