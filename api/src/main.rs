//! `slipway-api`: settings, telemetry, serve until SIGTERM.

use anyhow::Context;
use slipway_shared::config::ApiSettings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = ApiSettings::from_env().context("invalid configuration")?;
    slipway_shared::telemetry::init("slipway-api", settings.common.log_json);
    let shutdown = slipway_shared::shutdown::on_signal();
    slipway_api::Application::build(settings, shutdown)
        .await?
        .run()
        .await
}
