//! The repository's own Dockerfile, which wins over detection.

use super::{BuildPlan, Containerfile, PlanError, PlanSettings, Stack, DEFAULT_PORT};
use std::path::{Component, Path, PathBuf};

/// The names looked for at the root when the app names no Dockerfile.
const DEFAULT_NAMES: [&str; 2] = ["Dockerfile", "Containerfile"];

pub(crate) fn detect(dir: &Path, settings: &PlanSettings) -> Result<Option<BuildPlan>, PlanError> {
    let path = match &settings.dockerfile {
        Some(path) => {
            let path = checked_relative(path)?;
            if !dir.join(&path).is_file() {
                return Err(PlanError::DockerfileNotFound {
                    path: path.display().to_string(),
                });
            }
            path
        }
        None => match DEFAULT_NAMES.iter().find(|name| dir.join(name).is_file()) {
            Some(name) => PathBuf::from(name),
            None => return Ok(None),
        },
    };
    if !stays_inside(dir, &path) {
        return Err(PlanError::InvalidDockerfilePath {
            path: path.display().to_string(),
            reason: "it is a link that leads out of the source".into(),
        });
    }
    Ok(Some(BuildPlan {
        stack: Stack::Dockerfile,
        detected_from: vec![path.display().to_string()],
        containerfile: Containerfile::Repository { path },
        base_image: None,
        runtime: None,
        package_manager: None,
        install_command: None,
        build_command: None,
        start: None,
        build_args: settings.build_args.clone(),
        ignore: Vec::new(),
        port: DEFAULT_PORT,
        notes: vec![
            "the repository's Dockerfile decides the image; PORT is set to 8080 when it runs"
                .into(),
        ],
    }))
}

fn stays_inside(dir: &Path, path: &Path) -> bool {
    match (dir.canonicalize(), dir.join(path).canonicalize()) {
        (Ok(root), Ok(file)) => file.starts_with(root),
        _ => false,
    }
}

/// A Dockerfile path must stay inside the source tree: no absolute path,
/// no `..`, so an app cannot make the build read files of the worker.
fn checked_relative(path: &Path) -> Result<PathBuf, PlanError> {
    let invalid = |reason: &str| PlanError::InvalidDockerfilePath {
        path: path.display().to_string(),
        reason: reason.into(),
    };
    if path.as_os_str().is_empty() {
        return Err(invalid("it is empty"));
    }
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(invalid("it must not contain '..'")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid("it must be relative to the source root"))
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(invalid("it names the source root, not a file"));
    }
    Ok(clean)
}
