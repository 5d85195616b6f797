//! A new server as an ssh target: wait until it answers SSH with the host
//! key Slipway gave it, register it (named as the server, root with
//! Slipway's client key, the host key pinned), and run the server setup on
//! it; and the target's removal when the server goes.

use crate::ssh::run_script_as;
use secrecy::SecretString;
use slipway_shared::config::ServerSettings;
use slipway_shared::db::servers::{database, ServerRow};
use slipway_shared::db::target_setup::SetupRequest;
use slipway_shared::db::targets;
use slipway_shared::job::{JobContext, JobError};
use slipway_shared::secrets::SecretBox;
use slipway_shared::ssh::SshKeyFiles;
use slipway_shared::target::SshTargetSettings;
use sqlx::PgPool;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// How long one SSH try may take.
const TRY_LIMIT: Duration = Duration::from_secs(10);

/// Waits until `root@host:port` lets Slipway in with the pinned host key.
/// A host key that differs fails at once: that is not our server.
pub async fn wait_for_ssh(
    host: &str,
    port: u16,
    client_private: &SecretString,
    known_hosts: &str,
    limit: Duration,
) -> Result<(), JobError> {
    let deadline = Instant::now() + limit;
    let files = SshKeyFiles::write("root", host, port, client_private, known_hosts)
        .map_err(|e| JobError::Retryable(format!("writing the server's key files: {e}")))?;
    loop {
        let last = match run_script_as(&files, "sh -s", "true", TRY_LIMIT).await {
            Ok(_) => return Ok(()),
            Err(JobError::Retryable(message)) => message,
            Err(other) if !matches!(other, JobError::Permanent { ref code, .. } if code == "ssh_auth_failed") => {
                return Err(other)
            }
            // Keys may be installed a moment after sshd starts.
            Err(other) => other.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(JobError::permanent(
                "ssh_timeout",
                format!("the server did not answer SSH at {host}:{port} within {limit:?} (SLIPWAY_SERVER_SSH_TIMEOUT): {last}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs a `key=value` reporting script as root before setup (see
/// `setup::script`), logging what it changed; a `fail=` line fails the job.
pub async fn run_as_root(
    ctx: &slipway_shared::job::JobContext,
    host: &str,
    port: u16,
    client_private: &SecretString,
    known_hosts: &str,
    script: &str,
) -> Result<(), JobError> {
    let files = SshKeyFiles::write("root", host, port, client_private, known_hosts)
        .map_err(|e| JobError::Retryable(format!("writing the server's key files: {e}")))?;
    let out = run_script_as(&files, "sh -s", script, Duration::from_secs(60)).await?;
    for line in out.lines() {
        if let Some(change) = line.strip_prefix("change=") {
            ctx.logs.info(format!("changed: {change}")).await;
        } else if let Some(failure) = line.strip_prefix("fail=") {
            return Err(JobError::permanent("setup_failed", failure.to_owned()));
        }
    }
    Ok(())
}

/// Registers the server as an ssh target (once: a re-run finds it) and
/// points the create at it, so the deploy stage checks it.
pub async fn register(
    pool: &PgPool,
    deployment_id: Uuid,
    server: &ServerRow,
    host: &str,
    port: u16,
    known_hosts: &str,
) -> Result<Uuid, JobError> {
    let mut tx = pool.begin().await.map_err(database)?;
    let kept: Option<Uuid> =
        sqlx::query_scalar("SELECT target_id FROM servers WHERE id = $1 FOR UPDATE")
            .bind(server.id)
            .fetch_one(&mut *tx)
            .await
            .map_err(database)?;
    let id = match kept {
        Some(id) => id,
        None => {
            let id = Uuid::now_v7();
            let settings = serde_json::to_value(SshTargetSettings::default())
                .map_err(|e| JobError::permanent("target_invalid", e.to_string()))?;
            let inserted = sqlx::query(
                "INSERT INTO targets (id, project_id, name, kind, host, port, ssh_user, key_sealed,
                                      known_hosts, settings)
                 VALUES ($1, $2, $3, 'ssh', $4, $5, 'root', $6, $7, $8)
                 ON CONFLICT (project_id, name) DO NOTHING",
            )
            .bind(id)
            .bind(server.project_id)
            .bind(&server.name)
            .bind(host)
            .bind(i32::from(port))
            .bind(&server.client_key_sealed)
            .bind(known_hosts)
            .bind(settings)
            .execute(&mut *tx)
            .await
            .map_err(database)?
            .rows_affected();
            if inserted == 0 {
                return Err(JobError::permanent(
                    "target_name_taken",
                    format!("a target named {} exists in the project", server.name),
                ));
            }
            sqlx::query("UPDATE servers SET target_id = $2 WHERE id = $1")
                .bind(server.id)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(database)?;
            id
        }
    };
    sqlx::query("UPDATE deployments SET target_id = $2 WHERE id = $1")
        .bind(deployment_id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(database)?;
    tx.commit().await.map_err(database)?;
    Ok(id)
}

/// Runs the server setup on target `id` as root, then as the deploy user.
pub async fn set_up(
    ctx: &JobContext,
    id: Uuid,
    secrets: Option<&SecretBox>,
    settings: &ServerSettings,
) -> Result<(), JobError> {
    let target = targets::ssh_target(&ctx.pool, id, secrets).await?;
    let request = SetupRequest::parse(None, settings.apt_source.as_deref()).map_err(|e| {
        JobError::permanent(
            "invalid_configuration",
            format!("SLIPWAY_SERVER_APT_SOURCE: {}", e.reason),
        )
    })?;
    crate::setup::setup(ctx, &target, &request).await
}

/// Removes the server's target, unless apps still name it (then it stays,
/// and says so). The server's operations keep their rows: they point away
/// from it first (a target's deletion would take its deployments along).
pub async fn unregister(pool: &PgPool, server_id: Uuid) -> Result<(), JobError> {
    let mut tx = pool.begin().await.map_err(database)?;
    let target: Option<Uuid> =
        sqlx::query_scalar("SELECT target_id FROM servers WHERE id = $1 FOR UPDATE")
            .bind(server_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(database)?;
    if let Some(target) = target {
        let used: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM apps WHERE target_id = $1)")
                .bind(target)
                .fetch_one(&mut *tx)
                .await
                .map_err(database)?;
        if !used {
            sqlx::query("UPDATE deployments SET target_id = NULL WHERE server_id = $1")
                .bind(server_id)
                .execute(&mut *tx)
                .await
                .map_err(database)?;
            sqlx::query("DELETE FROM targets WHERE id = $1")
                .bind(target)
                .execute(&mut *tx)
                .await
                .map_err(database)?;
        }
    }
    tx.commit().await.map_err(database)
}

/// The public half of an OpenSSH private key (`ssh-keygen -y`).
pub async fn public_half(private: &str) -> Result<String, JobError> {
    let files = SshKeyFiles::write("root", "127.0.0.1", 22, &private.to_owned().into(), "")
        .map_err(|e| JobError::Retryable(format!("writing a key file: {e}")))?;
    let out = tokio::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&files.host.identity_file)
        .output()
        .await
        .map_err(|e| {
            JobError::permanent("ssh_unavailable", format!("cannot run ssh-keygen: {e}"))
        })?;
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || key.is_empty() {
        return Err(JobError::permanent(
            "key_unreadable",
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(key)
}
