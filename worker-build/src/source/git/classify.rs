//! What went wrong with a failed git fetch, read from its stderr (git exits
//! 128 for every fatal error), and the job error a user sees for it.
//!
//! The patterns are git's own English messages (the child runs with
//! `LANG=C.UTF-8`) and those of the common servers (git daemon, smart HTTP,
//! GitHub, GitLab, Gitea, OpenSSH). Anything unrecognised is retryable: the
//! attempt budget bounds it, and a user still sees git's own words.

use slipway_shared::job::JobError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    RepoNotFound,
    RefNotFound,
    /// The server will not serve a commit it did not advertise (protocol v0
    /// without `uploadpack.allow*SHA1InWant`), or the commit does not exist.
    CommitNotServed,
    AuthFailed,
    HostKey,
    BadKey,
    Tls,
    Network,
    Unknown,
}

const AUTH: &[&str] = &[
    "authentication failed",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "permission denied (",
    "permission denied, please try again",
    "invalid username or password",
    "invalid credentials",
    "requested url returned error: 401",
    "requested url returned error: 403",
    "http basic: access denied",
];
const NOT_FOUND: &[&str] = &[
    "repository not found",
    "does not appear to be a git repository",
    "access denied or repository not exported",
    "no such repository",
    "requested url returned error: 404",
    "could not be found",
    "' not found",
    "not a git repository",
];
const NETWORK: &[&str] = &[
    "could not resolve host",
    "could not resolve hostname",
    "name or service not known",
    "temporary failure in name resolution",
    "connection refused",
    "connection timed out",
    "operation timed out",
    "timed out",
    "failed to connect",
    "unable to connect",
    "connection reset",
    "connection closed",
    "network is unreachable",
    "no route to host",
    "early eof",
    "remote end hung up",
    "operation too slow",
    "rpc failed",
    "requested url returned error: 5",
    "could not read from remote repository",
    "broken pipe",
];

pub(super) fn failure(stderr: &[String]) -> Failure {
    let text = stderr.join("\n").to_lowercase();
    let any = |patterns: &[&str]| patterns.iter().any(|p| text.contains(p));
    if text.contains("host key verification failed")
        || text.contains("remote host identification has changed")
    {
        Failure::HostKey
    } else if text.contains("load key") || text.contains("invalid format") {
        Failure::BadKey
    } else if any(NOT_FOUND) {
        Failure::RepoNotFound
    } else if any(AUTH) {
        Failure::AuthFailed
    } else if text.contains("couldn't find remote ref") || text.contains("no such ref") {
        Failure::RefNotFound
    } else if text.contains("not our ref") || text.contains("unadvertised object") {
        Failure::CommitNotServed
    } else if text.contains("ssl certificate problem") || text.contains("certificate verify") {
        Failure::Tls
    } else if any(NETWORK) {
        Failure::Network
    } else {
        Failure::Unknown
    }
}

/// What the message may say about the fetch.
pub(super) struct Context<'a> {
    pub url: &'a str,
    pub reference: &'a str,
    /// "a token", "a deploy key", or `None` when the fetch had none.
    pub credential: Option<&'static str>,
}

pub(super) fn job_error(failure: Failure, stderr: &[String], ctx: &Context<'_>) -> JobError {
    let url = ctx.url;
    match failure {
        Failure::RepoNotFound => JobError::permanent(
            "source_not_found",
            match ctx.credential {
                Some(_) => format!("the repository {url} does not exist, or the app's credential may not read it"),
                None => format!("the repository {url} does not exist (or is private: then give the app a token or a deploy key)"),
            },
        ),
        Failure::RefNotFound | Failure::CommitNotServed => ref_not_found(ctx),
        Failure::AuthFailed => JobError::permanent(
            "source_auth_failed",
            match ctx.credential {
                Some(what) => format!("{url} refused the app's credential ({what}): check that it is valid, not expired, and may read the repository"),
                None => format!("{url} asks for a credential: the repository is private (or does not exist); give the app a token (https) or a deploy key (ssh)"),
            },
        ),
        Failure::HostKey => JobError::permanent(
            "source_auth_failed",
            format!("the ssh host key of {url} does not match the app's known_hosts"),
        ),
        Failure::BadKey => JobError::permanent(
            "source_auth_failed",
            "the app's deploy key is not a valid OpenSSH private key (or it has a passphrase)",
        ),
        Failure::Tls => JobError::permanent(
            "source_tls_failed",
            format!("the TLS certificate of {url} cannot be verified: {}", git_said(stderr)),
        ),
        Failure::Network => {
            JobError::Retryable(format!("could not fetch from {url}: {}", git_said(stderr)))
        }
        Failure::Unknown => JobError::Retryable(format!("git fetch from {url} failed: {}", git_said(stderr))),
    }
}

pub(super) fn ref_not_found(ctx: &Context<'_>) -> JobError {
    let reference = ctx.reference;
    let short_hex = reference.len() < 40
        && reference.len() >= 4
        && reference.chars().all(|c| c.is_ascii_hexdigit());
    let hint = if short_hex {
        " (a commit must be given as its full 40-character id)"
    } else {
        ""
    };
    JobError::permanent(
        "ref_not_found",
        format!(
            "ref '{reference}' was not found in {}: no branch, tag or commit of that name{hint}",
            ctx.url
        ),
    )
}

/// git's own explanation: from its first fatal/error line on (a cause may
/// follow on the next line), else its last line.
fn git_said(stderr: &[String]) -> String {
    let lines: Vec<&str> = stderr
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with("fatal: ") || l.starts_with("error: "));
    let said = match first {
        Some(first) => lines[first..]
            .iter()
            .map(|l| {
                l.trim_start_matches("fatal: ")
                    .trim_start_matches("error: ")
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => lines.last().copied().unwrap_or("no message").to_owned(),
    };
    said.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> Failure {
        failure(&text.lines().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn recognises_git_and_server_messages() {
        assert_eq!(
            of("fatal: remote error: access denied or repository not exported: /nope.git"),
            Failure::RepoNotFound
        );
        assert_eq!(
            of("remote: Repository not found.\nfatal: repository 'https://h/x/' not found"),
            Failure::RepoNotFound
        );
        assert_eq!(of("ERROR: Repository not found.\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights"), Failure::RepoNotFound);
        assert_eq!(of("fatal: could not read Username for 'http://127.0.0.1:1': terminal prompts disabled"), Failure::AuthFailed);
        assert_eq!(of("remote: Invalid username or password.\nfatal: Authentication failed for 'https://h/r/'"), Failure::AuthFailed);
        assert_eq!(of("git@h: Permission denied (publickey).\nfatal: Could not read from remote repository."), Failure::AuthFailed);
        assert_eq!(
            of("fatal: couldn't find remote ref nosuch"),
            Failure::RefNotFound
        );
        assert_eq!(
            of("fatal: remote error: upload-pack: not our ref 1111"),
            Failure::CommitNotServed
        );
        assert_eq!(
            of("error: Server does not allow request for unadvertised object ff7f"),
            Failure::CommitNotServed
        );
        assert_eq!(of("fatal: unable to connect to 127.0.0.1:\n127.0.0.1[0: 127.0.0.1]: errno=Connection refused"), Failure::Network);
        assert_eq!(
            of("fatal: unable to access 'https://x/': Could not resolve host: x"),
            Failure::Network
        );
        assert_eq!(
            of("Host key verification failed.\nfatal: Could not read from remote repository."),
            Failure::HostKey
        );
        assert_eq!(
            of("Load key \"/tmp/k\": invalid format\ngit@h: Permission denied (publickey)."),
            Failure::BadKey
        );
        assert_eq!(
            of("fatal: repository 'http://h/x.git/' not found"),
            Failure::RepoNotFound
        );
        assert_eq!(of("fatal: something new"), Failure::Unknown);
    }

    #[test]
    fn messages_name_the_ref_and_hint_at_short_ids() {
        let ctx = Context {
            url: "git://h/r",
            reference: "abc1234",
            credential: None,
        };
        let JobError::Permanent { code, message } = ref_not_found(&ctx) else {
            panic!()
        };
        assert_eq!(code, "ref_not_found");
        assert!(
            message.contains("'abc1234'") && message.contains("40-character"),
            "{message}"
        );
        let said = git_said(&[
            "hint: x".into(),
            "fatal: unable to connect to 127.0.0.1:".into(),
            "127.0.0.1[0: 127.0.0.1]: errno=Connection refused".into(),
        ]);
        assert_eq!(
            said,
            "unable to connect to 127.0.0.1: 127.0.0.1[0: 127.0.0.1]: errno=Connection refused"
        );
    }
}
