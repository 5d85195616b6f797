//! A Prometheus of the test's own: a plain process on a loopback port with
//! its data in a temporary directory, scraping the targets it is given
//! every second and evaluating the repository's alert rules; plus a small
//! client for its HTTP API.

use anyhow::Context;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;

/// One scrape job: its name (as in compose/prometheus/prometheus.yml) and
/// its `host:port` targets.
pub struct Job {
    pub name: String,
    pub targets: Vec<String>,
}

pub struct Prometheus {
    pub url: String,
    child: tokio::process::Child,
    dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Prometheus {
    /// Starts Prometheus on 127.0.0.1 with `jobs` and the alert rules of
    /// `compose/prometheus/alerts.yml`; returns once it is ready.
    pub async fn start(jobs: &[Job]) -> anyhow::Result<Prometheus> {
        let dir = tempfile::tempdir()?;
        std::fs::copy(
            crate::compose_dir().join("prometheus/alerts.yml"),
            dir.path().join("alerts.yml"),
        )?;
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - alerts.yml\nscrape_configs:\n",
        );
        for job in jobs {
            let targets: Vec<String> = job.targets.iter().map(|t| format!("\"{t}\"")).collect();
            config.push_str(&format!(
                "  - job_name: {}\n    static_configs:\n      - targets: [{}]\n",
                job.name,
                targets.join(", ")
            ));
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let port = slipway_testkit::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = tokio::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting prometheus (scripts/test-tools.sh installs it)")?;
        let prometheus = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
            client: reqwest::Client::new(),
        };
        slipway_testkit::wait_http_ok(
            &format!("{}/-/ready", prometheus.url),
            Duration::from_secs(30),
        )
        .await
        .with_context(|| prometheus.log_tail())?;
        Ok(prometheus)
    }

    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `GET /api/v1/<path>` with `query`; the `data` of a successful answer.
    pub async fn api(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let answer: Value = self
            .client
            .get(format!("{}/api/v1/{path}", self.url))
            .query(query)
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(answer["status"] == "success", "{path} {query:?}: {answer}");
        Ok(answer["data"].clone())
    }

    /// The result vector of an instant query at the present time.
    pub async fn query(&self, expr: &str) -> anyhow::Result<Vec<Value>> {
        let data = self.api("query", &[("query", expr)]).await?;
        anyhow::ensure!(data["resultType"] == "vector", "{expr}: {data}");
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The value of a query that yields one sample (0 when it yields none).
    pub async fn scalar(&self, expr: &str) -> anyhow::Result<f64> {
        let result = self.query(expr).await?;
        Ok(result
            .first()
            .and_then(|sample| sample["value"][1].as_str())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0))
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
