//! Rust: `Cargo.toml` of a single package with a binary; dependencies are
//! compiled in their own layer against a stub `main.rs` (the usual trick,
//! since cargo cannot fetch and build dependencies alone), then the real
//! source is built and the binary copied onto the plain Debian image.

use super::containerfile::Writer;
use super::{
    BuildPlan, Containerfile, PackageManager, PlanError, PlanSettings, Stack, StartCommand,
    StartSource, Tree, DEFAULT_PORT,
};

pub(crate) fn detect(
    tree: &Tree,
    settings: &PlanSettings,
    web: Option<&str>,
) -> Result<Option<BuildPlan>, PlanError> {
    let Some(text) = tree.read_optional("Cargo.toml")? else {
        return Ok(None);
    };
    let invalid = |reason: String| PlanError::InvalidManifest {
        file: "Cargo.toml".into(),
        reason,
    };
    let manifest: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| invalid(e.message().to_string()))?;
    let package = manifest
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| {
            invalid("no [package] name (a workspace root needs a Dockerfile that says which binary to build)".into())
        })?;
    let bins = manifest.get("bin").and_then(|b| b.as_array());
    let binary = bins
        .and_then(|b| b.first())
        .and_then(|b| b.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or(package)
        .to_string();
    if bins.is_none() && !tree.is_file("src/main.rs") {
        return Err(PlanError::NoStartCommand {
            stack: "rust",
            hint: "the package has no binary (src/main.rs or a [[bin]] section)".into(),
        });
    }
    let has_lock = tree.is_file("Cargo.lock");
    let locked = if has_lock { " --locked" } else { "" };
    // The stub build only works for the plain layout.
    let simple = bins.is_none()
        && !tree.is_file("build.rs")
        && !tree.is_file("src/lib.rs")
        && manifest.get("lib").is_none();
    let build = format!("cargo build --release{locked}");

    let start = match web {
        Some(command) => StartCommand {
            command: command.into(),
            source: StartSource::Procfile,
        },
        None => StartCommand {
            command: binary.clone(),
            source: StartSource::Detected,
        },
    };
    let mut w = Writer::new("rust");
    w.from(&settings.base_images.rust, Some("build"))
        .line("WORKDIR /src");
    if simple {
        let crate_name = package.replace('-', "_");
        w.line(if has_lock {
            "COPY Cargo.toml Cargo.lock ./"
        } else {
            "COPY Cargo.toml ./"
        })
        .line(format!(
            "RUN mkdir -p src && echo 'fn main() {{}}' > src/main.rs && {build} \
                 && rm -rf src target/release/{binary} target/release/deps/{crate_name}-* \
                 target/release/.fingerprint/{package}-*"
        ));
    }
    w.build_args(&settings.build_args)
        .line("COPY . .")
        .line(format!(
            "RUN {build} && cp target/release/{binary} /usr/local/bin/{binary}"
        ))
        .from(&settings.base_images.debian, None)
        .port()
        .start(&start.command)
        .app_user(None)
        .line(format!(
            "COPY --from=build /usr/local/bin/{binary} /usr/local/bin/{binary}"
        ))
        .run_as_app();
    let mut detected_from = vec!["Cargo.toml".to_string()];
    if has_lock {
        detected_from.push("Cargo.lock".into());
    }
    let mut notes = vec![format!(
        "the binary runs on {}",
        settings.base_images.debian
    )];
    if !simple {
        notes.push("build.rs, a library or [[bin]] sections: dependencies are built together with the source, not cached apart".into());
    }
    Ok(Some(BuildPlan {
        stack: Stack::Rust,
        containerfile: Containerfile::Generated { text: w.finish() },
        detected_from,
        base_image: Some(settings.base_images.rust.clone()),
        runtime: None,
        package_manager: Some(PackageManager::Cargo),
        install_command: simple.then(|| format!("{build} (dependencies, against a stub main.rs)")),
        build_command: Some(build),
        start: Some(start),
        build_args: settings.build_args.clone(),
        ignore: Vec::new(),
        port: DEFAULT_PORT,
        notes,
    }))
}
