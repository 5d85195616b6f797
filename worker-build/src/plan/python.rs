//! Python: `requirements.txt` or `pyproject.toml`, installed into a venv;
//! the start command is the Procfile `web:` line or a detected WSGI/ASGI
//! app served by gunicorn or uvicorn (added when the app does not list it).
//! The base image is the newest Python image that satisfies the declared
//! version (see `runtime`). The venv and the app belong to the app user.

use super::containerfile::{shell_quote, Writer, APP_UID};
use super::runtime;
use super::{
    BuildPlan, Containerfile, PackageManager, PlanError, PlanSettings, Stack, StartCommand,
    StartSource, Tree, DEFAULT_PORT,
};

/// Files looked at, in order, for an app object.
const ENTRY_FILES: [&str; 6] = [
    "app.py",
    "main.py",
    "wsgi.py",
    "asgi.py",
    "server.py",
    "application.py",
];
const WSGI_FRAMEWORKS: [&str; 2] = ["Flask", "Bottle"];
const ASGI_FRAMEWORKS: [&str; 4] = ["FastAPI", "Starlette", "Quart", "Litestar"];
const PIP: &str = "pip install --no-cache-dir";

enum Dependencies {
    /// requirements.txt copied alone: the install layer stays cached.
    Requirements,
    /// requirements.txt that includes other files or the project itself
    /// (`-r`, `-e`, `.`): the whole source is needed for the install.
    RequirementsWithSource,
    /// `[project].dependencies` of pyproject.toml, written into the RUN line.
    Pyproject(Vec<String>),
    /// pyproject.toml without a dependency list: `pip install .`.
    Project,
}

pub(crate) fn detect(
    tree: &Tree,
    settings: &PlanSettings,
    web: Option<&str>,
) -> Result<Option<BuildPlan>, PlanError> {
    let mut pyproject = None;
    let (deps, requirement_text, detected_from) = if let Some(text) =
        tree.read_optional("requirements.txt")?
    {
        let needs_source = text.lines().map(str::trim).any(|l| {
            l.starts_with("-r") || l.starts_with("-c") || l.starts_with("-e") || l.starts_with('.')
        });
        let deps = if needs_source {
            Dependencies::RequirementsWithSource
        } else {
            Dependencies::Requirements
        };
        (deps, text, "requirements.txt")
    } else if let Some(text) = tree.read_optional("pyproject.toml")? {
        let doc = parse_pyproject(&text)?;
        let deps = pyproject_dependencies(&doc)?;
        pyproject = Some(doc);
        let joined = deps.clone().unwrap_or_default().join("\n");
        let deps = deps
            .map(Dependencies::Pyproject)
            .unwrap_or(Dependencies::Project);
        (deps, joined, "pyproject.toml")
    } else {
        return Ok(None);
    };

    if pyproject.is_none() {
        if let Some(text) = tree.read_optional("pyproject.toml")? {
            pyproject = Some(parse_pyproject(&text)?);
        }
    }
    let (image, runtime) = runtime::python(
        tree,
        pyproject.as_ref(),
        &settings.runtimes.python,
        &settings.base_images.python,
    )?;
    let mut notes = Vec::new();
    let (start, server) = match web {
        Some(command) => (
            StartCommand { command: command.into(), source: StartSource::Procfile },
            None,
        ),
        None => match entry(tree)? {
            Some(entry) => entry,
            None => {
                return Err(PlanError::NoStartCommand {
                    stack: "python",
                    hint: format!(
                        "add a Procfile with a web: line, or an app object (Flask, FastAPI, ...) in one of {}",
                        ENTRY_FILES.join(", ")
                    ),
                })
            }
        },
    };
    // The detected server must be installed even if the app does not list it.
    let extra = server.filter(|server| !lists(&requirement_text, server));
    if let Some(server) = extra {
        notes.push(format!(
            "{server} is not among the dependencies; the plan installs it"
        ));
    }

    let owner = format!("--chown={APP_UID}:{APP_UID}");
    let mut w = Writer::new("python");
    w.from(&image, None)
        .line("WORKDIR /app")
        .port()
        .start(&start.command)
        .line("ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH")
        .app_user(Some("/app"))
        .line(format!(
            "RUN mkdir /opt/venv && chown {APP_UID}:{APP_UID} /opt/venv"
        ))
        .run_as_app()
        .line("RUN python3 -m venv /opt/venv");
    let detected_install = match &deps {
        Dependencies::Requirements => {
            w.line(format!("COPY {owner} requirements.txt ./"));
            format!("{PIP} -r requirements.txt")
        }
        Dependencies::RequirementsWithSource => {
            notes.push("requirements.txt refers to other files: the install runs after the whole source is copied, so it is not cached".into());
            w.line(format!("COPY {owner} . ."));
            format!("{PIP} -r requirements.txt")
        }
        Dependencies::Pyproject(list) if list.is_empty() => "true".into(),
        Dependencies::Pyproject(list) => format!(
            "{PIP} {}",
            list.iter()
                .map(|d| shell_quote(d))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Dependencies::Project => {
            notes.push("pyproject.toml lists no [project] dependencies: the project is installed with `pip install .` after the source is copied".into());
            w.line(format!("COPY {owner} . ."));
            format!("{PIP} .")
        }
    };
    let install = settings
        .commands
        .install
        .clone()
        .unwrap_or(detected_install);
    w.line(format!("RUN {install}"));
    if let Some(server) = extra {
        w.line(format!("RUN {PIP} {server}"));
    }
    w.build_args(&settings.build_args);
    if matches!(
        deps,
        Dependencies::Requirements | Dependencies::Pyproject(_)
    ) {
        w.line(format!("COPY {owner} . ."));
    }
    let build = settings.commands.build.clone();
    if let Some(build) = &build {
        w.line(format!("RUN {build}"));
    }

    Ok(Some(BuildPlan {
        stack: Stack::Python,
        containerfile: Containerfile::Generated { text: w.finish() },
        detected_from: vec![detected_from.to_string()],
        base_image: Some(image),
        runtime: Some(runtime),
        package_manager: Some(PackageManager::Pip),
        install_command: Some(install),
        build_command: build,
        start: Some(start),
        build_args: settings.build_args.clone(),
        ignore: Vec::new(),
        port: DEFAULT_PORT,
        notes,
    }))
}

fn parse_pyproject(text: &str) -> Result<toml::Table, PlanError> {
    text.parse()
        .map_err(|e: toml::de::Error| PlanError::InvalidManifest {
            file: "pyproject.toml".into(),
            reason: e.message().to_string(),
        })
}

/// `[project].dependencies`, or `None` when pyproject.toml has no such list.
fn pyproject_dependencies(doc: &toml::Table) -> Result<Option<Vec<String>>, PlanError> {
    let Some(list) = doc.get("project").and_then(|p| p.get("dependencies")) else {
        return Ok(None);
    };
    let list = list.as_array().ok_or_else(|| PlanError::InvalidManifest {
        file: "pyproject.toml".into(),
        reason: "[project].dependencies is not a list".into(),
    })?;
    Ok(Some(
        list.iter()
            .filter_map(|d| d.as_str().map(String::from))
            .collect(),
    ))
}

/// Whether a requirement list names `package` (case-insensitive, any version).
fn lists(requirements: &str, package: &str) -> bool {
    requirements.lines().any(|line| {
        let name: String = line
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
            .collect();
        name.eq_ignore_ascii_case(package)
    })
}

/// A WSGI/ASGI app object in one of the entry files, or a Django project,
/// with the server that runs it.
fn entry(tree: &Tree) -> Result<Option<(StartCommand, Option<&'static str>)>, PlanError> {
    let detected = |command: String| StartCommand {
        command,
        source: StartSource::Detected,
    };
    for file in ENTRY_FILES {
        let Some(text) = tree.read_optional(file)? else {
            continue;
        };
        let module = file.trim_end_matches(".py");
        if let Some(var) = app_object(&text, &WSGI_FRAMEWORKS) {
            let command = format!("gunicorn --bind 0.0.0.0:$PORT {module}:{var}");
            return Ok(Some((detected(command), Some("gunicorn"))));
        }
        if let Some(var) = app_object(&text, &ASGI_FRAMEWORKS) {
            let command = format!("uvicorn {module}:{var} --host 0.0.0.0 --port $PORT");
            return Ok(Some((detected(command), Some("uvicorn"))));
        }
    }
    if tree.is_file("manage.py") {
        if let Some(project) = tree
            .dirs_in("")
            .into_iter()
            .find(|d| tree.is_file(&format!("{d}/wsgi.py")))
        {
            let command = format!("gunicorn --bind 0.0.0.0:$PORT {project}.wsgi:application");
            return Ok(Some((detected(command), Some("gunicorn"))));
        }
    }
    // A script that serves by itself.
    Ok(["app.py", "main.py", "server.py"]
        .into_iter()
        .find(|f| tree.is_file(f))
        .map(|f| (detected(format!("python3 {f}")), None)))
}

/// The variable assigned a framework's app object: `app = Flask(__name__)` -> `app`.
fn app_object(text: &str, frameworks: &[&str]) -> Option<String> {
    text.lines().find_map(|line| {
        let (lhs, rhs) = line.split_once('=')?;
        let var = lhs.trim();
        let valid = !var.is_empty()
            && var.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
            && !var.starts_with(|c: char| c.is_ascii_digit());
        let rhs = rhs.trim_start();
        let call = frameworks.iter().any(|f| {
            rhs.strip_prefix(f)
                .or_else(|| rhs.split_once('.').and_then(|(_, r)| r.strip_prefix(f)))
                .is_some_and(|r| r.trim_start().starts_with('('))
        });
        (valid && call && !line.starts_with(char::is_whitespace)).then(|| var.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::{app_object, lists, WSGI_FRAMEWORKS};

    #[test]
    fn finds_the_app_variable() {
        let text = "from flask import Flask\n\napplication = Flask(__name__)\n";
        assert_eq!(
            app_object(text, &WSGI_FRAMEWORKS).as_deref(),
            Some("application")
        );
        assert_eq!(
            app_object("app = flask.Flask(__name__)", &WSGI_FRAMEWORKS).as_deref(),
            Some("app")
        );
        assert_eq!(app_object("    app = Flask(x)", &WSGI_FRAMEWORKS), None);
        assert_eq!(app_object("x == Flask(x)", &WSGI_FRAMEWORKS), None);
    }

    #[test]
    fn recognises_listed_packages() {
        assert!(lists("flask==3.0.3\nGunicorn==23.0.0\n", "gunicorn"));
        assert!(!lists("flask==3.0.3\ngunicorn-extras==1\n", "gunicorn"));
    }
}
