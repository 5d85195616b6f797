//! Linking an app's add-ons into a release: a ready postgres add-on sets
//! `DATABASE_URL` (its password opened here, only for the container's
//! environment, and never logged), a ready volume is mounted at its path.
//! The provision stage of the same deployment created them; one still
//! `pending` here was added after that stage ran and waits for the next
//! deployment. Add-ons being purged are not linked. The reconciler links
//! them the same way when it re-creates a release's container.
//!
//! A release on the local target reaches a Postgres server on the host's
//! loopback through podman's slirp4netns network with host loopback
//! allowed (`10.0.2.2` inside the container); one on an ssh target dials
//! the server's own address, so that server must not be a loopback one.
//! Volumes live on the release's target.

use crate::engine::{ContainerSpec, Host};
use crate::site::Site;
use secrecy::ExposeSecret;
use slipway_shared::addons::{database_url, redact_url, AddonServer};
use slipway_shared::db::addons::{self, KIND_POSTGRES, STATE_PENDING, STATE_PURGING};
use slipway_shared::job::{JobContext, JobError};
use slipway_shared::secrets::SecretBox;
use sqlx::PgPool;
use uuid::Uuid;

/// Adds the app's add-ons to the release's spec, and says so in the
/// deployment's log.
pub async fn link(
    ctx: &JobContext,
    site: &Site,
    server: &AddonServer,
    secrets: Option<&SecretBox>,
    spec: &mut ContainerSpec,
) -> Result<(), JobError> {
    let local = matches!(site.engine.host(), Host::Local);
    let said = apply(
        &ctx.pool,
        ctx.info.deployment_id,
        local,
        server,
        secrets,
        spec,
    )
    .await?;
    for line in said {
        ctx.logs.info(line).await;
    }
    Ok(())
}

/// Adds the add-ons of the deployment's app to `spec` (also used by the
/// reconciler when it re-creates a release's container); returns what it
/// did, passwords redacted.
pub async fn apply(
    pool: &PgPool,
    deployment_id: Uuid,
    local: bool,
    server: &AddonServer,
    secrets: Option<&SecretBox>,
    spec: &mut ContainerSpec,
) -> Result<Vec<String>, JobError> {
    let rows = addons::for_deployment(pool, deployment_id)
        .await
        .map_err(|e| JobError::Retryable(format!("database error: {e}")))?;
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| r.state != STATE_PURGING)
        .collect();
    let mut said = Vec::new();
    if rows.is_empty() {
        return Ok(said);
    }
    for row in rows {
        if row.state == STATE_PENDING {
            // Added after this deployment's provision stage ran.
            said.push(format!(
                "add-on {} is pending: the app's next deployment creates and links it",
                row.name
            ));
            continue;
        }
        if row.kind == KIND_POSTGRES {
            let secrets = secrets.ok_or_else(|| {
                JobError::permanent(
                    "secret_key_missing",
                    "SLIPWAY_SECRET_KEY is not set on the deploy worker: it opens add-on passwords",
                )
            })?;
            let password = secrets
                .open(row.password_sealed.as_deref().unwrap_or_default())
                .map_err(|e| JobError::permanent("secret_unreadable", e.to_string()))?;
            // On the local target a loopback server is reached through
            // slirp4netns; an ssh target dials the server's own address
            // (its provision stage refused a loopback one).
            let (host, network) = match local {
                true => server.reach_from_container(),
                false if server.is_loopback() => {
                    return Err(JobError::permanent(
                        "addon_server_unreachable_from_target",
                        "the add-on Postgres server is on this host's loopback, which an app on an ssh target cannot reach",
                    ))
                }
                false => (server.host.clone(), None),
            };
            let url = database_url(
                row.db_role.as_deref().unwrap_or_default(),
                password.expose_secret(),
                &host,
                server.port,
                row.db_name.as_deref().unwrap_or_default(),
            );
            said.push(format!(
                "add-on {}: DATABASE_URL={}",
                row.name,
                redact_url(&url)
            ));
            spec.env.retain(|(key, _)| key != "DATABASE_URL");
            spec.env.push(("DATABASE_URL".into(), url));
            if let Some(network) = network {
                spec.network = Some(network.to_owned());
            }
        } else if let (Some(volume), Some(mount)) = (row.volume_name, row.mount_path) {
            said.push(format!("add-on {}: volume {volume} at {mount}", row.name));
            spec.volumes.push((volume, mount));
        }
    }
    Ok(said)
}

/// Drops the add-ons of a destroyed app that were marked `purging` with
/// the destroy (`DELETE /v1/apps/{app}?purge=true`): each database and
/// role on the add-on server, each volume on the site (whose containers
/// are gone by now, so no volume is in use), and their rows. The rest are
/// detached: their rows go with the app, their data stays. Returns what it
/// did, for the deployment's log; a failure leaves the app `destroying`,
/// and asking for the destroy again retries it.
pub async fn purge_destroyed(
    ctx: &JobContext,
    site: &Site,
    server: &AddonServer,
    app_id: Uuid,
) -> Result<Vec<String>, JobError> {
    let db_error = |e: sqlx::Error| JobError::Retryable(format!("database error: {e}"));
    let rows: Vec<_> = addons::for_app(&ctx.pool, app_id)
        .await
        .map_err(db_error)?
        .into_iter()
        .filter(|r| r.state == STATE_PURGING)
        .collect();
    let mut said = Vec::new();
    let mut admin = None;
    for row in rows {
        if row.kind == KIND_POSTGRES {
            let (Some(db), Some(role)) = (&row.db_name, &row.db_role) else {
                continue;
            };
            if admin.is_none() {
                admin = Some(connect_admin(server).await?);
            }
            if let Some(conn) = admin.as_mut() {
                slipway_shared::addons::drop_database(conn, db, role)
                    .await
                    .map_err(|e| {
                        JobError::Retryable(format!("addon_purge_failed: add-on {}: {e}", row.name))
                    })?;
            }
            said.push(format!(
                "add-on {}: database {db} and role {role} dropped",
                row.name
            ));
        } else if let Some(volume) = &row.volume_name {
            site.engine.remove_volume(volume).await.map_err(|e| {
                JobError::Retryable(format!("addon_purge_failed: add-on {}: {e}", row.name))
            })?;
            said.push(format!("add-on {}: volume {volume} removed", row.name));
        }
        addons::remove_purged(&ctx.pool, row.id)
            .await
            .map_err(db_error)?;
    }
    if let Some(conn) = admin {
        let _ = sqlx::Connection::close(conn).await;
    }
    Ok(said)
}

async fn connect_admin(server: &AddonServer) -> Result<sqlx::PgConnection, JobError> {
    let options = server
        .admin_options()
        .map_err(|e| JobError::permanent("addon_server_invalid", e.to_string()))?;
    sqlx::ConnectOptions::connect(&options).await.map_err(|e| {
        JobError::Retryable(format!(
            "addon_server_unreachable: cannot connect to the add-on Postgres server {}:{}: {e}",
            server.host, server.port
        ))
    })
}
