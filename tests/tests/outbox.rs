//! The transactional outbox on real Postgres and RabbitMQ: a rolled-back
//! transaction publishes nothing, a committed one is published once.

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use slipway_shared::db::deployments::{self, NewDeployment};
use slipway_shared::job::{JobMessage, Stage};
use slipway_shared::queue::{relay, topology};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[tokio::test]
async fn a_rolled_back_transaction_publishes_nothing() -> anyhow::Result<()> {
    let db = slipway_testkit::fresh_database().await?;
    let names = topology::QueueNames::new(format!("{}.", slipway_testkit::unique_prefix()));
    let amqp = slipway_testkit::rabbit_url();
    let connection =
        lapin::Connection::connect(&amqp, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    topology::declare_stage(&channel, &names, Stage::Build, &[Duration::from_secs(1)]).await?;

    let project = Uuid::now_v7();
    sqlx::query("INSERT INTO projects (id, name) VALUES ($1, 'p')")
        .bind(project)
        .execute(&db.pool)
        .await?;
    let new = || NewDeployment {
        project_id: project,
        app_id: None,
        kind: "probe",
        source: serde_json::json!({}),
        probe: Some(serde_json::json!({})),
    };
    let mut rolled_back = db.pool.begin().await?;
    let ghost = deployments::create(&mut rolled_back, &names, new()).await?;
    rolled_back.rollback().await?;
    let mut committed = db.pool.begin().await?;
    let real = deployments::create(&mut committed, &names, new()).await?;
    committed.commit().await?;

    let stop = CancellationToken::new();
    let relay = tokio::spawn(relay::run(
        db.pool.clone(),
        amqp.clone().into(),
        stop.clone(),
    ));
    let mut consumer = channel
        .basic_consume(
            names.stage(Stage::Build).as_str().into(),
            "t".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let first = tokio::time::timeout(Duration::from_secs(20), consumer.next())
        .await?
        .expect("a message")?;
    let message: JobMessage = serde_json::from_slice(&first.data)?;
    assert_eq!(message.deployment_id, real.id);
    assert!(first.ack(BasicAckOptions::default()).await?);
    // Nothing else arrives: the rolled-back deployment's job never existed.
    let more = tokio::time::timeout(Duration::from_secs(3), consumer.next()).await;
    assert!(more.is_err(), "unexpected second message: {more:?}");
    assert_ne!(message.deployment_id, ghost.id);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&db.pool)
        .await?;
    assert_eq!(left, 0, "the published row was removed after its confirm");
    stop.cancel();
    relay.await?;
    db.drop_database().await;
    Ok(())
}

#[tokio::test]
async fn an_unroutable_message_stays_in_the_outbox() -> anyhow::Result<()> {
    let db = slipway_testkit::fresh_database().await?;
    // No topology declared: the stage queue does not exist, so the broker
    // returns the mandatory message and the row must stay.
    let names = topology::QueueNames::new(format!("{}.", slipway_testkit::unique_prefix()));
    let project = Uuid::now_v7();
    sqlx::query("INSERT INTO projects (id, name) VALUES ($1, 'p')")
        .bind(project)
        .execute(&db.pool)
        .await?;
    let mut tx = db.pool.begin().await?;
    deployments::create(
        &mut tx,
        &names,
        NewDeployment {
            project_id: project,
            app_id: None,
            kind: "probe",
            source: serde_json::json!({}),
            probe: None,
        },
    )
    .await?;
    tx.commit().await?;
    let stop = CancellationToken::new();
    let relay = tokio::spawn(relay::run(
        db.pool.clone(),
        slipway_testkit::rabbit_url().into(),
        stop.clone(),
    ));
    slipway_testkit::wait_until(
        Duration::from_secs(20),
        "the relay tried and recorded the failure",
        || async {
            let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM outbox")
                .fetch_one(&db.pool)
                .await
                .unwrap_or(0);
            attempts >= 1
        },
    )
    .await?;
    let error: Option<String> = sqlx::query_scalar("SELECT last_error FROM outbox")
        .fetch_one(&db.pool)
        .await?;
    assert!(error.unwrap_or_default().contains("returned"));
    stop.cancel();
    relay.await?;
    db.drop_database().await;
    Ok(())
}
