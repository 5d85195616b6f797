//! Targets of a project: where its apps' releases run. An `ssh` target
//! holds how to log in (host, port, user, a private key stored sealed and
//! never shown, the pinned host key) and its settings on the server. A
//! check (`POST …/check`) never touches the server from the API: it queues
//! a target-check deployment that the provision worker (host prepared) and
//! the deploy worker (the SSH forwards a deploy uses) carry out, with logs
//! and a result like any deployment.

use crate::auth::{Member, Owner, Viewer};
use crate::credentials::{check_known_hosts, check_private_key};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::openapi::{formats, views, ErrorBody};
use crate::routes::deployments::accepted;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_shared::db::targets::{create_check, CHECK_KIND};
use slipway_shared::domain::Slug;
use slipway_shared::target::{
    openssh_fingerprint, parse_host, parse_user, SshTargetSettings, TargetKind,
};
use slipway_shared::tls::{TlsIssuer, LETS_ENCRYPT};
use sqlx::PgConnection;
use uuid::Uuid;

/// A target; a `local` one takes only `name` and `kind` (its settings come
/// from the workers' `SLIPWAY_*` variables), an `ssh` one needs `host`,
/// `user`, `ssh_key` and `known_hosts`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTarget {
    #[schema(value_type = formats::Name, example = "edge-1")]
    name: String,
    /// `local` or `ssh`.
    #[schema(pattern = "^(local|ssh)$", example = "local")]
    kind: String,
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    /// An unencrypted private key: stored sealed, never shown again.
    ssh_key: Option<String>,
    /// known_hosts lines pinning the server's host key (required for ssh).
    known_hosts: Option<String>,
    caddy_admin: Option<String>,
    apps_addr: Option<String>,
    data_dir: Option<String>,
    containers_conf: Option<String>,
    /// `podman` or `docker`; absent: whichever provisioning finds there,
    /// podman first.
    engine: Option<String>,
    /// HTTPS on the target: where its Caddy listens (`0.0.0.0:443`) and
    /// where certificates come from (`acme`, the default, or `internal`).
    https_addr: Option<String>,
    tls_issuer: Option<String>,
    acme_ca: Option<String>,
    acme_email: Option<String>,
    acme_ca_root: Option<String>,
}

/// An ssh target's login, validated.
struct SshLogin {
    host: String,
    port: u16,
    user: String,
    key: String,
    fingerprint: Option<String>,
    known_hosts: String,
    settings: SshTargetSettings,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        code: "invalid_target",
        message: message.into(),
    }
}

fn parse_ssh(body: CreateTarget) -> Result<SshLogin, ApiError> {
    let required = |value: Option<String>, field: &str| {
        value.ok_or_else(|| invalid(format!("{field} is required for an ssh target")))
    };
    let key = required(body.ssh_key, "ssh_key")?;
    check_private_key(&key).map_err(invalid)?;
    let known_hosts = required(body.known_hosts, "known_hosts")?;
    check_known_hosts(&known_hosts).map_err(invalid)?;
    if known_hosts.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#')
    }) {
        return Err(invalid(
            "known_hosts must pin the server's host key (a line `HOST KEYTYPE KEY`)",
        ));
    }
    // A server's HTTPS serves real names: ACME unless said otherwise.
    let lets_encrypt = TlsIssuer::Acme {
        ca: LETS_ENCRYPT.into(),
        email: None,
        ca_root: None,
    };
    let tls_asked = body.tls_issuer.is_some()
        || body.acme_ca.is_some()
        || body.acme_email.is_some()
        || body.acme_ca_root.is_some();
    let tls = if body.https_addr.is_none() && !tls_asked {
        // HTTP only: no issuer in play.
        TlsIssuer::Internal
    } else {
        TlsIssuer::parse(
            body.tls_issuer.as_deref(),
            lets_encrypt,
            body.acme_ca.as_deref(),
            body.acme_email.as_deref(),
            body.acme_ca_root.as_deref(),
        )?
    };
    if body.engine.as_deref() == Some("docker") && body.containers_conf.is_some() {
        return Err(invalid(
            "containers_conf is podman's; a target with engine docker takes none",
        ));
    }
    let port = body.port.unwrap_or(22);
    if port == 0 {
        return Err(invalid("port must be 1 to 65535"));
    }
    Ok(SshLogin {
        host: parse_host(&required(body.host, "host")?)?,
        user: parse_user(&required(body.user, "user")?)?,
        port,
        fingerprint: openssh_fingerprint(&key),
        key,
        known_hosts,
        settings: SshTargetSettings::parse(
            body.caddy_admin.as_deref(),
            body.apps_addr.as_deref(),
            body.data_dir.as_deref(),
            body.containers_conf.as_deref(),
        )?
        .with_https(body.https_addr.as_deref(), tls)?
        .with_engine(body.engine.as_deref())?,
    })
}

/// Create a target; an ssh target's key is stored encrypted and shown only
/// as `has_key` and `key_fingerprint`.
#[utoipa::path(post, path = "/v1/targets", tag = "targets", operation_id = "create_target",
    security(("project_token" = ["owner"])), request_body = CreateTarget,
    responses(
        (status = 201, description = "The target", body = views::Target),
        (status = 409, description = "`conflict`: a target of that name exists", body = ErrorBody),
        (status = 422, description = "`validation_failed` or `invalid_target`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create(
    Owner(project): Owner,
    State(state): State<AppState>,
    Json(body): Json<CreateTarget>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let name = Slug::parse("name", &body.name)?;
    let kind = TargetKind::parse(&body.kind)?;
    let login = match kind {
        TargetKind::Ssh => Some(parse_ssh(body)?),
        TargetKind::Local => {
            let ssh_fields = [
                &body.host,
                &body.user,
                &body.ssh_key,
                &body.known_hosts,
                &body.caddy_admin,
                &body.apps_addr,
                &body.data_dir,
                &body.containers_conf,
                &body.engine,
                &body.https_addr,
                &body.tls_issuer,
                &body.acme_ca,
                &body.acme_email,
                &body.acme_ca_root,
            ];
            if ssh_fields.iter().any(|f| f.is_some()) || body.port.is_some() {
                return Err(invalid(
                    "a local target takes no settings: they come from the workers' SLIPWAY_* variables",
                ));
            }
            None
        }
    };
    let id = Uuid::now_v7();
    let settings = login.as_ref().map_or(json!({}), |l| json!(l.settings));
    let inserted = sqlx::query(
        "INSERT INTO targets (id, project_id, name, kind, host, port, ssh_user, key_sealed,
                              key_fingerprint, known_hosts, settings)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (project_id, name) DO NOTHING",
    )
    .bind(id)
    .bind(project.id)
    .bind(name.as_str())
    .bind(kind.as_str())
    .bind(login.as_ref().map(|l| l.host.as_str()))
    .bind(login.as_ref().map(|l| i32::from(l.port)))
    .bind(login.as_ref().map(|l| l.user.as_str()))
    .bind(login.as_ref().map(|l| state.secrets.seal(&l.key)))
    .bind(login.as_ref().and_then(|l| l.fingerprint.as_deref()))
    .bind(login.as_ref().map(|l| l.known_hosts.as_str()))
    .bind(settings)
    .execute(&state.pool)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(ApiError::conflict(
            "conflict",
            format!("target `{name}` exists in this project"),
        ));
    }
    let mut conn = state.pool.acquire().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(read(&mut conn, project.id, id).await?),
    ))
}

/// The id of the project's target named or identified by `key`; `NotFound`
/// for another project's.
pub async fn resolve(
    conn: &mut PgConnection,
    project_id: Uuid,
    key: &str,
) -> Result<Uuid, ApiError> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM targets WHERE project_id = $1 AND (name = $2 OR id::text = $2)",
    )
    .bind(project_id)
    .bind(key)
    .fetch_optional(conn)
    .await?;
    id.ok_or(ApiError::NotFound("target"))
}

/// The target as the API shows it: never the key, only its fingerprint.
async fn read(conn: &mut PgConnection, project_id: Uuid, id: Uuid) -> Result<Value, ApiError> {
    let target: Option<Value> = sqlx::query_scalar(
        "SELECT json_build_object(
             'id', t.id, 'name', t.name, 'kind', t.kind, 'host', t.host, 'port', t.port,
             'user', t.ssh_user, 'has_key', t.key_sealed IS NOT NULL,
             'key_fingerprint', t.key_fingerprint, 'known_hosts', t.known_hosts,
             'settings', t.settings, 'engine', t.engine, 'created_at', t.created_at,
             'apps', (SELECT COALESCE(json_agg(a.name ORDER BY a.name), '[]') FROM apps a
                      WHERE a.target_id = t.id),
             'last_check', (SELECT json_build_object('deployment', d.id, 'state', d.state,
                                'error_code', d.error_code, 'error', d.error_message,
                                'requested_at', d.created_at, 'finished_at', d.finished_at)
                            FROM deployments d WHERE d.target_id = t.id AND d.kind = $3
                            ORDER BY d.created_at DESC LIMIT 1))
         FROM targets t WHERE t.project_id = $1 AND t.id = $2",
    )
    .bind(project_id)
    .bind(id)
    .bind(CHECK_KIND)
    .fetch_optional(conn)
    .await?;
    target.ok_or(ApiError::NotFound("target"))
}

/// Read a target (by name or id) with its apps and last check.
#[utoipa::path(get, path = "/v1/targets/{target}", tag = "targets", operation_id = "get_target",
    security(("project_token" = ["viewer"])), params(("target" = crate::openapi::formats::TargetKey, Path, description = "The target's name or id")),
    responses(
        (status = 200, description = "The target", body = views::Target),
        (status = 404, description = "`not_found`: no such target", body = ErrorBody),
    ))]
pub async fn get(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let id = resolve(&mut conn, project.id, &key).await?;
    Ok(axum::Json(read(&mut conn, project.id, id).await?))
}

/// List the project's targets.
#[utoipa::path(get, path = "/v1/targets", tag = "targets", operation_id = "list_targets",
    security(("project_token" = ["viewer"])), responses((status = 200, description = "The targets, by name", body = views::Items<views::Target>)))]
pub async fn list(
    Viewer(project): Viewer,
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, ApiError> {
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM targets WHERE project_id = $1 ORDER BY name")
            .bind(project.id)
            .fetch_all(&state.pool)
            .await?;
    let mut conn = state.pool.acquire().await?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        items.push(read(&mut conn, project.id, id).await?);
    }
    Ok(axum::Json(json!({ "items": items })))
}

/// Delete a target no app runs on.
#[utoipa::path(delete, path = "/v1/targets/{target}", tag = "targets", operation_id = "delete_target",
    security(("project_token" = ["owner"])), params(("target" = crate::openapi::formats::TargetKey, Path, description = "The target's name or id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such target", body = ErrorBody),
        (status = 409, description = "`target_in_use`: apps run on it", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    Owner(project): Owner,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    let id = resolve(&mut tx, project.id, &key).await?;
    // Placing an app on the target locks its row (the foreign key check),
    // so no app lands on it between this look and the delete.
    sqlx::query("SELECT 1 FROM targets WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let apps: Vec<String> =
        sqlx::query_scalar("SELECT name FROM apps WHERE target_id = $1 ORDER BY name")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
    if !apps.is_empty() {
        return Err(ApiError::conflict(
            "target_in_use",
            format!(
                "apps run on this target: {}; move or delete them first",
                apps.join(", ")
            ),
        ));
    }
    sqlx::query("DELETE FROM targets WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Check and prepare the target through the workers.
///
/// A `target_check` deployment: provision checks the engine, folders and
/// Caddy, deploy checks the SSH forwards; its state, logs and error are the
/// result.
#[utoipa::path(post, path = "/v1/targets/{target}/check", tag = "targets", operation_id = "check_target",
    security(("project_token" = ["member"])), params(("target" = crate::openapi::formats::TargetKey, Path, description = "The target's name or id")),
    responses(
        (status = 202, description = "Queued; `Location` is the deployment's URL", body = views::Accepted,
            headers(("Location" = String, description = "The deployment's URL"))),
        (status = 404, description = "`not_found`: no such target", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn check(
    Member(project): Member,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    let id = resolve(&mut tx, project.id, &key).await?;
    let deployment = create_check(&mut tx, &state.names, project.id, id).await?;
    tx.commit().await?;
    slipway_shared::db::outbox::committed();
    Ok(accepted(deployment, "built"))
}
