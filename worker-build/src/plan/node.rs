//! Node: `package.json`; npm, yarn or pnpm chosen by the lockfile; the
//! `build` script runs after the install; the start command is the Procfile
//! `web:` line, `scripts.start`, `main`, or a conventional entry file. A
//! project with a `build` script and nothing to start is a static site built
//! with Node and served by the static file server. A declared Node version
//! the base image does not satisfy is installed from the npm registry
//! (see `runtime`). The app's image installs, builds and runs as `app`.

use super::containerfile::{shell_quote, Writer, APP_UID};
use super::runtime::{self, Provided, RuntimeChoice};
use super::{
    static_site, BuildPlan, Containerfile, PackageManager, PlanError, PlanSettings, Stack,
    StartCommand, StartSource, Tree, DEFAULT_PORT,
};
use serde_json::Value;

const ENTRY_FILES: [&str; 4] = ["server.js", "index.js", "app.js", "main.js"];

struct Manager {
    kind: PackageManager,
    lockfile: Option<&'static str>,
}

impl Manager {
    fn detect(tree: &Tree) -> Manager {
        let found = |kind, lockfile: &'static str| {
            tree.is_file(lockfile).then_some(Manager {
                kind,
                lockfile: Some(lockfile),
            })
        };
        found(PackageManager::Pnpm, "pnpm-lock.yaml")
            .or_else(|| found(PackageManager::Yarn, "yarn.lock"))
            .or_else(|| found(PackageManager::Npm, "package-lock.json"))
            .or_else(|| found(PackageManager::Npm, "npm-shrinkwrap.json"))
            .unwrap_or(Manager {
                kind: PackageManager::Npm,
                lockfile: None,
            })
    }

    fn install(&self, production: bool) -> String {
        match (self.kind, self.lockfile.is_some(), production) {
            (PackageManager::Pnpm, _, true) => "pnpm install --frozen-lockfile --prod".into(),
            (PackageManager::Pnpm, _, false) => {
                "pnpm install --frozen-lockfile --production=false".into()
            }
            (PackageManager::Yarn, _, true) => "yarn install --frozen-lockfile --production".into(),
            (PackageManager::Yarn, _, false) => {
                "yarn install --frozen-lockfile --production=false".into()
            }
            (_, true, true) => "npm ci --omit=dev --no-audit --no-fund".into(),
            (_, true, false) => "npm ci --include=dev --no-audit --no-fund".into(),
            (_, false, true) => "npm install --omit=dev --no-audit --no-fund".into(),
            (_, false, false) => "npm install --include=dev --no-audit --no-fund".into(),
        }
    }

    fn run(&self, script: &str) -> String {
        match self.kind {
            PackageManager::Yarn => format!("yarn {script}"),
            PackageManager::Pnpm => format!("pnpm run {script}"),
            _ if script == "start" => "npm start".into(),
            _ => format!("npm run {script}"),
        }
    }
}

pub(crate) fn detect(
    tree: &Tree,
    settings: &PlanSettings,
    web: Option<&str>,
) -> Result<Option<BuildPlan>, PlanError> {
    let Some(text) = tree.read_optional("package.json")? else {
        return Ok(None);
    };
    let manifest: Value = serde_json::from_str(&text).map_err(|e| PlanError::InvalidManifest {
        file: "package.json".into(),
        reason: e.to_string(),
    })?;
    let script = |name: &str| {
        manifest["scripts"][name]
            .as_str()
            .filter(|s| !s.trim().is_empty())
            .is_some()
    };
    let manager = Manager::detect(tree);
    let runtime = runtime::node(tree, &manifest, settings.runtimes.node)?;
    let build = settings
        .commands
        .build
        .clone()
        .or_else(|| script("build").then(|| manager.run("build")));
    let start = match web {
        Some(command) => Some(StartCommand {
            command: command.into(),
            source: StartSource::Procfile,
        }),
        None if script("start") => Some(StartCommand {
            command: manager.run("start"),
            source: StartSource::PackageJson,
        }),
        None => entry_file(tree, &manifest),
    };
    let mut detected_from = vec!["package.json".to_string()];
    detected_from.extend(manager.lockfile.map(String::from));
    let mut notes = Vec::new();
    if settings.commands.install.is_some() {
        notes.push("the install command is the app's build.install_command".into());
    }
    if manager.lockfile.is_none() {
        notes.push("no lockfile: dependencies are resolved afresh on every install".into());
    }

    let Some(start) = start else {
        let Some(build) = build else {
            return Err(PlanError::NoStartCommand {
                stack: "node",
                hint: format!(
                    "add a \"start\" script to package.json, a Procfile with a web: line, \
                     or one of {} (or a \"build\" script that writes a static site)",
                    ENTRY_FILES.join(", ")
                ),
            });
        };
        // Built with Node, served as files.
        let install = install_command(settings, &manager, false);
        let mut w = Writer::new("static site built with node");
        install_steps(&mut w, settings, &manager, &runtime, &install, None);
        w.line(format!("RUN {build}"))
            .line(format!("RUN {}", static_site::COLLECT_OUTPUT));
        static_site::serve_stage(
            &mut w,
            &settings.base_images.static_site,
            "--from=build /out/",
        );
        w.run_as_app();
        notes.push("no start command: the build output is served as a static site".into());
        return Ok(Some(BuildPlan {
            stack: Stack::Static,
            containerfile: Containerfile::Generated { text: w.finish() },
            detected_from,
            base_image: Some(settings.base_images.static_site.clone()),
            runtime: Some(runtime),
            package_manager: Some(manager.kind),
            install_command: Some(install),
            build_command: Some(build),
            start: Some(static_site::server_command()),
            build_args: settings.build_args.clone(),
            ignore: Vec::new(),
            port: DEFAULT_PORT,
            notes,
        }));
    };

    // Without a build step the dev dependencies are not needed at all.
    let install = install_command(settings, &manager, build.is_none());
    let mut w = Writer::new("node");
    install_steps(
        &mut w,
        settings,
        &manager,
        &runtime,
        &install,
        Some(&start.command),
    );
    if let Some(build) = &build {
        w.line(format!("RUN {build}"));
    }
    Ok(Some(BuildPlan {
        stack: Stack::Node,
        containerfile: Containerfile::Generated { text: w.finish() },
        detected_from,
        base_image: Some(settings.base_images.node.clone()),
        runtime: Some(runtime),
        package_manager: Some(manager.kind),
        install_command: Some(install),
        build_command: build,
        start: Some(start),
        build_args: settings.build_args.clone(),
        ignore: Vec::new(),
        port: DEFAULT_PORT,
        notes,
    }))
}

/// The app's `build.install_command`, or the manager's install.
fn install_command(settings: &PlanSettings, manager: &Manager, production: bool) -> String {
    settings
        .commands
        .install
        .clone()
        .unwrap_or_else(|| manager.install(production))
}

/// FROM, the start metadata of an app image (`start`; `None` makes it the
/// `build` stage of a static site), the declared Node release if the base
/// lacks it, the manifest and lockfile alone, the install (its own cached
/// layer), the build args, then the rest of the source. An app image
/// installs and builds as the app user, so what the build writes in /app
/// stays writable for the app.
fn install_steps(
    w: &mut Writer,
    settings: &PlanSettings,
    manager: &Manager,
    runtime: &RuntimeChoice,
    install: &str,
    start: Option<&str>,
) {
    w.from(
        &settings.base_images.node,
        start.is_none().then_some("build"),
    )
    .line("WORKDIR /app");
    if let Some(start) = start {
        w.port().start(start);
        // Production from the start, so a bundler builds for production;
        // the install asks for dev dependencies explicitly when a build needs them.
        w.line("ENV NODE_ENV=production");
    }
    if let Provided::NpmPackage { package, range } = &runtime.provided {
        let spec = shell_quote(&format!("{package}@{range}"));
        w.line(format!(
            "RUN npm install -g --no-fund --no-audit --loglevel=error {spec} \
             || {{ echo 'no Node.js release on the npm registry matches {range} ({})' >&2; exit 1; }}",
            runtime.declared.as_ref().map(|d| d.declared_in.describe()).unwrap_or("declared"),
        ))
        .line("RUN node --version");
    }
    let owner = if start.is_some() {
        w.app_user(Some("/app")).run_as_app();
        format!("--chown={APP_UID}:{APP_UID} ")
    } else {
        String::new()
    };
    w.line(format!(
        "COPY {owner}package.json {}./",
        manager
            .lockfile
            .map(|l| format!("{l} "))
            .unwrap_or_default()
    ))
    .line(format!("RUN {install}"))
    .build_args(&settings.build_args)
    .line(format!("COPY {owner}. ."));
}

fn entry_file(tree: &Tree, manifest: &Value) -> Option<StartCommand> {
    let main = manifest["main"].as_str().filter(|m| tree.is_file(m));
    main.or_else(|| ENTRY_FILES.into_iter().find(|f| tree.is_file(f)))
        .map(|file| StartCommand {
            command: format!("node {}", super::containerfile::shell_quote(file)),
            source: if main.is_some() {
                StartSource::PackageJson
            } else {
                StartSource::Detected
            },
        })
}
