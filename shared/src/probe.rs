//! The probe job kind: runs a real child process (a configurable command,
//! `sleep` by default, for a requested duration) in its own process group
//! on every stage, and records one `probe_effects` row per job and fencing
//! token together with the job's outcome. Operators use it to check the
//! fleet end to end; the reliability tests use it on the real binaries.

use crate::job::{Effect, Effects, JobContext, JobError, JobHandler, JobInfo, Stage};
use crate::process::{clean_command, run_logged};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

pub const PROBE_KIND: &str = "probe.v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeFailure {
    Retryable,
    Permanent,
}

/// What a probe does, stored on its deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// How long the child process runs on each stage.
    #[serde(default = "default_duration")]
    pub duration_ms: u64,
    /// Make this stage fail, for checking retries and dead letters.
    #[serde(default)]
    pub fail_stage: Option<Stage>,
    #[serde(default)]
    pub fail_kind: Option<ProbeFailure>,
    /// How many claims of the failing stage's job fail before one succeeds.
    /// Counted by fencing token, which never resets, so a re-driven job
    /// gets past its failures.
    #[serde(default = "one")]
    pub fail_times: i32,
}

impl Default for ProbeSpec {
    fn default() -> Self {
        ProbeSpec {
            duration_ms: default_duration(),
            fail_stage: None,
            fail_kind: None,
            fail_times: one(),
        }
    }
}

fn default_duration() -> u64 {
    100
}

fn one() -> i32 {
    1
}

pub const MAX_PROBE_DURATION_MS: u64 = 3_600_000;

pub struct ProbeHandler;

#[async_trait]
impl JobHandler for ProbeHandler {
    fn kind(&self) -> &'static str {
        PROBE_KIND
    }

    async fn run(&self, ctx: &JobContext) -> Result<Effects, JobError> {
        let spec: ProbeSpec = ctx
            .info
            .probe
            .clone()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| JobError::permanent("bad_probe", e.to_string()))?
            .ok_or_else(|| JobError::permanent("bad_probe", "the deployment has no probe spec"))?;
        let seconds = format!("{:.3}", spec.duration_ms as f64 / 1000.0);
        ctx.logs
            .info(format!("probe: running `{} {seconds}`", ctx.probe_command))
            .await;
        let mut command = clean_command(&ctx.probe_command);
        command.arg(&seconds);
        let finished = run_logged(command, &ctx.logs, &ctx.cancel).await?;
        if !finished.status.success() {
            return Err(JobError::Retryable(format!(
                "probe command exited with {}",
                finished.status
            )));
        }
        if spec.fail_stage == Some(ctx.info.stage)
            && ctx.info.lease_token <= i64::from(spec.fail_times)
        {
            let message = format!(
                "probe asked to fail attempt {} of {}",
                ctx.info.attempt, ctx.info.stage
            );
            return Err(match spec.fail_kind.unwrap_or(ProbeFailure::Retryable) {
                ProbeFailure::Retryable => JobError::Retryable(message),
                ProbeFailure::Permanent => JobError::permanent("probe_failure", message),
            });
        }
        Ok(vec![Box::new(ProbeEffect {
            child_pid: finished.pid,
        })])
    }
}

struct ProbeEffect {
    child_pid: u32,
}

#[async_trait]
impl Effect for ProbeEffect {
    async fn apply(&self, conn: &mut PgConnection, job: &JobInfo) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO probe_effects (job_id, lease_token, deployment_id, stage, worker, child_pid)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(job.job_id)
        .bind(job.lease_token)
        .bind(job.deployment_id)
        .bind(job.stage.as_str())
        .bind(&job.worker_id)
        .bind(i32::try_from(self.child_pid).unwrap_or(-1))
        .execute(conn)
        .await?;
        Ok(())
    }
}
