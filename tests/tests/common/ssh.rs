//! An `ssh` target for a test: a network namespace of the test's own with
//! its sshd and Caddy (see `slipway_testkit::netns`), the fleet settings a
//! deploy to it needs, the target's API body, and the app's page through
//! the namespace's Caddy.

use super::{Fleet, Options};
use reqwest::Method;
use serde_json::{json, Value};
use slipway_testkit::dockerd::Dockerd;
use slipway_testkit::netns::Netns;
use slipway_testkit::registry::Registry;
use std::path::{Path, PathBuf};
use std::time::Duration;
use uuid::Uuid;

pub const TIMEOUT: Duration = Duration::from_secs(300);

/// A "server" with sshd and Caddy, reached as target `ns`.
pub struct SshServer {
    /// The server's Docker engine, when it is a Docker server: stopped
    /// before the namespace goes (fields drop in order).
    pub docker: Option<Dockerd>,
    pub ns: Netns,
    pub private_key: String,
    pub known_hosts: String,
    /// Where the namespace's Caddy serves the apps (over the veth).
    pub apps_addr: String,
    pub data_dir: PathBuf,
    /// This host's containers.conf, which the target's podman needs too
    /// (runc, cgroupfs): it is the same machine's storage and kernel.
    pub containers_conf: Option<String>,
}

impl SshServer {
    pub fn start() -> anyhow::Result<SshServer> {
        Self::start_with(false)
    }

    /// A Docker server: its own dockerd in the namespace, which every SSH
    /// session reaches through `DOCKER_HOST`. Its target asks for Docker
    /// (the machine has podman too, which would come first).
    pub fn start_docker() -> anyhow::Result<SshServer> {
        Self::start_with(true)
    }

    fn start_with(docker: bool) -> anyhow::Result<SshServer> {
        let mut ns = Netns::create()?;
        let docker = docker.then(|| Dockerd::start(&ns)).transpose()?;
        let env: Vec<(&str, &str)> = docker
            .iter()
            .map(|d| ("DOCKER_HOST", d.host.as_str()))
            .collect();
        let (private_key, known_hosts) = ns.start_sshd_with_env(&env)?;
        ns.start_caddy()?;
        Ok(SshServer {
            docker,
            apps_addr: format!("{}:8080", ns.addr),
            data_dir: ns.dir().join("data"),
            ns,
            private_key,
            known_hosts,
            containers_conf: std::env::var("CONTAINERS_CONF").ok(),
        })
    }

    /// The fleet's environment for deploys to it: `registry`, builds in
    /// `build_dir`, apps under `localhost`, and `extra`.
    pub fn fleet_options(
        &self,
        registry: &Registry,
        build_dir: &Path,
        extra: &[(&'static str, &str)],
    ) -> Options {
        let mut env = vec![
            ("SLIPWAY_REGISTRY", registry.addr().to_string()),
            ("SLIPWAY_BUILD_DIR", build_dir.display().to_string()),
            ("SLIPWAY_BASE_DOMAIN", "localhost".to_string()),
            ("SLIPWAY_SECRET_KEY", "ab".repeat(32)),
        ];
        if let Some(conf) = &self.containers_conf {
            env.push(("CONTAINERS_CONF", conf.clone()));
        }
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        Options {
            env,
            ..Options::default()
        }
    }

    /// `POST /v1/targets` body of target `name` on this server.
    pub fn target_body(&self, name: &str) -> Value {
        let mut body = json!({"name": name, "kind": "ssh", "host": self.ns.addr, "user": "root",
                              "ssh_key": self.private_key, "known_hosts": self.known_hosts,
                              "apps_addr": self.apps_addr, "data_dir": self.data_dir});
        if self.docker.is_some() {
            body["engine"] = json!("docker");
        } else if let Some(conf) = &self.containers_conf {
            body["containers_conf"] = json!(conf);
        }
        body
    }

    /// Creates target `name` on this server and checks it (provisioning
    /// prepares the host); returns the check.
    pub async fn add_target(&self, fleet: &Fleet, name: &str) -> anyhow::Result<Value> {
        let (status, target) = fleet
            .call(Method::POST, "/v1/targets", Some(self.target_body(name)))
            .await?;
        anyhow::ensure!(status == 201, "create target: {status} {target}");
        let checked = check(fleet, name).await?;
        anyhow::ensure!(
            checked["state"] == "live",
            "check: {checked:#}\n{}",
            fleet.logs()
        );
        Ok(checked)
    }

    /// `GET /` of `host` through the namespace's Caddy, over the veth.
    pub async fn page(&self, host: &str) -> anyhow::Result<(u16, String)> {
        let page = reqwest::Client::builder()
            .no_proxy()
            .build()?
            .get(format!("http://{}/", self.apps_addr))
            .header("host", host)
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        Ok((page.status().as_u16(), page.text().await?))
    }
}

/// Checks target `target`; waits until the check ends.
pub async fn check(fleet: &Fleet, target: &str) -> anyhow::Result<Value> {
    let (status, answer) = fleet
        .call(Method::POST, &format!("/v1/targets/{target}/check"), None)
        .await?;
    anyhow::ensure!(status == 202, "check: {status} {answer}");
    let id = answer["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no id: {answer}"))?
        .parse()?;
    fleet.wait_state(id, super::TERMINAL, TIMEOUT).await
}

/// Removes the app's containers and, when the test ends, the names its
/// builds gave their images; an image left with no name and no container
/// goes too. Not `rmi -f` by id: builds are reproducible, so another test
/// may be using the very same image (the target's podman shares this
/// host's storage).
pub struct Leftovers {
    pub app_id: String,
    /// `REGISTRY/slipway/p-APP:DEPLOYMENT`.
    pub tags: Vec<String>,
}

impl Leftovers {
    /// Remembers the image tag deployment `deployment` of app `app` built.
    pub fn built(&mut self, registry: &Registry, app: &str, deployment: &Value) {
        self.tags.push(format!(
            "{}/slipway/p-{app}:{}",
            registry.addr(),
            deployment["id"].as_str().unwrap_or_default()
        ));
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let podman = |args: &[&str]| std::process::Command::new("podman").args(args).output();
        let filter = format!("label=io.slipway.app={}", self.app_id);
        if let Ok(listed) = podman(&["ps", "-aq", "--filter", &filter]) {
            for id in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
                let _ = podman(&["rm", "-f", "-t", "0", id]);
            }
        }
        for tag in &self.tags {
            let Ok(id) = podman(&["image", "inspect", "--format", "{{.Id}}", tag]) else {
                continue;
            };
            let id = String::from_utf8_lossy(&id.stdout).trim().to_owned();
            let _ = podman(&["untag", &id, tag]);
            let names = podman(&["image", "inspect", "--format", "{{len .RepoTags}}", &id]);
            if names.is_ok_and(|n| String::from_utf8_lossy(&n.stdout).trim() == "0") {
                let _ = podman(&["rmi", &id]);
            }
        }
    }
}

/// Deploys app `app` (a deployment with an empty body); waits until it
/// ends.
pub async fn deploy(fleet: &Fleet, app: &str) -> anyhow::Result<Value> {
    let (status, answer) = fleet
        .call(
            Method::POST,
            &format!("/v1/apps/{app}/deployments"),
            Some(json!({})),
        )
        .await?;
    anyhow::ensure!(status == 202, "deploy: {status} {answer}");
    let id: Uuid = answer["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no id: {answer}"))?
        .parse()?;
    fleet.wait_state(id, super::TERMINAL, TIMEOUT).await
}
