//! Set-based claims and outcomes for a batch of jobs: a handful of
//! statements per batch (`UPDATE … FROM UNNEST`) instead of a handful per
//! job, because round trips, not rows, bound the runtime's throughput.
//! The semantics are those of [`jobs::claim_in`] and [`jobs::complete_in`],
//! which stay the path for a single job and for the rare follow-ups
//! (retries, failures, the last stage) handled here one by one. Statements
//! joining the arrays to tables are planned per run (see [`crate::db`]).

use crate::db::jobs::{self, Completion, Outcome};
use crate::db::outbox;
use crate::job::{JobInfo, JobMessage, Stage};
use crate::queue::topology::QueueNames;
use crate::state::DeploymentState;
use sqlx::PgConnection;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: Uuid,
    deployment_id: Uuid,
    attempts: i32,
    lease_token: i64,
    stage: String,
    kind: String,
}

#[derive(sqlx::FromRow)]
struct DeploymentRow {
    id: Uuid,
    state: String,
    kind: String,
    probe: Option<serde_json::Value>,
    trace_id: String,
}

/// A deployment state change to apply with its event; see [`transition_all`].
struct Transition {
    deployment_id: Uuid,
    from: DeploymentState,
    to: DeploymentState,
}

fn protocol(message: String) -> sqlx::Error {
    sqlx::Error::Protocol(message)
}

/// Claims every claimable job of `messages` in the open transaction. The
/// answer is in the order of `messages`; a job named twice is claimed once.
pub async fn claim_all(
    conn: &mut PgConnection,
    messages: &[JobMessage],
    worker_id: &str,
    max_attempts: i32,
) -> sqlx::Result<Vec<Option<JobInfo>>> {
    let ids: Vec<Uuid> = messages.iter().map(|m| m.job_id).collect();
    // Rows are locked in id order, deployments too, so that two batches
    // racing for overlapping rows queue up instead of deadlocking.
    let claimed: Vec<ClaimedRow> = sqlx::query_as(
        "UPDATE jobs j SET state = 'running', attempts = j.attempts + 1, lease_token = j.lease_token + 1,
                lease_worker = $2, heartbeat_at = now(), max_attempts = $3
         FROM (SELECT id FROM jobs WHERE id = ANY($1) AND state IN ('queued', 'retry_wait')
               ORDER BY id FOR UPDATE) c
         WHERE j.id = c.id
         RETURNING j.id, j.deployment_id, j.attempts, j.lease_token, j.stage, j.kind",
    )
    .persistent(false)
    .bind(&ids)
    .bind(worker_id)
    .bind(max_attempts)
    .fetch_all(&mut *conn)
    .await?;
    if claimed.is_empty() {
        return Ok(vec![None; messages.len()]);
    }
    let deployment_ids: Vec<Uuid> = claimed.iter().map(|c| c.deployment_id).collect();
    let rows: Vec<DeploymentRow> = sqlx::query_as(
        "SELECT id, state, kind, probe, trace_id FROM deployments
         WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .persistent(false)
    .bind(&deployment_ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut deployments: HashMap<Uuid, (DeploymentState, DeploymentRow)> = HashMap::new();
    for row in rows {
        let state: DeploymentState = row
            .state
            .parse()
            .map_err(|e: crate::state::UnknownState| protocol(e.to_string()))?;
        deployments.insert(row.id, (state, row));
    }

    let mut transitions = Vec::new();
    let mut moved_on = Vec::new();
    let mut infos: HashMap<Uuid, JobInfo> = HashMap::new();
    for job in claimed {
        let stage = Stage::parse(&job.stage)
            .ok_or_else(|| protocol(format!("unknown stage {}", job.stage)))?;
        let (state, deployment) = deployments
            .get_mut(&job.deployment_id)
            .ok_or_else(|| protocol(format!("job {} has no deployment", job.id)))?;
        if *state == stage.entry_state() {
            transitions.push(Transition {
                deployment_id: job.deployment_id,
                from: *state,
                to: stage.running_state(),
            });
            *state = stage.running_state();
        } else if *state != stage.running_state() {
            // The deployment moved on (cancelled, failed) while this job waited.
            moved_on.push(job.id);
            continue;
        }
        infos.insert(
            job.id,
            JobInfo {
                job_id: job.id,
                deployment_id: job.deployment_id,
                kind: job.kind,
                stage,
                attempt: job.attempts,
                lease_token: job.lease_token,
                worker_id: worker_id.to_owned(),
                deployment_kind: deployment.kind.clone(),
                probe: deployment.probe.clone(),
                trace_id: deployment.trace_id.clone(),
            },
        );
    }
    transition_all(conn, &transitions).await?;
    if !moved_on.is_empty() {
        sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = now() WHERE id = ANY($1)")
            .bind(&moved_on)
            .execute(&mut *conn)
            .await?;
    }
    let (job_ids, attempts, tokens): (Vec<Uuid>, Vec<i32>, Vec<i64>) = infos
        .values()
        .map(|i| (i.job_id, i.attempt, i.lease_token))
        .fold(Default::default(), |(mut a, mut b, mut c), (x, y, z)| {
            a.push(x);
            b.push(y);
            c.push(z);
            (a, b, c)
        });
    sqlx::query(
        "INSERT INTO job_attempts (job_id, attempt, lease_token, worker)
         SELECT id, attempt, token, $4 FROM UNNEST($1::uuid[], $2::int[], $3::bigint[]) AS t(id, attempt, token)",
    )
    .bind(&job_ids)
    .bind(&attempts)
    .bind(&tokens)
    .bind(worker_id)
    .execute(&mut *conn)
    .await?;
    // Each claimed job answers its first message; a repeat is a duplicate.
    Ok(messages.iter().map(|m| infos.remove(&m.job_id)).collect())
}

/// Applies every `from → to` whose deployment is still in `from`, with its
/// event, in one statement.
async fn transition_all(conn: &mut PgConnection, transitions: &[Transition]) -> sqlx::Result<()> {
    if transitions.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(transitions.len());
    let mut froms = Vec::with_capacity(transitions.len());
    let mut tos = Vec::with_capacity(transitions.len());
    for t in transitions {
        if !t.from.can_become(t.to) {
            return Err(protocol(format!(
                "transition {} -> {} is not allowed",
                t.from, t.to
            )));
        }
        ids.push(t.deployment_id);
        froms.push(t.from.as_str());
        tos.push(t.to.as_str());
    }
    sqlx::query(
        "WITH u AS (SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS u(id, from_state, to_state)),
              moved AS (UPDATE deployments d SET state = u.to_state, updated_at = now(), finished_at = NULL
                        FROM u WHERE d.id = u.id AND d.state = u.from_state
                        RETURNING d.id, u.from_state, u.to_state)
         INSERT INTO deployment_events (deployment_id, from_state, to_state)
         SELECT id, from_state, to_state FROM moved",
    )
    .persistent(false)
    .bind(&ids)
    .bind(&froms)
    .bind(&tos)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Commits every outcome of `completions` in the open transaction, each
/// under its fencing token; answers, in order, whether the lease was still
/// ours (false: nothing of that job was written).
pub async fn complete_all(
    conn: &mut PgConnection,
    names: &QueueNames,
    completions: &[Completion],
) -> sqlx::Result<Vec<bool>> {
    let n = completions.len();
    let (mut ids, mut tokens, mut states, mut outcomes) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut errors, mut terminal, mut handed_back) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (job, outcome, _) in completions {
        let record = jobs::OutcomeRecord::of(outcome);
        ids.push(job.job_id);
        tokens.push(job.lease_token);
        states.push(record.job_state);
        outcomes.push(record.attempt_outcome);
        errors.push(record.error);
        terminal.push(record.terminal);
        handed_back.push(matches!(outcome, Outcome::HandedBack));
    }
    let fenced: HashSet<Uuid> = sqlx::query_scalar(
        "WITH u AS (SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                                         $6::bool[], $7::bool[])
                    AS u(id, token, state, outcome, error, terminal, handed_back)),
              done AS (UPDATE jobs j SET state = u.state, last_error = COALESCE(u.error, j.last_error),
                              attempts = j.attempts - CASE WHEN u.handed_back THEN 1 ELSE 0 END,
                              finished_at = CASE WHEN u.terminal THEN now() ELSE NULL END
                       FROM u WHERE j.id = u.id AND j.lease_token = u.token AND j.state = 'running'
                       RETURNING j.id),
              attempts AS (UPDATE job_attempts a SET finished_at = now(), outcome = u.outcome, error = u.error
                           FROM u JOIN done ON done.id = u.id
                           WHERE a.job_id = u.id AND a.lease_token = u.token)
         SELECT id FROM done",
    )
    .persistent(false)
    .bind(&ids)
    .bind(&tokens)
    .bind(&states)
    .bind(&outcomes)
    .bind(&errors)
    .bind(&terminal)
    .bind(&handed_back)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();

    let mut advances = Vec::new();
    for (job, outcome, effects) in completions {
        if !fenced.contains(&job.job_id) {
            continue;
        }
        if let (Outcome::Succeeded, Some(next)) = (outcome, job.stage.next()) {
            for effect in effects.iter() {
                effect.apply(conn, job).await?;
            }
            if job.stage == Stage::Build
                && crate::db::installs::waits_for_server(conn, job.deployment_id).await?
            {
                jobs::built_waiting_for_server(conn, job).await?;
                continue;
            }
            advances.push((job, next));
        } else {
            jobs::follow_up(conn, names, job, outcome, effects).await?;
        }
    }
    advance_all(conn, names, &advances).await?;
    Ok(completions
        .iter()
        .map(|(job, _, _)| fenced.contains(&job.job_id))
        .collect())
}

/// Moves each deployment from its finished stage to the next one's entry
/// state and creates that stage's job and outbox message, for those still
/// in the finished stage's running state; one statement for the batch.
async fn advance_all(
    conn: &mut PgConnection,
    names: &QueueNames,
    advances: &[(&JobInfo, Stage)],
) -> sqlx::Result<()> {
    if advances.is_empty() {
        return Ok(());
    }
    let n = advances.len();
    let (mut deployment_ids, mut froms, mut tos) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut job_ids, mut stages, mut kinds, mut queues, mut payloads, mut headers) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (job, next) in advances {
        let (from, to) = (job.stage.running_state(), next.entry_state());
        if !from.can_become(to) {
            return Err(protocol(format!(
                "transition {from} -> {to} is not allowed"
            )));
        }
        let job_id = Uuid::now_v7();
        let kind = next.job_kind(&job.deployment_kind);
        let message = JobMessage {
            job_id,
            deployment_id: job.deployment_id,
            kind: kind.to_owned(),
            stage: *next,
        };
        deployment_ids.push(job.deployment_id);
        froms.push(from.as_str());
        tos.push(to.as_str());
        job_ids.push(job_id);
        stages.push(next.as_str());
        kinds.push(kind);
        queues.push(names.stage(*next));
        payloads.push(serde_json::to_value(&message).map_err(|e| protocol(e.to_string()))?);
        headers.push(outbox::headers(&job.trace_id, None));
    }
    sqlx::query(
        "WITH u AS (SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[],
                                         $6::text[], $7::text[], $8::jsonb[], $9::jsonb[])
                    AS u(deployment_id, from_state, to_state, job_id, stage, kind, queue, payload, headers)),
              moved AS (UPDATE deployments d SET state = u.to_state, updated_at = now()
                        FROM u WHERE d.id = u.deployment_id AND d.state = u.from_state
                        RETURNING d.id),
              events AS (INSERT INTO deployment_events (deployment_id, from_state, to_state)
                         SELECT u.deployment_id, u.from_state, u.to_state FROM u JOIN moved ON moved.id = u.deployment_id),
              new_jobs AS (INSERT INTO jobs (id, deployment_id, stage, kind, state, max_attempts)
                           SELECT u.job_id, u.deployment_id, u.stage, u.kind, 'queued', 0
                           FROM u JOIN moved ON moved.id = u.deployment_id)
         INSERT INTO outbox (exchange, routing_key, payload, headers)
         SELECT '', u.queue, u.payload, u.headers FROM u JOIN moved ON moved.id = u.deployment_id",
    )
    .persistent(false)
    .bind(&deployment_ids)
    .bind(&froms)
    .bind(&tos)
    .bind(&job_ids)
    .bind(&stages)
    .bind(&kinds)
    .bind(&queues)
    .bind(&payloads)
    .bind(&headers)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
