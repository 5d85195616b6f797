//! Servers bought from a cloud account: their states, the two operations
//! that make and unmake them (deployments of kinds `server_create` and
//! `server_destroy`, started at the provision stage), and the writes the
//! create job makes as it goes, each in a transaction of its own so a
//! re-run finds what an earlier attempt made (the provider's id first of
//! all).

use crate::db::deployments::{create_job, record_event};
use crate::job::{JobError, Stage};
use crate::queue::topology::QueueNames;
use crate::state::DeploymentState;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use std::fmt;
use uuid::Uuid;

/// The deployment kind that makes a server, and its provision job.
pub const CREATE_KIND: &str = "server_create";
pub const CREATE_JOB_KIND: &str = "server_create.v1";
/// The deployment kind that destroys one, and its provision job.
pub const DESTROY_KIND: &str = "server_destroy";
pub const DESTROY_JOB_KIND: &str = "server_destroy.v1";
/// A destroy's deploy stage: nothing is left to do there.
pub const DONE_JOB_KIND: &str = "server_done.v1";

/// Where a server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    /// Accepted; its create waits for a provision worker.
    Pending,
    /// Being bought: the provider creates and boots it.
    Provisioning,
    /// Running at the provider; Slipway connects and sets it up.
    Configuring,
    /// Set up and registered as an ssh target.
    Ready,
    /// Its create or destroy failed (`error` says why); what the create
    /// made was deleted.
    Failed,
    /// Its destroy runs.
    Destroying,
    /// Nothing of it is left at the provider.
    Destroyed,
}

impl ServerState {
    pub const ALL: [ServerState; 7] = [
        Self::Pending,
        Self::Provisioning,
        Self::Configuring,
        Self::Ready,
        Self::Failed,
        Self::Destroying,
        Self::Destroyed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Provisioning => "provisioning",
            Self::Configuring => "configuring",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::Destroying => "destroying",
            Self::Destroyed => "destroyed",
        }
    }

    pub fn parse(value: &str) -> Option<ServerState> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The labels (Hetzner labels, OpenStack metadata) of what Slipway makes
/// for server `id`.
pub const LABEL: &str = "slipway-server";

/// The name of what takes no labels (key pairs) or must be found by name:
/// Slipway's id in it.
pub fn resource_name(kind: &str, id: Uuid) -> String {
    format!("slipway-{kind}-{id}")
}

/// Queues an operation of `kind` on server `server_id`: a deployment in
/// `built` with its provision job and message.
pub async fn create_operation(
    conn: &mut PgConnection,
    names: &QueueNames,
    project_id: Uuid,
    server_id: Uuid,
    kind: &str,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    let traceparent = crate::telemetry::new_traceparent();
    sqlx::query(
        "INSERT INTO deployments (id, project_id, kind, state, dispatched, server_id, trace_id)
         VALUES ($1, $2, $3, 'built', true, $4, $5)",
    )
    .bind(id)
    .bind(project_id)
    .bind(kind)
    .bind(server_id)
    .bind(&traceparent)
    .execute(&mut *conn)
    .await?;
    let note = if kind == CREATE_KIND {
        "server create: no build"
    } else {
        "server destroy: no build"
    };
    record_event(conn, id, None, DeploymentState::Built, Some(note)).await?;
    create_job(conn, names, id, Stage::Provision, kind, &traceparent).await?;
    Ok(id)
}

/// Queues the destroy of server `server_id` unless one is queued or it is
/// destroyed (the row is locked). True when a destroy was queued. The
/// destroy waits for a create still running.
pub async fn queue_destroy(
    conn: &mut PgConnection,
    names: &QueueNames,
    project_id: Uuid,
    server_id: Uuid,
) -> sqlx::Result<bool> {
    let state: String = sqlx::query_scalar("SELECT state FROM servers WHERE id = $1 FOR UPDATE")
        .bind(server_id)
        .fetch_one(&mut *conn)
        .await?;
    if matches!(
        ServerState::parse(&state),
        Some(ServerState::Destroying | ServerState::Destroyed)
    ) {
        return Ok(false);
    }
    sqlx::query("UPDATE servers SET state = 'destroying', updated_at = now() WHERE id = $1")
        .bind(server_id)
        .execute(&mut *conn)
        .await?;
    create_operation(conn, names, project_id, server_id, DESTROY_KIND).await?;
    Ok(true)
}

/// A server row as the jobs need it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServerRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    pub region: String,
    pub size: String,
    pub image: String,
    pub state: String,
    pub provider_id: Option<String>,
    pub key_provider_id: Option<String>,
    pub firewall_provider_id: Option<String>,
    pub host_key_sealed: Option<Vec<u8>>,
    pub host_public_key: Option<String>,
    pub client_key_sealed: Option<Vec<u8>>,
    pub target_id: Option<Uuid>,
    /// The server image it was created from, if it was.
    pub server_image_id: Option<Uuid>,
}

impl ServerRow {
    pub fn state(&self) -> Option<ServerState> {
        ServerState::parse(&self.state)
    }
}

pub fn database(error: sqlx::Error) -> JobError {
    JobError::Retryable(format!("database: {error}"))
}

/// The server operation `deployment_id` is about.
pub async fn of_operation(pool: &PgPool, deployment_id: Uuid) -> Result<ServerRow, JobError> {
    sqlx::query_as(
        "SELECT s.id, s.project_id, s.account_id, s.name, s.region, s.size, s.image, s.state,
                s.provider_id, s.key_provider_id, s.firewall_provider_id, s.host_key_sealed,
                s.host_public_key, s.client_key_sealed, s.target_id, s.server_image_id
         FROM deployments d JOIN servers s ON s.id = d.server_id WHERE d.id = $1",
    )
    .bind(deployment_id)
    .fetch_optional(pool)
    .await
    .map_err(database)?
    .ok_or_else(|| {
        JobError::permanent(
            "server_not_found",
            format!("deployment {deployment_id} is about no server"),
        )
    })
}

/// Moves a server on, only from one of `from` (a destroy that took over
/// is never undone). True when it moved.
pub async fn advance(
    pool: &PgPool,
    id: Uuid,
    from: &[ServerState],
    to: ServerState,
) -> Result<bool, JobError> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let moved = sqlx::query(
        "UPDATE servers SET state = $3, updated_at = now() WHERE id = $1 AND state = ANY($2)",
    )
    .bind(id)
    .bind(&from)
    .bind(to.as_str())
    .execute(pool)
    .await
    .map_err(database)?
    .rows_affected();
    Ok(moved > 0)
}

/// One column of what the create made, written as soon as it exists (its
/// own transaction): `provider_id`, `key_provider_id`,
/// `firewall_provider_id`, `ipv4`, `ipv6`.
pub async fn record(
    pool: &PgPool,
    id: Uuid,
    column: Recorded,
    value: Option<&str>,
) -> Result<(), JobError> {
    let sql = format!(
        "UPDATE servers SET {} = $2, updated_at = now() WHERE id = $1",
        column.as_str()
    );
    sqlx::query(&sql)
        .bind(id)
        .bind(value)
        .execute(pool)
        .await
        .map_err(database)?;
    Ok(())
}

/// What [`record`] may write.
#[derive(Debug, Clone, Copy)]
pub enum Recorded {
    ProviderId,
    KeyId,
    FirewallId,
    Ipv4,
    Ipv6,
}

impl Recorded {
    fn as_str(self) -> &'static str {
        match self {
            Recorded::ProviderId => "provider_id",
            Recorded::KeyId => "key_provider_id",
            Recorded::FirewallId => "firewall_provider_id",
            Recorded::Ipv4 => "ipv4",
            Recorded::Ipv6 => "ipv6",
        }
    }
}

/// Stores the keys the create made, unless an earlier attempt stored
/// some: then those stay (the server may already carry them).
pub async fn store_keys(
    pool: &PgPool,
    id: Uuid,
    host_key_sealed: &[u8],
    host_public_key: &str,
    client_key_sealed: &[u8],
) -> Result<(), JobError> {
    sqlx::query(
        "UPDATE servers SET host_key_sealed = $2, host_public_key = $3, client_key_sealed = $4
         WHERE id = $1 AND host_key_sealed IS NULL",
    )
    .bind(id)
    .bind(host_key_sealed)
    .bind(host_public_key)
    .bind(client_key_sealed)
    .execute(pool)
    .await
    .map_err(database)?;
    Ok(())
}
