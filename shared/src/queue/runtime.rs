//! The consumer runtime every worker runs for its stage.
//!
//! A delivery is claimed in Postgres (a lease with a fencing token) and
//! acked as soon as the claim commits; the job then runs under a heartbeat,
//! and its outcome is committed together with the next job through the
//! outbox. So RabbitMQ never holds an unacked delivery for the length of a
//! job: `consumer_timeout` cannot cut a long build, and a killed worker's job
//! is found by the sweeper (heartbeat stopped) and re-enqueued.

use crate::config::WorkerSettings;
use crate::db::{self, jobs::Outcome};
use crate::job::{JobContext, JobError, JobHandler, JobInfo, JobMessage, Stage};
use crate::logsink::LogSink;
use crate::metrics::METRICS;
use crate::queue::batch::Batcher;
use crate::queue::cancel::{self, Registry, RunningJob, StopReason};
use crate::queue::topology::{self, QueueNames};
use crate::queue::{amqp, dead_letters, relay, retry};
use crate::state::DeploymentState;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::Confirmation;
use lapin::{Channel, Connection};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Deliveries seen more often than this are poison: rejected to the dead
/// queue. Mirrors the `delivery-limit` policy, in case it is missing.
pub const DELIVERY_LIMIT: i64 = 5;
/// A delivery waiting this long for a free slot is re-published for another
/// worker, so it never sits unacked near the broker's consumer timeout.
const PARK_TIMEOUT: Duration = Duration::from_secs(60);

type Claims = Batcher<JobMessage, Result<Option<JobInfo>, String>>;
type Completions = Batcher<db::jobs::Completion, Result<bool, String>>;

/// Requests per claim or outcome transaction, at most.
const MAX_BATCH: usize = 64;
/// Batches of one kind in flight at once: their statements overlap on
/// several connections while each keeps its single commit.
const BATCHES_AT_ONCE: usize = 4;

pub struct Runtime {
    pool: PgPool,
    claims: Claims,
    completions: Completions,
    names: QueueNames,
    settings: WorkerSettings,
    stage: Stage,
    handlers: HashMap<&'static str, Arc<dyn JobHandler>>,
    logs: LogSink,
    registry: Registry,
    slots: Arc<Semaphore>,
}

impl Runtime {
    /// Needs a Tokio runtime: it starts the claim and outcome batchers.
    pub fn new(pool: PgPool, settings: WorkerSettings, stage: Stage, logs: LogSink) -> Self {
        let names = QueueNames::new(settings.common.queue_prefix.clone());
        let claims = {
            let (pool, worker, max_attempts) = (
                pool.clone(),
                settings.worker_id.clone(),
                settings.max_attempts,
            );
            Batcher::start(
                MAX_BATCH,
                BATCHES_AT_ONCE,
                move |messages: Vec<JobMessage>| {
                    let (pool, worker) = (pool.clone(), worker.clone());
                    async move { db::jobs::claim_many(&pool, &messages, &worker, max_attempts).await }
                },
            )
        };
        let completions = {
            let (pool, names) = (pool.clone(), names.clone());
            Batcher::start(
                MAX_BATCH,
                BATCHES_AT_ONCE,
                move |completions: Vec<db::jobs::Completion>| {
                    let (pool, names) = (pool.clone(), names.clone());
                    async move { db::jobs::complete_many(&pool, &names, &completions).await }
                },
            )
        };
        Self {
            claims,
            completions,
            names,
            slots: Arc::new(Semaphore::new(usize::from(settings.concurrency))),
            pool,
            settings,
            stage,
            handlers: HashMap::new(),
            logs,
            registry: Registry::default(),
        }
    }

    pub fn with_handler(mut self, handler: impl JobHandler) -> Self {
        self.handlers.insert(handler.kind(), Arc::new(handler));
        self
    }

    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// Runs until `shutdown`: stops taking jobs, lets running ones finish
    /// within the grace period, then hands the rest back through the lease.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        crate::metrics::init_stage(self.stage);
        let helpers = CancellationToken::new();
        let background = TaskTracker::new();
        background.spawn(relay::run(
            self.pool.clone(),
            self.settings.common.amqp_url.clone(),
            helpers.clone(),
        ));
        background.spawn(cancel::listen(
            self.pool.clone(),
            self.registry.clone(),
            helpers.clone(),
        ));
        background.spawn(self.clone().keep_leases(helpers.clone()));
        background.spawn(self.clone().sweep(helpers.clone()));
        background.close();

        let jobs = TaskTracker::new();
        while !shutdown.is_cancelled() {
            let Some(connection) = amqp::connect(&self.settings.common.amqp_url, &shutdown).await
            else {
                break;
            };
            if let Err(error) = self.clone().consume(&connection, &jobs, &shutdown).await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "consumer interrupted; reconnecting"
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }

        jobs.close();
        tracing::info!(running = self.registry.len(), "draining in-flight jobs");
        if tokio::time::timeout(self.settings.shutdown_grace, jobs.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = self.registry.len(),
                "grace period over; handing jobs back"
            );
            self.registry.stop_all(StopReason::Shutdown);
            jobs.wait().await;
        }
        self.logs.flush().await;
        // Give the relay a moment to publish what the last outcomes wrote;
        // anything left is published by any other relay later.
        tokio::time::sleep(Duration::from_millis(200)).await;
        helpers.cancel();
        background.wait().await;
        Ok(())
    }

    async fn consume(
        self: Arc<Self>,
        connection: &Connection,
        jobs: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let channel = connection.create_channel().await?;
        topology::declare_stage(
            &channel,
            &self.names,
            self.stage,
            &self.settings.retry_tiers,
        )
        .await?;
        // A new channel after every reconnect, so prefetch is applied again.
        channel
            .basic_qos(self.settings.prefetch.max(1), BasicQosOptions::default())
            .await?;
        let publisher = connection.create_channel().await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;

        let connection_scope = shutdown.child_token();
        let _stop_dead_letters = connection_scope.clone().drop_guard();
        let dead_channel = connection.create_channel().await?;
        tokio::spawn({
            let (pool, names, stage, scope) = (
                self.pool.clone(),
                self.names.clone(),
                self.stage,
                connection_scope.clone(),
            );
            async move {
                if let Err(error) =
                    dead_letters::consume(dead_channel, pool, names, stage, scope).await
                {
                    tracing::warn!(%error, "dead-letter consumer stopped");
                }
            }
        });

        let queue = self.names.stage(self.stage);
        let tag = format!(
            "{}-{}",
            self.settings.worker_id,
            uuid::Uuid::new_v4().simple()
        );
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(%queue, prefetch = self.settings.prefetch, concurrency = self.settings.concurrency, "consuming");
        let intake = TaskTracker::new();
        loop {
            tokio::select! {
                delivery = consumer.next() => match delivery {
                    Some(Ok(delivery)) => {
                        let this = self.clone();
                        let (jobs, publisher, shutdown) = (jobs.clone(), publisher.clone(), shutdown.clone());
                        intake.spawn(async move { this.take(delivery, &jobs, &publisher, &shutdown).await });
                    }
                    Some(Err(error)) => return Err(error.into()),
                    None => anyhow::bail!("the broker closed the consumer"),
                },
                _ = shutdown.cancelled() => {
                    let _ = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
                    intake.close();
                    intake.wait().await;
                    return Ok(());
                }
            }
        }
    }

    /// Phase one of a delivery: wait for a slot, claim, ack, start the job.
    async fn take(
        self: Arc<Self>,
        delivery: Delivery,
        jobs: &TaskTracker,
        publisher: &Channel,
        shutdown: &CancellationToken,
    ) {
        let stage = self.stage.as_str();
        let message: JobMessage = match serde_json::from_slice(&delivery.data) {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(%error, "undecodable job message; dead-lettering it");
                let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
                return;
            }
        };
        let deliveries =
            amqp::header_int(delivery.properties.headers(), "x-delivery-count").unwrap_or(0);
        if deliveries > DELIVERY_LIMIT {
            tracing::error!(job.id = %message.job_id, deliveries, "delivery limit passed; dead-lettering");
            let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
            return;
        }
        let permit = tokio::select! {
            permit = self.slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = tokio::time::sleep(PARK_TIMEOUT) => { self.hand_back_delivery(&delivery, publisher).await; return; }
            _ = shutdown.cancelled() => { self.hand_back_delivery(&delivery, publisher).await; return; }
        };
        let claimed = self.claim_with_retry(&message, shutdown).await;
        let info = match claimed {
            Some(Some(info)) => info,
            Some(None) => {
                METRICS.jobs_duplicate.with_label_values(&[stage]).inc();
                tracing::debug!(job.id = %message.job_id, "job not claimable; duplicate or stale delivery");
                let _ = delivery.ack(BasicAckOptions::default()).await;
                return;
            }
            None => {
                // Shutting down with Postgres unreachable: the broker keeps it.
                let _ = delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        multiple: false,
                    })
                    .await;
                return;
            }
        };
        match delivery.ack(BasicAckOptions::default()).await {
            Ok(true) => {}
            // The claim is committed either way; a redelivery will find the
            // job running and be acked as a duplicate.
            Ok(false) => tracing::warn!(job.id = %info.job_id, "ack not sent: channel closed"),
            Err(error) => tracing::warn!(job.id = %info.job_id, %error, "ack failed"),
        }
        let this = self.clone();
        jobs.spawn(async move { this.execute(info, permit).await });
    }

    /// Re-publishes an unclaimed delivery as a fresh message and acks the
    /// old one: unlike a requeue, this does not count as a delivery.
    async fn hand_back_delivery(&self, delivery: &Delivery, publisher: &Channel) {
        let republished = async {
            let confirm = publisher
                .basic_publish(
                    "".into(),
                    self.names.stage(self.stage).as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &delivery.data,
                    delivery.properties.clone(),
                )
                .await?
                .await?;
            Ok::<_, lapin::Error>(matches!(confirm, Confirmation::Ack(None)))
        };
        if matches!(republished.await, Ok(true)) {
            let _ = delivery.ack(BasicAckOptions::default()).await;
        } else {
            let _ = delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await;
        }
    }

    /// `None` only if shutdown came while Postgres was unreachable.
    async fn claim_with_retry(
        &self,
        message: &JobMessage,
        shutdown: &CancellationToken,
    ) -> Option<Option<JobInfo>> {
        let mut wait = Duration::from_millis(50);
        loop {
            let claimed = self.claims.call(message.clone()).await;
            match claimed.unwrap_or_else(|| Err("the claim batcher stopped".into())) {
                Ok(claimed) => return Some(claimed),
                Err(error) => {
                    tracing::warn!(%error, job.id = %message.job_id, "claim failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => return None,
                    }
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Phase two: run the handler under the lease, then commit the outcome.
    #[tracing::instrument(skip_all, fields(job.id = %info.job_id, deployment.id = %info.deployment_id,
        job.kind = %info.kind, attempt = info.attempt, trace_id = %crate::telemetry::trace_id(&info.trace_id)))]
    async fn execute(self: Arc<Self>, info: JobInfo, _permit: OwnedSemaphorePermit) {
        let stage = self.stage.as_str();
        METRICS.jobs_started.with_label_values(&[stage]).inc();
        let in_flight = METRICS.jobs_in_flight.with_label_values(&[stage]);
        in_flight.inc();
        let started = Instant::now();
        let running = self
            .registry
            .insert(info.job_id, info.deployment_id, info.lease_token);
        let ctx = JobContext {
            logs: self.logs.handle(info.deployment_id, stage, info.attempt),
            cancel: running.cancel.clone(),
            pool: self.pool.clone(),
            probe_command: self.settings.probe_command.clone(),
            names: self.names.clone(),
            info,
        };
        ctx.logs
            .info(format!(
                "{stage} attempt {} started on {}",
                ctx.info.attempt, ctx.info.worker_id
            ))
            .await;
        let result = self.run_handler(&ctx, &running).await;
        let outcome = self.decide(&ctx.info, &running, result);
        if let Some((outcome, effects)) = outcome {
            ctx.logs.info(describe(&outcome)).await;
            ctx.logs.flush().await;
            running.set_committing();
            let committed = self.commit(&ctx.info, &outcome, &Arc::new(effects)).await;
            // Fenced out while nothing (a cancel, the keeper) had stopped it:
            // the sweeper took the lease back.
            if !committed && running.reason().is_none() {
                METRICS.leases_lost.with_label_values(&[stage]).inc();
            }
            record_metrics(self.stage, &outcome, committed);
        } else {
            ctx.logs
                .info("stopped: the job was cancelled or its lease taken back")
                .await;
            ctx.logs.flush().await;
        }
        self.registry.remove(ctx.info.job_id);
        in_flight.dec();
        METRICS
            .job_duration
            .with_label_values(&[stage])
            .observe(started.elapsed().as_secs_f64());
    }

    async fn run_handler(
        &self,
        ctx: &JobContext,
        running: &RunningJob,
    ) -> Result<crate::job::Effects, JobError> {
        let Some(handler) = self.handlers.get(ctx.info.kind.as_str()).cloned() else {
            return Err(JobError::permanent(
                "unknown_job_kind",
                format!(
                    "this {} worker has no handler for job kind `{}`",
                    self.stage, ctx.info.kind
                ),
            ));
        };
        let work = handler.run(ctx);
        tokio::pin!(work);
        tokio::select! {
            result = &mut work => result,
            _ = tokio::time::sleep(self.settings.stage_timeout) => {
                running.stop(StopReason::Timeout);
                work.await
            }
        }
    }

    fn decide(
        &self,
        job: &JobInfo,
        running: &RunningJob,
        result: Result<crate::job::Effects, JobError>,
    ) -> Option<(Outcome, crate::job::Effects)> {
        let failed = |code: &str, message: String, dead: bool| Outcome::Failed {
            code: code.into(),
            message,
            dead,
        };
        match (result, running.reason()) {
            (Ok(effects), _) => Some((Outcome::Succeeded, effects)),
            (Err(_), Some(StopReason::Shutdown)) => Some((Outcome::HandedBack, Vec::new())),
            (Err(_), Some(StopReason::Timeout)) => Some((
                failed(
                    "stage_timeout",
                    format!(
                        "the {} stage exceeded its time limit of {:?}",
                        self.stage, self.settings.stage_timeout
                    ),
                    false,
                ),
                Vec::new(),
            )),
            (Err(_), Some(StopReason::Cancelled | StopReason::LeaseLost)) => None,
            (Err(JobError::Cancelled), None) => None,
            (Err(JobError::Permanent { code, message }), None) => {
                Some((failed(&code, message, false), Vec::new()))
            }
            (Err(JobError::Retryable(message)), None) => {
                if job.attempt < self.settings.max_attempts {
                    let tier =
                        retry::tier_for(job.attempt, &self.settings.retry_tiers, rand::random());
                    Some((
                        Outcome::Retry {
                            error: message,
                            delay_queue: self.names.delay(self.stage, tier),
                        },
                        Vec::new(),
                    ))
                } else {
                    let text = format!(
                        "attempt {} of {} failed: {message}",
                        job.attempt, self.settings.max_attempts
                    );
                    Some((failed("attempts_exhausted", text, true), Vec::new()))
                }
            }
        }
    }

    /// Commits the outcome, waiting out a database outage: the lease stays
    /// ours (the keeper heartbeats it) until this returns.
    /// Returns whether it was recorded (false: the lease was taken back).
    async fn commit(
        &self,
        job: &JobInfo,
        outcome: &Outcome,
        effects: &Arc<crate::job::Effects>,
    ) -> bool {
        let mut wait = Duration::from_millis(50);
        loop {
            let completion = (job.clone(), outcome.clone(), effects.clone());
            let committed = self.completions.call(completion).await;
            match committed.unwrap_or_else(|| Err("the outcome batcher stopped".into())) {
                Ok(true) => return true,
                Ok(false) => {
                    tracing::info!("outcome not recorded: the lease was taken back");
                    return false;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot commit outcome; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Heartbeats every lease this process holds in one statement; a job
    /// whose lease is gone is stopped.
    async fn keep_leases(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.settings.heartbeat_interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let running = self.registry.snapshot();
            if running.is_empty() {
                continue;
            }
            let ids: Vec<uuid::Uuid> = running.iter().map(|(id, _)| *id).collect();
            let tokens: Vec<i64> = running.iter().map(|(_, job)| job.lease_token).collect();
            let alive = renew_leases(&self.pool, &ids, &tokens).await;
            match alive {
                Ok(alive) => {
                    // A job may have committed its outcome since the
                    // snapshot; only jobs still running their handler lost
                    // their lease.
                    let still_running: Vec<_> = self
                        .registry
                        .snapshot()
                        .into_iter()
                        .filter(|(_, job)| !job.is_committing())
                        .map(|(id, _)| id)
                        .collect();
                    let lost: Vec<_> = running
                        .iter()
                        .filter(|(id, _)| !alive.contains(id) && still_running.contains(id))
                        .collect();
                    if lost.is_empty() {
                        continue;
                    }
                    // A cancelled job's lease is gone too, but it was not
                    // lost: only the others count in slipway_leases_lost_total.
                    let lost_ids: Vec<uuid::Uuid> = lost.iter().map(|(id, _)| *id).collect();
                    let cancelled = cancelled_jobs(&self.pool, &lost_ids)
                        .await
                        .unwrap_or_default();
                    for (id, job) in lost {
                        if cancelled.contains(id) {
                            job.stop(StopReason::Cancelled);
                            continue;
                        }
                        if job.reason().is_none() {
                            METRICS
                                .leases_lost
                                .with_label_values(&[self.stage.as_str()])
                                .inc();
                        }
                        tracing::warn!(job.id = %id, "lease lost; stopping the job");
                        job.stop(StopReason::LeaseLost);
                    }
                }
                Err(error) => tracing::warn!(%error, "heartbeat failed; will retry"),
            }
        }
    }

    async fn sweep(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.settings.sweep_interval);
        let mut last_prune = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            match db::jobs::sweep(&self.pool, &self.names, self.settings.lease_timeout).await {
                Ok(rescued) if !rescued.is_empty() => {
                    tracing::warn!(?rescued, "re-enqueued jobs of lost workers")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "sweep failed; will retry"),
            }
            if last_prune.elapsed() > Duration::from_secs(3600) {
                last_prune = Instant::now();
                match crate::logsink::prune(&self.pool, self.settings.common.log_retention).await {
                    Ok(n) if n > 0 => tracing::info!(lines = n, "pruned old log lines"),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "log pruning failed"),
                }
            }
        }
    }
}

/// Heartbeats the given leases and returns the jobs whose lease is still
/// ours. Rows locked right now (their outcome is being committed) are
/// skipped instead of waited for: a heartbeat must never queue behind, or
/// hold up, the commits of the jobs it keeps alive.
async fn renew_leases(
    pool: &PgPool,
    ids: &[uuid::Uuid],
    tokens: &[i64],
) -> sqlx::Result<Vec<uuid::Uuid>> {
    sqlx::query(
        "WITH l AS (SELECT * FROM UNNEST($1::uuid[], $2::bigint[]) AS t(id, token)),
              mine AS (SELECT jobs.id, jobs.lease_token FROM jobs JOIN l ON jobs.id = l.id AND jobs.lease_token = l.token
                       WHERE jobs.state = 'running' FOR UPDATE OF jobs SKIP LOCKED),
              j AS (UPDATE jobs SET heartbeat_at = now() FROM mine WHERE jobs.id = mine.id RETURNING jobs.id)
         UPDATE job_attempts SET heartbeat_at = now() FROM mine
         WHERE job_attempts.job_id = mine.id AND job_attempts.lease_token = mine.lease_token",
    )
    // Planned per run: see `crate::db`.
    .persistent(false)
    .bind(ids)
    .bind(tokens)
    .execute(pool)
    .await?;
    // A plain read: which of these leases still exist at all.
    sqlx::query_scalar(
        "SELECT jobs.id FROM jobs JOIN UNNEST($1::uuid[], $2::bigint[]) AS l(id, token)
           ON jobs.id = l.id AND jobs.lease_token = l.token
         WHERE jobs.state = 'running'",
    )
    .persistent(false)
    .bind(ids)
    .bind(tokens)
    .fetch_all(pool)
    .await
}

/// Which of these jobs a user cancelled (their lease is gone for that reason).
async fn cancelled_jobs(pool: &PgPool, ids: &[uuid::Uuid]) -> sqlx::Result<Vec<uuid::Uuid>> {
    sqlx::query_scalar("SELECT id FROM jobs WHERE id = ANY($1) AND state = 'cancelled'")
        .bind(ids)
        .fetch_all(pool)
        .await
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Succeeded => "succeeded".into(),
        Outcome::Retry { error, delay_queue } => {
            format!("failed, will retry (via {delay_queue}): {error}")
        }
        Outcome::Failed {
            code,
            message,
            dead: true,
        } => format!("failed for good, dead-lettered ({code}): {message}"),
        Outcome::Failed {
            code,
            message,
            dead: false,
        } => format!("failed ({code}): {message}"),
        Outcome::HandedBack => "handed back: this worker is shutting down".into(),
    }
}

fn record_metrics(stage: Stage, outcome: &Outcome, committed: bool) {
    if committed {
        // A committed failure fails the deployment; the last stage's
        // success makes it live.
        match outcome {
            Outcome::Failed { .. } => crate::metrics::deployments_ended(DeploymentState::Failed, 1),
            Outcome::Succeeded if stage.next().is_none() => {
                crate::metrics::deployments_ended(DeploymentState::Live, 1)
            }
            _ => {}
        }
    }
    let stage = stage.as_str();
    let counter = match outcome {
        Outcome::Succeeded => &METRICS.jobs_succeeded,
        Outcome::Retry { .. } => &METRICS.jobs_retried,
        Outcome::Failed { .. } => &METRICS.jobs_failed,
        Outcome::HandedBack => return,
    };
    counter.with_label_values(&[stage]).inc();
}
