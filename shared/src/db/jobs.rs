//! Job leases: claim an attempt (with a fencing token), heartbeat it, and
//! commit its outcome together with the next job. Every write checks the
//! token, so a duplicate or stale delivery changes nothing.

use crate::db::deployments::{self, create_job, fail, release_lane, transition};
use crate::db::{job_batches, outbox};
use crate::job::{Effects, JobInfo, JobMessage, Stage};
use crate::queue::topology::QueueNames;
use crate::state::DeploymentState;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use uuid::Uuid;

/// Claims the job named by `message` for `worker_id`. `None` when the job is
/// not claimable (already running elsewhere, finished, cancelled): the
/// delivery is a duplicate and is acked without effect.
pub async fn claim(
    pool: &PgPool,
    message: &JobMessage,
    worker_id: &str,
    max_attempts: i32,
) -> sqlx::Result<Option<JobInfo>> {
    let mut tx = pool.begin().await?;
    let claimed = claim_in(&mut tx, message, worker_id, max_attempts).await?;
    tx.commit().await?;
    Ok(claimed)
}

/// Claims several jobs in one transaction with set-based statements: a few
/// round trips and one commit (one WAL flush) for all. If any statement
/// fails, the batch is rolled back and each job is claimed in a transaction
/// of its own, so one job's error stays its own.
pub async fn claim_many(
    pool: &PgPool,
    messages: &[JobMessage],
    worker_id: &str,
    max_attempts: i32,
) -> Vec<Result<Option<JobInfo>, String>> {
    let batch = async {
        let mut tx = pool.begin().await?;
        let claimed = job_batches::claim_all(&mut tx, messages, worker_id, max_attempts).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(claimed.into_iter().map(Ok).collect())
    };
    match batch.await {
        Ok(claimed) => claimed,
        Err(_) if messages.len() > 1 => {
            let mut claimed = Vec::with_capacity(messages.len());
            for message in messages {
                claimed.push(
                    claim(pool, message, worker_id, max_attempts)
                        .await
                        .map_err(|e| e.to_string()),
                );
            }
            claimed
        }
        Err(error) => vec![Err(error.to_string())],
    }
}

/// Claims the job in an open transaction; see [`claim`].
pub async fn claim_in(
    conn: &mut PgConnection,
    message: &JobMessage,
    worker_id: &str,
    max_attempts: i32,
) -> sqlx::Result<Option<JobInfo>> {
    let claimed: Option<(i32, i64, String, String)> = sqlx::query_as(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_token = lease_token + 1,
                lease_worker = $2, heartbeat_at = now(), max_attempts = $3
         WHERE id = $1 AND state IN ('queued', 'retry_wait')
         RETURNING attempts, lease_token, stage, kind",
    )
    .bind(message.job_id)
    .bind(worker_id)
    .bind(max_attempts)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((attempt, lease_token, stage, kind)) = claimed else {
        return Ok(None);
    };
    let stage = Stage::parse(&stage)
        .ok_or_else(|| sqlx::Error::Protocol(format!("unknown stage {stage}")))?;
    let (deployment_id, state, deployment_kind, probe, trace_id): (
        Uuid,
        String,
        String,
        Option<serde_json::Value>,
        String,
    ) = sqlx::query_as(
        "SELECT d.id, d.state, d.kind, d.probe, d.trace_id FROM deployments d
         JOIN jobs j ON j.deployment_id = d.id WHERE j.id = $1 FOR UPDATE OF d",
    )
    .bind(message.job_id)
    .fetch_one(&mut *conn)
    .await?;
    let state: DeploymentState = state
        .parse()
        .map_err(|e: crate::state::UnknownState| sqlx::Error::Protocol(e.to_string()))?;
    if state == stage.entry_state() {
        transition(conn, deployment_id, state, stage.running_state(), None).await?;
    } else if state != stage.running_state() {
        // The deployment moved on (cancelled, failed) while this job waited.
        sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = now() WHERE id = $1")
            .bind(message.job_id)
            .execute(&mut *conn)
            .await?;
        return Ok(None);
    }
    sqlx::query(
        "INSERT INTO job_attempts (job_id, attempt, lease_token, worker) VALUES ($1, $2, $3, $4)",
    )
    .bind(message.job_id)
    .bind(attempt)
    .bind(lease_token)
    .bind(worker_id)
    .execute(&mut *conn)
    .await?;
    Ok(Some(JobInfo {
        job_id: message.job_id,
        deployment_id,
        kind,
        stage,
        attempt,
        lease_token,
        worker_id: worker_id.to_owned(),
        deployment_kind,
        probe,
        trace_id,
    }))
}

/// Renews the lease. False when the lease is gone (cancelled, or taken back
/// by a sweeper): the worker must stop.
pub async fn heartbeat(pool: &PgPool, job: &JobInfo) -> sqlx::Result<bool> {
    let rows = sqlx::query(
        "WITH j AS (UPDATE jobs SET heartbeat_at = now()
                    WHERE id = $1 AND lease_token = $2 AND state = 'running' RETURNING id)
         UPDATE job_attempts SET heartbeat_at = now()
         WHERE job_id = (SELECT id FROM j) AND lease_token = $2",
    )
    .bind(job.job_id)
    .bind(job.lease_token)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(rows == 1)
}

/// How an attempt ended, as decided by the runtime.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded,
    /// Retry after the delay queue `delay_queue` returns the message.
    Retry {
        error: String,
        delay_queue: String,
    },
    /// Failed for good: permanent error, timeout, or (with `dead`) budget spent.
    Failed {
        code: String,
        message: String,
        dead: bool,
    },
    /// The worker is shutting down: hand the job back without using an attempt.
    HandedBack,
}

/// Finishes the attempt under its fencing token, applying `effects` and the
/// follow-up (next stage, retry, dead letter) in the same transaction.
/// Returns false when the lease was no longer ours: nothing was written.
pub async fn complete(
    pool: &PgPool,
    names: &QueueNames,
    job: &JobInfo,
    outcome: &Outcome,
    effects: &Effects,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let fenced = complete_in(&mut tx, names, job, outcome, effects).await?;
    tx.commit().await?;
    crate::db::outbox::committed();
    Ok(fenced)
}

/// An outcome to commit with [`complete_many`].
pub type Completion = (JobInfo, Outcome, std::sync::Arc<Effects>);

/// Commits several outcomes in one transaction; like [`claim_many`], a
/// failing batch falls back to one transaction per outcome.
pub async fn complete_many(
    pool: &PgPool,
    names: &QueueNames,
    completions: &[Completion],
) -> Vec<Result<bool, String>> {
    let batch = async {
        let mut tx = pool.begin().await?;
        let fenced = job_batches::complete_all(&mut tx, names, completions).await?;
        tx.commit().await?;
        crate::db::outbox::committed();
        Ok::<_, sqlx::Error>(fenced.into_iter().map(Ok).collect())
    };
    match batch.await {
        Ok(fenced) => fenced,
        Err(_) if completions.len() > 1 => {
            let mut fenced = Vec::with_capacity(completions.len());
            for (job, outcome, effects) in completions {
                fenced.push(
                    complete(pool, names, job, outcome, effects)
                        .await
                        .map_err(|e| e.to_string()),
                );
            }
            fenced
        }
        Err(error) => vec![Err(error.to_string())],
    }
}

/// What an outcome writes on the job row and its attempt row.
pub(crate) struct OutcomeRecord {
    pub job_state: &'static str,
    pub attempt_outcome: &'static str,
    pub error: Option<String>,
    /// The job will not run again.
    pub terminal: bool,
}

impl OutcomeRecord {
    pub fn of(outcome: &Outcome) -> OutcomeRecord {
        let (job_state, attempt_outcome, error) = match outcome {
            Outcome::Succeeded => ("succeeded", "succeeded", None),
            Outcome::Retry { error, .. } => ("retry_wait", "retry", Some(error.clone())),
            Outcome::Failed {
                code,
                message,
                dead,
            } => (
                if *dead { "dead" } else { "failed" },
                if *dead { "dead" } else { "failed" },
                Some(format!("{code}: {message}")),
            ),
            Outcome::HandedBack => ("queued", "handed_back", None),
        };
        OutcomeRecord {
            job_state,
            attempt_outcome,
            error,
            terminal: matches!(job_state, "succeeded" | "failed" | "dead"),
        }
    }
}

/// Finishes the attempt in an open transaction; see [`complete`].
pub async fn complete_in(
    conn: &mut PgConnection,
    names: &QueueNames,
    job: &JobInfo,
    outcome: &Outcome,
    effects: &Effects,
) -> sqlx::Result<bool> {
    let record = OutcomeRecord::of(outcome);
    let fenced = sqlx::query(
        "UPDATE jobs SET state = $3, last_error = COALESCE($4, last_error),
                attempts = attempts - CASE WHEN $6 THEN 1 ELSE 0 END,
                finished_at = CASE WHEN $5 THEN now() ELSE NULL END
         WHERE id = $1 AND lease_token = $2 AND state = 'running'",
    )
    .bind(job.job_id)
    .bind(job.lease_token)
    .bind(record.job_state)
    .bind(&record.error)
    .bind(record.terminal)
    .bind(matches!(outcome, Outcome::HandedBack))
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !fenced {
        return Ok(false);
    }
    finish_attempt(
        conn,
        job.job_id,
        job.lease_token,
        record.attempt_outcome,
        record.error.as_deref(),
    )
    .await?;
    follow_up(conn, names, job, outcome, effects).await?;
    Ok(true)
}

/// Commits a stage's success ahead of the attempt's outcome: the effects
/// and the deployment's next step, if the lease is still ours (the job row
/// stays locked meanwhile, so the sweeper and a cancel wait for this). The
/// outcome committed later finds the deployment moved on already: its
/// transitions match nothing and it creates no second job.
pub async fn succeed_early(
    pool: &PgPool,
    names: &QueueNames,
    job: &JobInfo,
    effects: &Effects,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let ours: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM jobs WHERE id = $1 AND lease_token = $2 AND state = 'running' FOR UPDATE",
    )
    .bind(job.job_id)
    .bind(job.lease_token)
    .fetch_optional(&mut *tx)
    .await?;
    if ours.is_none() {
        return Ok(false);
    }
    for effect in effects {
        effect.apply(&mut tx, job).await?;
    }
    advance(&mut tx, names, job).await?;
    tx.commit().await?;
    Ok(true)
}

/// What follows a fenced outcome: the handler's effects and the next stage,
/// a retry through a delay queue, the deployment failed (and dead-lettered),
/// or the job handed back to its queue.
pub(crate) async fn follow_up(
    conn: &mut PgConnection,
    names: &QueueNames,
    job: &JobInfo,
    outcome: &Outcome,
    effects: &Effects,
) -> sqlx::Result<()> {
    let running = job.stage.running_state();
    match outcome {
        Outcome::Succeeded => {
            for effect in effects {
                effect.apply(conn, job).await?;
            }
            advance(conn, names, job).await?;
        }
        Outcome::Retry { delay_queue, .. } => {
            let message = message_for(job);
            outbox::enqueue(conn, delay_queue, &message, &job.trace_id, None).await?;
        }
        Outcome::Failed {
            code,
            message,
            dead,
        } => {
            fail(conn, names, job.deployment_id, running, code, message).await?;
            if *dead {
                let msg = message_for(job);
                let reason = format!("attempts_exhausted: {message}");
                outbox::enqueue(
                    conn,
                    &names.dead(job.stage),
                    &msg,
                    &job.trace_id,
                    Some(&reason),
                )
                .await?;
            }
        }
        Outcome::HandedBack => {
            let message = message_for(job);
            outbox::enqueue(conn, &names.stage(job.stage), &message, &job.trace_id, None).await?;
        }
    }
    Ok(())
}

fn message_for(job: &JobInfo) -> JobMessage {
    JobMessage {
        job_id: job.job_id,
        deployment_id: job.deployment_id,
        kind: job.kind.clone(),
        stage: job.stage,
    }
}

async fn finish_attempt(
    conn: &mut PgConnection,
    job_id: Uuid,
    lease_token: i64,
    outcome: &str,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE job_attempts SET finished_at = now(), outcome = $3, error = $4
         WHERE job_id = $1 AND lease_token = $2",
    )
    .bind(job_id)
    .bind(lease_token)
    .bind(outcome)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// The stage succeeded: move the deployment on and create the next job, or
/// (after deploy) make it live and hand the app's lane on.
async fn advance(conn: &mut PgConnection, names: &QueueNames, job: &JobInfo) -> sqlx::Result<()> {
    use DeploymentState::*;
    match job.stage.next() {
        Some(next) => {
            if job.stage == Stage::Build
                && crate::db::installs::waits_for_server(conn, job.deployment_id).await?
            {
                return built_waiting_for_server(conn, job).await;
            }
            if transition(
                conn,
                job.deployment_id,
                job.stage.running_state(),
                next.entry_state(),
                None,
            )
            .await?
            {
                create_job(
                    conn,
                    names,
                    job.deployment_id,
                    next,
                    &job.deployment_kind,
                    &job.trace_id,
                )
                .await?;
            }
        }
        None => {
            // A deploy handler may already have moved on to verifying.
            transition(conn, job.deployment_id, Deploying, Verifying, None).await?;
            if transition(conn, job.deployment_id, Verifying, Live, None).await? {
                release_lane(conn, names, job.deployment_id).await?;
            }
        }
    }
    Ok(())
}

/// An install's first build that ended before its server was made: the
/// deployment waits `built`, with no provision job, until the server's
/// create going live sends it on (see `installs`).
pub(crate) async fn built_waiting_for_server(
    conn: &mut PgConnection,
    job: &JobInfo,
) -> sqlx::Result<()> {
    transition(
        conn,
        job.deployment_id,
        DeploymentState::Building,
        DeploymentState::Built,
        Some("built; waiting for the install's server to be ready"),
    )
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Rescued {
    job_id: Uuid,
    deployment_id: Uuid,
    old_token: i64,
    attempts: i32,
    max_attempts: i32,
    stage: String,
    kind: String,
    trace_id: String,
}

/// Takes back jobs whose worker stopped heartbeating: re-enqueues them
/// through the outbox, or fails them when their attempt budget is spent.
/// Safe to run from every worker at once (row locks, conditional updates).
pub async fn sweep(
    pool: &PgPool,
    names: &QueueNames,
    lease_timeout: Duration,
) -> sqlx::Result<Vec<Uuid>> {
    // Nearly every sweep finds no lost job: one statement says so, where
    // the rescue's transaction takes three round trips (every worker
    // sweeps every few seconds).
    let lost: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM jobs
                        WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => $1))",
    )
    .bind(lease_timeout.as_secs_f64())
    .fetch_one(pool)
    .await?;
    if !lost {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await?;
    let rescued: Vec<Rescued> = sqlx::query_as(
        "UPDATE jobs j SET state = 'queued', lease_token = j.lease_token + 1,
                last_error = 'worker lost: heartbeat stopped'
         FROM (SELECT id, lease_token FROM jobs
               WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => $1)
               FOR UPDATE SKIP LOCKED LIMIT 100) old
         WHERE j.id = old.id
         RETURNING j.id AS job_id, j.deployment_id, old.lease_token AS old_token, j.attempts, j.max_attempts,
                   j.stage, j.kind, (SELECT trace_id FROM deployments WHERE id = j.deployment_id) AS trace_id",
    )
    .bind(lease_timeout.as_secs_f64())
    .fetch_all(&mut *tx)
    .await?;
    let mut ids = Vec::with_capacity(rescued.len());
    let mut failed = 0;
    for Rescued {
        job_id,
        deployment_id,
        old_token,
        attempts,
        max_attempts,
        stage,
        kind,
        trace_id,
    } in rescued
    {
        let Some(stage) = Stage::parse(&stage) else {
            continue;
        };
        finish_attempt(
            &mut tx,
            job_id,
            old_token,
            "lost",
            Some("heartbeat stopped"),
        )
        .await?;
        let message = JobMessage {
            job_id,
            deployment_id,
            kind,
            stage,
        };
        if attempts >= max_attempts {
            sqlx::query("UPDATE jobs SET state = 'dead', finished_at = now() WHERE id = $1")
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
            let text = format!("the worker running attempt {attempts} of {max_attempts} was lost");
            if deployments::fail(
                &mut tx,
                names,
                deployment_id,
                stage.running_state(),
                "worker_lost",
                &text,
            )
            .await?
            {
                failed += 1;
            }
            outbox::enqueue(
                &mut tx,
                &names.dead(stage),
                &message,
                &trace_id,
                Some(&format!("attempts_exhausted: {text}")),
            )
            .await?;
        } else {
            outbox::enqueue(&mut tx, &names.stage(stage), &message, &trace_id, None).await?;
        }
        crate::metrics::METRICS
            .jobs_rescued
            .with_label_values(&[stage.as_str()])
            .inc();
        ids.push(job_id);
    }
    tx.commit().await?;
    crate::metrics::deployments_ended(crate::state::DeploymentState::Failed, failed);
    if !ids.is_empty() {
        crate::db::outbox::committed();
    }
    Ok(ids)
}
