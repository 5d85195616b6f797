//! The log sink: every stage's lines go through here into
//! `deployment_logs`, redacted, numbered per deployment and written in
//! batches (one `INSERT … SELECT FROM UNNEST` per flush), flushed at least
//! every `flush_interval` and whenever a caller asks (before a state change).

use crate::metrics::METRICS;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const MAX_BATCH: usize = 1000;
const REDACTED: &str = "[REDACTED]";

#[derive(Debug, Clone)]
pub struct LogLine {
    pub deployment_id: Uuid,
    pub at: DateTime<Utc>,
    pub stage: &'static str,
    pub stream: &'static str,
    pub attempt: i32,
    pub line: String,
}

enum SinkMessage {
    Line(LogLine),
    Flush(oneshot::Sender<()>),
}

/// Secret values per deployment, replaced before a line is stored.
#[derive(Default)]
struct Redactor {
    secrets: RwLock<HashMap<Uuid, Vec<String>>>,
}

impl Redactor {
    fn redact(&self, deployment_id: Uuid, line: String) -> String {
        let secrets = self.secrets.read().unwrap_or_else(|p| p.into_inner());
        match secrets.get(&deployment_id) {
            Some(values) => values
                .iter()
                .fold(line, |line, secret| line.replace(secret.as_str(), REDACTED)),
            None => line,
        }
    }
}

/// Flusher tasks per process. A deployment's lines always go to the same
/// one, so its numbers are allocated in the order it wrote them, while
/// different deployments' batches commit side by side.
const PARTITIONS: usize = 4;

/// A cheap handle to the process' sink.
#[derive(Clone)]
pub struct LogSink {
    parts: Arc<[mpsc::Sender<SinkMessage>]>,
    redactor: Arc<Redactor>,
}

impl LogSink {
    /// Starts the flusher task; it drains what it holds when `shutdown` fires.
    pub fn start(
        pool: sqlx::PgPool,
        flush_interval: Duration,
        shutdown: CancellationToken,
    ) -> (LogSink, tokio::task::JoinHandle<()>) {
        let mut parts = Vec::with_capacity(PARTITIONS);
        let mut tasks = Vec::with_capacity(PARTITIONS);
        for _ in 0..PARTITIONS {
            let (tx, rx) = mpsc::channel(8 * MAX_BATCH);
            parts.push(tx);
            tasks.push(tokio::spawn(flusher(
                pool.clone(),
                rx,
                flush_interval,
                shutdown.clone(),
            )));
        }
        let task = tokio::spawn(async move {
            for task in tasks {
                let _ = task.await;
            }
        });
        let sink = LogSink {
            parts: parts.into(),
            redactor: Arc::default(),
        };
        (sink, task)
    }

    fn part(&self, deployment_id: Uuid) -> &mpsc::Sender<SinkMessage> {
        let index = (deployment_id.as_u128() % self.parts.len() as u128) as usize;
        &self.parts[index]
    }

    /// Values that must never be stored in this deployment's logs.
    pub fn register_secrets(&self, deployment_id: Uuid, values: Vec<String>) {
        let values: Vec<String> = values.into_iter().filter(|v| v.len() >= 3).collect();
        if values.is_empty() {
            return;
        }
        let mut secrets = self
            .redactor
            .secrets
            .write()
            .unwrap_or_else(|p| p.into_inner());
        secrets.entry(deployment_id).or_default().extend(values);
    }

    pub fn forget_secrets(&self, deployment_id: Uuid) {
        let mut secrets = self
            .redactor
            .secrets
            .write()
            .unwrap_or_else(|p| p.into_inner());
        secrets.remove(&deployment_id);
    }

    pub async fn write(&self, mut line: LogLine) {
        line.line = self.redactor.redact(line.deployment_id, line.line);
        if self
            .part(line.deployment_id)
            .send(SinkMessage::Line(line))
            .await
            .is_err()
        {
            tracing::warn!("log sink closed; line dropped");
        }
    }

    /// Returns once every line written before this call is committed.
    pub async fn flush(&self) {
        for part in self.parts.iter() {
            flush_part(part).await;
        }
    }

    /// Returns once every line of this deployment written before this call is committed.
    pub async fn flush_deployment(&self, deployment_id: Uuid) {
        flush_part(self.part(deployment_id)).await;
    }

    pub fn handle(&self, deployment_id: Uuid, stage: &'static str, attempt: i32) -> LogHandle {
        LogHandle {
            sink: self.clone(),
            deployment_id,
            stage,
            attempt,
        }
    }
}

/// A sink bound to one job attempt.
#[derive(Clone)]
pub struct LogHandle {
    sink: LogSink,
    deployment_id: Uuid,
    stage: &'static str,
    attempt: i32,
}

impl LogHandle {
    pub async fn line(&self, stream: &'static str, line: impl Into<String>) {
        self.sink
            .write(LogLine {
                deployment_id: self.deployment_id,
                at: Utc::now(),
                stage: self.stage,
                stream,
                attempt: self.attempt,
                line: line.into(),
            })
            .await;
    }

    /// The platform's own messages.
    pub async fn info(&self, line: impl Into<String>) {
        self.line("slipway", line).await;
    }

    /// Values never to be stored in this deployment's lines (an app's
    /// secret variables, an add-on's password): replaced in every line
    /// written from now on, by any handle of this deployment in this process.
    pub fn redact(&self, values: Vec<String>) {
        self.sink.register_secrets(self.deployment_id, values);
    }

    /// `text` with the values given to [`LogHandle::redact`] replaced, for
    /// what is stored outside the log (the deployment's error message).
    pub fn scrub(&self, text: String) -> String {
        self.sink.redactor.redact(self.deployment_id, text)
    }

    /// Drops the values given to [`LogHandle::redact`] once the job that
    /// knew them is done.
    pub fn forget_redactions(&self) {
        self.sink.forget_secrets(self.deployment_id);
    }

    pub async fn flush(&self) {
        self.sink.flush_deployment(self.deployment_id).await;
    }
}

async fn flush_part(part: &mpsc::Sender<SinkMessage>) {
    let (done, wait) = oneshot::channel();
    if part.send(SinkMessage::Flush(done)).await.is_ok() {
        let _ = wait.await;
    }
}

async fn flusher(
    pool: sqlx::PgPool,
    mut rx: mpsc::Receiver<SinkMessage>,
    flush_interval: Duration,
    shutdown: CancellationToken,
) {
    let mut batch: Vec<LogLine> = Vec::with_capacity(MAX_BATCH);
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let first = tokio::select! {
            message = rx.recv() => message,
            _ = shutdown.cancelled() => { rx.close(); rx.recv().await }
        };
        let Some(first) = first else { break };
        let deadline = tokio::time::Instant::now() + flush_interval;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                SinkMessage::Line(line) => batch.push(line),
                SinkMessage::Flush(done) => {
                    waiters.push(done);
                    // Write now, together with whatever else is already
                    // waiting (other jobs' flushes too): one transaction for all.
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(SinkMessage::Line(line)) => batch.push(line),
                            Ok(SinkMessage::Flush(done)) => waiters.push(done),
                            Err(_) => break,
                        }
                    }
                    break;
                }
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            next = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .unwrap_or_default();
        }
        write_with_retry(&pool, &mut batch).await;
        for done in waiters.drain(..) {
            let _ = done.send(());
        }
    }
    write_with_retry(&pool, &mut batch).await;
}

/// Lines are never dropped for a database outage: the batch is retried
/// until Postgres is back (the bounded channel pushes back on writers).
async fn write_with_retry(pool: &sqlx::PgPool, batch: &mut Vec<LogLine>) {
    if batch.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(50);
    loop {
        match write_batch(pool, batch).await {
            Ok(written) => {
                METRICS.log_lines_written.inc_by(written);
                let now = Utc::now();
                for line in batch.iter() {
                    let lag = (now - line.at).num_microseconds().unwrap_or(i64::MAX);
                    METRICS.log_sink_lag.observe(lag.max(0) as f64 / 1e6);
                }
                batch.clear();
                return;
            }
            Err(error) => {
                METRICS.log_sink_write_failures.inc();
                tracing::warn!(%error, lines = batch.len(), "log batch not stored; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn write_batch(pool: &sqlx::PgPool, batch: &[LogLine]) -> sqlx::Result<u64> {
    let mut counts: HashMap<Uuid, i64> = HashMap::new();
    for line in batch {
        *counts.entry(line.deployment_id).or_default() += 1;
    }
    let mut ids: Vec<Uuid> = counts.keys().copied().collect();
    // A fixed lock order keeps two sinks writing the same deployments from deadlocking.
    ids.sort();
    let amounts: Vec<i64> = ids.iter().map(|id| counts[id]).collect();

    let mut tx = pool.begin().await?;
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "UPDATE deployments d SET log_seq = d.log_seq + c.n
         FROM (SELECT * FROM UNNEST($1::uuid[], $2::bigint[]) AS t(id, n) ORDER BY id) c
         WHERE d.id = c.id
         RETURNING d.id, d.log_seq",
    )
    // Planned per run: see `crate::db`.
    .persistent(false)
    .bind(&ids)
    .bind(&amounts)
    .fetch_all(&mut *tx)
    .await?;
    // The next number to hand out per deployment; deployments that no
    // longer exist are missing and their lines are dropped.
    let mut next_seq: HashMap<Uuid, i64> = rows
        .into_iter()
        .map(|(id, last)| (id, last - counts[&id] + 1))
        .collect();

    let n = batch.len();
    let (mut dep, mut seq, mut at, mut stage, mut stream, mut attempt, mut text) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for line in batch {
        let Some(next) = next_seq.get_mut(&line.deployment_id) else {
            continue;
        };
        dep.push(line.deployment_id);
        seq.push(*next);
        *next += 1;
        at.push(line.at);
        stage.push(line.stage);
        stream.push(line.stream);
        attempt.push(line.attempt);
        // Postgres text cannot hold NUL bytes.
        text.push(line.line.replace('\0', ""));
    }
    sqlx::query(
        "INSERT INTO deployment_logs (deployment_id, seq, at, stage, stream, attempt, line)
         SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::timestamptz[], $4::text[],
                              $5::text[], $6::int[], $7::text[])",
    )
    .bind(&dep)
    .bind(&seq)
    .bind(&at)
    .bind(&stage)
    .bind(&stream)
    .bind(&attempt)
    .bind(&text)
    .execute(&mut *tx)
    .await?;
    for chunk in next_seq.keys().collect::<Vec<_>>().chunks(150) {
        let payload = chunk
            .iter()
            .map(|id| id.to_string())
            .collect::<Vec<_>>()
            .join(",");
        sqlx::query("SELECT pg_notify('slipway_logs', $1)")
            .bind(payload)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(dep.len() as u64)
}

/// Deletes log lines older than `retention`; safe to run from every process.
pub async fn prune(pool: &sqlx::PgPool, retention: Duration) -> sqlx::Result<u64> {
    let seconds = retention.as_secs_f64();
    let result =
        sqlx::query("DELETE FROM deployment_logs WHERE at < now() - make_interval(secs => $1)")
            .bind(seconds)
            .execute(pool)
            .await?;
    Ok(result.rows_affected())
}
