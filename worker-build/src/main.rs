//! `slipway-worker-build`: settings, telemetry, run until SIGTERM.

use anyhow::Context;
use slipway_shared::config::WorkerSettings;

/// mimalloc: the hot paths allocate many small, short-lived buffers (rows,
/// JSON, AMQP frames) across threads, which it serves with less CPU than
/// the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("seal-pull-credential") {
        return seal_pull_credential();
    }
    let settings = WorkerSettings::from_env(slipway_worker_build::DEFAULT_STAGE_TIMEOUT)
        .context("invalid configuration")?;
    slipway_shared::telemetry::init("slipway-worker-build", settings.common.log_json);
    let shutdown = slipway_shared::shutdown::on_signal();
    slipway_worker_build::run(settings, shutdown).await
}

/// `seal-pull-credential`: reads `user:password` from stdin and prints it
/// sealed with `SLIPWAY_SECRET_KEY`, for `SLIPWAY_PULL_CREDENTIALS_FILE`
/// (stdin, so the password is never in a process listing or shell history).
fn seal_pull_credential() -> anyhow::Result<()> {
    let key = std::env::var("SLIPWAY_SECRET_KEY").context("SLIPWAY_SECRET_KEY is required")?;
    let mut login = String::new();
    std::io::stdin().read_line(&mut login)?;
    let sealed = slipway_worker_build::registries::seal_credential(&key.into(), login.trim_end())?;
    println!("{sealed}");
    Ok(())
}
