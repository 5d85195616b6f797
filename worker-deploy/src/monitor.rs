//! The health monitor: every `SLIPWAY_HEALTH_MONITOR_INTERVAL` the deploy
//! worker checks each serving release on its target once (the app's
//! `health_path` on the release's loopback port there) and records the
//! result on the release, which the API shows as the app's `status.health`.
//! The API itself never talks to the target. With several deploy workers
//! each one checks; the last result wins, which is what a status needs.
//!
//! A round groups the releases by target ([`crate::sites`]). A release on
//! an ssh target listens on that server's loopback: the round opens the
//! target's site and one more forward carrying every release port of that
//! target, and checks them through it. A target that cannot be reached
//! makes its releases' health a failure naming why (the platform cannot
//! reach the app, which is what an outside check would say too); the
//! other targets are checked all the same.

use crate::health::{wait_healthy, HealthCheck};
use crate::release;
use crate::site::Site;
use crate::sites::{self, Sites, SSH_TARGET_COLUMN, TARGET_EXISTS, TARGET_JOIN};
use crate::target::RuntimeSettings;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct Serving {
    id: Uuid,
    host_port: i32,
    host_ports: Option<Vec<i32>>,
    runtime_settings: Option<serde_json::Value>,
    ssh_target: Option<Uuid>,
}

impl Serving {
    /// Every replica's port on the release's target.
    fn ports(&self) -> Vec<u16> {
        self.host_ports
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| vec![self.host_port])
            .into_iter()
            .map(|p| u16::try_from(p).unwrap_or_default())
            .collect()
    }
}

/// Runs until `shutdown`.
pub async fn run(pool: PgPool, sites: Sites, interval: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(error) = check_all(&pool, &sites).await {
            tracing::warn!(%error, "health monitor: cannot read the serving releases");
        }
    }
}

/// Checks every serving release once; returns how many were checked.
pub async fn check_all(pool: &PgPool, sites: &Sites) -> sqlx::Result<usize> {
    let serving: Vec<Serving> = sqlx::query_as(&format!(
        "SELECT r.id, r.host_port, r.host_ports, a.runtime_settings, {SSH_TARGET_COLUMN}
         FROM releases r JOIN apps a ON a.id = r.app_id {TARGET_JOIN}
         WHERE r.state = 'live' AND r.host_port IS NOT NULL AND {TARGET_EXISTS}"
    ))
    .fetch_all(pool)
    .await?;
    let total = serving.len();
    for (target, group) in sites::by_target(serving, |s| s.ssh_target) {
        let site = match sites.open(pool, target).await {
            Ok(site) => site,
            Err(error) => {
                tracing::warn!(target = %sites::describe(target), %error,
                    "health monitor: cannot reach the target");
                let detail = format!("cannot reach {}: {error}", sites::describe(target));
                for release in &group {
                    release::record_health(pool, release.id, false, &detail).await?;
                }
                continue;
            }
        };
        check_site(pool, &site, &group).await?;
    }
    Ok(total)
}

/// Checks the releases of one target, through one forward on an ssh one.
async fn check_site(pool: &PgPool, site: &Site, group: &[Serving]) -> sqlx::Result<()> {
    let ports: Vec<u16> = group.iter().flat_map(Serving::ports).collect();
    let (here, _forward) = match site.reach_all(&ports).await {
        Ok(reached) => reached,
        Err(error) => {
            tracing::warn!(target = %site.describe(), %error,
                "health monitor: cannot forward the release ports");
            let detail = format!("cannot reach the release on {}: {error}", site.describe());
            for release in group {
                release::record_health(pool, release.id, false, &detail).await?;
            }
            return Ok(());
        }
    };
    let mut here = here.into_iter();
    for release in group {
        let settings =
            RuntimeSettings::parse(&release.runtime_settings.clone().unwrap_or_default())
                .unwrap_or_default();
        let check = HealthCheck {
            path: settings.health_path.clone(),
            interval: Duration::ZERO,
            timeout: settings.health_timeout,
            attempts: 1,
        };
        let replicas = release.ports().len();
        // Healthy when every replica is; the first failure is the detail.
        let (mut ok, mut detail) = (true, String::new());
        for port in here.by_ref().take(replicas) {
            match wait_healthy(port, &check).await {
                Ok(healthy) if ok => {
                    detail = format!(
                        "GET {} answered {} on {replicas} replica(s)",
                        check.path, healthy.status,
                    )
                }
                Ok(_) => {}
                Err(error) if ok => (ok, detail) = (false, error.to_string()),
                Err(_) => {}
            }
        }
        release::record_health(pool, release.id, ok, &detail).await?;
    }
    Ok(())
}
