//! The broker alone, for comparison with the runtime: confirmed publishes
//! (mandatory, persistent, a window of outstanding confirms) into a fresh
//! quorum queue under the scenario's prefix, consumed on a second
//! connection with a prefetch and one ack per message.

use crate::harness::Env;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Confirmation};
use serde_json::json;
use slipway_shared::probe::PROBE_KIND;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The broker alone: confirmed publishes (window of 256) into a fresh
/// quorum queue, consumed with prefetch 64 and one ack per message.
pub async fn run(
    env: &mut Env,
    jobs: usize,
    prefetch: u16,
    window_size: usize,
) -> anyhow::Result<f64> {
    let queue = format!("{}raw", env.prefix);
    env.extra_queues.push(queue.clone());
    let (publisher, consumer) = (env.connect().await?, env.connect().await?);
    let channel = publisher.create_channel().await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.as_str().into(), durable, args)
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let reader = consumer.create_channel().await?;
    reader
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut deliveries = reader
        .basic_consume(
            queue.as_str().into(),
            "bench-raw".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let t0 = Instant::now();
    let consumed = tokio::spawn(async move {
        for _ in 0..jobs {
            let delivery = deliveries
                .next()
                .await
                .ok_or_else(|| anyhow::anyhow!("consumer closed"))??;
            delivery.ack(BasicAckOptions::default()).await?;
        }
        anyhow::Ok(Instant::now())
    });
    let mut window = FuturesUnordered::new();
    let check = |confirmation: Confirmation| match confirmation {
        Confirmation::Ack(None) => Ok(()),
        other => Err(anyhow::anyhow!("raw publish not confirmed: {other:?}")),
    };
    for _ in 0..jobs {
        if window.len() >= window_size {
            check(window.next().await.expect("window is not empty")?)?;
        }
        // The same shape and flags as a relay publish.
        let payload = json!({"job_id": Uuid::now_v7(), "deployment_id": Uuid::now_v7(),
                             "kind": PROBE_KIND, "stage": "build"});
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &serde_json::to_vec(&payload)?,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?;
        window.push(confirm);
    }
    while let Some(confirmation) = window.next().await {
        check(confirmation?)?;
    }
    let end = tokio::time::timeout(Duration::from_secs(120), consumed).await???;
    let elapsed = end - t0;
    eprintln!("[bench] queue: raw lapin loop {jobs} messages in {elapsed:.2?}");
    let _ = publisher.close(200, "done".into()).await;
    let _ = consumer.close(200, "done".into()).await;
    Ok(jobs as f64 / elapsed.as_secs_f64())
}
