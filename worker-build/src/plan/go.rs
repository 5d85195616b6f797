//! Go: `go.mod`; modules downloaded in their own layer, the binary built in
//! a build stage and copied onto the plain Debian image. The binary
//! is named after the module (or the `cmd/` folder) and is on `PATH`, so a
//! Procfile `web:` line can call it by name. The `go` line of go.mod must
//! not be newer than the Go image's; modules come through `SLIPWAY_GOPROXY`,
//! and a failed download names the proxy it tried. The binary runs as `app`.

use super::containerfile::{shell_quote, Writer};
use super::runtime;
use super::{
    BuildPlan, Containerfile, PackageManager, PlanError, PlanSettings, Stack, StartCommand,
    StartSource, Tree, DEFAULT_PORT,
};

pub(crate) fn detect(
    tree: &Tree,
    settings: &PlanSettings,
    web: Option<&str>,
) -> Result<Option<BuildPlan>, PlanError> {
    let Some(gomod) = tree.read_optional("go.mod")? else {
        return Ok(None);
    };
    let module = gomod
        .lines()
        .find_map(|l| l.trim().strip_prefix("module "))
        .map(|m| m.trim().trim_matches('"').to_string())
        .ok_or_else(|| PlanError::InvalidManifest {
            file: "go.mod".into(),
            reason: "it has no module line".into(),
        })?;
    let runtime = runtime::go(&gomod, settings.runtimes.go)?;
    let (package, binary) = main_package(tree, &module)?;
    let has_sum = tree.is_file("go.sum");
    // Plain `go build` links against the precompiled standard library of
    // the Go image; CGO_ENABLED=0 or -trimpath would recompile it on every
    // build (measured: 42 s against 2 s for a small server). The binary then
    // needs glibc, which the Debian runtime image has.
    let build = settings
        .commands
        .build
        .clone()
        .unwrap_or_else(|| format!("go build -o /out/{binary} {package}"));
    let install = settings
        .commands
        .install
        .clone()
        .unwrap_or_else(|| "go mod download".into());
    let goproxy = &settings.runtimes.goproxy;
    let proxy_hint = shell_quote(&format!(
        "fetching Go modules failed; the module proxy tried was GOPROXY={goproxy} \
         (set by SLIPWAY_GOPROXY)"
    ));

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
    let mut w = Writer::new("go");
    w.from(&settings.base_images.go, Some("build"))
        .line("WORKDIR /src")
        .line(if has_sum {
            "COPY go.mod go.sum ./"
        } else {
            "COPY go.mod ./"
        })
        .line(format!("ENV GOPROXY={}", shell_quote(goproxy)))
        .line(format!(
            "RUN {install} || {{ echo {proxy_hint} >&2; exit 1; }}"
        ))
        .build_args(&settings.build_args)
        .line("COPY . .")
        .line(format!("RUN {build}"))
        .from(&settings.base_images.debian, None)
        .port()
        .start(&start.command)
        .app_user(None)
        .line(format!(
            "COPY --from=build /out/{binary} /usr/local/bin/{binary}"
        ))
        .run_as_app();
    let mut detected_from = vec!["go.mod".to_string()];
    if has_sum {
        detected_from.push("go.sum".into());
    }
    Ok(Some(BuildPlan {
        stack: Stack::Go,
        containerfile: Containerfile::Generated { text: w.finish() },
        detected_from,
        base_image: Some(settings.base_images.go.clone()),
        runtime: Some(runtime),
        package_manager: Some(PackageManager::Go),
        install_command: Some(install),
        build_command: Some(build),
        start: Some(start),
        build_args: settings.build_args.clone(),
        ignore: Vec::new(),
        port: DEFAULT_PORT,
        notes: vec![
            format!("the binary runs on {}", settings.base_images.debian),
            format!("modules are fetched through GOPROXY={goproxy}"),
        ]
        .into_iter()
        .chain(settings.commands.build.as_ref().map(|_| {
            format!("build.command replaces `go build`: it must write the binary to /out/{binary}")
        }))
        .collect(),
    }))
}

/// The main package: the root if it holds `package main`, else the only
/// folder under `cmd/`. Returns the package path and the binary name.
fn main_package(tree: &Tree, module: &str) -> Result<(String, String), PlanError> {
    if is_main(tree, "")? {
        let name = module.rsplit('/').next().unwrap_or("app");
        return Ok((".".into(), binary_name(name)));
    }
    let commands: Vec<String> = tree
        .dirs_in("cmd")
        .into_iter()
        .filter(|d| is_main(tree, &format!("cmd/{d}")).unwrap_or(false))
        .collect();
    match commands.as_slice() {
        [only] => Ok((format!("./cmd/{only}"), binary_name(only))),
        [] => Err(PlanError::NoStartCommand {
            stack: "go",
            hint: "no `package main` at the root or in a cmd/<name>/ folder".into(),
        }),
        _ => Err(PlanError::NoStartCommand {
            stack: "go",
            hint: format!(
                "several commands ({}): add a Dockerfile that says which one to build",
                commands.join(", ")
            ),
        }),
    }
}

fn is_main(tree: &Tree, dir: &str) -> Result<bool, PlanError> {
    for file in tree.files_in(dir) {
        if !file.ends_with(".go") || file.ends_with("_test.go") {
            continue;
        }
        let path = if dir.is_empty() {
            file
        } else {
            format!("{dir}/{file}")
        };
        let text = tree.read_optional(&path)?.unwrap_or_default();
        if text.lines().any(|l| l.trim() == "package main") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A file name safe in a path and a shell word.
fn binary_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.trim_matches('-').is_empty() {
        "app".into()
    } else {
        clean
    }
}
