//! Runtime logs of the apps, followed rather than polled, on the local
//! target and on each ssh target (through the engine API its persistent
//! session forwards, see `session`; one set of followers per target):
//! one log stream per running app container (the engine's API, see
//! `engine::api`) across all deploy workers. Which worker follows a
//! container is decided by a session advisory lock per container, taken on
//! a connection this task keeps for nothing else: if the worker dies or the
//! connection drops, Postgres lets go of all its locks at once and another
//! worker's next look takes the containers over. A lost connection makes
//! this worker stop all its followers before it connects again, and every
//! write also checks the cursor it started from (see [`stream`]), so a
//! line is never stored twice even while two workers briefly overlap.
//!
//! Containers are looked for when the event stream says one started (see
//! `watch`) and every [`LOOK_INTERVAL`] as a backstop: the running
//! containers labelled as apps (one API request) whose app has a current
//! release on this engine's target. A container of another target on the
//! same engine (ssh test hosts share this machine's storage) has no such
//! release and is left alone.

mod file;
mod stream;

pub use file::FileWatch;

use crate::engine::api::{EngineApi, StampedLine};
use crate::engine::book::Look;
use futures::stream::BoxStream;
use futures::StreamExt;
use slipway_shared::secrets::SecretBox;
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often running containers are looked for without an event: a
/// backstop (a start wakes a look at once, and so does a follower's end),
/// and the time another worker's containers wait to be taken over after
/// it died. A look lists every app container, which costs podman's
/// service about 1 ms per container: every 5 s that was most of what 100
/// idle apps cost it; a look of the timer takes the engine's kept list
/// while no event changed it (see `engine::book`).
pub const LOOK_INTERVAL: Duration = Duration::from_secs(30);
/// How often the lock connection is checked.
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// How often lines past the retention are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// What the followers need.
#[derive(Clone)]
pub struct Followers {
    pub pool: PgPool,
    pub database_url: String,
    pub api: EngineApi,
    /// The ssh target whose engine this is; `None`: the local target.
    pub target: Option<Uuid>,
    pub secrets: Option<SecretBox>,
    pub retention: Duration,
    /// Notified when a container started: look now.
    pub wake: Arc<Notify>,
    /// The local engine's log files are read directly, woken by inotify
    /// (see [`file`]); `None`: every log through the engine's API.
    pub files: Option<FileWatch>,
}

impl Followers {
    /// Runs until `shutdown`: (re)connects the lock connection and follows.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut pause = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            match PgConnection::connect(&self.database_url).await {
                Ok(conn) => {
                    pause = Duration::from_millis(200);
                    self.follow_with(conn, &shutdown).await;
                }
                Err(error) => tracing::warn!(%error, "log followers: cannot connect"),
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => return,
            }
            pause = (pause * 2).min(Duration::from_secs(10));
        }
    }

    /// Follows while `conn` (holding the locks) is alive.
    async fn follow_with(&self, mut conn: PgConnection, shutdown: &CancellationToken) {
        let round = shutdown.child_token();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
        let mut followed: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        let mut look = tokio::time::interval(LOOK_INTERVAL);
        let mut ping = tokio::time::interval(PING_INTERVAL);
        let mut prune = tokio::time::interval(PRUNE_INTERVAL);
        let lost = 'round: loop {
            // The kept list of running containers (see `engine::book`)
            // serves a timer's or a start's look (a start forgets it); a
            // follower's end looks afresh, since the list may still show
            // its container running.
            let mut fresh = Look::Kept;
            tokio::select! {
                _ = shutdown.cancelled() => break false,
                _ = look.tick() => {}
                _ = self.wake.notified() => {}
                _ = ping.tick() => {
                    if let Err(error) = sqlx::query("SELECT 1").execute(&mut conn).await {
                        tracing::warn!(%error, "log followers: lock connection lost; stopping every follower");
                        break true;
                    }
                    continue;
                }
                _ = prune.tick() => {
                    // Once per worker, by the local target's followers.
                    if self.target.is_none() {
                        self.prune().await;
                    }
                    continue;
                }
                // Looks again at once: the container may have been
                // replaced by one of the same name.
                Some(name) = done_rx.recv() => {
                    fresh = Look::Fresh;
                    followed.remove(&name);
                    if unlock(&mut conn, &name).await.is_err() {
                        break true;
                    }
                }
            }
            match self.wanted(fresh).await {
                Ok(wanted) => {
                    for (name, app_id) in wanted {
                        if followed.contains_key(&name) {
                            continue;
                        }
                        match try_lock(&mut conn, &name).await {
                            Ok(true) => {
                                let task = stream::Follower {
                                    followers: self.clone(),
                                    name: name.clone(),
                                    app_id,
                                    cancel: round.clone(),
                                    done: done_tx.clone(),
                                };
                                followed.insert(name, tokio::spawn(task.run()));
                            }
                            Ok(false) => {}
                            Err(error) => {
                                tracing::warn!(%error, "log followers: lock connection lost");
                                break 'round true;
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(error = %format!("{error:#}"), "log followers: cannot look for containers")
                }
            }
        };
        round.cancel();
        for (_, task) in followed {
            let _ = task.await;
        }
        if !lost {
            let _ = conn.close().await;
        }
    }

    /// The container's lines from `since` (Unix seconds) on: from its log
    /// file when it names one this worker can read (the local engine),
    /// else through the engine's API. The file is read from its start:
    /// the follower skips what it stored.
    async fn lines(
        &self,
        name: &str,
        since: i64,
    ) -> BoxStream<'static, anyhow::Result<StampedLine>> {
        if let Some(files) = &self.files {
            let readable = |path: &std::path::PathBuf| std::fs::File::open(path).is_ok();
            if let Some(path) = self.api.log_path(name).await.filter(readable) {
                match files.follow(path.clone()) {
                    Ok(lines) => return lines.boxed(),
                    Err(error) => {
                        tracing::debug!(container = %name, path = %path.display(), %error,
                        "log followers: cannot watch the log file; following through the API")
                    }
                }
            }
        }
        self.api
            .follow_logs(name, since)
            .map(|line| line.map_err(anyhow::Error::from))
            .boxed()
    }

    /// Running app containers whose app has a current release on this
    /// engine's target: `(name, app)`.
    async fn wanted(&self, look: Look) -> anyhow::Result<Vec<(String, Uuid)>> {
        let running = self.api.running_apps(look).await?;
        if running.is_empty() {
            return Ok(running);
        }
        let apps: Vec<Uuid> = running.iter().map(|(_, app)| *app).collect();
        let local: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT r.app_id FROM releases r LEFT JOIN targets t ON t.id = r.target_id
             WHERE r.app_id = ANY($1) AND r.state IN ('live', 'paused')
               AND CASE WHEN $2::uuid IS NULL THEN (r.target_id IS NULL OR t.kind = 'local')
                   ELSE r.target_id = $2 END",
        )
        .bind(&apps)
        .bind(self.target)
        .fetch_all(&self.pool)
        .await?;
        Ok(running
            .into_iter()
            .filter(|(_, app)| local.contains(app))
            .collect())
    }

    async fn prune(&self) {
        let Ok(retention) = chrono::Duration::from_std(self.retention) else {
            return;
        };
        let result = sqlx::query("DELETE FROM app_logs WHERE at < $1")
            .bind(chrono::Utc::now() - retention)
            .execute(&self.pool)
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, "log followers: pruning old lines failed");
        }
    }
}

/// The advisory lock key of following `container`.
const LOCK_KEY: &str = "hashtextextended('slipway-follow-' || $1, 0)";

async fn try_lock(conn: &mut PgConnection, container: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({LOCK_KEY})"))
        .bind(container)
        .fetch_one(conn)
        .await
}

async fn unlock(conn: &mut PgConnection, container: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"))
        .bind(container)
        .fetch_one(conn)
        .await
}
