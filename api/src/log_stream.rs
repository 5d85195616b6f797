//! One shared `LISTEN` per channel and API process (`slipway_logs` for
//! deployments' log lines, `slipway_installs` for installs' changes), fanned
//! out to every SSE client, so followers do not hold a database connection
//! each. A notification's payload is ids, comma-separated.

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Clone)]
pub struct LogHub {
    tx: broadcast::Sender<Uuid>,
}

impl LogHub {
    pub fn start(pool: PgPool, shutdown: CancellationToken) -> LogHub {
        Self::start_on(pool, "slipway_logs", shutdown)
    }

    /// A hub of the ids notified on `channel`.
    pub fn start_on(pool: PgPool, channel: &'static str, shutdown: CancellationToken) -> LogHub {
        let (tx, _) = broadcast::channel(4096);
        tokio::spawn(listen(pool, channel, tx.clone(), shutdown));
        LogHub { tx }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Uuid> {
        self.tx.subscribe()
    }
}

async fn listen(
    pool: PgPool,
    channel: &'static str,
    tx: broadcast::Sender<Uuid>,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, channel, "listener cannot connect; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if listener.listen(channel).await.is_err() {
            continue;
        }
        loop {
            tokio::select! {
                notification = listener.recv() => match notification {
                    Ok(n) => {
                        for id in n.payload().split(',').filter_map(|s| s.parse().ok()) {
                            let _ = tx.send(id);
                        }
                    }
                    Err(_) => break,
                },
                _ = shutdown.cancelled() => return,
            }
        }
    }
}
