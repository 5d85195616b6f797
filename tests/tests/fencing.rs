//! Fencing on the database functions themselves: once a lease is taken back,
//! the old holder's heartbeat and outcome change nothing.

use async_trait::async_trait;
use slipway_shared::db::{deployments, jobs};
use slipway_shared::job::{Effect, Effects, JobInfo, JobMessage, Stage};
use slipway_shared::queue::topology::QueueNames;
use sqlx::PgConnection;
use std::time::Duration;
use uuid::Uuid;

struct Mark;

#[async_trait]
impl Effect for Mark {
    async fn apply(&self, conn: &mut PgConnection, job: &JobInfo) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO probe_effects (job_id, lease_token, deployment_id, stage, worker, child_pid)
             VALUES ($1, $2, $3, 'build', $4, 0)",
        )
        .bind(job.job_id)
        .bind(job.lease_token)
        .bind(job.deployment_id)
        .bind(&job.worker_id)
        .execute(conn)
        .await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_stale_lease_holder_cannot_heartbeat_or_commit() -> anyhow::Result<()> {
    let db = slipway_testkit::fresh_database().await?;
    let names = QueueNames::new("fencing.");
    let project = Uuid::now_v7();
    sqlx::query("INSERT INTO projects (id, name) VALUES ($1, 'p')")
        .bind(project)
        .execute(&db.pool)
        .await?;
    let mut tx = db.pool.begin().await?;
    let created = deployments::create(
        &mut tx,
        &names,
        deployments::NewDeployment {
            project_id: project,
            app_id: None,
            kind: "probe",
            source: serde_json::json!({}),
            probe: None,
        },
    )
    .await?;
    tx.commit().await?;
    let job_id: Uuid = sqlx::query_scalar("SELECT id FROM jobs WHERE deployment_id = $1")
        .bind(created.id)
        .fetch_one(&db.pool)
        .await?;
    let message = JobMessage {
        job_id,
        deployment_id: created.id,
        kind: "probe.v1".into(),
        stage: Stage::Build,
    };

    let first = jobs::claim(&db.pool, &message, "w1", 3)
        .await?
        .expect("claimable");
    assert!(
        jobs::claim(&db.pool, &message, "w2", 3).await?.is_none(),
        "a duplicate delivery claims nothing"
    );
    // w1 stops heartbeating; the sweeper takes the job back, w2 claims it.
    sqlx::query("UPDATE jobs SET heartbeat_at = now() - interval '1 hour' WHERE id = $1")
        .bind(job_id)
        .execute(&db.pool)
        .await?;
    let rescued = jobs::sweep(&db.pool, &names, Duration::from_secs(10)).await?;
    assert_eq!(rescued, vec![job_id]);
    let second = jobs::claim(&db.pool, &message, "w2", 3)
        .await?
        .expect("re-claimable after the sweep");
    assert!(second.lease_token > first.lease_token);

    let effects: Effects = vec![Box::new(Mark)];
    assert!(
        !jobs::heartbeat(&db.pool, &first).await?,
        "the stale lease cannot be renewed"
    );
    assert!(
        !jobs::complete(
            &db.pool,
            &names,
            &first,
            &jobs::Outcome::Succeeded,
            &effects
        )
        .await?
    );
    assert!(jobs::heartbeat(&db.pool, &second).await?);
    assert!(
        jobs::complete(
            &db.pool,
            &names,
            &second,
            &jobs::Outcome::Succeeded,
            &effects
        )
        .await?
    );
    assert!(
        !jobs::complete(
            &db.pool,
            &names,
            &second,
            &jobs::Outcome::Succeeded,
            &effects
        )
        .await?,
        "twice is once"
    );

    let tokens: Vec<i64> =
        sqlx::query_scalar("SELECT lease_token FROM probe_effects WHERE job_id = $1")
            .bind(job_id)
            .fetch_all(&db.pool)
            .await?;
    assert_eq!(
        tokens,
        vec![second.lease_token],
        "exactly one effect, from the current holder"
    );
    let state: String = sqlx::query_scalar("SELECT state FROM deployments WHERE id = $1")
        .bind(created.id)
        .fetch_one(&db.pool)
        .await?;
    assert_eq!(state, "built");
    let next: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE deployment_id = $1 AND stage = 'provision'",
    )
    .bind(created.id)
    .fetch_one(&db.pool)
    .await?;
    assert_eq!(next, 1, "the next stage's job was created once");
    db.drop_database().await;
    Ok(())
}
