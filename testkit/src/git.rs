//! Test-owned git servers on loopback and repositories to serve: git daemon,
//! smart HTTP (`git http-backend` behind a small in-process HTTP server, with
//! optional basic auth), sshd with its own host key, and a listener that
//! accepts connections and never answers (for cancel and timeout tests).
//!
//! Server processes run in their own process group and are killed by pid on
//! drop; the HTTP server runs on a thread of its own and stops on drop. Every
//! git command here reads no system or user config, so the machine's git
//! settings cannot change what a test sees.

mod daemon;
mod http;
mod silent;
mod ssh;

pub use daemon::GitDaemon;
pub use http::{GitHttp, HttpOptions};
pub use silent::SilentServer;
pub use ssh::{ssh_keygen, GitSsh, SshKeyPair};

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The annotated tag [`seed_repo`] puts on the first commit.
pub const SEED_TAG: &str = "v1.0.0";
/// The branch [`seed_repo`] makes beside `main`.
pub const SEED_BRANCH: &str = "feature";

/// A bare repository under a server's base dir, with its commit ids.
#[derive(Debug, Clone)]
pub struct SeededRepo {
    /// Name relative to the base dir: what `url(name)` takes.
    pub name: String,
    pub path: PathBuf,
    /// The first commit: the source folder as given. [`SEED_TAG`] points at
    /// it, and it is no branch tip (a fetch of it by id is "unadvertised").
    pub first: String,
    /// The tip of `main`: the first commit plus a `CHANGELOG` line.
    pub main: String,
    /// The tip of [`SEED_BRANCH`]: `main` plus a `feature.txt`.
    pub feature: String,
}

/// Creates the bare repository `base_dir/name` from the files of `source`
/// (or a README when `None`), with the commits described on [`SeededRepo`].
pub fn seed_repo(base_dir: &Path, name: &str, source: Option<&Path>) -> anyhow::Result<SeededRepo> {
    let work = base_dir.join(format!(".work-{name}"));
    let path = base_dir.join(name);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    match source {
        Some(source) => copy_tree(source, &work)?,
        None => std::fs::write(work.join("README.md"), "# seeded by slipway-testkit\n")?,
    }
    git(&work, &["init", "-q", "-b", "main"])?;
    git(&work, &["add", "-A"])?;
    git(&work, &["commit", "-q", "-m", "first"])?;
    git(&work, &["tag", "-a", SEED_TAG, "-m", "first release"])?;
    let first = git(&work, &["rev-parse", "HEAD"])?;
    std::fs::write(work.join("CHANGELOG"), "second commit\n")?;
    git(&work, &["add", "CHANGELOG"])?;
    git(&work, &["commit", "-q", "-m", "second"])?;
    let main = git(&work, &["rev-parse", "HEAD"])?;
    git(&work, &["checkout", "-q", "-b", SEED_BRANCH])?;
    std::fs::write(work.join("feature.txt"), "on the feature branch\n")?;
    git(&work, &["add", "feature.txt"])?;
    git(&work, &["commit", "-q", "-m", "feature"])?;
    let feature = git(&work, &["rev-parse", "HEAD"])?;
    // The bare clone's HEAD (the default branch) is the branch checked out.
    git(&work, &["checkout", "-q", "main"])?;
    let path_text = path.to_str().context("repository path is not UTF-8")?;
    git(&work, &["clone", "-q", "--bare", ".", path_text])?;
    std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    Ok(SeededRepo {
        name: name.to_owned(),
        path,
        first,
        main,
        feature,
    })
}

impl SeededRepo {
    /// Commits `contents` as `file` on top of `branch` and pushes it; returns
    /// the new commit id. For "one-line change" rebuild tests.
    pub fn push_change(&self, branch: &str, file: &str, contents: &str) -> anyhow::Result<String> {
        let work = self
            .path
            .with_extension(format!("change-{}", crate::util::hex8()));
        let repo = self.path.to_str().context("repository path is not UTF-8")?;
        let work_text = work.to_str().context("work path is not UTF-8")?;
        git(
            Path::new("/"),
            &["clone", "-q", "-b", branch, repo, work_text],
        )?;
        let result = (|| {
            std::fs::write(work.join(file), contents)?;
            git(&work, &["add", "--", file])?;
            git(&work, &["commit", "-q", "-m", &format!("change {file}")])?;
            git(&work, &["push", "-q", "origin", branch])?;
            git(&work, &["rev-parse", "HEAD"])
        })();
        let _ = std::fs::remove_dir_all(&work);
        result
    }
}

/// Runs git in `dir` with no system or user config and a fixed identity;
/// returns its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Slipway Test")
        .env("GIT_AUTHOR_EMAIL", "test@slipway.invalid")
        .env("GIT_COMMITTER_NAME", "Slipway Test")
        .env("GIT_COMMITTER_EMAIL", "test@slipway.invalid")
        .output()
        .with_context(|| format!("running git {args:?}"))?;
    if !out.status.success() {
        bail!(
            "git {args:?} in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    let out = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .output()
        .context("running cp")?;
    if !out.status.success() {
        bail!(
            "copying {} failed: {}",
            from.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
