//! Build plans: how a source tree becomes an image. Pure detection, no I/O
//! beyond reading the tree: the repository's own Dockerfile wins (its path is
//! configurable per app); otherwise the stack is detected and a Containerfile
//! is generated on the configured base image.
//!
//! Detection order, when there is no Dockerfile: Go (`go.mod`), Rust
//! (`Cargo.toml`), Python (`requirements.txt` / `pyproject.toml`), Node
//! (`package.json`), then a static site (`index.html` at the root or in a
//! build output folder). Back-end stacks come before Node because their
//! repositories often carry a `package.json` for front-end tooling, while a
//! Node app rarely carries `go.mod` or `requirements.txt`. A Procfile `web:`
//! line sets the start command of every generated plan.
//!
//! Declared runtime versions choose the base image or the Node release
//! (`runtime`); the app's `build.install_command`, `build.command` and
//! `build.start_command` replace what detection would run. Every generated
//! image runs the app as the unprivileged user `app` (uid and gid 1000).
//!
//! Generated Containerfiles copy only the dependency manifest and lockfile,
//! install, and only then copy the rest, so that the install is a layer of
//! its own that stays cached while the lockfile is unchanged.

mod containerfile;
mod dockerfile;
mod error;
mod go;
mod node;
mod procfile;
mod python;
mod runtime;
mod rust;
mod settings;
mod static_site;
#[cfg(test)]
mod tests;
pub mod version;

pub use error::PlanError;
pub use runtime::{Declared, DeclaredIn, Language, Provided, RuntimeChoice, VersionedImage};
pub use settings::{BaseImages, PlanSettings, RuntimeVersions, DEFAULT_GOPROXY};
pub use slipway_shared::build_settings::CommandOverrides;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The port an app listens on unless `$PORT` says otherwise; every
/// generated image sets `ENV PORT=8080`.
pub const DEFAULT_PORT: u16 = 8080;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stack {
    Dockerfile,
    Node,
    Python,
    Go,
    Rust,
    Static,
}

impl Stack {
    pub fn as_str(self) -> &'static str {
        match self {
            Stack::Dockerfile => "dockerfile",
            Stack::Node => "node",
            Stack::Python => "python",
            Stack::Go => "go",
            Stack::Rust => "rust",
            Stack::Static => "static",
        }
    }
}

impl fmt::Display for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the build instructions come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Containerfile {
    /// The repository's own Dockerfile, relative to the source root.
    Repository { path: PathBuf },
    /// Generated from the detected stack.
    Generated { text: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageManager {
    Npm,
    Yarn,
    Pnpm,
    Pip,
    Go,
    Cargo,
}

/// Where the start command was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartSource {
    /// The `web:` line of the Procfile.
    Procfile,
    /// `scripts.start` or `main` of package.json.
    PackageJson,
    /// Found by looking at the sources (a WSGI/ASGI app, a main package, ...).
    Detected,
    /// The stack's fixed server (the static file server).
    Stack,
    /// The app's `build.start_command`.
    AppSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartCommand {
    /// A shell command line; `$PORT` is expanded when the container starts.
    pub command: String,
    pub source: StartSource,
}

/// The outcome of detection: shown in the build's logs (`summary_lines`)
/// and through the API (its serde form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildPlan {
    pub stack: Stack,
    pub containerfile: Containerfile,
    /// The files that decided the plan, e.g. `package.json`, `package-lock.json`.
    pub detected_from: Vec<String>,
    /// The image the generated plan builds on (`None` for a repository Dockerfile).
    pub base_image: Option<String>,
    /// The language runtime and the version it was chosen for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeChoice>,
    pub package_manager: Option<PackageManager>,
    pub install_command: Option<String>,
    pub build_command: Option<String>,
    pub start: Option<StartCommand>,
    /// Declared build-time variables (their names; values are passed as build args).
    pub build_args: Vec<String>,
    /// Patterns kept out of the build context of a generated plan (the
    /// repository's `.dockerignore` plus VCS and dependency folders).
    pub ignore: Vec<String>,
    /// The port the app is told to listen on through `$PORT` by default.
    pub port: u16,
    /// Anything the user should know about how the plan was chosen.
    pub notes: Vec<String>,
}

impl BuildPlan {
    /// Human-readable lines for the build's log.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "build plan: {} (from {})",
            self.stack,
            self.detected_from.join(", ")
        )];
        match &self.containerfile {
            Containerfile::Repository { path } => {
                lines.push(format!("  containerfile: {} (repository)", path.display()))
            }
            Containerfile::Generated { .. } => lines.push("  containerfile: generated".into()),
        }
        let mut field = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                lines.push(format!("  {name}: {value}"));
            }
        };
        field("base image", self.base_image.clone());
        field("runtime", self.runtime.as_ref().map(RuntimeChoice::summary));
        field(
            "package manager",
            self.package_manager
                .map(|pm| format!("{pm:?}").to_lowercase()),
        );
        field("install", self.install_command.clone());
        field("build", self.build_command.clone());
        field(
            "start",
            self.start.as_ref().map(|s| {
                let source = match s.source {
                    StartSource::Procfile => "Procfile web",
                    StartSource::PackageJson => "package.json",
                    StartSource::Detected => "detected",
                    StartSource::Stack => "static file server",
                    StartSource::AppSettings => "build.start_command",
                };
                format!("{} ({source})", s.command)
            }),
        );
        field(
            "build args",
            (!self.build_args.is_empty()).then(|| self.build_args.join(", ")),
        );
        lines.push(format!("  port: $PORT (default {})", self.port));
        lines.extend(self.notes.iter().map(|n| format!("  note: {n}")));
        if let Containerfile::Generated { text } = &self.containerfile {
            lines.push("  --- generated Containerfile ---".into());
            lines.extend(text.lines().map(|l| format!("  | {l}")));
        }
        lines
    }

    /// The JSON form shown through the API.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Decides how to build the source tree at `dir`.
pub fn detect(dir: &Path, settings: &PlanSettings) -> Result<BuildPlan, PlanError> {
    for name in &settings.build_args {
        if !valid_arg_name(name) {
            return Err(PlanError::InvalidBuildArg { name: name.clone() });
        }
    }
    if let Some(plan) = dockerfile::detect(dir, settings)? {
        check_overrides_applied(&plan, &settings.commands)?;
        return Ok(plan);
    }
    let tree = Tree::new(dir);
    // The app's start command wins over the Procfile's.
    let web = match &settings.commands.start {
        Some(start) => Some(start.clone()),
        None => procfile::web_command(&tree)?,
    };
    let detectors: [Detector; 5] = [
        go::detect,
        rust::detect,
        python::detect,
        node::detect,
        static_site::detect,
    ];
    for detect in detectors {
        if let Some(mut plan) = detect(&tree, settings, web.as_deref())? {
            plan.ignore = ignore_patterns(&tree, plan.stack)?;
            if settings.commands.start.is_some() {
                if let Some(start) = &mut plan.start {
                    if start.source == StartSource::Procfile {
                        start.source = StartSource::AppSettings;
                    }
                }
            } else if web.is_some() && !plan.detected_from.iter().any(|f| f == "Procfile") {
                plan.detected_from.push("Procfile".into());
            }
            check_overrides_applied(&plan, &settings.commands)?;
            return Ok(plan);
        }
    }
    Err(PlanError::NoBuildPlan {
        looked_for: NO_PLAN_LOOKED_FOR.into(),
    })
}

const NO_PLAN_LOOKED_FOR: &str = "a Dockerfile or Containerfile, go.mod, Cargo.toml, \
     requirements.txt, pyproject.toml, package.json, or index.html (at the root or in \
     public/, dist/, build/, _site/, site/, www/)";

/// An override the chosen plan did not use is an error, not a silent no-op.
fn check_overrides_applied(plan: &BuildPlan, commands: &CommandOverrides) -> Result<(), PlanError> {
    let not_applied = |setting, extra| PlanError::OverrideNotApplicable {
        setting,
        stack: plan.stack.as_str(),
        extra,
    };
    if commands.install.is_some() && plan.install_command != commands.install {
        return Err(not_applied("install_command", ""));
    }
    if commands.build.is_some() && plan.build_command != commands.build {
        return Err(not_applied("command", ""));
    }
    let start = plan.start.as_ref().map(|s| &s.command);
    if commands.start.is_some() && start != commands.start.as_ref() {
        return Err(not_applied("start_command", " and Rust"));
    }
    Ok(())
}

type Detector = fn(&Tree, &PlanSettings, Option<&str>) -> Result<Option<BuildPlan>, PlanError>;

fn valid_arg_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Folders that never belong in a build context of a generated plan: they
/// are rebuilt inside the image, and copying a host's copy would both slow
/// the build and break the dependency layer's purpose.
fn ignore_patterns(tree: &Tree, stack: Stack) -> Result<Vec<String>, PlanError> {
    let mut patterns: Vec<String> = vec![".git".into()];
    patterns.extend(
        match stack {
            Stack::Node | Stack::Static => &["node_modules"][..],
            Stack::Python => &[".venv", "venv", "__pycache__"][..],
            Stack::Rust => &["target"][..],
            Stack::Go | Stack::Dockerfile => &[][..],
        }
        .iter()
        .map(|p| p.to_string()),
    );
    if let Some(own) = tree.read_optional(".dockerignore")? {
        patterns.extend(
            own.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    Ok(patterns)
}

/// Read access to the source tree, with errors that name the file.
pub(crate) struct Tree<'a> {
    root: &'a Path,
}

impl<'a> Tree<'a> {
    fn new(root: &'a Path) -> Self {
        Tree { root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn is_file(&self, rel: &str) -> bool {
        self.path(rel).is_file()
    }

    fn is_dir(&self, rel: &str) -> bool {
        self.path(rel).is_dir()
    }

    fn read_optional(&self, rel: &str) -> Result<Option<String>, PlanError> {
        let path = self.path(rel);
        if !path.is_file() {
            return Ok(None);
        }
        std::fs::read_to_string(&path)
            .map(Some)
            .map_err(|source| PlanError::Unreadable {
                path: rel.into(),
                reason: source.to_string(),
            })
    }

    /// Names of the plain files in folder `rel` (`""` for the root), sorted.
    fn files_in(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(rel))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    /// Names of the sub-folders of folder `rel`, sorted.
    fn dirs_in(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(rel))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }
}
