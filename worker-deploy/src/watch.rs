//! Events drive repairs, on the local target and on each ssh target (one
//! watcher per target, on the engine API its persistent session forwards,
//! see `session`): the engine's event stream
//! (see `engine::api`) says when an app container dies — it exited, was
//! killed or ran out of memory — and the app is repaired at once through
//! the reconciler's own repair (`Reconciler::repair_now`), not at its next
//! pass. A death Slipway caused is not "repaired": a stop, restart, scale
//! or deploy runs as a deployment in the deploy stage, a drained release is
//! no longer the app's current one, a destroyed app is `destroying`, and a
//! container of another target on the same engine (the ssh test hosts share
//! this machine's storage) has no current release on the watcher's target;
//! the reconciler's checks, made under the app's lock, say so.
//!
//! A container that keeps dying backs off (see [`backoff`]): after the
//! second death within [`CRASH_WINDOW`] each start waits longer, and the
//! app's health says `crashing` with the last lines it printed. A `start`
//! event wakes the log followers. When the stream breaks (the service
//! restarted), it is opened again from the last event's second, so no
//! death is missed; the reconciler's slow pass stays as the backstop.

mod backoff;

pub use backoff::{backoff, CrashLog, CRASH_WINDOW};

use crate::engine::api::EngineApi;
use crate::engine::events::{ContainerEvent, Seen};
use crate::reconcile::Reconciler;
use crate::release;
use futures::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Lines of a crashing container shown in its app's health.
const CRASH_LINES: usize = 5;
/// Repairs running at once: each holds an app lock and a query connection
/// of the reconciler's pool (see `RECONCILER_CONNECTIONS`); more would
/// wait for connections and time out. Ten, so that ten apps killed at
/// once all start again at once: a repair of a container that only died
/// is a start and a few requests to the engine and Caddy.
pub const PARALLEL_REPAIRS: usize = 10;

#[derive(Clone)]
pub struct Watcher {
    pub api: EngineApi,
    /// The ssh target whose engine this is; `None`: the local target.
    pub target: Option<Uuid>,
    pub reconciler: Arc<Reconciler>,
    /// Told when an app container started (the log followers).
    pub started: Arc<Notify>,
    crashes: Arc<Mutex<CrashLog>>,
    /// Limits the repairs running at once.
    repairs: Arc<tokio::sync::Semaphore>,
}

impl Watcher {
    pub fn new(
        api: EngineApi,
        target: Option<Uuid>,
        reconciler: Arc<Reconciler>,
        started: Arc<Notify>,
    ) -> Watcher {
        Watcher {
            api,
            target,
            reconciler,
            started,
            crashes: Arc::default(),
            repairs: Arc::new(tokio::sync::Semaphore::new(PARALLEL_REPAIRS)),
        }
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        // Without `since` podman replays its whole event file.
        let mut since: Option<i64> = Some(chrono::Utc::now().timestamp());
        let mut pause = Duration::from_millis(200);
        let mut seen = Seen::default();
        while !shutdown.is_cancelled() {
            let mut events = Box::pin(self.api.events(since));
            loop {
                let event = tokio::select! {
                    event = events.next() => event,
                    _ = shutdown.cancelled() => return,
                };
                match event {
                    Some(Ok(observed)) => {
                        pause = Duration::from_millis(200);
                        since = since.max(Some(observed.time));
                        // podman sends again what its event file kept when
                        // it rotates it, and a stream opened again
                        // replays its last second: acted on once.
                        if seen.first_time(&observed.key) {
                            self.on_event(observed.event, &shutdown);
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "engine events: stream broke; opening it again");
                        break;
                    }
                    None => break,
                }
            }
            // What happened while the stream was down is not known.
            self.api.forget();
            // Replays from the last event's second: a death sent twice is
            // acted on once (`seen`).
            since = since.or_else(|| Some(chrono::Utc::now().timestamp()));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => return,
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    fn on_event(&self, event: ContainerEvent, shutdown: &CancellationToken) {
        // The engine's kept lists of containers no longer say how it is
        // (before the followers are woken, so their look lists afresh).
        self.api.forget();
        match event {
            ContainerEvent::Started { .. } => self.started.notify_one(),
            ContainerEvent::Died {
                name,
                app,
                exit_code,
                ..
            } => {
                tracing::info!(%app, container = %name, ?exit_code, "engine events: app container died");
                // Apps with a repair under way (one at a time per app, and
                // the reconciler's pass leaves them alone), and whether
                // another death came meanwhile: then it runs again after.
                {
                    let mut busy = self.reconciler.event_repairs.lock().expect("not poisoned");
                    if let Some(again) = busy.get_mut(&app) {
                        *again = true;
                        return;
                    }
                    busy.insert(app, false);
                }
                let watcher = self.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = watcher.on_death(&name, app, exit_code) => {}
                            _ = shutdown.cancelled() => return,
                        }
                        let mut busy = watcher
                            .reconciler
                            .event_repairs
                            .lock()
                            .expect("not poisoned");
                        if busy.get(&app) == Some(&true) {
                            busy.insert(app, false);
                        } else {
                            busy.remove(&app);
                            return;
                        }
                    }
                });
            }
        }
    }

    async fn on_death(&self, name: &str, app: Uuid, exit_code: Option<i64>) {
        let reconciler = &self.reconciler;
        let release = match reconciler.release_on(self.target, app).await {
            Ok(Some(release)) if release.has_container(name) => release,
            Ok(_) => {
                tracing::info!(%app, container = %name,
                    "engine events: not the current live release here (or a deployment runs); left alone");
                return;
            }
            Err(error) => {
                tracing::warn!(%app, error = %format!("{error:#}"), "engine events: cannot look the app up");
                return;
            }
        };
        let deaths = self
            .crashes
            .lock()
            .expect("not poisoned")
            .record(name, std::time::Instant::now());
        let wait = backoff(deaths);
        if !wait.is_zero() {
            let last = self.api.tail(name, CRASH_LINES).await.join(" | ");
            let exit = exit_code.map_or("?".into(), |c| c.to_string());
            let detail = format!(
                "crashing: {name} died {deaths} times within {}s (last exit {exit}); next start in {}s; last lines: {last}",
                CRASH_WINDOW.as_secs(),
                wait.as_secs_f64(),
            );
            if let Err(error) =
                release::record_health(&reconciler.pool, release.id, false, &detail).await
            {
                tracing::warn!(%error, "engine events: cannot record the crash loop");
            }
            tracing::warn!(%app, container = %name, deaths, ?wait, "app container crash loop: backing off");
            tokio::time::sleep(wait).await;
        }
        let site = match reconciler.sites.open(&reconciler.pool, self.target).await {
            Ok(site) => site,
            Err(error) => {
                tracing::warn!(%error, "engine events: cannot open the target's site");
                return;
            }
        };
        let Ok(_permit) = self.repairs.acquire().await else {
            return;
        };
        // Docker publishes a restarted container on a new port, which
        // only the full repair records: a quick start is podman's.
        let podman = site.engine.kind() == slipway_shared::target::EngineKind::Podman;
        let dead = podman.then_some((&self.api, name));
        match reconciler.repair_now(&site, &release, dead).await {
            Ok(Some(repairs)) => {
                tracing::info!(%app, container = %name, ?exit_code, repairs,
                    "engine events: repaired a dead app container");
            }
            Ok(None) => {
                tracing::debug!(%app, "engine events: not repaired (no longer current, or its lock stayed busy a pass apart)");
            }
            // One try per death, not a retry loop here: a repair that
            // failed because the container died again brings its own
            // death event (run after this one, at the crash loop's pace),
            // and any other fault is the reconciler's pass's to retry. A
            // retry waiting here would keep the app marked as this
            // watcher's, which makes the pass leave it alone (an ssh target
            // that was unreachable stayed unrepaired past a pass that way).
            Err(error) => tracing::warn!(%app, container = %name,
                error = %format!("{error:#}"),
                "engine events: repair failed; left to its next death or the reconciler's pass"),
        }
    }
}
