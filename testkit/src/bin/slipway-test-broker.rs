//! `slipway-test-broker`: a test-owned RabbitMQ node for one whole test run,
//! so the suite never depends on the state of a broker it does not own.
//! Prints the node's AMQP URL on the first line of stdout once the node is
//! up, then runs until SIGTERM or SIGINT, stops the node and removes its data.

use slipway_testkit::RabbitNode;
use std::io::Write;
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut node = RabbitNode::start().await?;
    node.set_policy(
        "slipway-stage-queues",
        r"^(.+\.)?slipway\.(build|provision|deploy)$",
        r#"{"delivery-limit":5,"max-length":1000000,"overflow":"reject-publish"}"#,
        "queues",
    )
    .await?;
    println!("{}", node.amqp_url());
    std::io::stdout().flush()?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    node.stop().await?;
    drop(node);
    Ok(())
}
