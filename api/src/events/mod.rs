//! The process' one poller of the dashboard's event stream: every tick
//! (250 ms while a client is subscribed, 10 s while none is; sooner when
//! `slipway_logs` says lines were written or a client subscribes) it reads,
//! in one statement, the `project_events` rows that became final since its
//! last tick, and in one more the new log lines of every deployment and app
//! any client of this process follows; each batch is broadcast to all
//! `GET /v1/events` clients, which keep what they subscribed to. So the
//! database sees the same few queries per tick however many tabs are open.
//!
//! Finality: a row is handed out only once its xid is below the xmin of the
//! reading statement's snapshot, when every transaction that could still
//! write a lower xid has ended (see `docs/architecture.md`, "Event stream").

mod cursor;
mod read;

pub use cursor::{Cursor, EventPos};
pub use read::{
    catch_up_events, catch_up_lines, current_seq, horizon as horizon_now, LogLine, Source,
    StoredEvent,
};

use crate::log_stream::LogHub;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often the shared poller looks for new events without a wake-up
/// while a client of this process is subscribed.
pub const TICK: Duration = Duration::from_millis(250);
/// How often it looks while nobody is: an API nobody watches queries
/// nothing four times a second (most of what it cost idle), and its
/// horizon stays close enough that a first subscriber's first tick reads
/// a few seconds of events, not everything since the last client left.
pub const IDLE_TICK: Duration = Duration::from_secs(10);

/// What one tick found.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<StoredEvent>,
    pub lines: Vec<LogLine>,
}

/// Log sources followed by at least one client: how many follow each, and
/// the last sequence number the poller has read.
type Followed = HashMap<(Source, Uuid), (usize, i64)>;

#[derive(Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<Batch>>,
    followed: Arc<Mutex<Followed>>,
    /// Told when a client subscribes: the poller goes back to [`TICK`].
    subscribed: Arc<tokio::sync::Notify>,
}

impl EventHub {
    pub fn start(
        pool: PgPool,
        logs: &LogHub,
        retention: Duration,
        shutdown: CancellationToken,
    ) -> EventHub {
        let (tx, _) = broadcast::channel(1024);
        let hub = EventHub {
            tx,
            followed: Arc::default(),
            subscribed: Arc::default(),
        };
        tokio::spawn(poll(
            hub.clone(),
            pool,
            logs.subscribe(),
            retention,
            shutdown,
        ));
        hub
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        let receiver = self.tx.subscribe();
        self.subscribed.notify_one();
        receiver
    }

    /// Follow a log source from `after` (the client read up to it); the
    /// guard stops following when the last client drops it.
    pub fn follow(&self, source: Source, id: Uuid, after: i64) -> FollowGuard {
        let mut followed = self.followed.lock().expect("followed");
        let entry = followed.entry((source, id)).or_insert((0, after));
        entry.0 += 1;
        // A lower start re-reads lines the clients filter out; a higher one
        // could skip lines this client has not seen.
        entry.1 = entry.1.min(after);
        FollowGuard {
            followed: self.followed.clone(),
            key: (source, id),
        }
    }
}

pub struct FollowGuard {
    followed: Arc<Mutex<Followed>>,
    key: (Source, Uuid),
}

impl Drop for FollowGuard {
    fn drop(&mut self) {
        let mut followed = self.followed.lock().expect("followed");
        if let Some(entry) = followed.get_mut(&self.key) {
            entry.0 -= 1;
            if entry.0 == 0 {
                followed.remove(&self.key);
            }
        }
    }
}

async fn poll(
    hub: EventHub,
    pool: PgPool,
    mut wake: broadcast::Receiver<Uuid>,
    retention: Duration,
    shutdown: CancellationToken,
) {
    // Events from before the process started are the clients' catch-up.
    let mut horizon = loop {
        match read::horizon(&pool).await {
            Ok(horizon) => break horizon,
            Err(error) => tracing::warn!(%error, "event poller cannot read the horizon"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    };
    let mut pruned_at = tokio::time::Instant::now();
    let mut ticked_at: Option<tokio::time::Instant> = None;
    loop {
        let watched = hub.tx.receiver_count() > 0;
        if watched || ticked_at.is_none_or(|at| at.elapsed() >= IDLE_TICK) {
            ticked_at = Some(tokio::time::Instant::now());
            match tick(&hub, &pool, horizon).await {
                Ok(next) => horizon = next,
                Err(error) => tracing::warn!(%error, "event poller tick failed"),
            }
        }
        if pruned_at.elapsed() > Duration::from_secs(60) {
            pruned_at = tokio::time::Instant::now();
            if let Err(error) = read::prune(&pool, retention).await {
                tracing::warn!(%error, "pruning project events failed");
            }
        }
        let pause = match (watched, ticked_at) {
            (false, Some(at)) => IDLE_TICK.saturating_sub(at.elapsed()),
            _ => TICK,
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = wake.recv() => {}
            _ = hub.subscribed.notified() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn tick(hub: &EventHub, pool: &PgPool, horizon: u64) -> sqlx::Result<u64> {
    let (next, events) = read::final_events(pool, horizon).await?;
    let wanted: Vec<((Source, Uuid), i64)> = {
        let followed = hub.followed.lock().expect("followed");
        followed.iter().map(|(k, (_, seq))| (*k, *seq)).collect()
    };
    let lines = if wanted.is_empty() {
        Vec::new()
    } else {
        read::new_lines(pool, &wanted).await?
    };
    if !lines.is_empty() {
        let mut followed = hub.followed.lock().expect("followed");
        for line in &lines {
            if let Some(entry) = followed.get_mut(&(line.source, line.id)) {
                entry.1 = entry.1.max(line.seq);
            }
        }
    }
    if !events.is_empty() || !lines.is_empty() {
        // No receiver is not an error: nobody is watching.
        let _ = hub.tx.send(Arc::new(Batch { events, lines }));
    }
    Ok(next)
}
