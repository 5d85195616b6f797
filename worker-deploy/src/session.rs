//! One persistent SSH session per ssh target, supervised by the deploy
//! worker (see [`connect`] for what a session carries): through it the
//! worker watches the target's engine events (a dead app container is
//! repaired at once, see `watch`) and follows its containers' logs (see
//! `follow`), and the background loops' rounds (reconciler, health
//! monitor) reach the target through it instead of opening a connection
//! per round (see [`Sessions::get`], used by `sites`).
//!
//! The targets with a session are those with a current release (live or
//! paused), looked for every [`LOOK_INTERVAL`]. A session that ends (ssh
//! killed, the connection lost, the engine's API no longer answering) is
//! opened again after a pause that grows while it keeps failing; the event
//! stream resumes from its last second and the followers from their
//! cursors, so nothing is missed meanwhile — the rounds fall back to a
//! connection of their own until it is back.

pub mod connect;

use crate::engine::api::EngineApi;
use crate::follow::Followers;
use crate::reconcile::Reconciler;
use crate::watch::Watcher;
use connect::Shared;
use slipway_shared::db::targets;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often the targets that need a session are looked for.
pub const LOOK_INTERVAL: Duration = Duration::from_secs(10);
/// How often a session's engine API is pinged.
const PING_INTERVAL: Duration = Duration::from_secs(10);
/// Failed pings in a row after which a session is opened again.
const PING_FAILURES: u32 = 3;
/// Longest pause between tries of a session that keeps failing.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// The live sessions, by target; shared by the supervisor and the sites.
#[derive(Clone, Default)]
pub struct Sessions {
    live: Arc<Mutex<HashMap<Uuid, Arc<Shared>>>>,
}

/// What the supervisor needs to run a target's watcher and followers.
#[derive(Clone)]
pub struct Supervisor {
    pub sessions: Sessions,
    pub reconciler: Arc<Reconciler>,
    /// The followers' settings (the API and target are set per session);
    /// `None`: runtime logs are off.
    pub followers: Option<Followers>,
    /// The platform's registry (`HOST:PORT`), forwarded to each target.
    pub registry: String,
}

impl Sessions {
    /// The target's session while it is up.
    pub fn get(&self, target: Uuid) -> Option<Arc<Shared>> {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&target)
            .cloned()
    }

    fn set(&self, target: Uuid, shared: Option<Arc<Shared>>) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        match shared {
            Some(shared) => live.insert(target, shared),
            None => live.remove(&target),
        };
    }
}

impl Supervisor {
    /// Runs until `shutdown`: a session for every ssh target in use.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut running: HashMap<Uuid, (CancellationToken, tokio::task::JoinHandle<()>)> =
            HashMap::new();
        let mut look = tokio::time::interval(LOOK_INTERVAL);
        loop {
            tokio::select! {
                _ = look.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            let wanted: Vec<Uuid> = match sqlx::query_scalar(
                "SELECT DISTINCT t.id FROM releases r JOIN targets t ON t.id = r.target_id
                 WHERE t.kind = 'ssh' AND r.state IN ('live', 'paused')",
            )
            .fetch_all(&self.reconciler.pool)
            .await
            {
                Ok(wanted) => wanted,
                Err(error) => {
                    tracing::warn!(%error, "ssh sessions: cannot list the targets in use");
                    continue;
                }
            };
            running.retain(|id, (cancel, task)| {
                let keep = wanted.contains(id) && !task.is_finished();
                if !keep {
                    cancel.cancel();
                }
                keep
            });
            for id in wanted {
                running.entry(id).or_insert_with(|| {
                    let cancel = shutdown.child_token();
                    let task = tokio::spawn(self.clone().keep(id, cancel.clone()));
                    (cancel, task)
                });
            }
        }
        for (_, (cancel, task)) in running {
            cancel.cancel();
            let _ = task.await;
        }
    }

    /// Keeps `target`'s session up until `cancel`.
    async fn keep(self, target: Uuid, cancel: CancellationToken) {
        let mut pause = Duration::from_millis(500);
        while !cancel.is_cancelled() {
            let opened = std::time::Instant::now();
            match self.session(target, &cancel).await {
                Ok(how) => tracing::warn!(%target, %how, "ssh session ended; opening it again"),
                Err(error) => tracing::warn!(%target, error = %format!("{error:#}"),
                    "ssh session: cannot open it; trying again"),
            }
            self.sessions.set(target, None);
            if opened.elapsed() > Duration::from_secs(60) {
                pause = Duration::from_millis(500);
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = cancel.cancelled() => break,
            }
            pause = (pause * 2).min(MAX_PAUSE);
        }
        self.sessions.set(target, None);
    }

    /// One session: opened, watched and followed through until it ends.
    async fn session(&self, target: Uuid, cancel: &CancellationToken) -> anyhow::Result<String> {
        let pool = &self.reconciler.pool;
        let secrets = self.reconciler.sites.secrets.as_ref();
        let found = targets::ssh_target(pool, target, secrets).await?;
        let name = found.name.clone();
        let mut connection = connect::connect(found, &self.registry).await?;
        tracing::info!(%target, %name, pid = ?connection.pid(), "ssh session up: engine API forwarded");
        let api = connection.shared.api.clone();
        self.sessions.set(target, Some(connection.shared.clone()));
        let round = cancel.child_token();
        let started = Arc::new(Notify::new());
        let watcher = Watcher::new(
            api.clone(),
            Some(target),
            self.reconciler.clone(),
            started.clone(),
        );
        let mut tasks = vec![tokio::spawn(watcher.run(round.clone()))];
        if let Some(followers) = &self.followers {
            let followers = Followers {
                api: api.clone(),
                target: Some(target),
                wake: started,
                // The target's files are on the target: its API it is.
                files: None,
                ..followers.clone()
            };
            tasks.push(tokio::spawn(followers.run(round.clone())));
        }
        let how = tokio::select! {
            how = connection.ended() => how,
            how = unanswered(&api) => how,
            _ = cancel.cancelled() => "stopped".to_owned(),
        };
        // Nothing uses the session any more before it is gone.
        self.sessions.set(target, None);
        round.cancel();
        for task in tasks {
            let _ = task.await;
        }
        drop(connection);
        Ok(how)
    }
}

/// Returns once the API has not answered [`PING_FAILURES`] pings in a row
/// (the remote service died while ssh lives on).
async fn unanswered(api: &EngineApi) -> String {
    let mut failures = 0;
    loop {
        tokio::time::sleep(PING_INTERVAL).await;
        match api.ping().await {
            Ok(()) => failures = 0,
            Err(error) => {
                failures += 1;
                if failures >= PING_FAILURES {
                    return format!("the engine's API stopped answering: {error}");
                }
            }
        }
    }
}
