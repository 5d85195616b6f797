//! What a job is: its stage, the message that wakes a worker (ids only), the
//! handler trait a job kind implements, and the context it runs with.

use crate::logsink::LogHandle;
use crate::state::DeploymentState;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use std::fmt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A stage of the pipeline; each has its own queue and worker binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Build,
    Provision,
    Deploy,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Build, Stage::Provision, Stage::Deploy];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Build => "build",
            Stage::Provision => "provision",
            Stage::Deploy => "deploy",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Self::ALL.into_iter().find(|stage| stage.as_str() == s)
    }

    /// The deployment state in which this stage's job is waiting to start.
    pub fn entry_state(self) -> DeploymentState {
        match self {
            Stage::Build => DeploymentState::Queued,
            Stage::Provision => DeploymentState::Built,
            Stage::Deploy => DeploymentState::Provisioned,
        }
    }

    /// The deployment state while a worker holds this stage's job.
    pub fn running_state(self) -> DeploymentState {
        match self {
            Stage::Build => DeploymentState::Building,
            Stage::Provision => DeploymentState::Provisioning,
            Stage::Deploy => DeploymentState::Deploying,
        }
    }

    pub fn next(self) -> Option<Stage> {
        match self {
            Stage::Build => Some(Stage::Provision),
            Stage::Provision => Some(Stage::Deploy),
            Stage::Deploy => None,
        }
    }

    /// The job kind that runs this stage for a deployment of `deployment_kind`.
    pub fn job_kind(self, deployment_kind: &str) -> &'static str {
        if deployment_kind == "probe" {
            return crate::probe::PROBE_KIND;
        }
        if deployment_kind == crate::db::targets::CHECK_KIND {
            return crate::db::targets::CHECK_JOB_KIND;
        }
        if deployment_kind == crate::db::target_setup::SETUP_KIND {
            // After setup, the deploy stage checks the target as a check
            // does: the forwards a deploy uses, as the deploy user.
            return match self {
                Stage::Provision => crate::db::target_setup::SETUP_JOB_KIND,
                _ => crate::db::targets::CHECK_JOB_KIND,
            };
        }
        if deployment_kind == crate::db::servers::CREATE_KIND {
            // After the create, the deploy stage checks the new target as
            // a check does (the create points the deployment at it).
            return match self {
                Stage::Provision => crate::db::servers::CREATE_JOB_KIND,
                _ => crate::db::targets::CHECK_JOB_KIND,
            };
        }
        if deployment_kind == crate::db::installs::VERIFY_KIND {
            // The verify does all its work in the provision stage.
            return match self {
                Stage::Provision => crate::db::installs::VERIFY_JOB_KIND,
                _ => crate::db::servers::DONE_JOB_KIND,
            };
        }
        if deployment_kind == crate::db::servers::DESTROY_KIND {
            return match self {
                Stage::Provision => crate::db::servers::DESTROY_JOB_KIND,
                _ => crate::db::servers::DONE_JOB_KIND,
            };
        }
        match self {
            Stage::Build => "build.v1",
            Stage::Provision => "provision.v1",
            Stage::Deploy => "deploy.v1",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The message body: ids only. Postgres holds the state, including the
/// attempt count; a message only says "look at this job now".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub job_id: Uuid,
    pub deployment_id: Uuid,
    pub kind: String,
    pub stage: Stage,
}

/// How a handler says a job went wrong; the runtime decides what follows.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (network faults, a busy registry, ...).
    #[error("{0}")]
    Retryable(String),
    /// Will fail the same way again; fails the deployment at once.
    #[error("{code}: {message}")]
    Permanent { code: String, message: String },
    /// The job's cancellation token fired and the handler stopped its work.
    #[error("cancelled")]
    Cancelled,
}

impl JobError {
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        JobError::Permanent {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// A write a handler wants committed together with its job's outcome, under
/// the job's fencing token, so that it happens exactly once.
#[async_trait]
pub trait Effect: Send + Sync {
    async fn apply(&self, conn: &mut PgConnection, job: &JobInfo) -> sqlx::Result<()>;
}

pub type Effects = Vec<Box<dyn Effect>>;

/// One job kind. Handlers classify errors; the runtime acks, retries,
/// dead-letters and records.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// The versioned kind this handler runs, e.g. `probe.v1`.
    fn kind(&self) -> &'static str;
    async fn run(&self, ctx: &JobContext) -> Result<Effects, JobError>;
}

/// The identity of one claimed attempt of a job.
#[derive(Debug, Clone)]
pub struct JobInfo {
    pub job_id: Uuid,
    pub deployment_id: Uuid,
    pub kind: String,
    pub stage: Stage,
    pub attempt: i32,
    /// The fencing token: every write of this attempt checks it.
    pub lease_token: i64,
    pub worker_id: String,
    pub deployment_kind: String,
    pub probe: Option<serde_json::Value>,
    pub trace_id: String,
}

/// What a running handler gets: who it is, where its log lines go, and the
/// token that fires on cancel, lost lease, stage timeout or shutdown.
pub struct JobContext {
    pub info: JobInfo,
    pub logs: LogHandle,
    pub cancel: CancellationToken,
    pub pool: sqlx::PgPool,
    pub probe_command: String,
    /// The queues, for what [`JobContext::succeed_now`] enqueues.
    pub names: crate::queue::topology::QueueNames,
}

impl JobContext {
    /// Commits this attempt's success before the handler returns: its
    /// `effects` and the deployment moved on (after the last stage: `live`,
    /// and the app's next deployment dispatched), under the attempt's
    /// fencing token. For a handler that has clean-up left which the
    /// deployment's outcome must not wait for (the deploy stage's drain of
    /// the replaced release). The job stays running until the handler
    /// returns; its outcome then changes nothing more of the deployment.
    /// `Ok(false)`: the lease is no longer ours and nothing was written.
    pub async fn succeed_now(&self, effects: Effects) -> sqlx::Result<bool> {
        let done =
            crate::db::jobs::succeed_early(&self.pool, &self.names, &self.info, &effects).await?;
        if done {
            crate::db::outbox::committed();
        }
        Ok(done)
    }
}
