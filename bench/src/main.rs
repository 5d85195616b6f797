//! `slipway-bench [--own-broker] SCENARIO` with SCENARIO one of `queue`,
//! `logs`, `api`, `recovery`, `build`, `deploy`, `cli`, `idle`, `apps-list`,
//! `install` or `all` (the quick ones: `queue`, `logs`, `api`, `recovery`).
//! Each scenario starts what it needs (a fresh database, a unique queue
//! prefix, in-process runtimes and API, or the real worker binaries),
//! prints one JSON object per line on stdout, cleans up and exits 0. Progress and warnings go to stderr. The broker is
//! the shared one (`slipway_testkit::rabbit_url()`), or with `--own-broker`
//! a RabbitMQ node started for this run on a free 127.0.0.1 port (with the
//! same stage-queue policy as `scripts/services.sh`) and stopped after it.

mod api;
mod apps_list;
mod build;
mod cli;
mod deploy;
mod harness;
mod idle;
mod install;
mod logs;
mod queue;
mod recovery;
mod stats;

use slipway_testkit::RabbitNode;
use std::io::Write;

const USAGE: &str =
    "usage: slipway-bench [--own-broker] queue|logs|api|recovery|build|deploy|cli|idle|apps-list|install|all";

/// mimalloc: the hot paths allocate many small, short-lived buffers (rows,
/// JSON, AMQP frames) across threads, which it serves with less CPU than
/// the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let own_broker = args.iter().any(|a| a == "--own-broker");
    args.retain(|a| a != "--own-broker");
    let scenarios: Vec<&str> = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["all"] => vec!["queue", "logs", "api", "recovery"],
        [one @ ("queue" | "logs" | "api" | "recovery" | "build" | "deploy" | "cli" | "idle"
        | "apps-list" | "install")] => {
            vec![one]
        }
        ["-h" | "--help"] => {
            eprintln!("{USAGE}");
            return Ok(());
        }
        _ => anyhow::bail!("{USAGE}"),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,sqlx=error,lapin=error".into()),
        )
        .init();

    let mut broker = None;
    let amqp_url = if own_broker {
        eprintln!("[bench] starting a RabbitMQ node of our own");
        let node = RabbitNode::start().await?;
        let policy = r#"{"delivery-limit":5,"max-length":1000000,"overflow":"reject-publish"}"#;
        let pattern = r"^(.+\.)?slipway\.(build|provision|deploy)$";
        node.set_policy("slipway-stage-queues", pattern, policy, "queues")
            .await?;
        let url = node.amqp_url();
        broker = Some(node);
        url
    } else {
        slipway_testkit::rabbit_url()
    };

    let result = run_all(&scenarios, &amqp_url).await;
    if let Some(mut node) = broker {
        if let Err(error) = node.stop().await {
            eprintln!("[bench] stopping our RabbitMQ node: {error:#}");
        }
    }
    result
}

async fn run_all(scenarios: &[&str], amqp_url: &str) -> anyhow::Result<()> {
    for scenario in scenarios {
        eprintln!("[bench] scenario {scenario}");
        if *scenario == "build" {
            // One line per example, printed as each is measured.
            build::run(amqp_url).await?;
            continue;
        }
        if *scenario == "idle" {
            // One line per app count.
            idle::run(amqp_url).await?;
            continue;
        }
        if *scenario == "deploy" {
            // One line per measure.
            deploy::run(amqp_url).await?;
            continue;
        }
        let line = match *scenario {
            "queue" => queue::run(amqp_url).await?,
            "logs" => logs::run(amqp_url).await?,
            "api" => api::run(amqp_url).await?,
            "cli" => cli::run(amqp_url).await?,
            "apps-list" => apps_list::run(amqp_url).await?,
            "install" => install::run(amqp_url).await?,
            _ => recovery::run(amqp_url).await?,
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}
