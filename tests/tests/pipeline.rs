//! The probe through the real binaries: happy path, retries on the backoff
//! schedule, permanent errors, the attempt budget and dead letters with
//! re-drive, and the one-deployment-per-app lane under 50 concurrent requests.

mod common;

use common::{states, Fleet, Options, HAPPY_PATH, TERMINAL};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

type Time = chrono::DateTime<chrono::Utc>;

const T: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_probe_goes_through_all_three_stages_once() -> anyhow::Result<()> {
    let fleet = Fleet::start(Options::default()).await?;
    let id = fleet.probe(json!({"duration_ms": 50})).await?;
    let deployment = fleet.wait_state(id, TERMINAL, T).await?;
    assert_eq!(deployment["state"], "live", "{deployment:#}");
    assert_eq!(states(&deployment), HAPPY_PATH);
    // One effect per stage, each written with its job's outcome.
    let effects = fleet.effects(id).await?;
    assert_eq!(
        effects,
        vec![
            ("build".into(), 1),
            ("deploy".into(), 1),
            ("provision".into(), 1)
        ]
    );
    let (status, logs) = fleet
        .call(
            Method::GET,
            &format!("/v1/deployments/{id}/logs?after=0"),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    let lines = logs["lines"].as_array().expect("lines");
    let seqs: Vec<i64> = lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "gap-free sequence"
    );
    for stage in ["build", "provision", "deploy"] {
        assert!(
            lines
                .iter()
                .any(|l| l["stage"] == stage && l["line"] == "succeeded"),
            "{stage} logged"
        );
    }
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_retryable_error_is_retried_on_the_backoff_schedule_then_succeeds() -> anyhow::Result<()>
{
    let fleet = Fleet::start(Options::default()).await?;
    let id = fleet
        .probe(json!({"duration_ms": 10, "fail_stage": "provision", "fail_kind": "retryable", "fail_times": 2}))
        .await?;
    let deployment = fleet.wait_state(id, TERMINAL, T).await?;
    assert_eq!(deployment["state"], "live", "{deployment:#}");
    type Claim = (i32, Time, Option<Time>, Option<String>);
    let claims: Vec<Claim> = sqlx::query_as(
        "SELECT a.attempt, a.claimed_at, a.finished_at, a.outcome FROM job_attempts a JOIN jobs j ON j.id = a.job_id
         WHERE j.deployment_id = $1 AND j.stage = 'provision' ORDER BY a.attempt",
    )
    .bind(id)
    .fetch_all(&fleet.db.pool)
    .await?;
    let outcomes: Vec<_> = claims
        .iter()
        .map(|c| c.3.clone().unwrap_or_default())
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "succeeded"]);
    // Each retry names the delay tier it went through (300ms, 600ms or
    // 1200ms, chosen from the attempt number with jitter), and the next
    // attempt started no earlier than that tier's delay after the failure.
    let tiers: Vec<i64> = sqlx::query_scalar(
        "SELECT line FROM deployment_logs WHERE deployment_id = $1 AND line LIKE 'failed, will retry%' ORDER BY seq",
    )
    .bind(id)
    .fetch_all(&fleet.db.pool)
    .await?
    .iter()
    .map(|line: &String| {
        let ms = line.split(".delay.").nth(1).and_then(|rest| rest.split("ms").next()).unwrap_or_default();
        ms.parse::<i64>().expect("a delay tier in the retry line")
    })
    .collect();
    assert_eq!(tiers.len(), 2);
    assert!(
        tiers.iter().all(|t| [300, 600, 1200].contains(t)),
        "{tiers:?}"
    );
    assert_eq!(tiers[0], 300, "the first retry uses the first tier");
    let waits: Vec<i64> = claims
        .windows(2)
        .map(|w| (w[1].1 - w[0].2.expect("finished")).num_milliseconds())
        .collect();
    for (wait, tier) in waits.iter().zip(&tiers) {
        assert!(*wait >= tier - 20, "waited {wait}ms for the {tier}ms tier");
    }
    assert_eq!(fleet.effects(id).await?.len(), 3);
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_permanent_error_fails_the_deployment_at_once() -> anyhow::Result<()> {
    let fleet = Fleet::start(Options::default()).await?;
    let id = fleet
        .probe(json!({"duration_ms": 10, "fail_stage": "build", "fail_kind": "permanent"}))
        .await?;
    let deployment = fleet.wait_state(id, TERMINAL, T).await?;
    assert_eq!(deployment["state"], "failed");
    assert_eq!(deployment["error_code"], "probe_failure");
    assert_eq!(
        deployment["attempts"].as_array().map(Vec::len),
        Some(1),
        "{deployment:#}"
    );
    assert!(fleet.effects(id).await?.is_empty());
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_spent_attempt_budget_dead_letters_the_job_and_re_drive_finishes_it() -> anyhow::Result<()>
{
    let fleet = Fleet::start(Options::default()).await?;
    // Three claims fail; the budget is three attempts.
    let id = fleet
        .probe(json!({"duration_ms": 10, "fail_stage": "deploy", "fail_kind": "retryable", "fail_times": 3}))
        .await?;
    let deployment = fleet.wait_state(id, TERMINAL, T).await?;
    assert_eq!(deployment["state"], "failed");
    assert_eq!(deployment["error_code"], "attempts_exhausted");
    assert!(
        deployment["error_message"]
            .as_str()
            .unwrap_or_default()
            .contains("attempt 3 of 3"),
        "{deployment:#}"
    );

    let deadline = tokio::time::Instant::now() + T;
    let dead = loop {
        let (_, list) = fleet.call(Method::GET, "/v1/dead-jobs", None).await?;
        if list["items"][0].is_object() {
            break list["items"][0].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead job was never recorded\n{}",
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead["deployment_id"], id.to_string());
    assert_eq!(dead["stage"], "deploy");
    assert!(
        dead["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("attempts_exhausted"),
        "{dead}"
    );

    let (status, body) = fleet
        .call(
            Method::POST,
            &format!("/v1/dead-jobs/{}/redrive", dead["id"].as_str().unwrap()),
            None,
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let deployment = fleet.wait_state(id, TERMINAL, T).await?;
    assert_eq!(deployment["state"], "live", "{deployment:#}");
    let (status, body) = fleet
        .call(
            Method::POST,
            &format!("/v1/dead-jobs/{}/redrive", dead["id"].as_str().unwrap()),
            None,
        )
        .await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("already_redriven"))
    );
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_stage_that_overruns_its_time_limit_fails_and_its_process_is_stopped(
) -> anyhow::Result<()> {
    let fleet = Fleet::start(Options {
        env: vec![("SLIPWAY_STAGE_TIMEOUT", "1s".into())],
        ..Options::default()
    })
    .await?;
    let id = fleet.probe(json!({"duration_ms": 30000})).await?;
    let child = fleet.child_pgid(id, "build", T).await?;
    let deployment = fleet.wait_state(id, TERMINAL, T).await?;
    assert_eq!(deployment["state"], "failed");
    assert_eq!(deployment["error_code"], "stage_timeout", "{deployment:#}");
    assert!(
        !slipway_testkit::process_group_alive(child),
        "the overrunning child was killed"
    );
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn an_undecodable_message_is_dead_lettered_and_recorded() -> anyhow::Result<()> {
    let fleet = Fleet::start(Options::default()).await?;
    // A probe first, so the worker has declared its topology.
    let id = fleet.probe(json!({"duration_ms": 10})).await?;
    fleet.wait_state(id, TERMINAL, T).await?;
    let connection =
        lapin::Connection::connect(&fleet.amqp_url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .basic_publish(
            "".into(),
            format!("{}slipway.build", fleet.prefix).as_str().into(),
            lapin::options::BasicPublishOptions::default(),
            b"{this is not a job",
            lapin::BasicProperties::default().with_message_id("poison-1".into()),
        )
        .await?
        .await?;
    let deadline = tokio::time::Instant::now() + T;
    let reason = loop {
        let reason: Option<String> =
            sqlx::query_scalar("SELECT reason FROM dead_jobs WHERE message_id = 'poison-1'")
                .fetch_optional(&fleet.db.pool)
                .await?;
        if let Some(reason) = reason {
            break reason;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never recorded\n{}",
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(reason.starts_with("rejected"), "{reason}");
    // The worker is still fine.
    let id = fleet.probe(json!({"duration_ms": 10})).await?;
    assert_eq!(fleet.wait_state(id, TERMINAL, T).await?["state"], "live");
    fleet.stop().await;
    Ok(())
}

#[tokio::test]
async fn fifty_concurrent_requests_for_one_app_never_run_two_at_once() -> anyhow::Result<()> {
    let fleet = Fleet::start(Options {
        build_workers: 2,
        provision_workers: 2,
        deploy_workers: 2,
        ..Options::default()
    })
    .await?;
    let (status, _) = fleet
        .call(Method::POST, "/v1/apps", Some(json!({"name": "web"})))
        .await?;
    assert_eq!(status, 201);
    let requests = (0..50).map(|_| fleet.probe(json!({"app": "web", "duration_ms": 100})));
    let ids: Vec<uuid::Uuid> = futures::future::try_join_all(requests).await?;
    for id in &ids {
        fleet
            .wait_state(*id, TERMINAL, Duration::from_secs(120))
            .await?;
    }
    // Every deployment that left `queued` holds the lane from its first
    // `building` event until its terminal event; no two intervals overlap.
    let mut lanes: Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as(
            "SELECT min(at) FILTER (WHERE to_state = 'building'), max(at)
         FROM deployment_events WHERE deployment_id = ANY($1)
         GROUP BY deployment_id HAVING bool_or(to_state = 'building')",
        )
        .bind(&ids)
        .fetch_all(&fleet.db.pool)
        .await?;
    lanes.sort();
    assert!(!lanes.is_empty());
    for pair in lanes.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "overlapping deployments: {pair:?}");
    }
    let (live, superseded): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'live'), count(*) FILTER (WHERE state = 'superseded')
         FROM deployments WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(&fleet.db.pool)
    .await?;
    assert_eq!(
        live + superseded,
        50,
        "every request ended live or superseded"
    );
    assert!(superseded > 0, "queued requests were superseded");
    // The newest request always runs: nothing newer can supersede it.
    let last: String = sqlx::query_scalar(
        "SELECT state FROM deployments WHERE id = ANY($1) ORDER BY id DESC LIMIT 1",
    )
    .bind(&ids)
    .fetch_one(&fleet.db.pool)
    .await?;
    assert_eq!(last, "live");
    fleet.stop().await;
    Ok(())
}
