//! Release rows: the one a deploy starts (its id is its deployment's, so a
//! re-run attempt finds what a crashed one started), the one serving the
//! app, and the switch between them committed with the job's outcome.

use async_trait::async_trait;
use slipway_shared::job::{Effect, JobError, JobInfo};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Release {
    pub id: Uuid,
    pub deployment_id: Uuid,
    pub image_ref: String,
    pub container_name: String,
    pub host_port: Option<i32>,
    pub state: String,
    /// The ssh target it was started on; `None`: the local target.
    pub target_id: Option<Uuid>,
}

fn database(error: sqlx::Error) -> JobError {
    JobError::Retryable(format!("database: {error}"))
}

/// The deployment's release, created on its first attempt.
pub async fn start(
    pool: &PgPool,
    app_id: Uuid,
    deployment_id: Uuid,
    image_ref: &str,
    container_name: &str,
    target_id: Option<Uuid>,
) -> Result<Release, JobError> {
    sqlx::query(
        "INSERT INTO releases (id, app_id, deployment_id, image_ref, container_name, state, target_id)
         VALUES ($1, $2, $1, $3, $4, 'starting', $5) ON CONFLICT (deployment_id) DO NOTHING",
    )
    .bind(deployment_id)
    .bind(app_id)
    .bind(image_ref)
    .bind(container_name)
    .bind(target_id)
    .execute(pool)
    .await
    .map_err(database)?;
    sqlx::query_as(
        "SELECT id, deployment_id, image_ref, container_name, host_port, state, target_id FROM releases
         WHERE deployment_id = $1",
    )
    .bind(deployment_id)
    .fetch_one(pool)
    .await
    .map_err(database)
}

pub async fn set_port(pool: &PgPool, release_id: Uuid, port: u16) -> Result<(), JobError> {
    sqlx::query("UPDATE releases SET host_port = $2 WHERE id = $1")
        .bind(release_id)
        .bind(i32::from(port))
        .execute(pool)
        .await
        .map_err(database)?;
    Ok(())
}

/// Records the port of replica `index` (0 is the release's own container,
/// whose port is also `host_port`) after it was re-created on another one.
pub async fn set_replica_port(
    pool: &PgPool,
    release_id: Uuid,
    index: u32,
    port: u16,
) -> Result<(), JobError> {
    let index = i32::try_from(index).unwrap_or(i32::MAX);
    sqlx::query(
        "UPDATE releases SET host_ports[$2 + 1] = $3,
                host_port = CASE WHEN $2 = 0 THEN $3 ELSE host_port END
         WHERE id = $1",
    )
    .bind(release_id)
    .bind(index)
    .bind(i32::from(port))
    .execute(pool)
    .await
    .map_err(database)?;
    Ok(())
}

pub async fn mark_failed(pool: &PgPool, release_id: Uuid) -> Result<(), JobError> {
    sqlx::query(
        "UPDATE releases SET state = 'failed', stopped_at = now() WHERE id = $1 AND state = 'starting'",
    )
    .bind(release_id)
    .execute(pool)
    .await
    .map_err(database)?;
    Ok(())
}

/// The app's current release (serving, or paused by a stop), other than
/// `except`.
pub async fn current(
    pool: &PgPool,
    app_id: Uuid,
    except: Uuid,
) -> Result<Option<Release>, JobError> {
    sqlx::query_as(
        "SELECT id, deployment_id, image_ref, container_name, host_port, state, target_id FROM releases
         WHERE app_id = $1 AND state IN ('live', 'paused') AND id <> $2",
    )
    .bind(app_id)
    .bind(except)
    .fetch_optional(pool)
    .await
    .map_err(database)
}

/// Makes `release` the app's serving release and the one it replaced
/// (serving or paused) stopped, in the transaction of the job's outcome.
pub struct MarkLive {
    pub app_id: Uuid,
    pub release_id: Uuid,
    pub url: String,
    pub https_url: Option<String>,
    /// What the health check that let it in said.
    pub health: String,
    /// Every replica's port.
    pub host_ports: Vec<i32>,
}

#[async_trait]
impl Effect for MarkLive {
    async fn apply(&self, conn: &mut PgConnection, _job: &JobInfo) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE releases SET state = 'stopped', stopped_at = now()
             WHERE app_id = $1 AND state IN ('live', 'paused') AND id <> $2",
        )
        .bind(self.app_id)
        .bind(self.release_id)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE releases SET state = 'live', live_at = now(), url = $2, https_url = $3,
                    health_ok = true, health_detail = $4, health_checked_at = now(),
                    host_ports = $5
             WHERE id = $1",
        )
        .bind(self.release_id)
        .bind(&self.url)
        .bind(&self.https_url)
        .bind(&self.health)
        .bind(&self.host_ports)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// A stopped app: its serving release becomes `paused` (still the app's
/// current release, which `start` runs again).
pub struct MarkPaused {
    pub release_id: Uuid,
}

#[async_trait]
impl Effect for MarkPaused {
    async fn apply(&self, conn: &mut PgConnection, _job: &JobInfo) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE releases SET state = 'paused', stopped_at = now(), health_ok = NULL,
                    health_detail = 'stopped on request', health_checked_at = now()
             WHERE id = $1 AND state = 'live'",
        )
        .bind(self.release_id)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// Records what a health check of a serving release found.
pub async fn record_health(
    pool: &PgPool,
    release_id: Uuid,
    ok: bool,
    detail: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE releases SET health_ok = $2, health_detail = $3, health_checked_at = now()
         WHERE id = $1 AND state = 'live'",
    )
    .bind(release_id)
    .bind(ok)
    .bind(detail)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records what a monitor round found, `(release, ok, detail)` each, in
/// one statement.
pub async fn record_healths(pool: &PgPool, results: &[(Uuid, bool, String)]) -> sqlx::Result<()> {
    if results.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = results.iter().map(|(id, _, _)| *id).collect();
    let oks: Vec<bool> = results.iter().map(|(_, ok, _)| *ok).collect();
    let details: Vec<&str> = results.iter().map(|(_, _, d)| d.as_str()).collect();
    sqlx::query(
        "UPDATE releases r SET health_ok = v.ok, health_detail = v.detail, health_checked_at = now()
         FROM UNNEST($1::uuid[], $2::bool[], $3::text[]) AS v(id, ok, detail)
         WHERE r.id = v.id AND r.state = 'live'",
    )
    .bind(&ids)
    .bind(&oks)
    .bind(&details)
    .execute(pool)
    .await?;
    Ok(())
}
