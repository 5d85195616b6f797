//! Deployment rows: creation with the one-per-app lane, conditional
//! transitions recorded as events, cancellation, and handing the app's lane
//! to the next held deployment when one ends.

use crate::db::outbox;
use crate::job::{JobMessage, Stage};
use crate::queue::topology::QueueNames;
use crate::state::DeploymentState;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct NewDeployment {
    pub project_id: Uuid,
    pub app_id: Option<Uuid>,
    /// `app` or `probe`.
    pub kind: &'static str,
    pub source: serde_json::Value,
    pub probe: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub id: Uuid,
    /// False when it waits behind the app's running deployment.
    pub dispatched: bool,
    pub superseded: Vec<Uuid>,
}

/// Creates a deployment. For an app, the app row is locked so concurrent
/// requests serialise: an older held deployment is superseded, and the new
/// one is dispatched only if nothing else of the app is in flight.
///
/// Everything after the lock is one statement, because on the API's hot
/// path round trips, not rows, are what costs. The lock must stay a
/// statement of its own: a statement's snapshot is taken when it starts, so
/// one that waited for the lock inside a CTE would not see the deployment
/// committed by the request that held it.
pub async fn create(
    conn: &mut PgConnection,
    names: &QueueNames,
    new: NewDeployment,
) -> sqlx::Result<Created> {
    match new.app_id {
        Some(app_id) => {
            sqlx::query("SELECT 1 FROM apps WHERE id = $1 FOR UPDATE")
                .bind(app_id)
                .execute(&mut *conn)
                .await?;
            create_in_lane(conn, names, new, app_id).await
        }
        None => create_alone(conn, names, new).await,
    }
}

/// [`create`] for a caller that already locked the app row in this
/// transaction (`SELECT … FROM apps … FOR UPDATE`, in a statement of its
/// own, before this one): saves the lock's round trip.
pub async fn create_with_app_locked(
    conn: &mut PgConnection,
    names: &QueueNames,
    new: NewDeployment,
) -> sqlx::Result<Created> {
    match new.app_id {
        Some(app_id) => create_in_lane(conn, names, new, app_id).await,
        None => create_alone(conn, names, new).await,
    }
}

/// Creates a deployment of no app (a probe without one), committed on its
/// own: without an app there is no lane, so it is a single statement, and
/// run outside a transaction block it costs one round trip instead of
/// three (BEGIN, the statement, COMMIT).
pub async fn create_unlaned(
    pool: &PgPool,
    names: &QueueNames,
    new: NewDeployment,
) -> sqlx::Result<Created> {
    if new.app_id.is_some() {
        return Err(sqlx::Error::Protocol(
            "create_unlaned: a deployment of an app waits in its lane; use create in a transaction"
                .into(),
        ));
    }
    let mut conn = pool.acquire().await?;
    create_alone(&mut conn, names, new).await
}

/// The deployment's first job and its outbox message.
struct FirstJob {
    job_id: Uuid,
    traceparent: String,
    kind: &'static str,
    message: JobMessage,
}

impl FirstJob {
    fn new(id: Uuid, new: &NewDeployment) -> FirstJob {
        let job_id = Uuid::now_v7();
        let kind = Stage::Build.job_kind(new.kind);
        FirstJob {
            job_id,
            traceparent: crate::telemetry::new_traceparent(),
            kind,
            message: JobMessage {
                job_id,
                deployment_id: id,
                kind: kind.to_owned(),
                stage: Stage::Build,
            },
        }
    }
}

/// An app's deployment; the caller holds the app row's lock.
async fn create_in_lane(
    conn: &mut PgConnection,
    names: &QueueNames,
    new: NewDeployment,
    app_id: Uuid,
) -> sqlx::Result<Created> {
    let id = Uuid::now_v7();
    let first = FirstJob::new(id, &new);
    let (dispatched, superseded): (bool, Vec<Uuid>) = sqlx::query_as(&format!(
        "WITH superseded AS (
             UPDATE deployments SET state = 'superseded', updated_at = now(), finished_at = now()
             WHERE app_id = $3 AND state = 'queued' AND NOT dispatched RETURNING id),
         superseded_events AS (
             INSERT INTO deployment_events (deployment_id, from_state, to_state, detail)
             SELECT id, 'queued', 'superseded', 'a newer deployment was requested' FROM superseded),
         lane AS (
             SELECT NOT EXISTS (SELECT 1 FROM deployments WHERE app_id = $3 AND dispatched
                                AND state NOT IN {terminal}) AS free),
         created AS (
             INSERT INTO deployments (id, project_id, app_id, kind, state, dispatched, source, probe, trace_id)
             SELECT $1, $2, $3, $4, 'queued', lane.free, $5, $6, $7 FROM lane
             RETURNING id, dispatched),
         created_event AS (
             INSERT INTO deployment_events (deployment_id, from_state, to_state)
             SELECT id, NULL, 'queued' FROM created),
         job AS (
             INSERT INTO jobs (id, deployment_id, stage, kind, state, max_attempts)
             SELECT $8, id, 'build', $9, 'queued', 0 FROM created WHERE dispatched),
         message AS (
             INSERT INTO outbox (exchange, routing_key, payload, headers)
             SELECT '', $10, $11, $12 FROM created WHERE dispatched)
         SELECT (SELECT dispatched FROM created),
                COALESCE((SELECT array_agg(id) FROM superseded), '{{}}')",
        terminal = DeploymentState::TERMINAL_SQL
    ))
    .bind(id)
    .bind(new.project_id)
    .bind(app_id)
    .bind(new.kind)
    .bind(&new.source)
    .bind(&new.probe)
    .bind(&first.traceparent)
    .bind(first.job_id)
    .bind(first.kind)
    .bind(names.stage(Stage::Build))
    .bind(sqlx::types::Json(&first.message))
    .bind(outbox::headers(&first.traceparent, None))
    .fetch_one(&mut *conn)
    .await?;
    Ok(Created {
        id,
        dispatched,
        superseded,
    })
}

/// A deployment of no app: nothing to supersede or wait behind, so it is
/// dispatched at once; one statement (atomic even outside a transaction).
async fn create_alone(
    conn: &mut PgConnection,
    names: &QueueNames,
    new: NewDeployment,
) -> sqlx::Result<Created> {
    let id = Uuid::now_v7();
    let first = FirstJob::new(id, &new);
    sqlx::query(
        "WITH created AS (
             INSERT INTO deployments (id, project_id, kind, state, dispatched, source, probe, trace_id)
             VALUES ($1, $2, $3, 'queued', true, $4, $5, $6)
             RETURNING id),
         created_event AS (
             INSERT INTO deployment_events (deployment_id, from_state, to_state)
             SELECT id, NULL, 'queued' FROM created),
         job AS (
             INSERT INTO jobs (id, deployment_id, stage, kind, state, max_attempts)
             SELECT $7, id, 'build', $8, 'queued', 0 FROM created)
         INSERT INTO outbox (exchange, routing_key, payload, headers)
         SELECT '', $9, $10, $11 FROM created",
    )
    .bind(id)
    .bind(new.project_id)
    .bind(new.kind)
    .bind(&new.source)
    .bind(&new.probe)
    .bind(&first.traceparent)
    .bind(first.job_id)
    .bind(first.kind)
    .bind(names.stage(Stage::Build))
    .bind(sqlx::types::Json(&first.message))
    .bind(outbox::headers(&first.traceparent, None))
    .execute(&mut *conn)
    .await?;
    Ok(Created {
        id,
        dispatched: true,
        superseded: Vec::new(),
    })
}

/// The source of a deployment from the app's repository at `git_ref`
/// (`HEAD` when none is named).
pub fn git_source(git_url: &str, git_ref: Option<&str>) -> serde_json::Value {
    serde_json::json!({"git_url": git_url, "git_ref": git_ref.unwrap_or("HEAD")})
}

async fn lane_busy(conn: &mut PgConnection, app_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM deployments WHERE app_id = $1 AND dispatched
                        AND state NOT IN {})",
        DeploymentState::TERMINAL_SQL
    ))
    .bind(app_id)
    .fetch_one(conn)
    .await
}

/// Inserts the job for `stage` and its message in the outbox.
pub async fn create_job(
    conn: &mut PgConnection,
    names: &QueueNames,
    deployment_id: Uuid,
    stage: Stage,
    deployment_kind: &str,
    traceparent: &str,
) -> sqlx::Result<Uuid> {
    let job_id = Uuid::now_v7();
    let kind = stage.job_kind(deployment_kind);
    sqlx::query(
        "INSERT INTO jobs (id, deployment_id, stage, kind, state, max_attempts)
         VALUES ($1, $2, $3, $4, 'queued', 0)",
    )
    .bind(job_id)
    .bind(deployment_id)
    .bind(stage.as_str())
    .bind(kind)
    .execute(&mut *conn)
    .await?;
    let message = JobMessage {
        job_id,
        deployment_id,
        kind: kind.to_owned(),
        stage,
    };
    outbox::enqueue(conn, &names.stage(stage), &message, traceparent, None).await?;
    Ok(job_id)
}

pub async fn record_event(
    conn: &mut PgConnection,
    deployment_id: Uuid,
    from: Option<DeploymentState>,
    to: DeploymentState,
    detail: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO deployment_events (deployment_id, from_state, to_state, detail) VALUES ($1, $2, $3, $4)",
    )
    .bind(deployment_id)
    .bind(from.map(|s| s.as_str()))
    .bind(to.as_str())
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// `from → to` if the deployment is still in `from`; records the event.
/// Returns false (and changes nothing) when it is not.
pub async fn transition(
    conn: &mut PgConnection,
    deployment_id: Uuid,
    from: DeploymentState,
    to: DeploymentState,
    detail: Option<&str>,
) -> sqlx::Result<bool> {
    if !from.can_become(to) {
        return Err(sqlx::Error::Protocol(format!(
            "transition {from} -> {to} is not allowed"
        )));
    }
    let updated = sqlx::query(
        "UPDATE deployments SET state = $3, updated_at = now(),
                finished_at = CASE WHEN $4 THEN now() ELSE NULL END
         WHERE id = $1 AND state = $2",
    )
    .bind(deployment_id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(to.is_terminal())
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if updated {
        record_event(conn, deployment_id, Some(from), to, detail).await?;
    }
    Ok(updated)
}

/// Fails a deployment from `from` with a stable code and a message, then
/// hands its app's lane on.
pub async fn fail(
    conn: &mut PgConnection,
    names: &QueueNames,
    deployment_id: Uuid,
    from: DeploymentState,
    code: &str,
    message: &str,
) -> sqlx::Result<bool> {
    if !transition(
        conn,
        deployment_id,
        from,
        DeploymentState::Failed,
        Some(message),
    )
    .await?
    {
        return Ok(false);
    }
    sqlx::query("UPDATE deployments SET error_code = $2, error_message = $3 WHERE id = $1")
        .bind(deployment_id)
        .bind(code)
        .bind(message)
        .execute(&mut *conn)
        .await?;
    release_lane(conn, names, deployment_id).await?;
    Ok(true)
}

/// After a deployment ended: move its install on (if it is one of an
/// install's operations), then dispatch the app's held deployment, if any.
/// Every end of a deployment passes here, in the transaction that ends it.
pub async fn release_lane(
    conn: &mut PgConnection,
    names: &QueueNames,
    ended_deployment: Uuid,
) -> sqlx::Result<()> {
    crate::db::installs::follow(conn, names, ended_deployment).await?;
    let app_id: Option<Uuid> = sqlx::query_scalar("SELECT app_id FROM deployments WHERE id = $1")
        .bind(ended_deployment)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
    let Some(app_id) = app_id else { return Ok(()) };
    sqlx::query("SELECT 1 FROM apps WHERE id = $1 FOR UPDATE")
        .bind(app_id)
        .execute(&mut *conn)
        .await?;
    if lane_busy(conn, app_id).await? {
        return Ok(());
    }
    let next: Option<(Uuid, String, String)> = sqlx::query_as(
        "UPDATE deployments SET dispatched = true, updated_at = now()
         WHERE id = (SELECT id FROM deployments WHERE app_id = $1 AND state = 'queued' AND NOT dispatched
                     ORDER BY created_at DESC LIMIT 1)
         RETURNING id, kind, trace_id",
    )
    .bind(app_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((id, kind, traceparent)) = next {
        create_job(conn, names, id, Stage::Build, &kind, &traceparent).await?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled,
    AlreadyEnded(DeploymentState),
    NotFound,
}

/// Cancels an open deployment: its jobs stop being claimable, running
/// workers hear it through `slipway_cancel` (and their heartbeat finds the
/// lease gone as a backstop), and the app's lane moves on.
pub async fn cancel(
    conn: &mut PgConnection,
    names: &QueueNames,
    project_id: Uuid,
    deployment_id: Uuid,
) -> sqlx::Result<CancelOutcome> {
    // Locks in the order creates and claims take them: the app's row first
    // (a create holds it while it supersedes held deployments), then the
    // jobs, then their deployment (a claim locks jobs, then deployments).
    // A deployment's app never changes, so reading it unlocked is safe.
    sqlx::query(
        "SELECT 1 FROM apps WHERE id = (SELECT app_id FROM deployments WHERE id = $1) FOR UPDATE",
    )
    .bind(deployment_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT id FROM jobs WHERE deployment_id = $1 ORDER BY id FOR UPDATE")
        .bind(deployment_id)
        .execute(&mut *conn)
        .await?;
    let state: Option<String> = sqlx::query_scalar(
        "SELECT state FROM deployments WHERE id = $1 AND project_id = $2 FOR UPDATE",
    )
    .bind(deployment_id)
    .bind(project_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(state) = state else {
        return Ok(CancelOutcome::NotFound);
    };
    let state: DeploymentState = state
        .parse()
        .map_err(|e: crate::state::UnknownState| sqlx::Error::Protocol(e.to_string()))?;
    if state.is_terminal() {
        return Ok(CancelOutcome::AlreadyEnded(state));
    }
    transition(
        conn,
        deployment_id,
        state,
        DeploymentState::Cancelled,
        Some("cancelled by request"),
    )
    .await?;
    sqlx::query(
        "UPDATE jobs SET state = 'cancelled', finished_at = now()
         WHERE deployment_id = $1 AND state IN ('queued', 'running', 'retry_wait')",
    )
    .bind(deployment_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify('slipway_cancel', $1)")
        .bind(deployment_id.to_string())
        .execute(&mut *conn)
        .await?;
    release_lane(conn, names, deployment_id).await?;
    Ok(CancelOutcome::Cancelled)
}
