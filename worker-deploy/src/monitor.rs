//! The health monitor: every `SLIPWAY_HEALTH_MONITOR_INTERVAL` the deploy
//! worker checks each serving release on its target once (the app's
//! `health_path` on the release's loopback port) and records the result on
//! the release, which the API shows as the app's `status.health`. The API
//! itself never talks to the target. With several deploy workers each one
//! checks; the last result wins, which is what a status needs.
//!
//! Only apps on the local target are checked: a release's port on an ssh
//! target is on that server's loopback, and a monitor over SSH is not built
//! yet. Their `status.health` is what the deploy's own check said.

use crate::health::{wait_healthy, HealthCheck};
use crate::release;
use crate::target::RuntimeSettings;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// SQL condition on `apps a`: the app runs on the local target (no target,
/// or a target of kind `local`). The runtime-log collector uses it too.
pub const ON_LOCAL_TARGET: &str = "(a.target_id IS NULL
     OR EXISTS (SELECT 1 FROM targets t WHERE t.id = a.target_id AND t.kind = 'local'))";

#[derive(sqlx::FromRow)]
struct Serving {
    id: Uuid,
    host_port: i32,
    host_ports: Option<Vec<i32>>,
    runtime_settings: Option<serde_json::Value>,
}

/// Runs until `shutdown`.
pub async fn run(pool: PgPool, interval: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(error) = check_all(&pool).await {
            tracing::warn!(%error, "health monitor: cannot read the serving releases");
        }
    }
}

/// Checks every serving release once.
pub async fn check_all(pool: &PgPool) -> sqlx::Result<usize> {
    let serving: Vec<Serving> = sqlx::query_as(&format!(
        "SELECT r.id, r.host_port, r.host_ports, a.runtime_settings FROM releases r JOIN apps a ON a.id = r.app_id
         WHERE r.state = 'live' AND r.host_port IS NOT NULL AND {ON_LOCAL_TARGET}"
    ))
    .fetch_all(pool)
    .await?;
    for release in &serving {
        let settings =
            RuntimeSettings::parse(&release.runtime_settings.clone().unwrap_or_default())
                .unwrap_or_default();
        let check = HealthCheck {
            path: settings.health_path.clone(),
            interval: Duration::ZERO,
            timeout: settings.health_timeout,
            attempts: 1,
        };
        let ports = release
            .host_ports
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| vec![release.host_port]);
        // Healthy when every replica is; the first failure is the detail.
        let (mut ok, mut detail) = (true, String::new());
        for port in &ports {
            let port = u16::try_from(*port).unwrap_or_default();
            match wait_healthy(port, &check).await {
                Ok(healthy) if ok => {
                    detail = format!(
                        "GET {} answered {} on {} replica(s)",
                        check.path,
                        healthy.status,
                        ports.len()
                    )
                }
                Ok(_) => {}
                Err(error) if ok => (ok, detail) = (false, error.to_string()),
                Err(_) => {}
            }
        }
        release::record_health(pool, release.id, ok, &detail).await?;
    }
    Ok(serving.len())
}
