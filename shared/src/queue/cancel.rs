//! The jobs running in this process and why one should stop. Cancellation
//! arrives by `LISTEN slipway_cancel` within milliseconds; the lease keeper
//! finds a lost lease on its next heartbeat as a backstop.

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A user cancelled the deployment.
    Cancelled,
    /// The lease is no longer ours (cancelled, or a sweeper took it back).
    LeaseLost,
    /// The stage's time limit passed.
    Timeout,
    /// This worker is shutting down and hands the job back.
    Shutdown,
}

#[derive(Clone)]
pub struct RunningJob {
    pub deployment_id: Uuid,
    pub lease_token: i64,
    pub cancel: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
    /// Set once the handler returned and its outcome is being committed:
    /// the lease is still renewed, but a lease seen gone now only means the
    /// outcome landed (or was fenced out, which the commit reports).
    committing: Arc<std::sync::atomic::AtomicBool>,
}

impl RunningJob {
    /// Stops the job for `reason`; the first reason given wins.
    pub fn stop(&self, reason: StopReason) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(reason);
        }
        self.cancel.cancel();
    }

    pub fn reason(&self) -> Option<StopReason> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_committing(&self) {
        self.committing
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_committing(&self) -> bool {
        self.committing.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Jobs in flight in this process, by job id.
#[derive(Clone, Default)]
pub struct Registry {
    jobs: Arc<Mutex<HashMap<Uuid, RunningJob>>>,
}

impl Registry {
    pub fn insert(&self, job_id: Uuid, deployment_id: Uuid, lease_token: i64) -> RunningJob {
        let job = RunningJob {
            deployment_id,
            lease_token,
            cancel: CancellationToken::new(),
            reason: Arc::default(),
            committing: Arc::default(),
        };
        self.lock().insert(job_id, job.clone());
        job
    }

    pub fn remove(&self, job_id: Uuid) {
        self.lock().remove(&job_id);
    }

    pub fn snapshot(&self) -> Vec<(Uuid, RunningJob)> {
        self.lock()
            .iter()
            .map(|(id, job)| (*id, job.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stop_deployment(&self, deployment_id: Uuid, reason: StopReason) -> usize {
        let jobs = self.lock();
        let matching: Vec<_> = jobs
            .values()
            .filter(|j| j.deployment_id == deployment_id)
            .collect();
        for job in &matching {
            job.stop(reason);
        }
        matching.len()
    }

    pub fn stop_all(&self, reason: StopReason) {
        for job in self.lock().values() {
            job.stop(reason);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, RunningJob>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Listens for cancellations until `shutdown`. `PgListener` reconnects by
/// itself; what was missed while it was down is caught by the heartbeat.
pub async fn listen(pool: PgPool, registry: Registry, shutdown: CancellationToken) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cancel listener cannot connect; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
        };
        if let Err(error) = listener.listen("slipway_cancel").await {
            tracing::warn!(%error, "cannot LISTEN slipway_cancel; retrying");
            continue;
        }
        loop {
            tokio::select! {
                notification = listener.recv() => match notification {
                    Ok(n) => {
                        if let Ok(id) = n.payload().parse::<Uuid>() {
                            let stopped = registry.stop_deployment(id, StopReason::Cancelled);
                            if stopped > 0 {
                                tracing::info!(deployment.id = %id, "cancel received; stopping job");
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cancel listener lost its connection");
                        break;
                    }
                },
                _ = shutdown.cancelled() => return,
            }
        }
    }
}
