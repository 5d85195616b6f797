//! Starting a worker process: database pool and migrations, the metrics
//! server, the log sink, and the stage's runtime with the probe handler (and
//! the server destroy's last step) plus the stage's own handlers, run until `shutdown`.

use crate::config::WorkerSettings;
use crate::job::Stage;
use crate::logsink::LogSink;
use crate::probe::ProbeHandler;
use crate::queue::runtime::Runtime;
use crate::{db, metrics};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the log sink flushes at the latest.
pub const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(50);

pub async fn run(
    stage: Stage,
    settings: WorkerSettings,
    add_handlers: impl FnOnce(Runtime) -> Runtime,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool = db::pool(
        &settings.common.database_url,
        u32::from(settings.concurrency) + 6,
    )?;
    db::migrate(&pool).await?;
    let metrics_addr = metrics::serve(settings.metrics_addr, shutdown.clone()).await?;
    tracing::info!(%stage, %metrics_addr, worker = %settings.worker_id, concurrency = settings.concurrency, "worker starting");
    // The sink outlives the runtime's drain, so the last jobs' lines land.
    let sink_stop = CancellationToken::new();
    let (logs, sink_task) = LogSink::start(pool.clone(), LOG_FLUSH_INTERVAL, sink_stop.clone());
    let runtime = add_handlers(
        Runtime::new(pool, settings, stage, logs)
            .with_handler(ProbeHandler)
            .with_handler(crate::server_done::ServerDone),
    );
    let result = Arc::new(runtime).run(shutdown).await;
    sink_stop.cancel();
    let _ = sink_task.await;
    tracing::info!(%stage, "worker stopped");
    result
}
