//! Runtime logs of the ssh targets' apps (the local target's are followed,
//! see `follow`): every `SLIPWAY_RUNTIME_LOG_INTERVAL` the deploy worker
//! copies what the containers of each deployed app printed since its last
//! pass (`podman logs --timestamps --since CURSOR`) into `app_logs`, which
//! the API serves with `?after=SEQ`. An app is collected under a
//! transaction-scoped advisory lock, so several deploy workers never store a
//! line twice; the cursor (the last stored line's time, per container) moves
//! in the same transaction as the lines. Lines older than the log retention
//! are pruned. The values of the app's secret variables and its add-ons'
//! passwords are redacted before a line is stored.
//!
//! A pass groups the apps by the target their release runs on
//! ([`crate::sites`]): on an ssh target `podman logs` runs over SSH through
//! the target's site, opened once for the pass. A target that cannot be
//! reached, or an app whose logs cannot be read, is logged and skipped for
//! the pass; its cursor has not moved, so the next pass picks the lines up.

use crate::engine::{Engine, LABEL_APP};
use crate::sites::{self, Sites, SSH_TARGET_COLUMN, TARGET_EXISTS, TARGET_JOIN};
use crate::target::{hidden_values, redact};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One line a container printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub at: DateTime<Utc>,
    pub stream: &'static str,
    pub line: String,
}

/// Parses `podman logs --timestamps` output: `TIMESTAMP TEXT` per line.
pub fn parse(output: &str, stream: &'static str) -> Vec<Line> {
    output
        .lines()
        .filter_map(|raw| {
            let (stamp, text) = raw.split_once(' ').unwrap_or((raw, ""));
            let at = DateTime::parse_from_rfc3339(stamp)
                .ok()?
                .with_timezone(&Utc);
            Some(Line {
                at,
                stream,
                line: text.to_owned(),
            })
        })
        .collect()
}

/// Runs until `shutdown`.
pub async fn run(
    pool: PgPool,
    sites: Sites,
    interval: Duration,
    retention: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(error) = collect_all(&pool, &sites, retention).await {
            tracing::warn!(error = %format!("{error:#}"), "runtime logs: pass failed");
        }
    }
}

#[derive(sqlx::FromRow)]
struct Deployed {
    app_id: Uuid,
    ssh_target: Option<Uuid>,
}

/// One pass over every app with a current release; returns the lines stored.
pub async fn collect_all(
    pool: &PgPool,
    sites: &Sites,
    retention: Duration,
) -> anyhow::Result<usize> {
    let apps: Vec<Deployed> = sqlx::query_as(&format!(
        "SELECT DISTINCT r.app_id, {SSH_TARGET_COLUMN}
         FROM releases r {TARGET_JOIN}
         WHERE r.state IN ('live', 'paused') AND {TARGET_EXISTS}"
    ))
    .fetch_all(pool)
    .await?;
    let mut stored = 0;
    for (target, apps) in sites::by_target(apps, |a| a.ssh_target) {
        if target.is_none() {
            // Followed as they print (`follow`).
            continue;
        }
        let site = match sites.open(pool, target).await {
            Ok(site) => site,
            Err(error) => {
                tracing::warn!(target = %sites::describe(target), %error,
                    apps = apps.len(), "runtime logs: cannot reach the target; tried again next pass");
                continue;
            }
        };
        for Deployed { app_id, .. } in apps {
            // An app whose secrets cannot be opened is not collected: its
            // lines would be stored unredacted.
            let hidden = match hidden_values(pool, app_id, sites.secrets.as_ref()).await {
                Ok(hidden) => hidden,
                Err(error) => {
                    tracing::warn!(%app_id, %error, "runtime logs: app skipped");
                    continue;
                }
            };
            match collect_app(pool, &site.engine, app_id, &hidden).await {
                Ok(lines) => stored += lines,
                Err(error) => tracing::warn!(%app_id, target = %site.describe(),
                    error = %format!("{error:#}"), "runtime logs: app not collected this pass"),
            }
        }
    }
    let cutoff = Utc::now() - chrono::Duration::from_std(retention)?;
    sqlx::query("DELETE FROM app_logs WHERE at < $1")
        .bind(cutoff)
        .execute(pool)
        .await?;
    Ok(stored)
}

async fn collect_app(
    pool: &PgPool,
    engine: &Engine,
    app_id: Uuid,
    hidden: &[String],
) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let ours: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 7))")
            .bind(format!("slipway-app-logs-{app_id}"))
            .fetch_one(&mut *tx)
            .await?;
    if !ours {
        return Ok(0);
    }
    let mut stored = 0;
    for container in engine.list(LABEL_APP, &app_id.to_string()).await? {
        let cursor: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT last_at FROM app_log_cursors WHERE container = $1")
                .bind(&container.name)
                .fetch_optional(&mut *tx)
                .await?;
        let since = cursor.map(|c| c.to_rfc3339_opts(SecondsFormat::Nanos, true));
        let (out, err) = engine.logs_since(&container.name, since.as_deref()).await?;
        let mut lines: Vec<Line> = parse(&out, "stdout")
            .into_iter()
            .chain(parse(&err, "stderr"))
            .filter(|l| cursor.is_none_or(|c| l.at > c))
            .map(|l| Line {
                line: redact(hidden, l.line),
                ..l
            })
            .collect();
        if lines.is_empty() {
            continue;
        }
        lines.sort_by_key(|l| l.at);
        let count = i64::try_from(lines.len())?;
        let last: i64 = sqlx::query_scalar(
            "UPDATE apps SET log_seq = log_seq + $2 WHERE id = $1 RETURNING log_seq",
        )
        .bind(app_id)
        .bind(count)
        .fetch_one(&mut *tx)
        .await?;
        let at: Vec<DateTime<Utc>> = lines.iter().map(|l| l.at).collect();
        let streams: Vec<&str> = lines.iter().map(|l| l.stream).collect();
        let texts: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
        sqlx::query(
            "INSERT INTO app_logs (app_id, seq, at, container, stream, line)
             SELECT $1, $2 + n, at, $3, stream, line
             FROM UNNEST($4::timestamptz[], $5::text[], $6::text[]) WITH ORDINALITY AS t(at, stream, line, n)",
        )
        .bind(app_id)
        .bind(last - count)
        .bind(&container.name)
        .bind(&at)
        .bind(&streams)
        .bind(&texts)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO app_log_cursors (container, app_id, last_at) VALUES ($1, $2, $3)
             ON CONFLICT (container) DO UPDATE SET last_at = EXCLUDED.last_at",
        )
        .bind(&container.name)
        .bind(app_id)
        .bind(lines.last().map(|l| l.at))
        .execute(&mut *tx)
        .await?;
        stored += lines.len();
    }
    tx.commit().await?;
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_timestamps_are_parsed() {
        let out = "2026-11-30T08:57:02.123456789+00:00 hello world\n\
                   not a stamp\n\
                   2026-11-30T08:57:03.000000001Z \n";
        let lines = parse(out, "stderr");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].line, "hello world");
        assert_eq!(lines[0].stream, "stderr");
        assert_eq!(lines[1].line, "");
        assert!(lines[0].at < lines[1].at);
    }
}
