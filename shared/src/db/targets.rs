//! Target rows as the workers need them: where a deployment runs (the
//! app's target, or the target a check deployment is about), with the
//! private key opened only here; and the creation of a target check, a
//! deployment that starts at the provision stage.

use crate::db::deployments::{create_job, record_event};
use crate::job::{JobError, Stage};
use crate::queue::topology::QueueNames;
use crate::secrets::SecretBox;
use crate::state::DeploymentState;
use crate::target::{EngineKind, SshTargetSettings};
use secrecy::SecretString;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The deployment kind of a target check.
pub const CHECK_KIND: &str = "target_check";
/// Its job kind, in the provision and the deploy stage.
pub const CHECK_JOB_KIND: &str = "target_check.v1";

/// Where a deployment's releases run.
pub enum Placement {
    /// The embedded local target (settings from the environment).
    Local,
    Ssh(Box<SshTarget>),
}

/// An ssh target with its key opened.
pub struct SshTarget {
    pub id: Uuid,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub private_key: SecretString,
    pub known_hosts: String,
    pub settings: SshTargetSettings,
    /// The engine the last provisioning found there.
    pub engine_found: Option<EngineKind>,
}

impl SshTarget {
    /// The key and pinned host key written to files for `ssh` (gone when
    /// the value is dropped).
    pub fn key_files(&self) -> Result<crate::ssh::SshKeyFiles, JobError> {
        crate::ssh::SshKeyFiles::write(
            &self.user,
            &self.host,
            self.port,
            &self.private_key,
            &self.known_hosts,
        )
        .map_err(|e| JobError::Retryable(format!("writing the target's key files: {e}")))
    }

    /// The engine releases run under: the one asked for, else the one
    /// provisioning found. Before any provisioning (a target from before
    /// engines were recorded) that is podman, the only engine then.
    pub fn engine(&self) -> EngineKind {
        self.settings
            .engine
            .or(self.engine_found)
            .unwrap_or(EngineKind::Podman)
    }
}

/// Records the engine provisioning found on target `id`; true when that
/// changed what was recorded.
pub async fn record_engine(pool: &PgPool, id: Uuid, engine: EngineKind) -> Result<bool, JobError> {
    let changed =
        sqlx::query("UPDATE targets SET engine = $2 WHERE id = $1 AND engine IS DISTINCT FROM $2")
            .bind(id)
            .bind(engine.as_str())
            .execute(pool)
            .await
            .map_err(database)?
            .rows_affected();
    Ok(changed > 0)
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    kind: String,
    host: Option<String>,
    port: Option<i32>,
    ssh_user: Option<String>,
    key_sealed: Option<Vec<u8>>,
    known_hosts: Option<String>,
    settings: serde_json::Value,
    engine: Option<String>,
}

fn database(error: sqlx::Error) -> JobError {
    JobError::Retryable(format!("database: {error}"))
}

/// The placement of a deployment: the target of its app, or for a target
/// check the target checked. An app without a target runs locally.
pub async fn placement(
    pool: &PgPool,
    deployment_id: Uuid,
    secrets: Option<&SecretBox>,
) -> Result<Placement, JobError> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT t.id, t.name, t.kind, t.host, t.port, t.ssh_user, t.key_sealed, t.known_hosts, t.settings, t.engine
         FROM deployments d LEFT JOIN apps a ON a.id = d.app_id
         JOIN targets t ON t.id = COALESCE(d.target_id, a.target_id)
         WHERE d.id = $1",
    )
    .bind(deployment_id)
    .fetch_optional(pool)
    .await
    .map_err(database)?;
    let Some(row) = row else {
        let check: Option<bool> =
            sqlx::query_scalar("SELECT kind IN ($2, $3, $4) FROM deployments WHERE id = $1")
                .bind(deployment_id)
                .bind(CHECK_KIND)
                .bind(super::target_setup::SETUP_KIND)
                .bind(super::servers::CREATE_KIND)
                .fetch_optional(pool)
                .await
                .map_err(database)?;
        if check == Some(true) {
            return Err(JobError::permanent(
                "target_not_found",
                "the target this check or setup is about no longer exists",
            ));
        }
        return Ok(Placement::Local);
    };
    placement_of(row, secrets)
}

/// The placement of target `id` (where an app's earlier release runs);
/// `None` when the target no longer exists.
pub async fn by_id(
    pool: &PgPool,
    id: Uuid,
    secrets: Option<&SecretBox>,
) -> Result<Option<Placement>, JobError> {
    let row = row_by_id(pool, id).await?;
    row.map(|row| placement_of(row, secrets)).transpose()
}

async fn row_by_id(pool: &PgPool, id: Uuid) -> Result<Option<Row>, JobError> {
    sqlx::query_as(
        "SELECT id, name, kind, host, port, ssh_user, key_sealed, known_hosts, settings, engine
         FROM targets WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(database)
}

/// A target row as a placement, its key opened.
fn placement_of(row: Row, secrets: Option<&SecretBox>) -> Result<Placement, JobError> {
    if row.kind == "local" {
        return Ok(Placement::Local);
    }
    Ok(Placement::Ssh(Box::new(open(row, secrets)?)))
}

/// The ssh target `target_id` with its key opened: what the deploy
/// worker's background tasks (reconciler, health monitor, log collector)
/// reach the apps placed on it with.
pub async fn ssh_target(
    pool: &PgPool,
    target_id: Uuid,
    secrets: Option<&SecretBox>,
) -> Result<SshTarget, JobError> {
    match row_by_id(pool, target_id).await? {
        None => Err(JobError::permanent(
            "target_not_found",
            format!("target {target_id} no longer exists"),
        )),
        Some(row) if row.kind != "ssh" => Err(JobError::permanent(
            "target_invalid",
            format!("target {} is not an ssh target", row.name),
        )),
        Some(row) => open(row, secrets),
    }
}

/// An ssh target's row, its key opened.
fn open(row: Row, secrets: Option<&SecretBox>) -> Result<SshTarget, JobError> {
    let broken = |what: &str| {
        JobError::permanent(
            "target_invalid",
            format!("target {} has no {what}", row.name),
        )
    };
    let secrets = secrets.ok_or_else(|| {
        JobError::permanent(
            "secret_key_missing",
            "this worker has no SLIPWAY_SECRET_KEY to open the ssh target's key",
        )
    })?;
    let private_key = secrets
        .open(row.key_sealed.as_deref().ok_or_else(|| broken("key"))?)
        .map_err(|e| JobError::permanent("secret_unreadable", format!("target key: {e}")))?;
    let settings: SshTargetSettings = serde_json::from_value(row.settings.clone())
        .map_err(|e| broken(&format!("valid settings ({e})")))?;
    Ok(SshTarget {
        id: row.id,
        host: row.host.clone().ok_or_else(|| broken("host"))?,
        port: row
            .port
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| broken("port"))?,
        user: row.ssh_user.clone().ok_or_else(|| broken("user"))?,
        known_hosts: row
            .known_hosts
            .clone()
            .ok_or_else(|| broken("known_hosts"))?,
        name: row.name,
        private_key,
        settings,
        engine_found: row
            .engine
            .as_deref()
            .and_then(|e| EngineKind::parse(e).ok()),
    })
}

/// Whether `deployment_id` is a target check.
pub fn is_check(deployment_kind: &str) -> bool {
    deployment_kind == CHECK_KIND
}

/// Creates a check of `target_id`: a deployment in `built` with its
/// provision job and message, so it skips the build stage.
pub async fn create_check(
    conn: &mut PgConnection,
    names: &QueueNames,
    project_id: Uuid,
    target_id: Uuid,
) -> sqlx::Result<Uuid> {
    create_for_target(
        conn,
        names,
        project_id,
        target_id,
        CHECK_KIND,
        "target check: no build",
    )
    .await
}

/// A deployment of `kind` about target `target_id`, in `built` with its
/// provision job and message (no build stage); `note` is its first event's.
pub(crate) async fn create_for_target(
    conn: &mut PgConnection,
    names: &QueueNames,
    project_id: Uuid,
    target_id: Uuid,
    kind: &str,
    note: &str,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    let traceparent = crate::telemetry::new_traceparent();
    sqlx::query(
        "INSERT INTO deployments (id, project_id, kind, state, dispatched, target_id, trace_id)
         VALUES ($1, $2, $3, 'built', true, $4, $5)",
    )
    .bind(id)
    .bind(project_id)
    .bind(kind)
    .bind(target_id)
    .bind(&traceparent)
    .execute(&mut *conn)
    .await?;
    record_event(conn, id, None, DeploymentState::Built, Some(note)).await?;
    create_job(conn, names, id, Stage::Provision, kind, &traceparent).await?;
    Ok(id)
}
