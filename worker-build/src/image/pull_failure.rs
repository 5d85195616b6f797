//! A build that stopped because its base image could not be pulled, told in
//! one line (which image, from where, why) instead of buildah's wall of
//! text, and classified: a missing image, a refused login, an unknown host
//! or an unresolvable short name fail the same way every time (permanent,
//! `base_image_unavailable`); a refused connection, a timeout, a rate limit
//! or a registry's 5xx may pass on a later attempt (retryable).

use crate::registries::PullSettings;
use slipway_shared::job::JobError;

pub const CODE: &str = "base_image_unavailable";

/// Why one source failed, as buildah/podman word it (lowercased) and as the
/// line says it, and whether the next attempt may succeed.
const REASONS: &[(&[&str], &str, bool)] = &[
    (
        &["manifest unknown", "name unknown", "not found"],
        "not found",
        false,
    ),
    (
        &["unauthorized", "authentication required", "denied"],
        "unauthorized (see SLIPWAY_PULL_CREDENTIALS_FILE)",
        false,
    ),
    (
        &["toomanyrequests", "too many requests"],
        "rate limited",
        true,
    ),
    (&["no such host"], "no such host", false),
    (
        &["server gave http response to https client"],
        "answers plain HTTP (give the mirror as http://)",
        false,
    ),
    (
        &["x509", "certificate"],
        "TLS certificate not trusted",
        false,
    ),
    (&["connection refused"], "connection refused", true),
    (
        &["i/o timeout", "timeout", "deadline exceeded"],
        "timed out",
        true,
    ),
    (
        &["server misbehaving", "temporary failure in name resolution"],
        "DNS lookup failed",
        true,
    ),
    (
        &[
            "status 500",
            "status 502",
            "status 503",
            "status 504",
            "500 internal",
            "bad gateway",
            "service unavailable",
        ],
        "registry error",
        true,
    ),
];

/// The one line for a build whose output (`tail`) ends in a pull failure,
/// or `None` when it failed for another reason.
pub fn classify(tail: &str, pull: &PullSettings) -> Option<JobError> {
    let error = tail.lines().rev().find(|l| is_pull_error(l))?.trim();
    let lower = error.to_lowercase();
    if lower.contains("did not resolve to an alias") {
        let name = error.split('"').nth(1).unwrap_or("the base image");
        return Some(JobError::permanent(
            CODE,
            format!(
                "cannot pull base image {name}: a short name, and SLIPWAY_REGISTRY_SEARCH names no registry to search"
            ),
        ));
    }
    let image = tail
        .lines()
        .rev()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Trying to pull ")?
                .strip_suffix("...")
        })
        .or_else(|| {
            let rest = &error[error.find("docker://")? + "docker://".len()..];
            rest.split(": ").next()
        })
        .unwrap_or("(unknown)");
    let registry = image.split('/').next().unwrap_or(image);

    let (mirrors, primary) = match lower.split_once("(mirrors also failed: [") {
        Some((_, rest)) => match rest.split_once("]): ") {
            Some((mirrors, primary)) => (Some(mirrors), primary),
            None => (Some(rest), ""),
        },
        None => (None, lower.as_str()),
    };
    let mut retryable = false;
    let mut describe = |text: &str| {
        let (reason, transient) = reason(text);
        retryable |= transient;
        reason
    };
    let line = match mirrors {
        Some(text) => {
            let mirror_reason = describe(text);
            let primary_reason = describe(primary);
            let locations: Vec<&str> = pull
                .mirrors
                .iter()
                .filter(|m| m.registry == registry)
                .map(|m| m.location.as_str())
                .collect();
            let mirrors = match locations.len() {
                0 => "its mirrors".to_string(),
                1 => format!("mirror {}", locations[0]),
                _ => format!("mirrors {}", locations.join(", ")),
            };
            format!(
                "cannot pull base image {image} from {mirrors} ({mirror_reason}) nor from {registry} ({primary_reason})"
            )
        }
        None => format!(
            "cannot pull base image {image} from {registry}: {}",
            describe(primary)
        ),
    };
    Some(if retryable {
        JobError::Retryable(line)
    } else {
        JobError::permanent(CODE, line)
    })
}

fn is_pull_error(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("Error:")
        && (line.contains("initializing source docker://")
            || line.contains("did not resolve to an alias")
            || line.contains("pinging container registry"))
}

/// The first known reason in `text` (lowercase), else its last clause.
fn reason(text: &str) -> (String, bool) {
    for (needles, said, transient) in REASONS {
        if needles.iter().any(|n| text.contains(n)) {
            return (said.to_string(), *transient);
        }
    }
    let last = text.rsplit(": ").next().unwrap_or(text).trim();
    (last.trim_end_matches([')', ']']).to_string(), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registries::Mirror;

    fn with_mirror() -> PullSettings {
        PullSettings {
            mirrors: vec![Mirror {
                registry: "docker.io".into(),
                location: "127.0.0.1:5917".into(),
                insecure: true,
            }],
            ..PullSettings::default()
        }
    }

    fn permanent(result: Option<JobError>) -> String {
        match result {
            Some(JobError::Permanent { code, message }) if code == CODE => message,
            other => panic!("expected {CODE}, got {other:?}"),
        }
    }

    // Outputs copied from buildah 1.28 on this machine (no internet).
    const MIRROR_LACKS_IT: &str = "STEP 1/1: FROM heroku/heroku:99\n\
        Resolving \"heroku/heroku\" using unqualified-search registries (/tmp/r.conf)\n\
        Trying to pull docker.io/heroku/heroku:99...\n\
        Error: creating build container: initializing source docker://heroku/heroku:99: (Mirrors also failed: [127.0.0.1:5917/heroku/heroku:99: reading manifest 99 in 127.0.0.1:5917/heroku/heroku: manifest unknown: manifest unknown]): docker.io/heroku/heroku:99: pinging container registry registry-1.docker.io: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53: no such host";

    #[test]
    fn failures_are_one_line_naming_image_sources_and_reasons() {
        let cases: &[(&str, PullSettings, &str)] = &[
            (
                MIRROR_LACKS_IT,
                with_mirror(),
                "cannot pull base image docker.io/heroku/heroku:99 from mirror 127.0.0.1:5917 (not found) nor from docker.io (no such host)",
            ),
            (
                "Trying to pull docker.io/library/python:3.12...\n\
                 Error: creating build container: initializing source docker://python:3.12: pinging container registry registry-1.docker.io: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53: no such host",
                PullSettings::default(),
                "cannot pull base image docker.io/library/python:3.12 from docker.io: no such host",
            ),
            (
                "Trying to pull docker.io/heroku/heroku:24-build...\n\
                 Error: creating build container: initializing source docker://heroku/heroku:24-build: (Mirrors also failed: [127.0.0.1:5918/heroku/heroku:24-build: reading manifest 24-build in 127.0.0.1:5918/heroku/heroku: unauthorized: authentication required]): docker.io/heroku/heroku:24-build: pinging container registry registry-1.docker.io: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53: no such host",
                with_mirror(),
                "cannot pull base image docker.io/heroku/heroku:24-build from mirror 127.0.0.1:5917 (unauthorized (see SLIPWAY_PULL_CREDENTIALS_FILE)) nor from docker.io (no such host)",
            ),
            (
                "Error: creating build container: short-name \"python:3.12\" did not resolve to an alias and no unqualified-search registries are defined in \"/tmp/r.conf\"",
                PullSettings::default(),
                "cannot pull base image python:3.12: a short name, and SLIPWAY_REGISTRY_SEARCH names no registry to search",
            ),
        ];
        for (tail, pull, expected) in cases {
            let message = permanent(classify(tail, pull));
            assert_eq!(&message, expected);
            assert_eq!(message.lines().count(), 1);
        }
    }

    #[test]
    fn network_trouble_is_retryable() {
        let refused = "Trying to pull docker.io/library/debian:bookworm...\n\
            Error: creating build container: initializing source docker://debian:bookworm: (Mirrors also failed: [127.0.0.1:5917/library/debian:bookworm: pinging container registry 127.0.0.1:5917: Get \"http://127.0.0.1:5917/v2/\": dial tcp 127.0.0.1:5917: connect: connection refused]): docker.io/library/debian:bookworm: pinging container registry registry-1.docker.io: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53: no such host";
        match classify(refused, &with_mirror()) {
            Some(JobError::Retryable(line)) => assert_eq!(
                line,
                "cannot pull base image docker.io/library/debian:bookworm from mirror 127.0.0.1:5917 (connection refused) nor from docker.io (no such host)"
            ),
            other => panic!("expected retryable, got {other:?}"),
        }
        let limited = "Trying to pull docker.io/library/node:20...\nError: creating build container: initializing source docker://node:20: reading manifest 20 in docker.io/library/node: toomanyrequests: You have reached your pull rate limit.";
        assert!(matches!(
            classify(limited, &PullSettings::default()),
            Some(JobError::Retryable(_))
        ));
    }

    #[test]
    fn other_failures_are_not_pull_failures() {
        let run_failed =
            "STEP 2/2: RUN false\nError: building at STEP \"RUN false\": exit status 1";
        assert!(classify(run_failed, &PullSettings::default()).is_none());
    }
}
