//! Provisioning an `ssh` target over SSH: check that a container engine
//! (podman, or Docker with its daemon answering) is there and works, make
//! the platform's folder, and check that the target's own Caddy answers its
//! admin API (reached through an SSH local forward, so the admin API never
//! has to listen beyond the target's loopback), starting an installed Caddy
//! that does not run. Everything missing is named in one permanent error.
//! What it changes (the folder, a started Caddy, the engine recorded) is
//! already so on a second run, which changes nothing and says so.
//!
//! No engine network is made: releases publish on the target's loopback
//! and its Caddy dials them there.

use slipway_shared::db::targets::{record_engine, SshTarget};
use slipway_shared::job::{JobContext, JobError};
use slipway_shared::ssh::{classify_failure, SshKeyFiles, Tunnel, SSH_FAILED};
use slipway_shared::target::EngineKind;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

mod caddy;
mod engine;

/// One requirement and what was found on the target.
pub(crate) struct Found {
    what: String,
    result: Result<String, String>,
}

/// Checks and prepares the target; returns the engine its releases run
/// under.
pub async fn provision(ctx: &JobContext, target: &SshTarget) -> Result<EngineKind, JobError> {
    let files = target.key_files()?;
    ctx.logs
        .info(format!(
            "provisioning ssh target {} ({}, port {})",
            target.name, files.host.destination, target.port
        ))
        .await;
    // One connection for the whole check: the forward to the target's
    // Caddy admin API, and the master the scripts run as sessions of (a
    // new connection costs a key exchange and a login, ~0.2 s).
    let admin = std::slice::from_ref(&target.settings.caddy_admin);
    let connection = Tunnel::open_master(&files.host, admin, &[])
        .await
        .map_err(|e| e.into_job_error())?;
    let report = run_script(&files, &script(target)).await?;
    let mut found = Vec::new();
    let mut changes = Vec::new();
    for line in report.lines() {
        let Some(value) = line.strip_prefix("folder=") else {
            continue;
        };
        let (status, detail) = value.split_once(' ').unwrap_or((value, ""));
        found.push(Found {
            what: format!("folder {}", target.settings.data_dir),
            result: match status {
                "exists" => Ok("present".into()),
                "created" => {
                    changes.push(format!("created {}", target.settings.data_dir));
                    Ok("created".into())
                }
                _ => Err(format!("cannot be created: {detail}")),
            },
        });
    }
    // Once found, the engine stays: releases and volumes live in it, and
    // another engine installed (or one failing for a while) must not split
    // an app across two.
    let engine = engine::choose(target.settings.engine.or(target.engine_found), &report);
    let chosen = engine.as_ref().ok().map(|(kind, _)| *kind);
    if let Some(kind) = chosen {
        if record_engine(&ctx.pool, target.id, kind).await? {
            changes.push(format!("recorded engine {}", kind.as_str()));
        }
    }
    found.insert(
        0,
        Found {
            what: "container engine".into(),
            result: engine.map(|(_, detail)| detail),
        },
    );
    let caddy_installed = report.lines().any(|l| l.starts_with("caddy=ok"));
    let folder_ok = report
        .lines()
        .any(|l| l.starts_with("folder=exists") || l.starts_with("folder=created"));
    let (caddy, started) = caddy::check(
        &files,
        connection.local_port(0),
        target,
        caddy_installed,
        folder_ok,
        ctx,
    )
    .await?;
    drop(connection);
    found.push(caddy);
    changes.extend(started);

    let mut missing = Vec::new();
    for item in &found {
        match &item.result {
            Ok(detail) => ctx.logs.info(format!("{}: {detail}", item.what)).await,
            Err(problem) => {
                ctx.logs
                    .info(format!("{}: MISSING: {problem}", item.what))
                    .await;
                missing.push(format!("{} ({problem})", item.what));
            }
        }
    }
    if !missing.is_empty() {
        return Err(JobError::permanent(
            "target_not_ready",
            format!("ssh target {} lacks: {}", target.name, missing.join("; ")),
        ));
    }
    if changes.is_empty() {
        ctx.logs
            .info(format!(
                "ssh target {} ready; nothing to change",
                target.name
            ))
            .await;
    } else {
        ctx.logs
            .info(format!(
                "ssh target {} ready; changed: {}",
                target.name,
                changes.join(", ")
            ))
            .await;
    }
    // Nothing is missing, so an engine was chosen.
    chosen.ok_or_else(|| JobError::permanent("target_not_ready", "no container engine"))
}

/// The remote part: one `sh` script, its findings printed as `key=status
/// detail` lines.
fn script(target: &SshTarget) -> String {
    let conf = target
        .settings
        .containers_conf
        .as_deref()
        .map(|c| format!("export CONTAINERS_CONF='{c}'\n"))
        .unwrap_or_default();
    // The settings were validated as plain paths: quoting them is enough.
    format!(
        r#"{conf}{engines}d='{dir}'
if [ -d "$d" ]; then echo "folder=exists $d"
elif out=$(mkdir -p "$d" 2>&1 && chmod 0750 "$d" 2>&1); then echo "folder=created $d"
else echo "folder=failed $(echo "$out" | tr '\n' ' ')"; fi
if command -v caddy >/dev/null 2>&1; then echo "caddy=ok $(command -v caddy)"; else echo "caddy=missing"; fi
"#,
        engines = engine::SCRIPT,
        dir = target.settings.data_dir
    )
}

pub(crate) async fn run_script(files: &SshKeyFiles, script: &str) -> Result<String, JobError> {
    run_script_as(files, "sh -s", script, SCRIPT_TIMEOUT).await
}

/// Runs `script` on the target through `shell` (`sh -s`, or `sudo -n sh
/// -s` for a user that is not root), within `limit`; returns its stdout.
pub(crate) async fn run_script_as(
    files: &SshKeyFiles,
    shell: &str,
    script: &str,
    limit: Duration,
) -> Result<String, JobError> {
    let mut command = files.host.base_command();
    command
        .args(["-o", "LogLevel=ERROR", "--"])
        .arg(&files.host.destination)
        .arg(shell)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| JobError::permanent("ssh_unavailable", format!("cannot run ssh: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes()).await;
    }
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| {
            JobError::Retryable(format!(
                "the script on the target did not finish in {limit:?}"
            ))
        })?
        .map_err(|e| JobError::Retryable(format!("ssh: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if out.status.code() == Some(SSH_FAILED) {
        let (code, retryable) = classify_failure(&stderr);
        let message = format!("cannot reach {} over SSH: {stderr}", files.host.destination);
        return Err(if retryable {
            JobError::Retryable(format!("{code}: {message}"))
        } else {
            JobError::permanent(code, message)
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
