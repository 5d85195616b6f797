//! The health monitor: every `SLIPWAY_HEALTH_MONITOR_INTERVAL` the deploy
//! worker checks each serving release on its target once by the app's
//! health rule (see `health`: its port listened on inside each container,
//! or its `health_path` on the release's loopback port there) and records
//! the result on the release, which the API shows as the app's `status.health`.
//! The API itself never talks to the target. With several deploy workers
//! each one checks; the last result wins, which is what a status needs.
//!
//! An idle app should cost next to nothing, so a round on the local target
//! takes one list of all its containers (state and main PID, see
//! `Engine::list_apps`; the engine's kept list while no event changed it,
//! see `engine::book`), asks the kernel here what each one listens on, and
//! writes the round's results in one statement.
//!
//! A round groups the releases by target ([`crate::sites`]). A release on
//! an ssh target listens on that server's loopback: the round opens the
//! target's site and, for the HTTP checks, one more forward carrying
//! their release ports, and checks them through it. A target that cannot be reached
//! makes its releases' health a failure naming why (the platform cannot
//! reach the app, which is what an outside check would say too); the
//! other targets are checked all the same. A release whose health says
//! `crashing` (see `watch`) keeps saying so for five minutes after its
//! last death rather than flip with each start.

use crate::engine::book::Look;
use crate::engine::{ContainerInfo, Host};
use crate::health::{wait_healthy, HealthCheck, HealthRule, Unhealthy};
use crate::release;
use crate::replicas::replica_name;
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
    container_name: String,
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

    /// The app's health rule, looked at once.
    fn rule(&self) -> HealthRule {
        let settings = RuntimeSettings::parse(&self.runtime_settings.clone().unwrap_or_default())
            .unwrap_or_default();
        HealthRule::for_app(&settings).once()
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
        "SELECT r.id, r.host_port, r.host_ports, r.container_name, a.runtime_settings, {SSH_TARGET_COLUMN}
         FROM releases r JOIN apps a ON a.id = r.app_id {TARGET_JOIN}
         WHERE r.state = 'live' AND r.host_port IS NOT NULL AND {TARGET_EXISTS}
           AND NOT (coalesce(r.health_detail, '') LIKE 'crashing:%'
                    AND r.health_checked_at > now() - interval '5 minutes')"
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

/// Checks the releases of one target: the HTTP ones through one forward
/// on an ssh one, the listening ones by looking into their containers
/// (on the local target all from one list of the engine's containers and
/// this host's `/proc`). The results are written in one statement.
async fn check_site(pool: &PgPool, site: &Site, group: &[Serving]) -> sqlx::Result<()> {
    let rules: Vec<HealthRule> = group.iter().map(Serving::rule).collect();
    let http_ports: Vec<u16> = group
        .iter()
        .zip(&rules)
        .filter(|(_, rule)| matches!(rule, HealthRule::Http(_)))
        .flat_map(|(release, _)| release.ports())
        .collect();
    let (here, _forward) = match site.reach_all(&http_ports).await {
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
    let mut listed = list_for_listening(site, &rules, Look::Kept).await;
    let mut here = here.into_iter();
    let mut results = Vec::with_capacity(group.len());
    for (release, rule) in group.iter().zip(&rules) {
        let replicas = release.ports().len();
        let (ok, detail) = match rule {
            HealthRule::Http(check) => {
                http_health(check, here.by_ref().take(replicas).collect()).await
            }
            HealthRule::Listening(_) => {
                let seen = listed.as_ref().map(|(l, _)| l.as_slice());
                let mut verdict = listening_health(site, rule, release, seen).await;
                // A kept list may be older than the container's start:
                // before an app is called unhealthy, look afresh (at most
                // once a round).
                if !verdict.0 && listed.as_ref().is_some_and(|(_, look)| *look == Look::Kept) {
                    listed = list_for_listening(site, &rules, Look::Fresh).await;
                    let seen = listed.as_ref().map(|(l, _)| l.as_slice());
                    verdict = listening_health(site, rule, release, seen).await;
                }
                verdict
            }
        };
        results.push((release.id, ok, detail));
    }
    release::record_healths(pool, &results).await
}

/// The engine's app containers in one look, when some release has the
/// listening rule and the list can stand for a look into each container
/// (the local engine's, with main PIDs); `None` otherwise or when the
/// list fails (each container is then looked at on its own).
/// `look`: whether the engine's kept list may serve (see `engine::book`).
async fn list_for_listening(
    site: &Site,
    rules: &[HealthRule],
    look: Look,
) -> Option<(Vec<ContainerInfo>, Look)> {
    let listening = rules
        .iter()
        .any(|rule| matches!(rule, HealthRule::Listening(_)));
    if !listening || !matches!(site.engine.host(), Host::Local) {
        return None;
    }
    let listed = match look {
        Look::Kept => site.engine.list_apps_kept().await,
        Look::Fresh => site.engine.list_apps().await.map(|l| (l, Look::Fresh)),
    };
    match listed {
        Ok(listed) => Some(listed),
        Err(error) => {
            tracing::debug!(%error, "health monitor: cannot list the containers; looking at each");
            None
        }
    }
}

/// Healthy when every replica answers; the first failure is the detail.
async fn http_health(check: &HealthCheck, ports: Vec<u16>) -> (bool, String) {
    let replicas = ports.len();
    let (mut ok, mut detail) = (true, String::new());
    for port in ports {
        match wait_healthy(port, check).await {
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
    (ok, detail)
}

/// Healthy when the app listens in every replica's container.
async fn listening_health(
    site: &Site,
    rule: &HealthRule,
    release: &Serving,
    listed: Option<&[ContainerInfo]>,
) -> (bool, String) {
    let ports = release.ports();
    let app_port = match rule {
        HealthRule::Listening(check) => check.port,
        HealthRule::Http(_) => 0,
    };
    for (index, port) in (0u32..).zip(&ports) {
        let name = replica_name(&release.container_name, index);
        let seen = listed.and_then(|listed| site.engine.observe_listed(listed, &name, app_port));
        match rule.check_seen(site, &name, *port, seen).await {
            Ok(_) => {}
            Err(Unhealthy::Failed(what)) => return (false, format!("{name}: {what}")),
            Err(Unhealthy::Unchecked(error)) => {
                return (false, format!("cannot check {name}: {error}"))
            }
        }
    }
    (
        true,
        format!(
            "port {app_port} listening inside the container on {} replica(s)",
            ports.len()
        ),
    )
}
