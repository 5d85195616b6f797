//! The reconciler: Postgres says which release serves each app (`releases`,
//! state `live`); every `SLIPWAY_RECONCILE_INTERVAL` the reconciler brings
//! the local target back to that. A live release's container that stopped
//! (crashed, killed, the host restarted) is started again, one that is gone
//! is re-created from the release's image on its port; the apps' Caddy
//! server and each app's route are re-created when missing (a Caddy that
//! restarted without its config) and pointed back at the release when they
//! point elsewhere; once the route is right, the app's other containers (a
//! release a crashed deploy left behind) are removed. No new deployment is
//! made: the release is the same.
//!
//! It acts on the local target only: apps on ssh targets are skipped (a
//! reconciler over SSH is not built yet), and so are destroying apps.
//! Paused releases (a stopped app) are not live, so their containers stay
//! stopped; the 503 route of a stopped app is not restored after a Caddy
//! restart. Every replica of a live release is brought back, on its own
//! port, and the route balances over all of them again.
//!
//! It never fights a deploy. Only one deploy worker reconciles at a time
//! (an advisory lock held for the pass); an app with a deployment in the
//! deploy stage (`provisioned`, `deploying`, `verifying`: its deploy job
//! will run or re-run and finish the switch) is skipped; and each app is
//! repaired under the app's advisory lock, which a deploy holds for its
//! whole run, so a deploy that starts meanwhile waits for the repair.

mod repair;

use crate::caddy::CaddyAdmin;
use crate::engine::Engine;
use crate::lock;
use crate::monitor::ON_LOCAL_TARGET;
use prometheus::IntCounterVec;
use slipway_shared::local_target::LocalTarget;
use slipway_shared::secrets::SecretBox;
use sqlx::PgPool;
use std::sync::LazyLock;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// `slipway_reconcile_repairs_total{kind}`: what the reconciler fixed
/// (`container_started`, `container_recreated`, `caddy_server_restored`,
/// `route_restored`, `route_corrected`, `stale_container_removed`).
pub static REPAIRS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = IntCounterVec::new(
        prometheus::Opts::new(
            "slipway_reconcile_repairs_total",
            "Repairs the reconciler made to bring the target back to the desired state",
        ),
        &["kind"],
    )
    .expect("valid metric");
    // Fails only for a duplicate name, which the first test run shows.
    prometheus::register(Box::new(counter.clone())).expect("metric names are unique");
    counter
});

/// `slipway_reconcile_failures_total`: passes or apps the reconciler could
/// not bring back (it tries again next pass).
pub static FAILURES: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    let counter = prometheus::IntCounter::new(
        "slipway_reconcile_failures_total",
        "Reconciler passes or app repairs that failed (retried next pass)",
    )
    .expect("valid metric");
    prometheus::register(Box::new(counter.clone())).expect("metric names are unique");
    counter
});

/// A live release as the desired state names it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveRelease {
    pub id: Uuid,
    pub app_id: Uuid,
    pub deployment_id: Uuid,
    pub container_name: String,
    pub host_port: Option<i32>,
    /// Every replica's port (`host_port` is the first's); `None` for a
    /// release deployed before replicas existed.
    pub host_ports: Option<Vec<i32>>,
    pub app: String,
    pub project: String,
}

/// What the reconciler works with: the same engine, Caddy and target
/// settings as the deploy handler.
pub struct Reconciler {
    pub pool: PgPool,
    pub engine: Engine,
    pub caddy: CaddyAdmin,
    pub target: LocalTarget,
    pub secrets: Option<SecretBox>,
}

impl Reconciler {
    /// Passes every `interval` until `shutdown`; a failed pass is logged
    /// and the next one tries again.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        LazyLock::force(&REPAIRS);
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
        let releases: Vec<LiveRelease> = sqlx::query_as(&format!(
                "SELECT r.id, r.app_id, r.deployment_id, r.container_name, r.host_port, r.host_ports,
                        a.name AS app, p.name AS project
                 FROM releases r JOIN apps a ON a.id = r.app_id JOIN projects p ON p.id = a.project_id
                 WHERE r.state = 'live' AND a.destroying_at IS NULL AND {ON_LOCAL_TARGET}
                 ORDER BY r.app_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut repairs = 0;
        let mut server_checked = false;
        for release in releases {
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
            if !self.still_live(&release).await? {
                app_lock.release().await;
                continue;
            }
            let repaired = self.repair(&release, &mut server_checked).await;
            app_lock.release().await;
            match repaired {
                Ok(n) => repairs += n,
                Err(error) => {
                    FAILURES.inc();
                    tracing::warn!(
                        app = %release.app_id, release = %release.container_name,
                        error = %format!("{error:#}"),
                        "reconciler could not repair the app; trying again next pass"
                    );
                }
            }
        }
        Ok(repairs)
    }

    /// Whether the release is still the app's live one and no deployment
    /// of the app is in the deploy stage.
    async fn still_live(&self, release: &LiveRelease) -> anyhow::Result<bool> {
        let live: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM releases r JOIN apps a ON a.id = r.app_id
             WHERE r.id = $1 AND r.state = 'live' AND a.destroying_at IS NULL)",
        )
        .bind(release.id)
        .fetch_one(&self.pool)
        .await?;
        Ok(live && !self.deploy_in_flight(release.app_id).await?)
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

/// Counts and logs one repair.
fn repaired(kind: &'static str, release: &LiveRelease, detail: &str) {
    REPAIRS.with_label_values(&[kind]).inc();
    tracing::info!(
        repair = kind,
        app = %format!("{}.{}", release.app, release.project),
        release = %release.container_name,
        "reconciler: {detail}"
    );
}
