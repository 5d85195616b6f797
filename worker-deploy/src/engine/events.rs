//! The engine's event stream (`GET /v1.41/events`, podman's compatible
//! service and Docker's daemon alike), read here as JSON lines rather than
//! through bollard, and what of it concerns app containers.
//!
//! Two things podman 4.3 does made the typed stream lose deaths. It sends
//! events of a type bollard does not know (`system`, when it rotates its
//! event file): the typed stream fails on one, the watcher opens it again,
//! and a death in between was missed (a killed app waited 35 s for the
//! reconciler's pass in the `idle` bench). And when it rotates the file it
//! sends again what the file kept: deaths long repaired came a second time
//! and were "repaired" again. Here an event of any other type is skipped,
//! and every event carries a [`EventKey`] the watcher remembers
//! ([`Seen`]), so one sent twice is acted on once.

use super::{LABEL_APP, LABEL_RELEASE};
use futures::Stream;
use serde_json::Value;
use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use uuid::Uuid;

/// What happened to an app container, as the event stream says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerEvent {
    Started {
        name: String,
        app: Uuid,
    },
    /// It exited (on its own, killed, out of memory, or stopped).
    Died {
        name: String,
        app: Uuid,
        /// The release it belonged to, from its labels.
        release: Option<Uuid>,
        exit_code: Option<i64>,
    },
}

/// What makes one event that one: the engine's nanosecond stamp, the
/// container and the action. An event sent again has the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventKey {
    time_nano: i64,
    container: String,
    action: String,
}

/// One app container event as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub key: EventKey,
    /// The engine's stamp, Unix seconds.
    pub time: i64,
    pub event: ContainerEvent,
}

/// The keys of the last events acted on, so one sent again is not.
#[derive(Debug, Default)]
pub struct Seen {
    keys: HashSet<EventKey>,
    order: VecDeque<EventKey>,
}

/// Events remembered: more than an event file holds between two
/// rotations of podman's (1 MB by default, ~1 kB an event).
const REMEMBERED: usize = 4096;

impl Seen {
    /// Whether `key` is new; it is remembered from now on.
    pub fn first_time(&mut self, key: &EventKey) -> bool {
        if !self.keys.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key.clone());
        if self.order.len() > REMEMBERED {
            if let Some(oldest) = self.order.pop_front() {
                self.keys.remove(&oldest);
            }
        }
        true
    }
}

/// The app container events of the engine behind `socket` from `since`
/// (Unix seconds) on. podman sends its whole event file first when no
/// `since` is asked (and matches filters against its own names, dropping
/// `die`), so the stream asks for nothing and drops older events here.
/// Ends when the engine closes it; an error ends it too.
pub fn stream(
    socket: PathBuf,
    since: i64,
) -> impl Stream<Item = std::io::Result<Observed>> + Send + 'static {
    enum Phase {
        Connect(PathBuf),
        Reading(Lines<BufReader<UnixStream>>),
        Done,
    }
    futures::stream::unfold(Phase::Connect(socket), move |phase| async move {
        let mut lines = match phase {
            Phase::Done => return None,
            Phase::Reading(lines) => lines,
            Phase::Connect(socket) => match open(&socket).await {
                Ok(lines) => lines,
                Err(error) => return Some((Err(error), Phase::Done)),
            },
        };
        loop {
            match lines.next_line().await {
                Ok(Some(line)) => match parse(&line) {
                    Some(observed) if observed.time >= since => {
                        return Some((Ok(observed), Phase::Reading(lines)))
                    }
                    _ => continue,
                },
                Ok(None) => return None,
                Err(error) => return Some((Err(error), Phase::Done)),
            }
        }
    })
}

/// Asks for the stream as HTTP/1.0, so the answer is not chunked: after
/// its head, one JSON event a line until the engine closes it.
async fn open(socket: &std::path::Path) -> std::io::Result<Lines<BufReader<UnixStream>>> {
    let mut stream = UnixStream::connect(socket).await?;
    stream
        .write_all(b"GET /v1.41/events HTTP/1.0\r\nHost: engine\r\n\r\n")
        .await?;
    let mut lines = BufReader::new(stream).lines();
    let status = lines.next_line().await?.unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("GET /v1.41/events: {status}"),
        ));
    }
    while let Some(header) = lines.next_line().await? {
        if header.trim().is_empty() {
            return Ok(lines);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "GET /v1.41/events: the answer ended in its head",
    ))
}

/// An app container's `start` or `die` from one line of the stream; any
/// other line (another type, another action, another container, not
/// JSON) is `None`.
pub fn parse(line: &str) -> Option<Observed> {
    let event: Value = serde_json::from_str(line).ok()?;
    if event["Type"].as_str()? != "container" {
        return None;
    }
    let action = event["Action"].as_str()?;
    let actor = &event["Actor"];
    let attributes = &actor["Attributes"];
    let attribute = |key: &str| attributes[key].as_str();
    let app: Uuid = attribute(LABEL_APP)?.parse().ok()?;
    let name = attribute("name")?.to_owned();
    let time = event["time"].as_i64()?;
    let container_event = match action {
        "start" => ContainerEvent::Started {
            name: name.clone(),
            app,
        },
        "die" => ContainerEvent::Died {
            name: name.clone(),
            app,
            release: attribute(LABEL_RELEASE).and_then(|r| r.parse().ok()),
            // podman says `containerExitCode`, Docker `exitCode`.
            exit_code: ["exitCode", "containerExitCode"]
                .iter()
                .find_map(|k| attribute(k)?.parse().ok()),
        },
        _ => return None,
    };
    Some(Observed {
        key: EventKey {
            time_nano: event["timeNano"].as_i64().unwrap_or(time * 1_000_000_000),
            container: actor["ID"].as_str().map_or(name, str::to_owned),
            action: action.to_owned(),
        },
        time,
        event: container_event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `die` event as podman 4.3's compatible API sends it.
    const PODMAN_DIE: &str = r#"{"status":"die","id":"bc52","from":"localhost/x:y","Type":"container","Action":"die","Actor":{"ID":"bc52","Attributes":{"containerExitCode":"3","io.slipway.app":"0190c1a2-0000-7000-8000-aaaaaaaaaaaa","image":"localhost/x:y","name":"slipway-a-b","podId":""}},"scope":"local","time":1796479260,"timeNano":1796479260310491357}"#;

    #[test]
    fn a_podman_die_event_is_read() {
        let observed = parse(PODMAN_DIE).unwrap();
        assert_eq!(
            observed.event,
            ContainerEvent::Died {
                name: "slipway-a-b".into(),
                app: "0190c1a2-0000-7000-8000-aaaaaaaaaaaa".parse().unwrap(),
                release: None,
                exit_code: Some(3),
            }
        );
        assert_eq!(observed.time, 1_796_479_260);
    }

    #[test]
    fn a_docker_start_event_is_read() {
        let line = r#"{"status":"start","id":"9f1e","from":"img","Type":"container","Action":"start","Actor":{"ID":"9f1e","Attributes":{"image":"img","io.slipway.app":"0190c1a2-0000-7000-8000-aaaaaaaaaaaa","name":"slipway-c-d"}},"scope":"local","time":1796479261,"timeNano":1796479261000000001}"#;
        assert_eq!(
            parse(line).unwrap().event,
            ContainerEvent::Started {
                name: "slipway-c-d".into(),
                app: "0190c1a2-0000-7000-8000-aaaaaaaaaaaa".parse().unwrap(),
            }
        );
    }

    /// What broke bollard's typed stream: podman's event of its own type
    /// when it rotates its event file.
    #[test]
    fn other_types_actions_and_containers_are_skipped_not_errors() {
        let system = r#"{"status":"log-rotation","id":"","from":"","Type":"system","Action":"log-rotation","Actor":{"ID":"","Attributes":{}},"scope":"local","time":1796479262,"timeNano":1796479262000000000}"#;
        assert_eq!(parse(system), None);
        assert_eq!(parse(&PODMAN_DIE.replace("\"die\"", "\"attach\"")), None);
        assert_eq!(parse(&PODMAN_DIE.replace("io.slipway.app", "other")), None);
        assert_eq!(parse("not json"), None);
    }

    #[test]
    fn an_event_sent_again_is_seen_once_and_old_ones_are_forgotten() {
        let mut seen = Seen::default();
        let first = parse(PODMAN_DIE).unwrap();
        assert!(seen.first_time(&first.key));
        assert!(!seen.first_time(&parse(PODMAN_DIE).unwrap().key));
        let later = parse(&PODMAN_DIE.replace("310491357", "310491358")).unwrap();
        assert!(seen.first_time(&later.key), "another death of it is new");
        for n in 0..REMEMBERED {
            let key = EventKey {
                time_nano: n as i64,
                container: "c".into(),
                action: "die".into(),
            };
            assert!(seen.first_time(&key));
        }
        assert!(
            seen.first_time(&first.key),
            "forgotten after REMEMBERED more"
        );
    }
}
