//! Creating an app's add-ons at the provision stage of each of its
//! deployments: a role and a database on the add-on Postgres server
//! (`SLIPWAY_ADDON_POSTGRES_URL`) and engine volumes on the app's target
//! (this host's podman, or an ssh target's over SSH). Each step
//! checks first and creates only what is missing, so a re-run (a retry,
//! the next deployment) changes nothing that exists; the role's password is
//! set again from the sealed one, so the two cannot drift apart. Add-ons
//! marked `purging` are dropped here (database and role, or the volume).

use secrecy::ExposeSecret;
use slipway_shared::addons::AddonServer;
use slipway_shared::db::addons::{self, AddonRow, KIND_POSTGRES, STATE_PURGING};
use slipway_shared::job::{JobContext, JobError};
use slipway_shared::operation::AppAction;
use slipway_shared::secrets::SecretBox;
use slipway_shared::ssh::SshKeyFiles;
use slipway_shared::target::EngineKind;
use sqlx::{Connection, PgConnection};
use std::path::Path;
use std::time::Duration;

const ENGINE_TIMEOUT: Duration = Duration::from_secs(60);

fn db_error(error: sqlx::Error) -> JobError {
    JobError::Retryable(format!("database error: {error}"))
}

/// Where an app's volumes live: the engine of the local target, or the
/// engine (podman or Docker) of an ssh target, reached over SSH.
pub enum VolumeHost<'a> {
    Local {
        containers_conf: Option<&'a Path>,
    },
    Ssh {
        files: &'a SshKeyFiles,
        containers_conf: Option<&'a str>,
        engine: EngineKind,
    },
}

impl VolumeHost<'_> {
    fn program(&self) -> &'static str {
        match self {
            VolumeHost::Local { .. } => "podman",
            VolumeHost::Ssh { engine, .. } => engine.as_str(),
        }
    }
}

/// Creates (or drops, when purging) every add-on of the deployment's app.
pub async fn provision(
    ctx: &JobContext,
    server: &AddonServer,
    host: &VolumeHost<'_>,
    secrets: Option<&SecretBox>,
) -> Result<(), JobError> {
    let rows = addons::for_deployment(&ctx.pool, ctx.info.deployment_id)
        .await
        .map_err(db_error)?;
    if rows.is_empty() {
        return Ok(());
    }
    let databases = rows.iter().any(|row| row.kind == KIND_POSTGRES);
    if databases && matches!(host, VolumeHost::Ssh { .. }) && server.is_loopback() {
        // A release on that server would dial its own loopback.
        return Err(JobError::permanent(
            "addon_server_unreachable_from_target",
            format!(
                "the add-on Postgres server {}:{} is on this host's loopback, which an app on an \
                 ssh target cannot reach: set SLIPWAY_ADDON_POSTGRES_URL to an address the \
                 targets reach",
                server.host, server.port
            ),
        ));
    }
    let source: serde_json::Value =
        sqlx::query_scalar("SELECT source FROM deployments WHERE id = $1")
            .bind(ctx.info.deployment_id)
            .fetch_one(&ctx.pool)
            .await
            .map_err(db_error)?;
    // A stop or a destroy starts no release: nothing to create for it.
    if let Some(action @ (AppAction::Stop | AppAction::Destroy)) = AppAction::of_source(&source) {
        ctx.logs
            .info(format!(
                "add-ons left as they are for a {}",
                action.as_str()
            ))
            .await;
        return Ok(());
    }
    // One admin connection, only when there is a database to make.
    let mut admin = match databases {
        true => Some(connect(server).await?),
        false => None,
    };
    for row in &rows {
        if row.kind == KIND_POSTGRES {
            if let Some(conn) = admin.as_mut() {
                postgres(ctx, conn, row, secrets).await?;
            }
        } else {
            volume(ctx, host, row).await?;
        }
    }
    if let Some(conn) = admin {
        let _ = conn.close().await;
    }
    Ok(())
}

async fn connect(server: &AddonServer) -> Result<PgConnection, JobError> {
    let options = server
        .admin_options()
        .map_err(|e| JobError::permanent("addon_server_invalid", e.to_string()))?;
    PgConnection::connect_with(&options).await.map_err(|e| {
        JobError::Retryable(format!(
            "addon_server_unreachable: cannot connect to the add-on Postgres server {}:{}: {e}",
            server.host, server.port
        ))
    })
}

async fn postgres(
    ctx: &JobContext,
    conn: &mut PgConnection,
    row: &AddonRow,
    secrets: Option<&SecretBox>,
) -> Result<(), JobError> {
    let (Some(db), Some(role)) = (&row.db_name, &row.db_role) else {
        return Err(JobError::permanent(
            "addon_invalid",
            "a postgres add-on without names",
        ));
    };
    let failed = |e: sqlx::Error| {
        JobError::permanent(
            "addon_provision_failed",
            format!("add-on {}: {e}", row.name),
        )
    };
    if row.state == STATE_PURGING {
        slipway_shared::addons::drop_database(conn, db, role)
            .await
            .map_err(failed)?;
        addons::remove_purged(&ctx.pool, row.id)
            .await
            .map_err(db_error)?;
        ctx.logs
            .info(format!(
                "add-on {}: database {db} and role {role} dropped",
                row.name
            ))
            .await;
        return Ok(());
    }
    let secrets = secrets.ok_or_else(|| {
        JobError::permanent(
            "secret_key_missing",
            "SLIPWAY_SECRET_KEY is not set on the provision worker: it opens add-on passwords",
        )
    })?;
    let sealed = row.password_sealed.as_deref().unwrap_or_default();
    let password = secrets
        .open(sealed)
        .map_err(|e| JobError::permanent("secret_unreadable", e.to_string()))?;
    // Names and password are [a-z0-9_] (made by the API), so quoting is safe;
    // DDL takes no bind parameters.
    let role_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(&mut *conn)
            .await
            .map_err(failed)?;
    let verb = if role_exists { "ALTER" } else { "CREATE" };
    sqlx::query(&format!(
        "{verb} ROLE \"{role}\" LOGIN PASSWORD '{}'",
        password.expose_secret()
    ))
    .execute(&mut *conn)
    .await
    .map_err(failed)?;
    let db_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(db)
            .fetch_one(&mut *conn)
            .await
            .map_err(failed)?;
    if !db_exists {
        sqlx::query(&format!("CREATE DATABASE \"{db}\" OWNER \"{role}\""))
            .execute(&mut *conn)
            .await
            .map_err(failed)?;
        // Only its own role (and superusers) may connect to it.
        sqlx::query(&format!(
            "REVOKE CONNECT, TEMPORARY ON DATABASE \"{db}\" FROM PUBLIC"
        ))
        .execute(&mut *conn)
        .await
        .map_err(failed)?;
    }
    addons::mark_ready(&ctx.pool, row.id)
        .await
        .map_err(db_error)?;
    let done = match (role_exists, db_exists) {
        (true, true) => "exists; nothing to change".to_owned(),
        _ => format!("database {db} with role {role} created"),
    };
    ctx.logs
        .info(format!("add-on {} (postgres): {done}", row.name))
        .await;
    Ok(())
}

async fn volume(ctx: &JobContext, host: &VolumeHost<'_>, row: &AddonRow) -> Result<(), JobError> {
    let Some(name) = &row.volume_name else {
        return Err(JobError::permanent(
            "addon_invalid",
            "a volume add-on without a name",
        ));
    };
    // `volume inspect`, not podman's `volume exists`: Docker has no such
    // command, and both fail on a missing volume.
    let exists = engine(host, &["volume", "inspect", name]).await?;
    if !exists.0 && !exists.1.to_lowercase().contains("no such volume") {
        // Not "missing" but failing (a daemon that is down): neither make
        // nor forget the volume on that word.
        return Err(JobError::Retryable(format!(
            "engine_failed: {} volume inspect {name}: {}",
            host.program(),
            exists.1
        )));
    }
    if row.state == STATE_PURGING {
        if exists.0 {
            let (removed, stderr) = engine(host, &["volume", "rm", name]).await?;
            if !removed {
                // In use by the release still serving: the next deployment
                // (after this one replaced it) removes it.
                ctx.logs
                    .info(format!(
                        "add-on {}: volume {name} not removed yet: {stderr}",
                        row.name
                    ))
                    .await;
                return Ok(());
            }
        }
        addons::remove_purged(&ctx.pool, row.id)
            .await
            .map_err(db_error)?;
        ctx.logs
            .info(format!("add-on {}: volume {name} removed", row.name))
            .await;
        return Ok(());
    }
    if !exists.0 {
        let (created, stderr) = engine(host, &["volume", "create", name]).await?;
        if !created {
            return Err(JobError::Retryable(format!(
                "volume_create_failed: {} volume create {name}: {stderr}",
                host.program()
            )));
        }
    }
    addons::mark_ready(&ctx.pool, row.id)
        .await
        .map_err(db_error)?;
    let done = if exists.0 {
        "exists; nothing to change"
    } else {
        "created"
    };
    ctx.logs
        .info(format!("add-on {} (volume {name}): {done}", row.name))
        .await;
    Ok(())
}

/// Runs the engine where the volumes live; returns whether it succeeded
/// and its stderr. Over SSH the words are joined into one remote command line:
/// volume names and paths are checked to need no quoting (the API and
/// `slipway_shared::target`), and a missed one would only fail the command.
async fn engine(host: &VolumeHost<'_>, args: &[&str]) -> Result<(bool, String), JobError> {
    let mut command = match host {
        VolumeHost::Local { containers_conf } => {
            let mut command = slipway_shared::process::clean_command("podman");
            command.args(args);
            if let Some(conf) = containers_conf {
                command.env("CONTAINERS_CONF", conf);
            }
            command
        }
        VolumeHost::Ssh {
            files,
            containers_conf,
            engine,
        } => {
            let mut remote = match containers_conf {
                Some(conf) if *engine == EngineKind::Podman => {
                    format!("env CONTAINERS_CONF={conf} podman")
                }
                _ => engine.as_str().to_owned(),
            };
            for arg in args {
                remote.push(' ');
                remote.push_str(arg);
            }
            let mut command = files.host.base_command();
            command
                .args(["-o", "LogLevel=ERROR", "--"])
                .arg(&files.host.destination)
                .arg(remote);
            command
        }
    };
    command.kill_on_drop(true);
    let program = host.program();
    let output = tokio::time::timeout(ENGINE_TIMEOUT, command.output())
        .await
        .map_err(|_| JobError::Retryable(format!("{program} {} timed out", args.join(" "))))?
        .map_err(|e| {
            JobError::permanent("engine_unavailable", format!("cannot run {program}: {e}"))
        })?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    ))
}

/// Whether the deployment's app has add-ons.
pub async fn any(ctx: &JobContext) -> Result<bool, JobError> {
    let rows = addons::for_deployment(&ctx.pool, ctx.info.deployment_id)
        .await
        .map_err(db_error)?;
    Ok(!rows.is_empty())
}
