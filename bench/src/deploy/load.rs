//! The request loop of the `deploy` scenario: requests at a fixed rate
//! through the scenario's Caddy (by Host header) while a redeploy runs, each
//! one classified as failed on a non-2xx, a connection error or an answer
//! slower than 2 s, and counted by the `VERSION n` its page carries.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// An answer slower than this counts as failed.
pub const SLOW: Duration = Duration::from_secs(2);
/// A request still unanswered after this is abandoned (and failed).
const GIVE_UP: Duration = Duration::from_secs(10);

/// What one loop saw.
#[derive(Debug, Default)]
pub struct LoopReport {
    pub sent: usize,
    /// When each failed request was sent, and why it failed.
    pub failed: Vec<(chrono::DateTime<chrono::Utc>, String)>,
    /// Answers by the version their page names (0: none named).
    pub versions: BTreeMap<u32, usize>,
    pub latencies_ms: Vec<f64>,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(GIVE_UP)
        .build()
        .expect("a plain HTTP client builds")
}

/// The `n` of the first `VERSION n` in a page.
pub fn version_of(page: &str) -> Option<u32> {
    let rest = &page[page.find("VERSION ")? + "VERSION ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Sends `rate` requests per second to `url` with `host` until `stop`
/// fires, then waits for the ones in flight.
pub async fn run(url: String, host: String, rate: u32, stop: CancellationToken) -> LoopReport {
    let report = Arc::new(Mutex::new(LoopReport::default()));
    let client = client();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let (client, url, host, report) =
            (client.clone(), url.clone(), host.clone(), report.clone());
        tasks.push(tokio::spawn(async move {
            let sent_at = chrono::Utc::now();
            let started = Instant::now();
            let outcome = async {
                let answer = client
                    .get(&url)
                    .header(reqwest::header::HOST, host)
                    .send()
                    .await
                    .map_err(|e| format!("error: {}", chain(&e)))?;
                let status = answer.status();
                let page = answer.text().await.map_err(|e| format!("body: {e}"))?;
                if !status.is_success() {
                    return Err(format!("status {status}"));
                }
                Ok(page)
            }
            .await;
            let elapsed = started.elapsed();
            let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
            r.sent += 1;
            r.latencies_ms.push(elapsed.as_secs_f64() * 1000.0);
            match outcome {
                Ok(_) if elapsed > SLOW => r.failed.push((sent_at, format!("slow: {elapsed:?}"))),
                Ok(page) => {
                    *r.versions
                        .entry(version_of(&page).unwrap_or(0))
                        .or_default() += 1
                }
                Err(e) => r.failed.push((sent_at, e)),
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut report = report.lock().unwrap_or_else(|p| p.into_inner());
    std::mem::take(&mut *report)
}

/// An error with its causes (reqwest's own message hides them).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Polls `url` with `host` every 20 ms until its page names `version`;
/// returns when that was first seen.
pub async fn wait_version(
    url: &str,
    host: &str,
    version: u32,
    timeout: Duration,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let client = client();
    let started = Instant::now();
    loop {
        let answer = client
            .get(url)
            .header(reqwest::header::HOST, host)
            .send()
            .await;
        if let Ok(answer) = answer {
            let seen = chrono::Utc::now();
            if answer.status().is_success()
                && version_of(&answer.text().await.unwrap_or_default()) == Some(version)
            {
                return Ok(seen);
            }
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "VERSION {version} never answered at {host}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::version_of;

    #[test]
    fn versions_are_read_from_pages() {
        assert_eq!(version_of("<p>static-site VERSION 12</p>"), Some(12));
        assert_eq!(version_of("<p>nothing</p>"), None);
    }
}
