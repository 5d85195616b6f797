//! Batch statements stay on their indexes as tables grow. On a young
//! database a connection's cached generic plan for an array-joined update
//! is a sequential scan (right while the table is small), and it used to
//! stay one: every log flush then read the whole `deployments` table.

use slipway_shared::logsink::LogSink;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const TINY: usize = 3;
const GROWN: i64 = 20_000;

async fn insert_deployments(pool: &PgPool, project: Uuid, n: i64) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "INSERT INTO deployments (id, project_id, kind, state, trace_id)
         SELECT gen_random_uuid(), $1, 'probe', 'queued', 't' FROM generate_series(1, $2)
         RETURNING id",
    )
    .bind(project)
    .bind(n)
    .fetch_all(pool)
    .await
}

/// Sequential scans of `deployments` so far, as the statistics system
/// reports them once this connection's and the sink's counters are flushed.
async fn seq_scans(pool: &PgPool) -> sqlx::Result<i64> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(&mut *conn)
        .await?;
    // A new transaction so the flush has happened and the snapshot is fresh.
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'deployments'")
        .fetch_one(&mut *conn)
        .await
}

/// `rounds` flushes, each with one line for every deployment of `ids`.
async fn flush_rounds(sink: &LogSink, ids: &[Uuid], rounds: usize) {
    for round in 0..rounds {
        for id in ids {
            sink.handle(*id, "build", 1)
                .info(format!("line {round}"))
                .await;
        }
        sink.flush().await;
    }
}

#[tokio::test]
async fn log_flushes_keep_using_the_index_after_the_table_grows() -> anyhow::Result<()> {
    let db = slipway_testkit::fresh_database().await?;
    let project = Uuid::now_v7();
    sqlx::query("INSERT INTO projects (id, name) VALUES ($1, 'p')")
        .bind(project)
        .execute(&db.pool)
        .await?;
    let few = insert_deployments(&db.pool, project, TINY as i64).await?;

    // One connection: the sink's statements are cached on it, and the
    // statistics it counts are the ones flushed below.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await?;
    let stop = CancellationToken::new();
    let (sink, task) = LogSink::start(pool.clone(), Duration::from_millis(10), stop.clone());
    // More runs than the plan cache needs to settle on a generic plan, each
    // naming several deployments so the array is not a single element.
    flush_rounds(&sink, &few, 10).await;

    insert_deployments(&db.pool, project, GROWN).await?;
    let before = seq_scans(&pool).await?;
    flush_rounds(&sink, &few, 5).await;
    let after = seq_scans(&pool).await?;
    stop.cancel();
    let _ = task.await;

    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM deployment_logs")
        .fetch_one(&db.pool)
        .await?;
    assert_eq!(written, (TINY * 15) as i64, "every line was stored");
    assert_eq!(
        after - before,
        0,
        "log flushes scanned the whole deployments table ({GROWN} rows) instead of its index"
    );
    pool.close().await;
    db.drop_database().await;
    Ok(())
}
