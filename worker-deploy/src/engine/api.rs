//! The engine's REST API (podman's Docker-compatible service, or Docker's
//! daemon) over a unix socket, through `bollard`, pinned to API 1.41: the
//! version both podman 4.3 and Debian's docker.io 20.10 speak. What the
//! deploy worker keeps open for a long time goes through it: the event
//! stream that drives repairs (over the same socket, read as JSON lines by
//! `engine::events`), and one followed log stream per container.
//! Builds and the one-off commands of a deploy (pull, run, stop, rm, exec)
//! stay on the CLI: they run a few times per deploy, podman's CLI is what
//! the deploy path and its tests were built and measured on, and over SSH
//! they already share the target's one connection.
//!
//! podman 4.3 stamps API log lines to the second (`2026-12-05T14:00:43Z`),
//! unlike its CLI (nanoseconds): a resume point is therefore a second plus
//! how many lines of that second were already stored (see `follow`).

use bollard::query_parameters::LogsOptionsBuilder;
use bollard::{ClientVersion, Docker};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use std::collections::HashMap;
use uuid::Uuid;

use super::book::{Book, Look};
pub use super::events::ContainerEvent;
use super::events::Observed;
use super::LABEL_APP;

/// The API version spoken to every engine.
pub const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};
/// Seconds a request may take. bollard applies it to a whole streamed
/// answer too, so it is long: a hung request is cut by its caller instead.
const REQUEST_TIMEOUT: u64 = 10 * 365 * 24 * 3600;
/// How long a one-off request (ping, list, a tail) may take.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A client of one engine's API socket. Connecting is lazy: a request
/// fails while the socket is not there yet, and the next one tries again.
#[derive(Clone, Debug)]
pub struct EngineApi {
    docker: Docker,
    /// The socket, for podman's own API (see [`EngineApi::list`]), which
    /// bollard does not speak.
    socket: std::path::PathBuf,
    /// The last lists of the app containers, shared by every clone.
    book: std::sync::Arc<Book>,
}

/// One line a container printed, stamped by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampedLine {
    pub at: DateTime<Utc>,
    pub stream: &'static str,
    pub line: String,
}

impl EngineApi {
    pub fn unix(socket: &std::path::Path) -> Result<EngineApi, bollard::errors::Error> {
        let path = socket.display().to_string();
        Ok(EngineApi {
            docker: Docker::connect_with_unix(&path, REQUEST_TIMEOUT, &API_VERSION)?,
            socket: socket.to_owned(),
            book: Default::default(),
        })
    }

    pub async fn ping(&self) -> Result<(), bollard::errors::Error> {
        within(self.docker.ping()).await.map(drop)
    }

    /// App containers' start and death events from `since` (Unix
    /// seconds) on (see [`super::events`]).
    pub fn events(
        &self,
        since: Option<i64>,
    ) -> impl Stream<Item = std::io::Result<Observed>> + Send + 'static {
        super::events::stream(self.socket.clone(), since.unwrap_or(i64::MIN))
    }

    /// The engine changed (an app container started or died, or the event
    /// stream broke and may have missed that): the kept lists go.
    pub fn forget(&self) {
        self.book.forget();
    }

    /// The running containers labelled as apps, `(name, app)`: the kept
    /// list (see [`Book`]) when `look` allows and one is recent.
    pub async fn running_apps(&self, look: Look) -> std::io::Result<Vec<(String, Uuid)>> {
        if look == Look::Kept {
            if let Some(kept) = self.book.running() {
                return Ok(kept);
            }
        }
        let asked_at = self.book.generation();
        let running = self.list_running_apps().await?;
        self.book.keep_running(asked_at, &running);
        Ok(running)
    }

    /// Docker's compatible list, read as JSON rather than through
    /// bollard: podman 4.3 says `stopped` of a container between its death
    /// and its cleanup, a state bollard's typed list fails on (the
    /// followers' look failed on it while a killed app came back).
    async fn list_running_apps(&self) -> std::io::Result<Vec<(String, Uuid)>> {
        let filters = serde_json::json!({ "label": [LABEL_APP] }).to_string();
        let path = format!(
            "/v1.41/containers/json?filters={}",
            percent_encode(&filters)
        );
        let listed = get_within(&self.socket, &path).await?;
        running_apps_of(&listed).map_err(|error| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("GET {path}: {error}"),
            )
        })
    }

    /// podman's own list (`GET /libpod/containers/json`, stopped
    /// containers too) of the containers carrying `label` (`KEY` or
    /// `KEY=VALUE`), as JSON (see `engine::parse_ps`). One request answers
    /// for every container, with each one's state, port, main PID and exit
    /// code, which Docker's compatible list lacks (it would take an
    /// inspect per container). podman only.
    pub async fn list(&self, label: &str) -> std::io::Result<String> {
        let asked_at = self.book.generation();
        let listed = self.list_afresh(label).await?;
        if label == LABEL_APP {
            self.book.keep_listed(asked_at, &listed);
        }
        Ok(listed)
    }

    /// [`EngineApi::list`] of the app containers, the kept one when it is
    /// recent; and where it came from.
    pub async fn list_apps_kept(&self) -> std::io::Result<(String, Look)> {
        match self.book.listed() {
            Some(kept) => Ok((kept, Look::Kept)),
            None => Ok((self.list(LABEL_APP).await?, Look::Fresh)),
        }
    }

    async fn list_afresh(&self, label: &str) -> std::io::Result<String> {
        let filters = serde_json::json!({ "label": [label] }).to_string();
        let path = format!(
            "/v4.0.0/libpod/containers/json?all=true&filters={}",
            percent_encode(&filters)
        );
        get_within(&self.socket, &path).await
    }

    /// The container's lines from `since` (Unix seconds, inclusive) on,
    /// followed until the container stops. A line may arrive in pieces;
    /// they are joined here.
    pub fn follow_logs(
        &self,
        name: &str,
        since: i64,
    ) -> impl Stream<Item = Result<StampedLine, bollard::errors::Error>> + Send + 'static {
        let options = LogsOptionsBuilder::new()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .since(i32::try_from(since).unwrap_or(0))
            .build();
        let mut partial: HashMap<&'static str, String> = HashMap::new();
        self.docker
            .logs(name, Some(options))
            .map(move |chunk| {
                let chunk = chunk?;
                let stream = match chunk {
                    bollard::container::LogOutput::StdErr { .. } => "stderr",
                    _ => "stdout",
                };
                let text = String::from_utf8_lossy(chunk.as_ref()).into_owned();
                let buffer = partial.entry(stream).or_default();
                buffer.push_str(&text);
                let mut lines = Vec::new();
                while let Some(end) = buffer.find('\n') {
                    let raw: String = buffer.drain(..=end).collect();
                    if let Some(line) = parse_stamped(raw.trim_end_matches('\n'), stream) {
                        lines.push(Ok(line));
                    }
                }
                Ok::<_, bollard::errors::Error>(futures::stream::iter(lines))
            })
            .flat_map(|batch| match batch {
                Ok(lines) => lines.left_stream(),
                Err(error) => futures::stream::iter(vec![Err(error)]).right_stream(),
            })
    }

    /// The container's state (`running`, `exited` …), main PID and exit
    /// code; `None` when there is no such container.
    pub async fn state(
        &self,
        name: &str,
    ) -> Result<Option<(String, i64, i64)>, bollard::errors::Error> {
        let inspect = self.docker.inspect_container(
            name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        );
        match within(inspect).await {
            Ok(found) => {
                let state = found.state.unwrap_or_default();
                Ok(Some((
                    state.status.map(|s| s.to_string()).unwrap_or_default(),
                    state.pid.unwrap_or(0),
                    state.exit_code.unwrap_or(0),
                )))
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Where the engine writes the container's log (podman's `k8s-file`
    /// driver), when it names a file; `None` when it does not or the
    /// container is not there.
    pub async fn log_path(&self, name: &str) -> Option<std::path::PathBuf> {
        let inspect = self.docker.inspect_container(
            name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        );
        let path = within(inspect).await.ok()?.log_path?;
        (!path.is_empty()).then(|| path.into())
    }

    /// Starts a stopped container (an event's repair starts the dead one
    /// at once, before the reconciler's full repair checks it).
    pub async fn start(&self, name: &str) -> Result<(), bollard::errors::Error> {
        self.book.forget();
        within(self.docker.start_container(
            name,
            None::<bollard::query_parameters::StartContainerOptions>,
        ))
        .await
    }

    /// The last `lines` lines the container printed (both streams).
    pub async fn tail(&self, name: &str, lines: usize) -> Vec<String> {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let read = self
            .docker
            .logs(name, Some(options))
            .filter_map(|chunk| async move { chunk.ok().map(|c| c.to_string()) })
            .collect::<Vec<_>>();
        tokio::time::timeout(CALL_TIMEOUT, read)
            .await
            .unwrap_or_default()
            .concat()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A one-off request, cut after [`CALL_TIMEOUT`].
async fn within<T>(
    request: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, bollard::errors::Error> {
    tokio::time::timeout(CALL_TIMEOUT, request)
        .await
        .unwrap_or(Err(bollard::errors::Error::RequestTimeoutError))
}

/// [`get_http10`], cut after [`CALL_TIMEOUT`].
async fn get_within(socket: &std::path::Path, path: &str) -> std::io::Result<String> {
    tokio::time::timeout(CALL_TIMEOUT, get_http10(socket, path))
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("GET {path}: no answer within {CALL_TIMEOUT:?}"),
            ))
        })
}

/// One `GET` over the unix socket as HTTP/1.0: the answer is not chunked
/// and ends when the service closes the connection. Fails unless it is 200.
async fn get_http10(socket: &std::path::Path, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(socket).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: podman\r\n\r\n").as_bytes())
        .await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad(format!("GET {path}: no HTTP answer")))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(bad(format!("GET {path}: {status}: {}", body.trim())));
    }
    Ok(body.to_owned())
}

/// Percent-encodes everything but unreserved characters (a query value).
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `(name, app)` of each container in a compatible list's JSON that
/// carries an app label.
fn running_apps_of(listed: &str) -> serde_json::Result<Vec<(String, Uuid)>> {
    let listed: Vec<serde_json::Value> = serde_json::from_str(listed)?;
    Ok(listed
        .iter()
        .filter_map(|c| {
            let app = c["Labels"][LABEL_APP].as_str()?.parse().ok()?;
            let name = c["Names"].as_array()?.first()?.as_str()?;
            Some((name.trim_start_matches('/').to_owned(), app))
        })
        .collect())
}

/// `TIMESTAMP TEXT` as the API sends a line with `timestamps`.
pub fn parse_stamped(raw: &str, stream: &'static str) -> Option<StampedLine> {
    let (stamp, text) = raw.split_once(' ').unwrap_or((raw, ""));
    let at = DateTime::parse_from_rfc3339(stamp)
        .ok()?
        .with_timezone(&Utc);
    Some(StampedLine {
        at,
        stream,
        line: text.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// podman 4.3's compatible list, a container between its death and
    /// its cleanup among them (`stopped`).
    #[test]
    fn the_running_list_is_read_whatever_the_states() {
        let listed = r#"[{"Id":"a1","Names":["/slipway-a-b"],"State":"stopped","Labels":{"io.slipway.app":"0190c1a2-0000-7000-8000-aaaaaaaaaaaa"}},
            {"Id":"b2","Names":["/other"],"State":"running","Labels":{}}]"#;
        assert_eq!(
            running_apps_of(listed).unwrap(),
            vec![(
                "slipway-a-b".to_owned(),
                "0190c1a2-0000-7000-8000-aaaaaaaaaaaa".parse().unwrap()
            )]
        );
        assert!(running_apps_of("{").is_err());
    }

    #[test]
    fn stamped_lines_are_parsed_to_the_second_or_finer() {
        let line = parse_stamped("2026-12-05T14:00:43Z line 1", "stdout").unwrap();
        assert_eq!(line.line, "line 1");
        assert_eq!(line.at.timestamp(), 1_796_479_243);
        let fine = parse_stamped("2026-12-05T14:00:43.5Z x", "stderr").unwrap();
        assert!(fine.at > line.at);
        assert!(parse_stamped("no stamp", "stdout").is_none());
    }
}
