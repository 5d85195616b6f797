//! The `logs -f` half of the `cli` scenario: a follower runs while lines
//! are written to the app's runtime log the way the deploy worker's
//! collector writes them; each line's delay is from its commit to the
//! follower printing it.

use super::Slipway;
use crate::harness::Env;
use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

const LOG_LINES: usize = 20;

/// Milliseconds from each written line's commit to `logs -f` printing it.
pub async fn latency(
    slipway: &Slipway,
    env: &Env,
    app_id: uuid::Uuid,
    app: &str,
) -> anyhow::Result<Vec<f64>> {
    let mut child = slipway
        .command(&["logs", app, "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel::<(String, Instant)>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((line, Instant::now())).is_err() {
                break;
            }
        }
    });
    let result = async {
        // The follower is connected once it printed a line written before it.
        let ready = write_line(env, app_id, "bench: follower ready").await?;
        wait_for(&rx, "bench: follower ready", ready, Duration::from_secs(20))?;
        let mut shown = Vec::new();
        for n in 0..LOG_LINES {
            // Spread over the stream's read interval rather than in step with it.
            tokio::time::sleep(Duration::from_millis(137 + 61 * (n as u64 % 5))).await;
            let marker = format!("bench: line {n}");
            let written = write_line(env, app_id, &marker).await?;
            shown.push(wait_for(&rx, &marker, written, Duration::from_secs(10))?);
        }
        Ok(shown)
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Writes one runtime log line as the collector does; returns the commit's end.
async fn write_line(env: &Env, app_id: uuid::Uuid, text: &str) -> anyhow::Result<Instant> {
    let mut tx = env.db.pool.begin().await?;
    let seq: i64 =
        sqlx::query_scalar("UPDATE apps SET log_seq = log_seq + 1 WHERE id = $1 RETURNING log_seq")
            .bind(app_id)
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query(
        "INSERT INTO app_logs (app_id, seq, at, container, stream, line) VALUES ($1, $2, now(), 'bench', 'stdout', $3)",
    )
    .bind(app_id)
    .bind(seq)
    .bind(text)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Instant::now())
}

fn wait_for(
    rx: &std::sync::mpsc::Receiver<(String, Instant)>,
    marker: &str,
    written: Instant,
    timeout: Duration,
) -> anyhow::Result<f64> {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let (line, at) = rx.recv_timeout(left).context("logs -f stopped printing")?;
        if line.ends_with(marker) {
            return Ok(at.saturating_duration_since(written).as_secs_f64() * 1000.0);
        }
    }
    anyhow::bail!("logs -f did not print `{marker}` within {timeout:?}")
}
