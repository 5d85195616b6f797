//! The work dir a fetch fills: its preparation, the git commands run in it
//! (with the environment every one of them gets), and what git left in it.

use super::auth::Access;
use super::exec::{self, Deadline, Output};
use super::RefKind;
use slipway_shared::job::JobError;
use slipway_shared::logsink::LogHandle;
use slipway_shared::process::clean_command;
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// Settings every git command of a fetch gets, whatever the machine's config.
const BASE_CONFIG: &[(&str, &str)] = &[
    ("init.defaultBranch", "main"),
    ("advice.detachedHead", "false"),
    ("protocol.version", "2"),
    ("credential.helper", ""),
    ("core.askPass", ""),
    // A stalled HTTP transfer ends (retryably) instead of holding the job
    // until its time limit.
    ("http.lowSpeedLimit", "1"),
    ("http.lowSpeedTime", "120"),
    // A redirect would lead to a host the outbound policy never checked.
    ("http.followRedirects", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
];

pub(super) struct Git<'a> {
    pub dest: &'a Path,
    pub access: &'a Access,
    pub allow_file: bool,
    pub logs: &'a LogHandle,
    pub cancel: &'a CancellationToken,
    pub deadline: Deadline,
}

impl Git<'_> {
    pub(super) async fn run(&self, args: &[&str]) -> Result<Output, JobError> {
        let mut command = clean_command("git");
        command.args(args).current_dir(self.dest);
        let protocols = if self.allow_file {
            "https:http:ssh:git:file"
        } else {
            "https:http:ssh:git"
        };
        command
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ALLOW_PROTOCOL", protocols)
            .envs(self.access.env.iter().map(|(k, v)| (k, v)));
        let config = BASE_CONFIG.iter().map(|(k, v)| (*k, *v)).chain(
            self.access
                .config
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let mut count = 0;
        for (n, (key, value)) in config.enumerate() {
            command
                .env(format!("GIT_CONFIG_KEY_{n}"), key)
                .env(format!("GIT_CONFIG_VALUE_{n}"), value);
            count = n + 1;
        }
        command.env("GIT_CONFIG_COUNT", count.to_string());
        exec::run(
            command,
            self.logs,
            self.cancel,
            self.deadline,
            &self.access.scrubber,
        )
        .await
    }

    /// A step that talks to no server: a failure is the machine's, not the
    /// repository's.
    pub(super) async fn local(&self, args: &[&str]) -> Result<Output, JobError> {
        let output = self.run(args).await?;
        if output.success() {
            return Ok(output);
        }
        let said = output
            .stderr
            .last()
            .map(String::as_str)
            .unwrap_or("no message");
        Err(JobError::Retryable(format!(
            "git {} failed: {said}",
            args[0]
        )))
    }
}

pub(super) fn prepare_dest(dest: &Path) -> Result<(), JobError> {
    let empty = match std::fs::read_dir(dest) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dest).map_err(|e| {
                JobError::Retryable(format!(
                    "cannot create the work dir {}: {e}",
                    dest.display()
                ))
            })?;
            true
        }
        Err(e) => {
            return Err(JobError::Retryable(format!(
                "cannot read the work dir {}: {e}",
                dest.display()
            )))
        }
    };
    if empty {
        Ok(())
    } else {
        Err(JobError::permanent(
            "source_workdir_not_empty",
            format!("the work dir {} is not empty", dest.display()),
        ))
    }
}

/// git records what a name matched: `<id>\t\tbranch 'main' of <url>`.
pub(super) fn fetch_head_kind(dest: &Path) -> RefKind {
    let head = std::fs::read_to_string(dest.join(".git/FETCH_HEAD")).unwrap_or_default();
    let description = head
        .lines()
        .next()
        .and_then(|line| line.splitn(3, '\t').nth(2))
        .unwrap_or("");
    if description.starts_with("branch '") {
        RefKind::Branch
    } else if description.starts_with("tag '") {
        RefKind::Tag
    } else {
        RefKind::Other
    }
}
