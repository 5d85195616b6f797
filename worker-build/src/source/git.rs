//! Fetching one ref of a git repository into a work dir: a shallow fetch of
//! just that ref (a branch, a tag or a full commit id) over https, http, ssh,
//! git or (local mode only) file URLs, with a token or a deploy key, and the
//! commit it resolved to.
//!
//! Every git command runs with a clean environment in its own process group,
//! its lines go to the job's logs, and a cancel kills the group. git reads no
//! system or user config, never prompts, and speaks only the allowed
//! transports. Failures are classified from git's stderr: a missing
//! repository, a missing ref or a refused credential are permanent, network
//! faults retryable.

mod auth;
mod classify;
mod exec;
mod pin;
mod url;
mod workdir;

use classify::{Context, Failure};
use exec::Deadline;
use secrecy::SecretString;
use slipway_shared::db::sources::StoredGitCredential;
use slipway_shared::domain::{GitRef, GitUrl};
use slipway_shared::egress::OutboundPolicy;
use slipway_shared::job::JobError;
use slipway_shared::logsink::LogHandle;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Scheme;
use workdir::{fetch_head_kind, prepare_dest, Git};

pub use auth::DEFAULT_TOKEN_USER;

/// How the platform may authenticate to a repository.
#[derive(Debug, Clone)]
pub enum GitCredential {
    /// For https/http: sent as HTTP basic auth, `username` defaulting to
    /// [`DEFAULT_TOKEN_USER`].
    Token {
        username: Option<String>,
        token: SecretString,
    },
    /// For ssh: an unencrypted OpenSSH private key, and the server's host
    /// keys in known_hosts format (`[host]:port type key` for another port).
    /// Without `known_hosts` the first key the server shows is trusted.
    SshKey {
        private_key: SecretString,
        known_hosts: Option<String>,
    },
}

impl From<StoredGitCredential> for GitCredential {
    fn from(stored: StoredGitCredential) -> Self {
        match stored {
            StoredGitCredential::Token { username, token } => {
                GitCredential::Token { username, token }
            }
            StoredGitCredential::SshKey {
                private_key,
                known_hosts,
            } => GitCredential::SshKey {
                private_key,
                known_hosts,
            },
        }
    }
}

/// What to fetch.
#[derive(Debug, Clone)]
pub struct GitSource {
    pub url: GitUrl,
    pub reference: GitRef,
    pub credential: Option<GitCredential>,
}

/// What the requested ref turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Branch,
    Tag,
    /// A full commit id.
    Commit,
    /// `HEAD` (the default branch) or a ref outside branches and tags.
    Other,
}

impl RefKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RefKind::Branch => "branch",
            RefKind::Tag => "tag",
            RefKind::Commit => "commit",
            RefKind::Other => "ref",
        }
    }
}

/// The checked-out result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The full commit id checked out (40 hex digits; 64 in a SHA-256 repo).
    pub commit: String,
    pub reference_kind: RefKind,
    /// False when the server would not serve a commit id directly and its
    /// branches and tags were fetched in full to find it.
    pub shallow: bool,
}

#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Whether `file://` URLs are allowed: only in local mode, where the
    /// repository is on the platform's own machine.
    pub allow_file: bool,
    /// For the whole fetch; past it the fetch is killed and is retryable.
    pub timeout: Duration,
    /// Which addresses the repository's host may be (checked when the
    /// fetch connects, and git pinned to the address checked).
    pub outbound: OutboundPolicy,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            allow_file: false,
            timeout: Duration::from_secs(600),
            outbound: OutboundPolicy::public_only(),
        }
    }
}

/// Fetches `src` into `dest` (which must not exist or be empty) and checks
/// out the commit, detached. `dest/.git` stays; drop it before building if
/// the build context should not include history.
pub async fn fetch(
    src: &GitSource,
    dest: &Path,
    opts: &FetchOptions,
    logs: &LogHandle,
    cancel: &CancellationToken,
) -> Result<Fetched, JobError> {
    let started = Instant::now();
    let remote = url::parse(&src.url)?;
    if remote.scheme == Scheme::File && !opts.allow_file {
        return Err(JobError::permanent(
            "source_scheme_not_allowed",
            "file:// repository URLs are allowed only when the platform runs in local mode",
        ));
    }
    let pinned = pin::check(&src.url, &opts.outbound, logs)
        .await?
        .map(|pin| pin.apply(&remote));
    let ssh_options = pinned.as_ref().and_then(|p| p.ssh_options.as_deref());
    let mut access = auth::prepare(&remote, src.credential.as_ref(), ssh_options)?;
    if let Some(pinned) = &pinned {
        access.config.extend(pinned.config.iter().cloned());
    }
    let fetch_url = pinned.as_ref().map_or(&remote.fetch_url, |p| &p.fetch_url);
    prepare_dest(dest)?;
    let git = Git {
        dest,
        access: &access,
        allow_file: opts.allow_file,
        logs,
        cancel,
        deadline: Deadline {
            at: started + opts.timeout,
            limit: opts.timeout,
        },
    };
    let reference = src.reference.as_str();
    let credential = match &src.credential {
        Some(GitCredential::Token { .. }) => Some("a token"),
        Some(GitCredential::SshKey { .. }) => Some("a deploy key"),
        None => remote.userinfo.as_ref().map(|_| "the password in the URL"),
    };
    let ctx = Context {
        url: &remote.display,
        reference,
        credential,
    };
    logs.info(format!("fetching '{reference}' from {}", remote.display))
        .await;
    for note in &access.notes {
        logs.info(note.as_str()).await;
    }
    git.local(&["init", "-q", "."]).await?;
    git.local(&["remote", "add", "origin", fetch_url]).await?;

    let commit_id = full_commit_id(reference);
    let wanted = commit_id.as_deref().unwrap_or(reference);
    let fetched = git
        .run(&[
            "fetch",
            "--depth=1",
            "--no-tags",
            "--no-recurse-submodules",
            "origin",
            wanted,
        ])
        .await?;
    let (checkout, kind, shallow) = if fetched.success() {
        let kind = match &commit_id {
            Some(_) => RefKind::Commit,
            None => fetch_head_kind(dest),
        };
        ("FETCH_HEAD", kind, true)
    } else {
        let failure = classify::failure(&fetched.stderr);
        match (&commit_id, failure) {
            (Some(id), Failure::CommitNotServed) => {
                fetch_everything(&git, id, &ctx).await?;
                (id.as_str(), RefKind::Commit, false)
            }
            _ => return Err(classify::job_error(failure, &fetched.stderr, &ctx)),
        }
    };
    git.local(&["checkout", "-q", "--detach", checkout]).await?;
    let head = git
        .local(&["rev-parse", "--verify", "HEAD^{commit}"])
        .await?;
    let commit = head
        .stdout
        .first()
        .map(|l| l.trim().to_owned())
        .unwrap_or_default();
    if !is_hex_id(&commit) || commit_id.as_ref().is_some_and(|id| *id != commit) {
        return Err(JobError::Retryable(format!(
            "git checked out {commit:?}, not the commit that was fetched"
        )));
    }
    logs.info(format!(
        "checked out {} '{reference}' at commit {commit} in {:.1}s{}",
        kind.as_str(),
        started.elapsed().as_secs_f64(),
        if shallow { " (depth 1)" } else { "" }
    ))
    .await;
    Ok(Fetched {
        commit,
        reference_kind: kind,
        shallow,
    })
}

/// The fallback for servers that do not serve an unadvertised commit: its
/// branches and tags in full, then the commit must be among them.
async fn fetch_everything(git: &Git<'_>, id: &str, ctx: &Context<'_>) -> Result<(), JobError> {
    git.logs
        .info(format!(
            "the server does not serve commit {id} directly; fetching all branches and tags in full to find it"
        ))
        .await;
    let all = git
        .run(&[
            "fetch",
            "--no-tags",
            "--no-recurse-submodules",
            "origin",
            "+refs/heads/*:refs/remotes/origin/*",
            "+refs/tags/*:refs/tags/*",
        ])
        .await?;
    if !all.success() {
        let failure = classify::failure(&all.stderr);
        return Err(classify::job_error(failure, &all.stderr, ctx));
    }
    let present = git
        .run(&["cat-file", "-e", &format!("{id}^{{commit}}")])
        .await?;
    if present.success() {
        Ok(())
    } else {
        Err(classify::ref_not_found(ctx))
    }
}

/// `reference` as a full commit id (lowercased), if it is one.
fn full_commit_id(reference: &str) -> Option<String> {
    is_hex_id(reference).then(|| reference.to_ascii_lowercase())
}

fn is_hex_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_ids_are_full_hex() {
        assert_eq!(full_commit_id(&"A".repeat(40)), Some("a".repeat(40)));
        assert!(full_commit_id("abc1234").is_none());
        assert!(full_commit_id(&"g".repeat(40)).is_none());
        assert!(full_commit_id(&"a".repeat(64)).is_some());
    }
}
