//! What a plan is made with: the base image of each stack, the runtime
//! versions those images offer (matched against apps' declared versions),
//! and the app's own settings (Dockerfile path, build variables, commands).

use super::runtime::VersionedImage;
use super::version::Version;
use super::CommandOverrides;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
/// The base image of each stack. Nothing can be pulled from public
/// registries on the project's machines, so `scripts/build-tools.sh` builds
/// these locally; elsewhere they can name any registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseImages {
    /// The runtime image of compiled stacks (Go, Rust) and the root of the others.
    pub debian: String,
    pub node: String,
    pub python: String,
    pub go: String,
    pub rust: String,
    /// An image with a small static file server (`busybox httpd`).
    pub static_site: String,
}

impl Default for BaseImages {
    fn default() -> Self {
        let name = |stack: &str| format!("localhost/slipway/{stack}:bookworm");
        BaseImages {
            debian: name("debian"),
            node: name("node"),
            python: name("python"),
            go: name("go"),
            rust: name("rust"),
            static_site: name("static"),
        }
    }
}

/// What detection needs to know about the app besides its source.
#[derive(Debug, Clone, Default)]
pub struct PlanSettings {
    /// The app's Dockerfile, relative to the source root; `None` looks for
    /// `Dockerfile` and `Containerfile` at the root.
    pub dockerfile: Option<PathBuf>,
    pub base_images: BaseImages,
    /// Names of the app's build-time variables: declared as `ARG`s in a
    /// generated Containerfile so their values (passed as build args) reach
    /// the build steps. Platform secrets never belong here.
    pub build_args: Vec<String>,
    /// The app's own install, build and start commands.
    pub commands: CommandOverrides,
    pub runtimes: RuntimeVersions,
}

/// What the base images offer, matched against apps' declared versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeVersions {
    /// Python images by version (`SLIPWAY_PYTHON_IMAGES`); an app that
    /// declares no version builds on `BaseImages::python`.
    pub python: Vec<VersionedImage>,
    /// The Node.js of `BaseImages::node` (`SLIPWAY_NODE_VERSION`).
    pub node: Version,
    /// The Go of `BaseImages::go` (`SLIPWAY_GO_VERSION`).
    pub go: Version,
    /// Where `go mod download` fetches modules (`SLIPWAY_GOPROXY`).
    pub goproxy: String,
}

/// Go's own default module proxy setting.
pub const DEFAULT_GOPROXY: &str = "https://proxy.golang.org,direct";

impl Default for RuntimeVersions {
    /// What `scripts/build-tools.sh` builds: Debian bookworm's Python 3.11,
    /// Node 18 and Go 1.19, and trixie's Python 3.13.
    fn default() -> Self {
        RuntimeVersions {
            python: vec![
                VersionedImage {
                    version: Version::new(3, 11, 2),
                    image: "localhost/slipway/python:bookworm".into(),
                },
                VersionedImage {
                    version: Version::new(3, 13, 5),
                    image: "localhost/slipway/python:trixie".into(),
                },
            ],
            node: Version::new(18, 20, 4),
            go: Version::new(1, 19, 8),
            goproxy: DEFAULT_GOPROXY.into(),
        }
    }
}
