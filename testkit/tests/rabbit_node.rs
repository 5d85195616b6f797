//! Checks that a test-owned RabbitMQ node is a usable stand-in for the
//! production broker: quorum queues work, persistent messages survive both a
//! graceful restart and a SIGKILL, feature flags needed for at-least-once
//! dead-lettering are on, and nothing is left running or on disk afterwards.

use std::time::{Duration, Instant};

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use slipway_testkit::{process_group_alive, unique_prefix, RabbitNode};

async fn channel(url: &str) -> (Connection, Channel) {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    (conn, ch)
}

async fn declare_quorum(ch: &Channel, queue: &str) {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    let opts = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare(queue.into(), opts, args)
        .await
        .expect("declare quorum queue");
}

async fn get_one(ch: &Channel, queue: &str) -> Vec<u8> {
    let msg = ch
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
        .expect("a message is in the queue");
    msg.delivery
        .ack(BasicAckOptions::default())
        .await
        .expect("ack");
    msg.delivery.data.clone()
}

#[tokio::test]
async fn quorum_messages_survive_restart_and_kill() {
    let t0 = Instant::now();
    let mut node = RabbitNode::start().await.expect("start node");
    eprintln!("RabbitNode start: {:?}", t0.elapsed());
    assert!(node.node_name().starts_with("slipway-t"));
    assert!(node
        .amqp_url()
        .contains(&format!("127.0.0.1:{}", node.port())));
    assert!(
        node.feature_flag_enabled("stream_queue").await.unwrap(),
        "stream_queue feature flag should be enabled on a fresh node"
    );

    let queue = format!("{}.work", unique_prefix());
    {
        let (conn, ch) = channel(&node.amqp_url()).await;
        declare_quorum(&ch, &queue).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        for body in [&b"first"[..], b"second"] {
            let confirm = ch
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    body,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            assert!(confirm.is_ack(), "publish must be confirmed");
        }
        conn.close(200, "bye".into()).await.unwrap();
    }

    let t1 = Instant::now();
    node.restart().await.expect("graceful restart");
    eprintln!("RabbitNode graceful restart: {:?}", t1.elapsed());
    {
        let (conn, ch) = channel(&node.amqp_url()).await;
        assert_eq!(get_one(&ch, &queue).await, b"first");
        conn.close(200, "bye".into()).await.unwrap();
    }

    let pgid = node.pgid().expect("running node has a process group");
    let t2 = Instant::now();
    node.kill().await.expect("kill");
    eprintln!("RabbitNode kill: {:?}", t2.elapsed());
    assert!(
        !process_group_alive(pgid),
        "no process of the node may survive kill"
    );

    let t3 = Instant::now();
    node.restart().await.expect("restart after kill");
    eprintln!("RabbitNode restart after kill: {:?}", t3.elapsed());
    {
        let (conn, ch) = channel(&node.amqp_url()).await;
        assert_eq!(get_one(&ch, &queue).await, b"second");
        conn.close(200, "bye".into()).await.unwrap();
    }

    let pgid = node.pgid().unwrap();
    let dir = node.data_dir().to_path_buf();
    drop(node);
    assert!(!process_group_alive(pgid), "drop must kill the node");
    assert!(!dir.exists(), "drop must remove {}", dir.display());
}

#[tokio::test]
async fn policy_and_graceful_stop() {
    let mut node = RabbitNode::start().await.expect("start node");
    node.set_policy(
        "dlx",
        "^work\\.",
        r#"{"dead-letter-exchange":"dlx","delivery-limit":3}"#,
        "queues",
    )
    .await
    .expect("set_policy");
    let policies = node
        .ctl(&["-q", "list_policies"], Duration::from_secs(30))
        .await
        .unwrap();
    assert!(policies.contains("delivery-limit"), "{policies}");

    let pgid = node.pgid().unwrap();
    let t = Instant::now();
    node.stop().await.expect("stop");
    eprintln!("RabbitNode graceful stop: {:?}", t.elapsed());
    assert!(!process_group_alive(pgid));
    assert!(
        Connection::connect(&node.amqp_url(), ConnectionProperties::default())
            .await
            .is_err(),
        "a stopped node must refuse connections"
    );
}
