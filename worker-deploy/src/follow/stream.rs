//! One followed container: its log stream from the stored cursor on, in
//! batches (up to [`BATCH_LINES`] lines or [`BATCH_WAIT`] after the first),
//! each stored in one transaction with the cursor.
//!
//! The cursor is the second of the last stored line and how many lines of
//! that second are stored (podman's API stamps to the second). A follower
//! asks for the lines from that second on and skips what is stored; lines
//! of one container arrive in the order they were printed, so the count is
//! exact. A transaction first locks the cursor row and checks that it is
//! still the one this follower started from: if another worker stored
//! lines meanwhile (two followers overlapping after a lost connection),
//! this one stops without writing, and no line is stored twice. Nothing is
//! acknowledged before its commit, so a follower killed at any point loses
//! nothing: the next one reads again from the cursor.

use super::Followers;
use crate::engine::api::StampedLine;
use crate::target::{hidden_values, redact};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const BATCH_LINES: usize = 500;
const BATCH_WAIT: Duration = Duration::from_millis(50);

pub(super) struct Follower {
    pub followers: Followers,
    pub name: String,
    pub app_id: Uuid,
    pub cancel: CancellationToken,
    /// Told the container's name when this follower ends.
    pub done: mpsc::UnboundedSender<String>,
}

/// Where a container's stored lines end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    second: i64,
    /// Lines of `second` already stored; `None`: all of them (a cursor the
    /// CLI collector left, stamped to the nanosecond).
    stored: Option<i64>,
}

impl Follower {
    pub async fn run(self) {
        if let Err(error) = self.follow().await {
            tracing::debug!(container = %self.name, error = %format!("{error:#}"),
                "log follower ended");
        }
        let _ = self.done.send(self.name.clone());
    }

    async fn follow(&self) -> anyhow::Result<()> {
        let pool = &self.followers.pool;
        let hidden = hidden_values(pool, self.app_id, self.followers.secrets.as_ref()).await?;
        let mut cursor = self.cursor().await?;
        // `since` is inclusive in both engines; one second earlier costs
        // nothing and leaves no doubt.
        let mut lines = self.followers.lines(&self.name, cursor.second - 1).await;
        // Lines of the cursor's second already stored are skipped once,
        // at the start; everything after the first new line is new.
        let start = cursor;
        let (mut skipped, mut resumed) = (0i64, false);
        let mut batch: Vec<StampedLine> = Vec::new();
        loop {
            let next = if batch.is_empty() {
                tokio::select! {
                    line = lines.next() => Some(line),
                    _ = self.cancel.cancelled() => return Ok(()),
                }
            } else {
                tokio::select! {
                    line = tokio::time::timeout(BATCH_WAIT, lines.next()) => line.ok(),
                    _ = self.cancel.cancelled() => return Ok(()),
                }
            };
            match next {
                // The batch waited long enough.
                None => {
                    cursor = self
                        .store(cursor, std::mem::take(&mut batch), &hidden)
                        .await?
                }
                // The stream ended: the container stopped (or the service;
                // a log file: the container was removed).
                Some(None) => {
                    if !batch.is_empty() {
                        self.store(cursor, batch, &hidden).await?;
                    }
                    return Ok(());
                }
                Some(Some(line)) => {
                    let line = line?;
                    if !resumed {
                        let second = line.at.timestamp();
                        if second < start.second {
                            continue;
                        }
                        if second == start.second {
                            skipped += 1;
                            if start.stored.is_none_or(|n| skipped <= n) {
                                continue;
                            }
                        }
                        resumed = true;
                    }
                    batch.push(line);
                    if batch.len() >= BATCH_LINES {
                        cursor = self
                            .store(cursor, std::mem::take(&mut batch), &hidden)
                            .await?;
                    }
                }
            }
        }
    }

    async fn cursor(&self) -> anyhow::Result<Cursor> {
        let pool = &self.followers.pool;
        // The row exists from the start, so every store can lock it.
        sqlx::query(
            "INSERT INTO app_log_cursors (container, app_id, last_at, lines_at_last)
             VALUES ($1, $2, 'epoch', 0) ON CONFLICT (container) DO NOTHING",
        )
        .bind(&self.name)
        .bind(self.app_id)
        .execute(pool)
        .await?;
        let (at, stored): (DateTime<Utc>, i32) = sqlx::query_as(
            "SELECT last_at, lines_at_last FROM app_log_cursors WHERE container = $1",
        )
        .bind(&self.name)
        .fetch_one(pool)
        .await?;
        Ok(cursor_of(at, stored))
    }

    /// Stores `lines` (all after `cursor`) and moves the cursor, in one
    /// transaction; fails when the cursor is no longer `cursor`.
    async fn store(
        &self,
        cursor: Cursor,
        lines: Vec<StampedLine>,
        hidden: &[String],
    ) -> anyhow::Result<Cursor> {
        let Some(last) = lines.last() else {
            return Ok(cursor);
        };
        let second = last.at.timestamp();
        let at_second = lines.iter().filter(|l| l.at.timestamp() == second).count() as i64;
        let next = Cursor {
            second,
            stored: Some(match cursor.stored {
                Some(n) if second == cursor.second => n + at_second,
                _ => at_second,
            }),
        };
        let mut tx = self.followers.pool.begin().await?;
        let (at, stored): (DateTime<Utc>, i32) = sqlx::query_as(
            "SELECT last_at, lines_at_last FROM app_log_cursors WHERE container = $1 FOR UPDATE",
        )
        .bind(&self.name)
        .fetch_one(&mut *tx)
        .await?;
        anyhow::ensure!(
            cursor_of(at, stored) == cursor,
            "another follower stored lines of {} meanwhile",
            self.name
        );
        let count = i64::try_from(lines.len())?;
        let end: i64 = sqlx::query_scalar(
            "UPDATE apps SET log_seq = log_seq + $2 WHERE id = $1 RETURNING log_seq",
        )
        .bind(self.app_id)
        .bind(count)
        .fetch_one(&mut *tx)
        .await?;
        let stamps: Vec<DateTime<Utc>> = lines.iter().map(|l| l.at).collect();
        let streams: Vec<&str> = lines.iter().map(|l| l.stream).collect();
        let texts: Vec<String> = lines
            .iter()
            .map(|l| redact(hidden, l.line.clone()))
            .collect();
        sqlx::query(
            "INSERT INTO app_logs (app_id, seq, at, container, stream, line)
             SELECT $1, $2 + n, at, $3, stream, line
             FROM UNNEST($4::timestamptz[], $5::text[], $6::text[]) WITH ORDINALITY AS t(at, stream, line, n)",
        )
        .bind(self.app_id)
        .bind(end - count)
        .bind(&self.name)
        .bind(&stamps)
        .bind(&streams)
        .bind(&texts)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE app_log_cursors SET last_at = $2, lines_at_last = $3 WHERE container = $1",
        )
        .bind(&self.name)
        .bind(DateTime::from_timestamp(next.second, 0).unwrap_or_default())
        .bind(i32::try_from(next.stored.unwrap_or(0))?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(next)
    }
}

/// A stored cursor: whole seconds are a follower's; a stamp with a
/// fraction was left by the CLI collector, which stored every line of
/// that second up to it (later ones of that second are skipped: the one
/// second of an upgrade).
fn cursor_of(at: DateTime<Utc>, stored: i32) -> Cursor {
    Cursor {
        second: at.timestamp(),
        stored: (at.timestamp_subsec_nanos() == 0).then_some(i64::from(stored)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_from_the_cli_collector_skip_their_whole_second() {
        let whole = DateTime::from_timestamp(100, 0).unwrap();
        assert_eq!(
            cursor_of(whole, 3),
            Cursor {
                second: 100,
                stored: Some(3)
            }
        );
        let fine = DateTime::from_timestamp(100, 5).unwrap();
        assert_eq!(
            cursor_of(fine, 0),
            Cursor {
                second: 100,
                stored: None
            }
        );
    }
}
