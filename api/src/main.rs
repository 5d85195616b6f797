//! `slipway-api`: settings, telemetry, serve until SIGTERM.

use anyhow::Context;
use slipway_shared::config::{ApiSettings, ArchiveSettings};

/// mimalloc: the hot paths allocate many small, short-lived buffers (rows,
/// JSON, AMQP frames) across threads, which it serves with less CPU than
/// the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("create-admin") {
        let common =
            slipway_shared::config::CommonSettings::from_env().context("invalid configuration")?;
        return slipway_api::bootstrap::command(&common.database_url, &args[1..]).await;
    }
    let settings = ApiSettings::from_env().context("invalid configuration")?;
    let archives = ArchiveSettings::from_env().context("invalid configuration")?;
    slipway_shared::telemetry::init("slipway-api", settings.common.log_json);
    let shutdown = slipway_shared::shutdown::on_signal();
    slipway_api::Application::build_with(settings, archives, shutdown)
        .await?
        .run()
        .await
}
