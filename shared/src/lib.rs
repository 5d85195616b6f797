//! Code every Slipway process shares: the deployment state machine and job
//! definitions, the queue runtime (topology, outbox relay, consumer, retries,
//! dead letters, sweeper, cancellation), database access, the log sink,
//! configuration, telemetry and metrics.

pub mod addons;
pub mod archive;
pub mod build_settings;
pub mod config;
pub mod db;
pub mod domain;
pub mod egress;
pub mod job;
pub mod local_target;
pub mod logsink;
pub mod metrics;
pub mod operation;
pub mod probe;
pub mod process;
pub mod queue;
pub mod runtime_settings;
pub mod secrets;
pub mod server_done;
pub mod shutdown;
pub mod ssh;
pub mod state;
pub mod target;
pub mod telemetry;
pub mod tls;
pub mod worker;

pub use job::{JobContext, JobError, JobHandler, JobMessage, Stage};
pub use state::DeploymentState;
