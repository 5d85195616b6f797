//! Reliability on real processes: a worker killed with SIGKILL mid-job, a
//! RabbitMQ node and a Postgres cluster restarted mid-run, SIGTERM drains,
//! cancellation reaching a running job, and the outbox publishing nothing
//! for a rolled-back transaction.

mod common;

use common::{Fleet, Options, TERMINAL};
use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::{process_group_alive, PgCluster, RabbitNode};
use std::time::{Duration, Instant};
use uuid::Uuid;

const T: Duration = Duration::from_secs(90);

async fn all_live_once(fleet: &Fleet, ids: &[Uuid]) -> anyhow::Result<()> {
    for id in ids {
        let deployment = fleet.wait_state(*id, TERMINAL, T).await?;
        assert_eq!(deployment["state"], "live", "{deployment:#}");
        let effects = fleet.effects(*id).await?;
        assert_eq!(
            effects,
            vec![
                ("build".into(), 1),
                ("deploy".into(), 1),
                ("provision".into(), 1)
            ],
            "{id}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_job_of_a_killed_worker_runs_again_on_another_and_its_effect_happens_once(
) -> anyhow::Result<()> {
    let mut fleet = Fleet::start(Options {
        build_workers: 2,
        ..Options::default()
    })
    .await?;
    let id = fleet.probe(json!({"duration_ms": 4000})).await?;
    let holder = fleet.wait_running(id, "build", T).await?;
    let child = fleet.child_pgid(id, "build", T).await?;
    fleet.worker(&holder).proc.sigkill()?;
    let killed_at = Instant::now();

    let deployment = fleet.wait_state(id, TERMINAL, T).await?;
    assert_eq!(deployment["state"], "live", "{deployment:#}");
    let attempts: Vec<(String, Option<String>, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT a.worker, a.outcome, a.claimed_at FROM job_attempts a JOIN jobs j ON j.id = a.job_id
         WHERE j.deployment_id = $1 AND j.stage = 'build' ORDER BY a.claimed_at",
    )
    .bind(id)
    .fetch_all(&fleet.db.pool)
    .await?;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(
        (attempts[0].0.as_str(), attempts[0].1.as_deref()),
        (holder.as_str(), Some("lost"))
    );
    assert_ne!(attempts[1].0, holder);
    assert_eq!(attempts[1].1.as_deref(), Some("succeeded"));
    assert_eq!(
        fleet.effects(id).await?[0],
        ("build".into(), 1),
        "the effect happened once"
    );
    // The killed worker's child died with it (no orphan keeps running the job).
    assert!(
        !process_group_alive(child),
        "orphaned child {child} still running"
    );
    eprintln!(
        "rescued and finished {:?} after the kill",
        killed_at.elapsed()
    );
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_paused_worker_that_lost_its_lease_cannot_commit_a_late_result() -> anyhow::Result<()> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let mut fleet = Fleet::start(Options {
        build_workers: 2,
        ..Options::default()
    })
    .await?;
    let id = fleet.probe(json!({"duration_ms": 2000})).await?;
    let holder = fleet.wait_running(id, "build", T).await?;
    let pid = Pid::from_raw(fleet.worker(&holder).proc.pid() as i32);
    kill(pid, Signal::SIGSTOP)?;
    // The sweeper of the other worker takes the job back and runs it again.
    slipway_testkit::wait_until(T, "another worker claims the job", || async {
        let claims: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM job_attempts a JOIN jobs j ON j.id = a.job_id
             WHERE j.deployment_id = $1 AND j.stage = 'build'",
        )
        .bind(id)
        .fetch_one(&fleet.db.pool)
        .await
        .unwrap_or(0);
        claims == 2
    })
    .await?;
    // Let the paused worker's child finish its work, then wake the worker:
    // it now holds a finished job whose lease is gone.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    kill(pid, Signal::SIGCONT)?;
    let deployment = fleet.wait_state(id, TERMINAL, T).await?;
    assert_eq!(deployment["state"], "live", "{deployment:#}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fleet.effects(id).await?[0],
        ("build".into(), 1),
        "the late result wrote nothing\n{}",
        fleet.logs()
    );
    let first: Option<String> = sqlx::query_scalar(
        "SELECT a.outcome FROM job_attempts a JOIN jobs j ON j.id = a.job_id
         WHERE j.deployment_id = $1 AND j.stage = 'build' AND a.worker = $2",
    )
    .bind(id)
    .bind(&holder)
    .fetch_one(&fleet.db.pool)
    .await?;
    assert_eq!(first.as_deref(), Some("lost"));
    // A sweeper counted one rescue; the woken worker, finding its lease
    // gone (by heartbeat or by its fenced commit), counted one lost lease.
    slipway_testkit::wait_until(T, "the lost lease counted", || async {
        fleet
            .metric("build", r#"slipway_leases_lost_total{stage="build"}"#)
            .await
            .unwrap_or(0)
            >= 1
    })
    .await?;
    assert_eq!(
        fleet
            .metric("build", r#"slipway_leases_lost_total{stage="build"}"#)
            .await?,
        1
    );
    // Any worker's sweeper (of any stage) may have been the one.
    let mut rescued = 0;
    for stage in ["build", "provision", "deploy"] {
        rescued += fleet
            .metric(stage, r#"slipway_jobs_rescued_total{stage="build"}"#)
            .await?;
    }
    assert_eq!(rescued, 1);
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_broker_restart_mid_run_loses_nothing() -> anyhow::Result<()> {
    let mut broker = RabbitNode::start().await?;
    let fleet = Fleet::start(Options {
        amqp_url: broker.amqp_url(),
        ..Options::default()
    })
    .await?;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(fleet.probe(json!({"duration_ms": 400})).await?);
    }
    fleet.wait_running(ids[0], "build", T).await?;
    broker.stop().await?;
    // Accepted while the broker is down: they wait in the outbox.
    for _ in 0..4 {
        ids.push(fleet.probe(json!({"duration_ms": 50})).await?);
    }
    broker.restart().await?;
    all_live_once(&fleet, &ids).await?;
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_postgres_restart_mid_run_loses_nothing() -> anyhow::Result<()> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let mut cluster = PgCluster::start().await?;
    let mut fleet = Fleet::start(Options {
        postgres_admin_url: Some(cluster.admin_url()),
        // Free slots, so deliveries during the outage are claimed at once.
        // An outage longer than the pool's 5 s acquire timeout, so claims
        // and commits really fail meanwhile; leases outlive it.
        env: vec![
            ("SLIPWAY_CONCURRENCY", "16".into()),
            ("SLIPWAY_LEASE_TIMEOUT", "20s".into()),
        ],
        ..Options::default()
    })
    .await?;
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(fleet.probe(json!({"duration_ms": 700})).await?);
    }
    fleet.wait_running(ids[0], "build", T).await?;
    // Deliveries that arrive while Postgres is down must wait for it, not be
    // acked unclaimed: pause the build worker so new deliveries pile up in
    // its prefetch, stop Postgres, then let the worker take them.
    let build = fleet
        .workers
        .iter()
        .find(|w| w.stage == "build")
        .map(|w| w.id.clone())
        .expect("a build worker");
    let pid = Pid::from_raw(fleet.worker(&build).proc.pid() as i32);
    kill(pid, Signal::SIGSTOP)?;
    for _ in 0..3 {
        ids.push(fleet.probe(json!({"duration_ms": 50})).await?);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.stop().await?;
    kill(pid, Signal::SIGCONT)?;
    // Meanwhile the API says the database is away: a 503 with Retry-After
    // and a stable code, for a read and for a write, not a 500.
    let outage = Instant::now();
    for (method, path, body) in [
        (Method::POST, "/v1/probes", Some(json!({"duration_ms": 50}))),
        (Method::GET, &*format!("/v1/deployments/{}", ids[0]), None),
    ] {
        let asked = Instant::now();
        let mut request = fleet
            .client
            .request(method, format!("{}{path}", fleet.api_url))
            .bearer_auth(&fleet.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await?;
        let (status, retry_after) = (
            answer.status(),
            answer.headers().get("retry-after").cloned(),
        );
        let body: Value = answer.json().await?;
        println!(
            "{path} while Postgres is down: {status} in {:?}",
            asked.elapsed()
        );
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(body["code"], "database_unavailable", "{body}");
        assert!(retry_after.is_some(), "{path}: no Retry-After");
    }
    if let Some(rest) = Duration::from_secs(8).checked_sub(outage.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    cluster.restart().await?;
    all_live_once(&fleet, &ids).await?;
    // Log lines written across the outage are all there, numbered without gaps.
    for id in &ids {
        let seqs: Vec<i64> = sqlx::query_scalar(
            "SELECT seq FROM deployment_logs WHERE deployment_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&fleet.db.pool)
        .await?;
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
        assert!(seqs.len() >= 12, "{id}: {} lines", seqs.len());
    }
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn sigterm_lets_the_running_job_finish_before_the_worker_exits() -> anyhow::Result<()> {
    let mut fleet = Fleet::start(Options::default()).await?;
    let id = fleet.probe(json!({"duration_ms": 2500})).await?;
    let holder = fleet.wait_running(id, "build", T).await?;
    let worker = fleet.worker(&holder);
    worker.proc.sigterm()?;
    let status = worker
        .proc
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("worker exits");
    assert!(status.success(), "{status:?}");
    let (state, outcome): (String, Option<String>) = sqlx::query_as(
        "SELECT j.state, a.outcome FROM jobs j JOIN job_attempts a ON a.job_id = j.id
         WHERE j.deployment_id = $1 AND j.stage = 'build'",
    )
    .bind(id)
    .fetch_one(&fleet.db.pool)
    .await?;
    assert_eq!(
        (state.as_str(), outcome.as_deref()),
        ("succeeded", Some("succeeded"))
    );
    let deployment = fleet.wait_state(id, TERMINAL, T).await?;
    assert_eq!(deployment["state"], "live");
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn sigterm_hands_back_a_job_that_outlives_the_grace_period() -> anyhow::Result<()> {
    let mut fleet = Fleet::start(Options {
        build_workers: 0,
        ..Options::default()
    })
    .await?;
    let first = fleet.spawn_worker_with("build", &[("SLIPWAY_SHUTDOWN_GRACE", "1s")])?;
    let id = fleet.probe(json!({"duration_ms": 3000})).await?;
    fleet.wait_running(id, "build", T).await?;
    let child = fleet.child_pgid(id, "build", T).await?;
    let worker = fleet.worker(&first);
    worker.proc.sigterm()?;
    let status = worker
        .proc
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("worker exits");
    assert!(status.success(), "{status:?}");
    assert!(
        !process_group_alive(child),
        "the handed-back job's child was stopped"
    );
    fleet.spawn_worker("build")?;
    let deployment = fleet.wait_state(id, TERMINAL, T).await?;
    assert_eq!(deployment["state"], "live", "{deployment:#}");
    let outcomes: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT a.outcome FROM job_attempts a JOIN jobs j ON j.id = a.job_id
         WHERE j.deployment_id = $1 AND j.stage = 'build' ORDER BY a.claimed_at",
    )
    .bind(id)
    .fetch_all(&fleet.db.pool)
    .await?;
    assert_eq!(
        outcomes,
        [Some("handed_back".to_owned()), Some("succeeded".to_owned())]
    );
    let attempts: i32 = sqlx::query_scalar(
        "SELECT attempts FROM jobs WHERE deployment_id = $1 AND stage = 'build'",
    )
    .bind(id)
    .fetch_one(&fleet.db.pool)
    .await?;
    assert_eq!(attempts, 1, "a hand-back does not use up an attempt");
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn cancel_reaches_a_running_job_and_stops_its_process() -> anyhow::Result<()> {
    let fleet = Fleet::start(Options::default()).await?;
    let id = fleet.probe(json!({"duration_ms": 60000})).await?;
    fleet.wait_running(id, "build", T).await?;
    let child = fleet.child_pgid(id, "build", T).await?;
    assert!(process_group_alive(child));
    let (status, body) = fleet
        .call(Method::POST, &format!("/v1/deployments/{id}/cancel"), None)
        .await?;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    let asked = Instant::now();
    slipway_testkit::wait_until(
        Duration::from_secs(20),
        "the job's process is gone",
        || async { !process_group_alive(child) },
    )
    .await?;
    eprintln!("child gone {:?} after the cancel answered", asked.elapsed());
    let deployment = fleet.deployment(id).await?;
    assert_eq!(deployment["state"], "cancelled");
    let (status, body) = fleet
        .call(Method::POST, &format!("/v1/deployments/{id}/cancel"), None)
        .await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("already_finished"))
    );
    assert!(
        fleet.effects(id).await?.is_empty(),
        "a cancelled job commits no effect"
    );
    fleet.stop().await;
    Ok(())
}

/// Creates and cancels from 16 concurrent clients while the workers claim,
/// run and finish the same deployments: no answer is a 5xx (no deadlock
/// reaches a client), and every deployment whose cancel was answered 2xx
/// ends `cancelled`, never `live`.
#[tokio::test]
async fn a_create_and_cancel_storm_gets_no_5xx_and_every_accepted_cancel_wins() -> anyhow::Result<()>
{
    const CLIENTS: usize = 16;
    const ROUNDS: usize = 50;
    let fleet = Fleet::start(Options {
        env: vec![("SLIPWAY_CONCURRENCY", "16".into())],
        ..Options::default()
    })
    .await?;
    // Apps whose builds fail to fetch (nothing listens there): their
    // deployments take the app's lane, supersede each other, and end.
    for n in 0..2 {
        let (status, app) = fleet
            .call(
                Method::POST,
                "/v1/apps",
                Some(
                    json!({"name": format!("storm-{n}"), "git_url": "git://127.0.0.1:9/none.git"}),
                ),
            )
            .await?;
        anyhow::ensure!(status == 201, "create app: {status} {app}");
    }
    let fleet = std::sync::Arc::new(fleet);
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let fleet = fleet.clone();
        clients.spawn(async move {
            let mut answers: Vec<(String, u16, Value)> = Vec::new();
            let mut cancelled = Vec::new();
            for round in 0..ROUNDS {
                let (path, body) = if round % 3 == 0 {
                    (
                        format!("/v1/apps/storm-{}/deployments", client % 4),
                        json!({}),
                    )
                } else {
                    (
                        "/v1/probes".to_owned(),
                        json!({"duration_ms": (round * 7) % 40}),
                    )
                };
                let (status, created) = fleet.call(Method::POST, &path, Some(body)).await?;
                answers.push((format!("POST {path}"), status, created.clone()));
                let Some(id) = created["id"].as_str().map(str::to_owned) else {
                    continue;
                };
                // Cancel at different points: before the claim, while a
                // stage runs, around the outcome.
                tokio::time::sleep(Duration::from_millis(
                    ((client * 13 + round * 5) % 30) as u64,
                ))
                .await;
                let path = format!("/v1/deployments/{id}/cancel");
                let (status, answer) = fleet.call(Method::POST, &path, None).await?;
                answers.push((format!("POST {path}"), status, answer));
                if (200..300).contains(&status) {
                    cancelled.push(id.parse::<Uuid>()?);
                }
            }
            anyhow::Ok((answers, cancelled))
        });
    }
    let (mut answers, mut cancelled) = (Vec::new(), Vec::new());
    while let Some(result) = clients.join_next().await {
        let (a, c) = result??;
        answers.extend(a);
        cancelled.extend(c);
    }
    let server_errors: Vec<_> = answers.iter().filter(|(_, s, _)| *s >= 500).collect();
    println!(
        "{} requests, {} accepted cancels, {} 5xx",
        answers.len(),
        cancelled.len(),
        server_errors.len()
    );
    assert!(server_errors.is_empty(), "{server_errors:#?}");
    assert!(!cancelled.is_empty(), "no cancel was accepted");
    for id in &cancelled {
        let deployment = fleet.wait_state(*id, TERMINAL, T).await?;
        assert_eq!(deployment["state"], "cancelled", "{deployment:#}");
    }
    match std::sync::Arc::try_unwrap(fleet) {
        Ok(fleet) => fleet.stop().await,
        Err(_) => unreachable!("every client has finished"),
    }
    Ok(())
}
