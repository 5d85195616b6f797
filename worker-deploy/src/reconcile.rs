//! The reconciler: Postgres says which release serves each app (`releases`,
//! state `live`); every `SLIPWAY_RECONCILE_INTERVAL` the reconciler brings
//! each target back to that. A live release's container that stopped
//! (crashed, killed, the host restarted) is started again, one that is gone
//! is re-created from the release's image on its port; the apps' Caddy
//! server and each app's route are re-created when missing (a Caddy that
//! restarted without its config) and pointed back at the release when they
//! point elsewhere; once the route is right, the app's other containers (a
//! release a crashed deploy left behind) are removed. No new deployment is
//! made: the release is the same.
//!
//! It covers the local target and the ssh targets alike: a pass groups the
//! apps by target and repairs each target's apps through one [`Site`]
//! (see [`crate::sites`]): on an ssh target the engine runs over SSH and
//! the target's own Caddy is driven through the site's forward, over the
//! target's persistent session while it is up (else one SSH connection
//! for the pass, closed after it). A target that cannot be
//! reached is logged and counted as a failure; the other targets are
//! repaired all the same and the next pass tries it again. Destroying apps
//! are skipped.
//!
//! Paused releases (a stopped app) are not live: their containers stay
//! stopped, but the app's 503 route is restored (or corrected) like a live
//! app's route, so a stopped app still answers "stopped" after its Caddy
//! restarted. Every replica of a live release is brought back, on its own
//! port, and the route balances over all of them again.
//!
//! It never fights a deploy. Only one deploy worker reconciles at a time
//! (an advisory lock held for the pass); an app with a deployment in the
//! deploy stage (`provisioned`, `deploying`, `verifying`: its deploy job
//! will run or re-run and finish the switch) is skipped; and each app is
//! repaired under the app's advisory lock, which a deploy holds for its
//! whole run, so a deploy that starts meanwhile waits for the repair.
//!
//! A pass looks at each target once (the engine's app containers in one
//! list, the Caddy server's routes in one request) and passes over every
//! app found as it should be (each replica running on its recorded port,
//! its route pointing at them, no other container of the app): an idle
//! app costs a pass nothing of its own.
//!
//! A dead container does not wait for a pass: the engine's events (the
//! local engine's, and each ssh target's through its persistent session,
//! see `session`) repair it at once (see `watch`,
//! [`Reconciler::repair_now`]); the pass, a minute apart by default, is
//! the backstop.

mod repair;

use crate::engine::api::EngineApi;
use crate::lock;
use crate::site::Site;
use crate::sites::{self, Sites, SSH_TARGET_COLUMN, TARGET_EXISTS, TARGET_JOIN};
use prometheus::IntCounterVec;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// `slipway_reconcile_repairs_total{kind, target}`: what the reconciler fixed
/// (`container_started`, `container_recreated`, `caddy_server_restored`,
/// `route_restored`, `route_corrected`, `stale_container_removed`), and on
/// which kind of target (`local`, `ssh`: a kind, not a target id, so the
/// label set stays bounded however many servers there are).
pub static REPAIRS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = IntCounterVec::new(
        prometheus::Opts::new(
            "slipway_reconcile_repairs_total",
            "Repairs the reconciler made to bring the target back to the desired state",
        ),
        &["kind", "target"],
    )
    .expect("valid metric");
    // Fails only for a duplicate name, which the first test run shows.
    prometheus::register(Box::new(counter.clone())).expect("metric names are unique");
    counter
});

/// The repair kinds and target kinds, exported at zero from the start so a
/// dashboard or an alert sees `0`, not "no data", before the first repair.
const REPAIR_KINDS: [&str; 6] = [
    "container_started",
    "container_recreated",
    "caddy_server_restored",
    "route_restored",
    "route_corrected",
    "stale_container_removed",
];
const TARGET_KINDS: [&str; 2] = ["local", "ssh"];

/// `slipway_reconcile_failures_total`: passes, targets (unreachable) or
/// apps the reconciler could not bring back (it tries again next pass).
pub static FAILURES: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    let counter = prometheus::IntCounter::new(
        "slipway_reconcile_failures_total",
        "Reconciler passes or app repairs that failed (retried next pass)",
    )
    .expect("valid metric");
    prometheus::register(Box::new(counter.clone())).expect("metric names are unique");
    counter
});

/// An app's current release as the desired state names it: `live` (its
/// containers run behind its route) or `paused` (the app is stopped: its
/// route answers 503).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveRelease {
    pub id: Uuid,
    pub state: String,
    pub app_id: Uuid,
    pub deployment_id: Uuid,
    pub container_name: String,
    pub host_port: Option<i32>,
    /// Every replica's port (`host_port` is the first's); `None` for a
    /// release deployed before replicas existed.
    pub host_ports: Option<Vec<i32>>,
    pub app: String,
    pub project: String,
    /// The app's ssh target; `None` on the local target.
    pub ssh_target: Option<Uuid>,
}

impl LiveRelease {
    fn is_paused(&self) -> bool {
        self.state == "paused"
    }

    /// Whether `name` is one of the release's containers (a replica).
    pub fn has_container(&self, name: &str) -> bool {
        name == self.container_name
            || name
                .strip_prefix(&self.container_name)
                .and_then(|rest| rest.strip_prefix("-r"))
                .is_some_and(|n| n.parse::<u32>().is_ok())
    }
}

/// How often and how long an event's repair tries for a busy app lock
/// (a pass repairing it, or a deploy that has just begun): as long as a
/// pass apart. A pass whose look at the engine came just before the death
/// may hold the lock with the container "running" in its eyes and leave it
/// dead; giving up sooner (it was 2 s) left the app down until the next
/// pass (17 and 33 s in the `idle` bench). A deploy that holds the lock
/// makes the release not current, which ends the wait at once.
const LOCK_TRIES: usize = 300;
const LOCK_RETRY: Duration = Duration::from_millis(200);

/// What the reconciler works with: the same engine, Caddy and target
/// settings as the deploy handler, and the keys of the ssh targets.
#[derive(Clone)]
pub struct Reconciler {
    pub pool: PgPool,
    pub sites: Sites,
    /// Apps whose container died and whose repair the engine's events run
    /// (see `watch`), and whether another death came meanwhile. A pass
    /// leaves them to it: a pass repairs one app after another, and
    /// holding the lock of each of ten apps killed at once in turn would
    /// make the event's quick start of the last one wait for all the
    /// others' full repairs.
    pub event_repairs: Arc<Mutex<HashMap<Uuid, bool>>>,
}

impl Reconciler {
    /// Passes every `interval` until `shutdown`; a failed pass is logged
    /// and the next one tries again.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        for kind in REPAIR_KINDS {
            for target in TARGET_KINDS {
                REPAIRS.with_label_values(&[kind, target]);
            }
        }
        LazyLock::force(&FAILURES);
        tracing::info!(?interval, "reconciler starting");
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick fires at once; the worker's migrations may still
        // be running, so the first pass waits one interval.
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let pass = tokio::select! {
                _ = shutdown.cancelled() => break,
                pass = self.pass() => pass,
            };
            match pass {
                Ok(0) => tracing::debug!("reconciler: target matches the desired state"),
                Ok(repairs) => tracing::info!(repairs, "reconciler: pass repaired the target"),
                Err(error) => {
                    FAILURES.inc();
                    tracing::warn!(error = %format!("{error:#}"), "reconciler pass failed");
                }
            }
        }
        tracing::info!("reconciler stopped");
    }

    /// One pass over every app with a live release; returns the repairs
    /// made. Does nothing while another worker's pass holds the lock.
    pub async fn pass(&self) -> anyhow::Result<usize> {
        let Some(pass_lock) = lock::try_lock(&self.pool, lock::RECONCILER_KEY).await? else {
            tracing::debug!("reconciler: another worker is reconciling");
            return Ok(0);
        };
        let result = self.pass_locked().await;
        pass_lock.release().await;
        result
    }

    async fn pass_locked(&self) -> anyhow::Result<usize> {
        let releases: Vec<LiveRelease> = sqlx::query_as(&releases_where("TRUE"))
            .fetch_all(&self.pool)
            .await?;
        let mut repairs = 0;
        for (target, releases) in sites::by_target(releases, |r| r.ssh_target) {
            // One connection per target for the whole pass, closed when
            // `site` drops at the end of this iteration.
            let site = match self.sites.open(&self.pool, target).await {
                Ok(site) => site,
                Err(error) => {
                    FAILURES.inc();
                    tracing::warn!(
                        target = %sites::describe(target), apps = releases.len(),
                        %error,
                        "reconciler cannot reach the target; its apps are tried again next pass"
                    );
                    continue;
                }
            };
            repairs += self.reconcile_site(&site, releases).await?;
        }
        Ok(repairs)
    }

    /// Repairs the apps of one target through its site.
    async fn reconcile_site(
        &self,
        site: &Site,
        releases: Vec<LiveRelease>,
    ) -> anyhow::Result<usize> {
        let mut repairs = 0;
        let Some(first) = releases.first() else {
            return Ok(0);
        };
        let mut server_checked = match self.ensure_servers(site, first).await {
            Ok(n) => {
                repairs += n;
                true
            }
            Err(error) => {
                tracing::warn!(target = %site.describe(), error = %format!("{error:#}"),
                    "reconciler: cannot check the apps' Caddy server; the first repair tries again");
                false
            }
        };
        // One look at the engine and one at the routes for the whole
        // target: an app found as it should be is passed over without a
        // lock, a query or a command of its own.
        let listed = site.engine.list_apps().await.ok();
        let routes = site.caddy.routes(&site.caddy_server).await.ok();
        for release in releases {
            if let (Some(listed), Some(routes)) = (&listed, &routes) {
                if release.in_order(listed, routes) {
                    continue;
                }
            }
            if self.repaired_by_event(release.app_id) {
                tracing::debug!(app = %release.app_id, "reconciler: an event's repair runs; skipped");
                continue;
            }
            if self.deploy_in_flight(release.app_id).await? {
                tracing::debug!(app = %release.app_id, "reconciler: a deploy is in flight; skipped");
                continue;
            }
            let Some(app_lock) = lock::try_lock(&self.pool, lock::app_key(release.app_id)).await?
            else {
                continue;
            };
            // The list may be older than a deploy or a stop that finished
            // meanwhile (a deploy lets go of the lock just before its outcome
            // commits): under the lock, look again.
            if !self.still_current(&release).await? {
                app_lock.release().await;
                continue;
            }
            let repaired = self.repair(site, &release, &mut server_checked).await;
            app_lock.release().await;
            match repaired {
                Ok(n) => repairs += n,
                Err(error) => {
                    FAILURES.inc();
                    tracing::warn!(
                        app = %release.app_id, release = %release.container_name,
                        target = %site.describe(),
                        error = %format!("{error:#}"),
                        "reconciler could not repair the app; trying again next pass"
                    );
                }
            }
        }
        Ok(repairs)
    }

    /// The app's live release on `target` (`None`: the local target) when
    /// the reconciler may repair it now: not being destroyed, no deploy in
    /// flight. `None` also for an app that is stopped or runs elsewhere.
    pub async fn release_on(
        &self,
        target: Option<Uuid>,
        app_id: Uuid,
    ) -> anyhow::Result<Option<LiveRelease>> {
        let release: Option<LiveRelease> = sqlx::query_as(&releases_where(
            "r.app_id = $1 AND r.state = 'live' AND CASE WHEN $2::uuid IS NULL
               THEN (r.target_id IS NULL OR t.kind = 'local') ELSE r.target_id = $2 END",
        ))
        .bind(app_id)
        .bind(target)
        .fetch_optional(&self.pool)
        .await?;
        match release {
            Some(release) if !self.deploy_in_flight(app_id).await? => Ok(Some(release)),
            _ => Ok(None),
        }
    }

    /// Repairs one app now (the engine events' way in), under the app's
    /// lock and only while its release is still current; `None` when it
    /// was not repaired (the lock stayed busy, or the app changed).
    /// `dead`: the container that died and the engine API to start it
    /// through at once, so the app answers again before the full repair
    /// (a few CLI calls and the health check's settle) has run; a start
    /// that fails (the container is gone) leaves it to that repair.
    /// The Caddy server is left to the slow pass.
    pub async fn repair_now(
        &self,
        site: &Site,
        release: &LiveRelease,
        dead: Option<(&EngineApi, &str)>,
    ) -> anyhow::Result<Option<usize>> {
        let mut app_lock = None;
        for _ in 0..LOCK_TRIES {
            app_lock = lock::try_lock(&self.pool, lock::app_key(release.app_id)).await?;
            if app_lock.is_some() || !self.still_current(release).await? {
                break;
            }
            tokio::time::sleep(LOCK_RETRY).await;
        }
        let Some(app_lock) = app_lock else {
            return Ok(None);
        };
        if !self.still_current(release).await? {
            app_lock.release().await;
            return Ok(None);
        }
        let mut started = 0;
        if let Some((api, name)) = dead {
            match api.start(name).await {
                Ok(()) => {
                    repaired(
                        "container_started",
                        release,
                        "started its dead container (engine API)",
                    );
                    started = 1;
                }
                Err(error) => {
                    tracing::debug!(container = %name, %error, "reconciler: quick start failed; full repair")
                }
            }
        }
        let mut server_checked = true;
        let outcome = self
            .repair(site, release, &mut server_checked)
            .await
            .map(|n| n + started);
        app_lock.release().await;
        if outcome.is_err() {
            FAILURES.inc();
        }
        outcome.map(Some)
    }

    /// Whether an engine event's repair of the app runs (see
    /// `event_repairs`).
    fn repaired_by_event(&self, app_id: Uuid) -> bool {
        let by_event = self.event_repairs.lock().expect("not poisoned");
        by_event.contains_key(&app_id)
    }

    /// Whether the release is still the app's current one, in the state
    /// listed (live or paused), and no deployment of the app is in the
    /// deploy stage.
    async fn still_current(&self, release: &LiveRelease) -> anyhow::Result<bool> {
        let current: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM releases r JOIN apps a ON a.id = r.app_id
             WHERE r.id = $1 AND r.state = $2 AND a.destroying_at IS NULL)",
        )
        .bind(release.id)
        .bind(&release.state)
        .fetch_one(&self.pool)
        .await?;
        Ok(current && !self.deploy_in_flight(release.app_id).await?)
    }

    /// Whether a deployment of the app is in the deploy stage: its job
    /// owns the app's container and route until it ends.
    async fn deploy_in_flight(&self, app_id: Uuid) -> anyhow::Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM deployments WHERE app_id = $1
             AND state IN ('provisioned', 'deploying', 'verifying'))",
        )
        .bind(app_id)
        .fetch_one(&self.pool)
        .await?)
    }
}

/// The current releases (`live` or `paused`) of apps not being destroyed,
/// on a target that exists, which also match `condition` (SQL on `r`, `t`).
fn releases_where(condition: &str) -> String {
    format!(
        "SELECT r.id, r.state, r.app_id, r.deployment_id, r.container_name, r.host_port,
                r.host_ports, a.name AS app, p.name AS project, {SSH_TARGET_COLUMN}
         FROM releases r JOIN apps a ON a.id = r.app_id JOIN projects p ON p.id = a.project_id
         {TARGET_JOIN}
         WHERE r.state IN ('live', 'paused') AND a.destroying_at IS NULL AND {TARGET_EXISTS}
           AND {condition}
         ORDER BY r.app_id"
    )
}

/// Counts and logs one repair.
fn repaired(kind: &'static str, release: &LiveRelease, detail: &str) {
    let target = if release.ssh_target.is_some() {
        "ssh"
    } else {
        "local"
    };
    REPAIRS.with_label_values(&[kind, target]).inc();
    tracing::info!(
        repair = kind,
        app = %format!("{}.{}", release.app, release.project),
        release = %release.container_name,
        "reconciler: {detail}"
    );
}
