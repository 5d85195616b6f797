//! Container images of one `build` run: base images of its own, and the
//! removal of everything the run built.
//!
//! Builds use `--layers`, so a layer made by an earlier run or test (same
//! parent image, same instruction, same copied files) would turn the
//! "first" build into a cache hit. App build args cannot prevent that: the
//! generated Containerfiles declare them after the dependency install, on
//! purpose. So every run gets its own copy of each base image, committed
//! with a label naming the run: a new image id, which no cached layer has as
//! its parent. Making these copies is not part of any measured time.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use tokio::process::Command;

/// The base images a run copies: the worker's variable, its default, and
/// the short name of the copy.
const BASES: [(&str, &str, &str); 5] = [
    (
        "SLIPWAY_BASE_IMAGE_DEBIAN",
        "localhost/slipway/debian:bookworm",
        "debian",
    ),
    (
        "SLIPWAY_BASE_IMAGE_NODE",
        "localhost/slipway/node:bookworm",
        "node",
    ),
    (
        "SLIPWAY_BASE_IMAGE_PYTHON",
        "localhost/slipway/python:bookworm",
        "python",
    ),
    (
        "SLIPWAY_BASE_IMAGE_GO",
        "localhost/slipway/go:bookworm",
        "go",
    ),
    (
        "SLIPWAY_BASE_IMAGE_STATIC",
        "localhost/slipway/static:bookworm",
        "static",
    ),
];

/// The containers.conf the build worker would use (see machine-notes: runc,
/// cgroupfs, ulimits); the engine calls made here need the same one.
const DEFAULT_CONTAINERS_CONF: &str = "/var/lib/slipway/containers.conf";

pub struct BaseImages {
    /// `(variable, tag of this run's copy)` for the build worker.
    pub worker_env: Vec<(String, String)>,
    /// The copy of the Python base for the example with its own Dockerfile,
    /// passed as its `BASE_IMAGE` build arg; a copy of its own so it shares
    /// no layer with the generated Python build.
    pub dockerfile_base: String,
    tags: Vec<String>,
    ids: Vec<String>,
}

/// The containers.conf for engine commands, if the environment names none.
pub fn containers_conf() -> Option<(String, String)> {
    if std::env::var_os("CONTAINERS_CONF").is_some() {
        return None;
    }
    Path::new(DEFAULT_CONTAINERS_CONF).is_file().then(|| {
        (
            "CONTAINERS_CONF".to_owned(),
            DEFAULT_CONTAINERS_CONF.to_owned(),
        )
    })
}

pub async fn engine(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new(program);
    command.args(args).kill_on_drop(true);
    if let Some((key, value)) = containers_conf() {
        command.env(key, value);
    }
    let output = command
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("cannot run {program}: {e}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Commits a labelled copy of `source` as `tag`; returns the new image id.
async fn copy_base(source: &str, tag: &str, run: &str) -> anyhow::Result<String> {
    let container = engine("buildah", &["from", source])
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n(base images come from scripts/build-tools.sh)"))?;
    let label = format!("slipway.bench.run={run}");
    let committed = async {
        engine("buildah", &["config", "--label", &label, &container]).await?;
        engine("buildah", &["commit", "--quiet", &container, tag]).await
    }
    .await;
    if let Err(error) = engine("buildah", &["rm", &container]).await {
        eprintln!("[bench] build: removing working container {container}: {error:#}");
    }
    committed
}

impl BaseImages {
    pub async fn create(run: &str) -> anyhow::Result<BaseImages> {
        let mut images = BaseImages {
            worker_env: Vec::new(),
            dockerfile_base: String::new(),
            tags: Vec::new(),
            ids: Vec::new(),
        };
        let result = images.create_all(run).await;
        match result {
            Ok(()) => Ok(images),
            Err(error) => {
                images.remove().await;
                Err(error)
            }
        }
    }

    async fn create_all(&mut self, run: &str) -> anyhow::Result<()> {
        let mut copies: Vec<(Option<&str>, String, String)> = BASES
            .iter()
            .map(|(variable, default, name)| {
                let source = std::env::var(variable).unwrap_or_else(|_| (*default).to_owned());
                (Some(*variable), source, (*name).to_owned())
            })
            .collect();
        let python = copies[2].1.clone();
        copies.push((None, python, "python-dockerfile".to_owned()));
        for (variable, source, name) in copies {
            let tag = format!("localhost/slipway-bench-{run}/{name}:bookworm");
            let id = copy_base(&source, &tag, run).await?;
            eprintln!("[bench] build: base image {tag} ({id:.12}) copied from {source}");
            self.tags.push(tag.clone());
            self.ids.push(id);
            match variable {
                Some(variable) => self.worker_env.push((variable.to_owned(), tag)),
                None => self.dockerfile_base = tag,
            }
        }
        Ok(())
    }

    /// Removes the images tagged for `deployments`, every image built on
    /// top of this run's base copies (the cached intermediate layers), and
    /// the copies themselves. Failures are reported, not returned.
    pub async fn remove_with(&self, deployments: &[String]) {
        if let Err(error) = self.remove_built(deployments).await {
            eprintln!("[bench] build: removing built images: {error:#}");
        }
        self.remove().await;
    }

    async fn remove_built(&self, deployments: &[String]) -> anyhow::Result<()> {
        let listed = engine("buildah", &["images", "--format", "{{.Name}}:{{.Tag}}"]).await?;
        let tags: Vec<&str> = listed
            .lines()
            .filter(|name| {
                name.rsplit_once(':')
                    .is_some_and(|(_, tag)| deployments.iter().any(|d| d == tag))
            })
            .collect();
        for tag in &tags {
            if let Err(error) = engine("buildah", &["rmi", tag]).await {
                eprintln!("[bench] build: {error:#}");
            }
        }
        // Intermediate images have no tag: they are found by walking their
        // parents up to one of this run's base copies, and removed children first.
        let all = engine("podman", &["images", "-a", "-q", "--no-trunc"]).await?;
        let ids: Vec<&str> = all
            .lines()
            .map(|l| l.trim_start_matches("sha256:"))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let mut args = vec!["image", "inspect", "--format", "{{.Id}} {{.Parent}}"];
        args.extend(ids.iter().copied());
        let parents: HashMap<String, String> = engine("podman", &args)
            .await?
            .lines()
            .filter_map(|l| {
                let (id, parent) = l.split_once(' ')?;
                Some((id.to_owned(), parent.trim().to_owned()))
            })
            .collect();
        let bases: HashSet<&str> = self.ids.iter().map(String::as_str).collect();
        let mut ours: Vec<(usize, &str)> = parents
            .keys()
            .filter(|id| !bases.contains(id.as_str()))
            .filter_map(|id| depth_above(id, &parents, &bases).map(|d| (d, id.as_str())))
            .collect();
        ours.sort_by_key(|o| std::cmp::Reverse(o.0));
        let count = ours.len();
        for (_, id) in ours {
            match engine("buildah", &["rmi", id]).await {
                // Removing a child also removes the parents only it used.
                Err(error) if !format!("{error:#}").contains("image not known") => {
                    eprintln!("[bench] build: {error:#}");
                }
                _ => {}
            }
        }
        eprintln!(
            "[bench] build: removed {} tagged and {count} layered images of this run",
            tags.len()
        );
        Ok(())
    }

    async fn remove(&self) {
        for tag in &self.tags {
            if let Err(error) = engine("buildah", &["rmi", tag]).await {
                eprintln!("[bench] build: {error:#}");
            }
        }
    }
}

/// How many parent links lead from `id` to one of `bases`; `None` if none do.
fn depth_above(
    id: &str,
    parents: &HashMap<String, String>,
    bases: &HashSet<&str>,
) -> Option<usize> {
    let mut current = id;
    for depth in 1..=1000 {
        let parent = parents.get(current)?;
        if bases.contains(parent.as_str()) {
            return Some(depth);
        }
        current = parent;
    }
    None
}
