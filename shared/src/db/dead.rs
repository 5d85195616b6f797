//! Dead jobs: every message that reached a dead-letter queue, recorded with
//! its reason, listable and re-drivable.

use crate::db::deployments::record_event;
use crate::db::{deployments, outbox};
use crate::job::{JobMessage, Stage};
use crate::queue::topology::QueueNames;
use crate::state::DeploymentState;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Records one dead message (idempotent per message id). If its job was
/// still waiting (a message the broker dead-lettered after its delivery
/// limit), the job is marked dead and its deployment failed.
pub async fn record(
    pool: &PgPool,
    names: &QueueNames,
    message_id: &str,
    stage: Stage,
    queue: &str,
    reason: &str,
    payload: &str,
) -> sqlx::Result<()> {
    let parsed: Option<JobMessage> = serde_json::from_str(payload).ok();
    let mut tx = pool.begin().await?;
    let mut failed = false;
    let (job_id, deployment_id, project_id) = match &parsed {
        Some(message) => {
            let ids: Option<(Uuid, Uuid, Uuid)> = sqlx::query_as(
                "SELECT j.id, d.id, d.project_id FROM jobs j JOIN deployments d ON d.id = j.deployment_id
                 WHERE j.id = $1",
            )
            .bind(message.job_id)
            .fetch_optional(&mut *tx)
            .await?;
            ids.map_or((None, None, None), |(j, d, p)| (Some(j), Some(d), Some(p)))
        }
        None => (None, None, None),
    };
    let inserted = sqlx::query(
        "INSERT INTO dead_jobs (id, message_id, job_id, deployment_id, project_id, stage, queue, reason, payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(message_id)
    .bind(job_id)
    .bind(deployment_id)
    .bind(project_id)
    .bind(stage.as_str())
    .bind(queue)
    .bind(reason)
    .bind(payload)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        if let (Some(job_id), Some(deployment_id)) = (job_id, deployment_id) {
            let waiting = sqlx::query(
                "UPDATE jobs SET state = 'dead', finished_at = now(), last_error = $2
                 WHERE id = $1 AND state IN ('queued', 'retry_wait')",
            )
            .bind(job_id)
            .bind(reason)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if waiting == 1 {
                let state = current_state(&mut tx, deployment_id).await?;
                if let Some(state) = state.filter(|s| !s.is_terminal()) {
                    failed = deployments::fail(
                        &mut tx,
                        names,
                        deployment_id,
                        state,
                        "dead_lettered",
                        reason,
                    )
                    .await?;
                }
            }
        }
    }
    tx.commit().await?;
    if failed {
        crate::metrics::deployments_ended(DeploymentState::Failed, 1);
    }
    crate::db::outbox::committed();
    Ok(())
}

async fn current_state(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<DeploymentState>> {
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM deployments WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(state.and_then(|s| s.parse().ok()))
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeadJob {
    pub id: Uuid,
    pub job_id: Option<Uuid>,
    pub deployment_id: Option<Uuid>,
    pub stage: String,
    pub queue: String,
    pub reason: String,
    pub dead_at: DateTime<Utc>,
    pub redriven_at: Option<DateTime<Utc>>,
}

pub async fn list(pool: &PgPool, project_id: Uuid, limit: i64) -> sqlx::Result<Vec<DeadJob>> {
    sqlx::query_as(
        "SELECT id, job_id, deployment_id, stage, queue, reason, dead_at, redriven_at FROM dead_jobs
         WHERE project_id = $1 ORDER BY dead_at DESC LIMIT $2",
    )
    .bind(project_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redrive {
    Redriven {
        deployment_id: Uuid,
    },
    NotFound,
    AlreadyRedriven,
    /// The dead message names no job (a bad payload) or the job is gone.
    NoJob,
    /// The deployment is not failed any more, or its app has another deployment in flight.
    Conflict(String),
}

/// Gives a dead job a fresh attempt budget and enqueues it again; its
/// deployment goes from `failed` back to the stage's entry state.
pub async fn redrive(
    conn: &mut PgConnection,
    names: &QueueNames,
    project_id: Uuid,
    dead_id: Uuid,
) -> sqlx::Result<Redrive> {
    let row: Option<(Option<Uuid>, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT job_id, redriven_at FROM dead_jobs WHERE id = $1 AND project_id = $2 FOR UPDATE",
    )
    .bind(dead_id)
    .bind(project_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((job_id, redriven_at)) = row else {
        return Ok(Redrive::NotFound);
    };
    if redriven_at.is_some() {
        return Ok(Redrive::AlreadyRedriven);
    }
    let Some(job_id) = job_id else {
        return Ok(Redrive::NoJob);
    };
    let job: Option<(Uuid, String, String, Option<Uuid>, String, String)> = sqlx::query_as(
        "SELECT d.id, j.stage, j.kind, d.app_id, d.state, d.trace_id FROM jobs j
         JOIN deployments d ON d.id = j.deployment_id WHERE j.id = $1 FOR UPDATE",
    )
    .bind(job_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((deployment_id, stage, kind, app_id, state, trace_id)) = job else {
        return Ok(Redrive::NoJob);
    };
    let Some(stage) = Stage::parse(&stage) else {
        return Ok(Redrive::NoJob);
    };
    if state != DeploymentState::Failed.as_str() {
        return Ok(Redrive::Conflict(format!(
            "deployment is {state}, not failed"
        )));
    }
    if let Some(app_id) = app_id {
        sqlx::query("SELECT 1 FROM apps WHERE id = $1 FOR UPDATE")
            .bind(app_id)
            .execute(&mut *conn)
            .await?;
        let busy: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM deployments WHERE app_id = $1 AND dispatched AND id <> $2
                            AND state NOT IN {})",
            DeploymentState::TERMINAL_SQL
        ))
        .bind(app_id)
        .bind(deployment_id)
        .fetch_one(&mut *conn)
        .await?;
        if busy {
            return Ok(Redrive::Conflict(
                "another deployment of this app is in flight".into(),
            ));
        }
    }
    let entry = stage.entry_state();
    sqlx::query(
        "UPDATE deployments SET state = $2, error_code = NULL, error_message = NULL, finished_at = NULL,
                dispatched = true, updated_at = now() WHERE id = $1",
    )
    .bind(deployment_id)
    .bind(entry.as_str())
    .execute(&mut *conn)
    .await?;
    record_event(
        conn,
        deployment_id,
        Some(DeploymentState::Failed),
        entry,
        Some("re-driven from the dead-letter queue"),
    )
    .await?;
    sqlx::query(
        "UPDATE jobs SET state = 'queued', attempts = 0, last_error = NULL, finished_at = NULL WHERE id = $1",
    )
    .bind(job_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE dead_jobs SET redriven_at = now() WHERE id = $1")
        .bind(dead_id)
        .execute(&mut *conn)
        .await?;
    let message = JobMessage {
        job_id,
        deployment_id,
        kind,
        stage,
    };
    outbox::enqueue(conn, &names.stage(stage), &message, &trace_id, None).await?;
    Ok(Redrive::Redriven { deployment_id })
}
