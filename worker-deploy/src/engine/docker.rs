//! What Docker's CLI prints differently from podman's: `ps` lines.

use super::ContainerInfo;
use serde::Deserialize;
use std::collections::BTreeMap;

/// One line of Docker's `ps --format '{{json .}}'`: names, labels and
/// ports are single strings there (`a=1,b=2`, `127.0.0.1:32768->8080/tcp`).
#[derive(Deserialize)]
struct DockerPsLine {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Names", default)]
    names: String,
    #[serde(rename = "Image", default)]
    image: String,
    /// Not printed by CLIs before 20.10: then `Status` tells.
    #[serde(rename = "State", default)]
    state: String,
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "Labels", default)]
    labels: String,
    #[serde(rename = "Ports", default)]
    ports: String,
}

pub(super) fn parse_ps(stdout: &str) -> Result<Vec<ContainerInfo>, String> {
    let mut list = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let e: DockerPsLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let state = match e.state.is_empty() {
            false => e.state,
            true if e.status.starts_with("Up") => "running".into(),
            true if e.status.starts_with("Exited") => "exited".into(),
            true => e.status.to_lowercase(),
        };
        list.push(ContainerInfo {
            name: e.names.split(',').next().unwrap_or_default().to_owned(),
            id: e.id,
            image: e.image,
            state,
            labels: docker_labels(&e.labels),
            host_port: docker_host_port(&e.ports),
            process: None,
        });
    }
    Ok(list)
}

/// `a=1,b=x,y`: a piece without `=` belongs to the value before it.
fn docker_labels(joined: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut last: Option<String> = None;
    for piece in joined.split(',').filter(|p| !p.is_empty()) {
        match (piece.split_once('='), &last) {
            (Some((key, value)), _) => {
                labels.insert(key.to_owned(), value.to_owned());
                last = Some(key.to_owned());
            }
            (None, Some(key)) => {
                if let Some(value) = labels.get_mut(key) {
                    value.push(',');
                    value.push_str(piece);
                }
            }
            (None, None) => {}
        }
    }
    labels
}

/// The host port of the first published port (`127.0.0.1:32768->8080/tcp`).
fn docker_host_port(ports: &str) -> Option<u16> {
    ports.split(", ").find_map(|mapping| {
        let (host, _) = mapping.split_once("->")?;
        host.rsplit_once(':')?.1.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::LABEL_APP;

    #[test]
    fn docker_ps_lines_are_parsed() {
        let out = r#"{"Command":"\"python3\"","ID":"144232826a52","Image":"127.0.0.1:5000/x@sha256:1","Labels":"io.buildah.version=1.28.2,io.slipway.app=a,note=x,y","Names":"n1","Ports":"127.0.0.1:32768->8080/tcp","State":"running","Status":"Up 2 seconds"}
{"ID":"2","Names":"n2","Labels":"","Ports":"","Status":"Exited (0) 3 seconds ago"}
"#;
        let list = parse_ps(out).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name, "n1");
        assert_eq!(list[0].host_port, Some(32768));
        assert!(list[0].is_running());
        assert_eq!(list[0].labels.get(LABEL_APP).map(String::as_str), Some("a"));
        assert_eq!(list[0].labels.get("note").map(String::as_str), Some("x,y"));
        assert_eq!(list[1].state, "exited");
        assert_eq!(list[1].host_port, None);
        assert!(parse_ps("").unwrap().is_empty());
    }
}
