//! An app's runtime logs: what its containers printed, polled
//! (`/v1/apps/{app}/logs`) or followed as server-sent events
//! (`/logs/stream`), from a sequence number or a time (`since`).

use super::sse::{self, Event};
use super::{segment, Client};
use crate::error::Result;
use chrono::{DateTime, Utc};
use futures::Stream;
use reqwest::Method;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize)]
pub struct Line {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub container: String,
    pub stream: String,
    pub line: String,
}

#[derive(Debug, Deserialize)]
pub struct Page {
    pub lines: Vec<Line>,
    pub next: i64,
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let pairs: Vec<(&str, String)> = pairs
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (*k, v)))
        .collect();
    let mut url = reqwest::Url::parse("http://q/").expect("a constant URL");
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().map(|q| format!("?{q}")).unwrap_or_default()
}

impl Client {
    pub async fn app_logs(&self, app: &str, after: i64, since: Option<&str>) -> Result<Page> {
        let query = query(&[
            ("after", Some(after.to_string())),
            ("limit", Some("10000".into())),
            ("since", since.map(str::to_owned)),
        ]);
        self.get(&format!("/v1/apps/{}/logs{query}", segment(app)))
            .await
    }

    /// The stream's events (`log`, then `end` if the app is destroyed).
    pub async fn app_log_stream(
        &self,
        app: &str,
        since: Option<&str>,
    ) -> Result<impl Stream<Item = Result<Event, reqwest::Error>>> {
        let query = query(&[("since", since.map(str::to_owned))]);
        let path = format!("/v1/apps/{}/logs/stream{query}", segment(app));
        let request = self
            .request(Method::GET, &path)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        let response = self.send(request).await?;
        Ok(sse::events(response))
    }
}
