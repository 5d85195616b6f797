//! Fetching git sources from real servers on loopback (git daemon, smart
//! HTTP with and without basic auth, sshd, a server that never answers):
//! branches, tags and commits at depth 1, the resolved commit, credentials
//! that never reach a log line or an error, and the error classes a user
//! and the runtime rely on.

use slipway_shared::domain::{GitRef, GitUrl};
use slipway_shared::egress::{parse_authority, OutboundPolicy, PlatformService};
use slipway_shared::job::JobError;
use slipway_shared::logsink::{LogHandle, LogSink};
use slipway_testkit::git::{
    git, seed_repo, ssh_keygen, GitDaemon, GitHttp, GitSsh, HttpOptions, SeededRepo, SilentServer,
    SEED_BRANCH, SEED_TAG,
};
use slipway_testkit::{free_port, fresh_database, process_group_alive, TestDb};
use slipway_worker_build::source::git::{
    fetch, FetchOptions, Fetched, GitCredential, GitSource, RefKind,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const TOKEN: &str = "glpat-s3cret-token-4242";
/// `deployer:TOKEN` in base64, as an `Authorization: Basic` header carries it.
const BASIC: &str = "ZGVwbG95ZXI6Z2xwYXQtczNjcmV0LXRva2VuLTQyNDI=";

/// A single-host install's options: the test servers are on loopback.
fn loopback() -> FetchOptions {
    policy(&[])
}

/// Loopback allowed, and `platform` the platform's own services.
fn policy(platform: &[(&'static str, u16)]) -> FetchOptions {
    let platform = platform
        .iter()
        .map(|(name, port)| PlatformService {
            name,
            endpoint: parse_authority(&format!("127.0.0.1:{port}"), 0).expect("an address"),
        })
        .collect();
    FetchOptions {
        outbound: OutboundPolicy::new(
            OutboundPolicy::parse_allow("loopback").expect("a class"),
            platform,
        ),
        ..FetchOptions::default()
    }
}

/// One deployment's logs in a fresh database, and a scratch dir.
struct Harness {
    db: TestDb,
    sink: LogSink,
    sink_task: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
    deployment: Uuid,
    logs: LogHandle,
    dir: PathBuf,
    fetches: usize,
}

impl Harness {
    async fn new() -> anyhow::Result<Harness> {
        let db = fresh_database().await?;
        let project = Uuid::new_v4();
        sqlx::query("INSERT INTO projects (id, name) VALUES ($1, $2)")
            .bind(project)
            .bind(format!("p-{}", project.simple()))
            .execute(&db.pool)
            .await?;
        let names = slipway_shared::queue::topology::QueueNames::new("unused.");
        let mut tx = db.pool.begin().await?;
        let created = slipway_shared::db::deployments::create(
            &mut tx,
            &names,
            slipway_shared::db::deployments::NewDeployment {
                project_id: project,
                app_id: None,
                kind: "probe",
                source: serde_json::json!({}),
                probe: None,
            },
        )
        .await?;
        tx.commit().await?;
        let stop = CancellationToken::new();
        let (sink, sink_task) =
            LogSink::start(db.pool.clone(), Duration::from_millis(20), stop.clone());
        let logs = sink.handle(created.id, "build", 1);
        let dir =
            std::env::temp_dir().join(format!("slipway-git-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("repos"))?;
        Ok(Harness {
            db,
            sink,
            sink_task,
            stop,
            deployment: created.id,
            logs,
            dir,
            fetches: 0,
        })
    }

    fn repos(&self) -> PathBuf {
        self.dir.join("repos")
    }

    fn seed(&self, name: &str) -> anyhow::Result<SeededRepo> {
        seed_repo(&self.repos(), name, None)
    }

    /// A fresh work dir for one fetch.
    fn dest(&mut self) -> PathBuf {
        self.fetches += 1;
        self.dir.join(format!("work-{}", self.fetches))
    }

    async fn fetch(
        &mut self,
        source: &GitSource,
        opts: &FetchOptions,
    ) -> (PathBuf, Result<Fetched, JobError>) {
        let dest = self.dest();
        let started = Instant::now();
        let result = fetch(source, &dest, opts, &self.logs, &CancellationToken::new()).await;
        // The URL as shown by the fetch itself: a test URL may carry a token.
        let shown = source
            .url
            .as_str()
            .split('@')
            .next_back()
            .unwrap_or_default();
        eprintln!(
            "fetch {shown} {} -> {:?} in {:?}",
            source.reference.as_str(),
            result
                .as_ref()
                .map(|f| f.reference_kind)
                .map_err(|e| e.to_string()),
            started.elapsed()
        );
        (dest, result)
    }

    async fn lines(&self) -> anyhow::Result<Vec<String>> {
        self.logs.flush().await;
        Ok(sqlx::query_scalar(
            "SELECT line FROM deployment_logs WHERE deployment_id = $1 ORDER BY seq",
        )
        .bind(self.deployment)
        .fetch_all(&self.db.pool)
        .await?)
    }

    async fn finish(self) {
        drop(self.sink);
        self.stop.cancel();
        let _ = self.sink_task.await;
        let _ = std::fs::remove_dir_all(&self.dir);
        self.db.drop_database().await;
    }
}

fn source(url: &str, reference: &str, credential: Option<GitCredential>) -> GitSource {
    GitSource {
        url: GitUrl::parse(url).expect("valid url"),
        reference: GitRef::parse(reference).expect("valid ref"),
        credential,
    }
}

fn token(token: &str) -> Option<GitCredential> {
    Some(GitCredential::Token {
        username: Some("deployer".into()),
        token: token.to_owned().into(),
    })
}

fn permanent(result: Result<Fetched, JobError>) -> (String, String) {
    match result {
        Err(JobError::Permanent { code, message }) => (code, message),
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

/// Depth 1: a single commit in the history and a shallow marker.
fn assert_shallow(dest: &Path) {
    let count = git(dest, &["rev-list", "--count", "HEAD"]).expect("rev-list");
    assert_eq!(count, "1", "only the ref's commit was fetched");
    assert!(dest.join(".git/shallow").exists());
}

/// A branch, a tag, a branch tip and a commit that is no tip, at depth 1.
async fn fetches_every_kind_of_ref(
    h: &mut Harness,
    url: impl Fn(&str) -> String,
) -> anyhow::Result<()> {
    let repo = h.seed("app.git")?;
    let opts = loopback();
    let cases = [
        ("main", &repo.main, RefKind::Branch),
        (SEED_TAG, &repo.first, RefKind::Tag),
        (SEED_BRANCH, &repo.feature, RefKind::Branch),
        (repo.first.as_str(), &repo.first, RefKind::Commit),
        ("HEAD", &repo.main, RefKind::Other),
    ];
    for (reference, commit, kind) in cases {
        let (dest, result) = h
            .fetch(&source(&url(&repo.name), reference, None), &opts)
            .await;
        let fetched = result.unwrap_or_else(|e| panic!("fetching {reference}: {e}"));
        assert_eq!(&fetched.commit, commit, "{reference}");
        assert_eq!(fetched.reference_kind, kind, "{reference}");
        assert!(fetched.shallow, "{reference}");
        assert_shallow(&dest);
        assert_eq!(git(&dest, &["rev-parse", "HEAD"])?, *commit);
        assert!(dest.join("README.md").exists());
        assert_eq!(
            dest.join("CHANGELOG").exists(),
            *commit != repo.first,
            "{reference}"
        );
        assert_eq!(
            dest.join("feature.txt").exists(),
            *commit == repo.feature,
            "{reference}"
        );
    }
    let lines = h.lines().await?;
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("at commit {}", repo.first))),
        "the resolved commit is logged: {lines:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn fetches_branches_tags_and_commits_over_git_daemon() -> anyhow::Result<()> {
    let mut h = Harness::new().await?;
    let daemon = GitDaemon::start(&h.repos())?;
    fetches_every_kind_of_ref(&mut h, |name| daemon.url(name)).await?;
    drop(daemon);
    h.finish().await;
    Ok(())
}

#[tokio::test]
async fn fetches_branches_tags_and_commits_over_smart_http() -> anyhow::Result<()> {
    let mut h = Harness::new().await?;
    let server = GitHttp::start(&h.repos(), None)?;
    fetches_every_kind_of_ref(&mut h, |name| server.url(name)).await?;
    drop(server);
    h.finish().await;
    Ok(())
}

#[tokio::test]
async fn a_server_that_will_not_serve_a_commit_by_id_gets_a_full_fetch() -> anyhow::Result<()> {
    let mut h = Harness::new().await?;
    let repo = h.seed("old.git")?;
    let server = GitHttp::start_with(
        &h.repos(),
        HttpOptions {
            legacy: true,
            ..Default::default()
        },
    )?;
    let (dest, result) = h
        .fetch(
            &source(&server.url(&repo.name), &repo.first, None),
            &loopback(),
        )
        .await;
    let fetched = result?;
    assert_eq!(fetched.commit, repo.first);
    assert_eq!(fetched.reference_kind, RefKind::Commit);
    assert!(!fetched.shallow, "the fallback fetched history");
    assert_eq!(git(&dest, &["rev-parse", "HEAD"])?, repo.first);

    // An advertised tip still comes at depth 1 from such a server.
    let (dest, result) = h
        .fetch(
            &source(&server.url(&repo.name), &repo.feature, None),
            &loopback(),
        )
        .await;
    assert!(result?.shallow);
    assert_shallow(&dest);

    let missing = "0123456789abcdef0123456789abcdef01234567";
    let (_, result) = h
        .fetch(&source(&server.url(&repo.name), missing, None), &loopback())
        .await;
    let (code, message) = permanent(result);
    assert_eq!(code, "ref_not_found");
    assert!(message.contains(missing), "{message}");
    drop(server);
    h.finish().await;
    Ok(())
}

#[tokio::test]
async fn a_private_repository_needs_its_token_and_never_shows_it() -> anyhow::Result<()> {
    let mut h = Harness::new().await?;
    let repo = h.seed("private.git")?;
    let server = GitHttp::start(&h.repos(), Some(("deployer", TOKEN)))?;
    let url = server.url(&repo.name);
    let opts = loopback();

    let (_, without) = h.fetch(&source(&url, "main", None), &opts).await;
    let (code, message) = permanent(without);
    assert_eq!(code, "source_auth_failed", "{message}");
    assert!(message.contains("asks for a credential"), "{message}");

    let (_, wrong) = h
        .fetch(&source(&url, "main", token("not-the-token")), &opts)
        .await;
    let (code, message) = permanent(wrong);
    assert_eq!(code, "source_auth_failed", "{message}");
    assert!(!message.contains("not-the-token"), "{message}");

    let (_, wrong_ref) = h.fetch(&source(&url, "nosuch", token(TOKEN)), &opts).await;
    let (code, message) = permanent(wrong_ref);
    assert_eq!(code, "ref_not_found");
    let mut errors = vec![message];

    let (dest, right) = h.fetch(&source(&url, "main", token(TOKEN)), &opts).await;
    assert_eq!(right?.commit, repo.main);
    assert_shallow(&dest);

    // A user who writes the token into the URL gets it used, not shown.
    let in_url = url.replace("http://", &format!("http://deployer:{TOKEN}@"));
    let (_, from_url) = h.fetch(&source(&in_url, SEED_TAG, None), &opts).await;
    assert_eq!(from_url?.commit, repo.first);
    let in_url_missing = in_url.replace("private.git", "nothing-here.git");
    let (_, result) = h.fetch(&source(&in_url_missing, "main", None), &opts).await;
    let (code, message) = permanent(result);
    assert_eq!(code, "source_not_found", "{message}");
    errors.push(message);

    let lines = h.lines().await?;
    assert!(
        lines.len() > 10 && lines.iter().any(|l| l.contains("fetching 'main'")),
        "{lines:#?}"
    );
    for line in lines.iter().chain(&errors) {
        assert!(
            !line.contains(TOKEN) && !line.contains("s3cret") && !line.contains(BASIC),
            "secret shown: {line}"
        );
    }
    assert!(server.refused() >= 2, "the server did ask for credentials");
    assert!(!std::fs::read_to_string(dest.join(".git/config"))?.contains("s3cret"));
    drop(server);
    h.finish().await;
    Ok(())
}

#[tokio::test]
async fn missing_refs_and_repositories_are_permanent_and_named() -> anyhow::Result<()> {
    let mut h = Harness::new().await?;
    let repo = h.seed("app.git")?;
    let daemon = GitDaemon::start(&h.repos())?;
    let server = GitHttp::start(&h.repos(), None)?;
    let opts = loopback();
    for url in [daemon.url(&repo.name), server.url(&repo.name)] {
        let (_, result) = h.fetch(&source(&url, "release/9.9", None), &opts).await;
        let (code, message) = permanent(result);
        assert_eq!(code, "ref_not_found");
        assert!(
            message.contains("'release/9.9'") && message.contains(&url),
            "{message}"
        );

        let (_, result) = h.fetch(&source(&url, &repo.main[..7], None), &opts).await;
        let (code, message) = permanent(result);
        assert_eq!(code, "ref_not_found");
        assert!(message.contains("full 40-character id"), "{message}");

        let (_, result) = h.fetch(&source(&url, &"e".repeat(40), None), &opts).await;
        assert_eq!(permanent(result).0, "ref_not_found");

        let missing = url.replace("app.git", "missing.git");
        let (_, result) = h.fetch(&source(&missing, "main", None), &opts).await;
        let (code, message) = permanent(result);
        assert_eq!(code, "source_not_found");
        assert!(message.contains(&missing), "{message}");
    }
    drop((daemon, server));
    h.finish().await;
    Ok(())
}

#[tokio::test]
async fn a_refused_connection_is_retryable() -> anyhow::Result<()> {
    let mut h = Harness::new().await?;
    let port = free_port();
    for url in [
        format!("git://127.0.0.1:{port}/r.git"),
        format!("http://127.0.0.1:{port}/r.git"),
    ] {
        let (_, result) = h.fetch(&source(&url, "main", None), &loopback()).await;
        match result {
            Err(JobError::Retryable(message)) => {
                assert!(message.to_lowercase().contains("connect"), "{message}")
            }
            other => panic!("expected retryable for {url}, got {other:?}"),
        }
    }
    h.finish().await;
    Ok(())
}

#[tokio::test]
async fn file_urls_only_in_local_mode() -> anyhow::Result<()> {
    let mut h = Harness::new().await?;
    let repo = h.seed("local.git")?;
    let url = format!("file://{}", repo.path.display());
    let (dest, refused) = h.fetch(&source(&url, "main", None), &loopback()).await;
    assert_eq!(permanent(refused).0, "source_scheme_not_allowed");
    assert!(!dest.join(".git").exists(), "nothing was fetched");
    let local = FetchOptions {
        allow_file: true,
        ..loopback()
    };
    let (dest, allowed) = h.fetch(&source(&url, SEED_BRANCH, None), &local).await;
    assert_eq!(allowed?.commit, repo.feature);
    assert_shallow(&dest);
    h.finish().await;
    Ok(())
}

#[tokio::test]
async fn an_address_the_policy_refuses_is_never_connected_to() -> anyhow::Result<()> {
    let mut h = Harness::new().await?;
    let repo = h.seed("inside.git")?;
    let server = GitHttp::start(&h.repos(), None)?;
    let strict = FetchOptions::default();
    for url in [
        server.url(&repo.name),
        server.url(&repo.name).replace("127.0.0.1", "localhost"),
        server
            .url(&repo.name)
            .replace("127.0.0.1", "[::ffff:127.0.0.1]"),
        server.url(&repo.name).replace("127.0.0.1", "2130706433"),
    ] {
        let (dest, result) = h.fetch(&source(&url, "main", None), &strict).await;
        let (code, message) = permanent(result);
        assert_eq!(code, "address_not_allowed", "{url}: {message}");
        assert!(message.contains("loopback address"), "{message}");
        assert!(!dest.join(".git").exists(), "nothing was fetched");
    }
    // Loopback allowed, but the server's port is one of the platform's own.
    let guarded = policy(&[("Caddy's admin API", server.port())]);
    let (_, result) = h
        .fetch(&source(&server.url(&repo.name), "main", None), &guarded)
        .await;
    let (code, message) = permanent(result);
    assert_eq!(code, "address_not_allowed");
    assert!(message.contains("reaches Caddy's admin API"), "{message}");
    assert_eq!(server.requests(), 0, "git never connected");
    let lines = h.lines().await?;
    assert!(
        lines.iter().any(|l| l.starts_with("refused to connect: ")),
        "{lines:?}"
    );
    h.finish().await;
    Ok(())
}

#[tokio::test]
async fn a_redirect_is_not_followed_past_the_check() -> anyhow::Result<()> {
    let mut h = Harness::new().await?;
    let repo = h.seed("moved.git")?;
    let guarded_server = GitHttp::start(&h.repos(), None)?;
    let redirect = Redirector::start(&guarded_server.url(&repo.name))?;
    // The redirector passes the check; where it points is a platform port.
    let opts = policy(&[("the API", guarded_server.port())]);
    let (dest, result) = h
        .fetch(&source(&redirect.url(&repo.name), "main", None), &opts)
        .await;
    assert!(result.is_err(), "the redirect is not followed");
    assert!(!dest.join("README.md").exists());
    assert!(redirect.answered() > 0, "git asked the redirector");
    assert_eq!(guarded_server.requests(), 0, "and never reached its target");
    h.finish().await;
    Ok(())
}

/// An HTTP server that answers every request with a redirect to `target`
/// plus the request's path below the repository.
struct Redirector {
    port: u16,
    answered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Redirector {
    fn start(target: &str) -> anyhow::Result<Redirector> {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = answered.clone();
        let target = target.to_owned();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let path = request_line.split_whitespace().nth(1).unwrap_or("/");
                let rest = path.split_once(".git").map_or("", |(_, rest)| rest);
                let answer = format!(
                    "HTTP/1.1 301 Moved Permanently\r\nLocation: {target}{rest}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = (&stream).write_all(answer.as_bytes());
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        Ok(Redirector { port, answered })
    }

    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    fn answered(&self) -> usize {
        self.answered.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// `(pid, process group)` of the live processes working in `dir`.
fn processes_working_in(dir: &Path) -> Vec<(i32, i32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        if std::fs::read_link(entry.path().join("cwd")).ok().as_deref() != Some(dir) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        if let Some(group) = rest.split_whitespace().nth(2).and_then(|g| g.parse().ok()) {
            found.push((pid, group));
        }
    }
    found
}

#[tokio::test]
async fn cancel_stops_a_fetch_from_a_server_that_hangs() -> anyhow::Result<()> {
    let mut h = Harness::new().await?;
    let silent = SilentServer::start()?;
    let port = silent.port();
    for (url, credential) in [
        (format!("git://127.0.0.1:{port}/r.git"), None),
        (format!("http://127.0.0.1:{port}/r.git"), token(TOKEN)),
    ] {
        let before = silent.accepted();
        let dest = h.dest();
        let cancel = CancellationToken::new();
        let task = {
            let (src, dest, logs, cancel) = (
                source(&url, "main", credential),
                dest.clone(),
                h.logs.clone(),
                cancel.clone(),
            );
            tokio::spawn(async move { fetch(&src, &dest, &loopback(), &logs, &cancel).await })
        };
        slipway_testkit::wait_until(Duration::from_secs(10), "git to connect", || async {
            silent.accepted() > before
        })
        .await?;
        let running = processes_working_in(&dest);
        assert!(!running.is_empty(), "git is running in {}", dest.display());
        for (pid, _) in &running {
            let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv = String::from_utf8_lossy(&argv);
            assert!(
                !argv.contains("s3cret") && !argv.contains(BASIC),
                "the token is not in argv: {argv}"
            );
        }
        let groups: Vec<i32> = running.iter().map(|(_, group)| *group).collect();
        let cancelled_at = Instant::now();
        cancel.cancel();
        let result = tokio::time::timeout(Duration::from_secs(5), task).await??;
        let took = cancelled_at.elapsed();
        eprintln!("cancel of a fetch from {url} took {took:?}");
        assert!(matches!(result, Err(JobError::Cancelled)), "{result:?}");
        assert!(took < Duration::from_secs(1), "cancel took {took:?}");
        for group in groups {
            assert!(!process_group_alive(group), "process group {group} is gone");
        }
    }
    h.finish().await;
    Ok(())
}

#[tokio::test]
async fn a_fetch_past_its_time_limit_is_killed_and_retryable() -> anyhow::Result<()> {
    let mut h = Harness::new().await?;
    let silent = SilentServer::start()?;
    let opts = FetchOptions {
        timeout: Duration::from_secs(1),
        ..loopback()
    };
    let url = format!("git://127.0.0.1:{}/r.git", silent.port());
    let started = Instant::now();
    let (_, result) = h.fetch(&source(&url, "main", None), &opts).await;
    match result {
        Err(JobError::Retryable(message)) => {
            assert!(message.contains("did not finish"), "{message}")
        }
        other => panic!("expected retryable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    h.finish().await;
    Ok(())
}

#[tokio::test]
async fn a_deploy_key_fetches_over_ssh_and_a_wrong_one_is_refused() -> anyhow::Result<()> {
    let key_dirs_before = key_dirs();
    let mut h = Harness::new().await?;
    let repo = h.seed("deploy.git")?;
    let keys = h.dir.join("keys");
    std::fs::create_dir_all(&keys)?;
    let good = ssh_keygen(&keys, "good")?;
    let other = ssh_keygen(&keys, "other")?;
    let server = GitSsh::start(&h.repos(), &good.public_key)?;
    let url = server.url(&repo.name);
    let key = |pair: &slipway_testkit::git::SshKeyPair, known_hosts: Option<String>| {
        Some(GitCredential::SshKey {
            private_key: pair.private_key.clone().into(),
            known_hosts,
        })
    };
    let opts = loopback();

    let (dest, result) = h
        .fetch(
            &source(&url, "main", key(&good, Some(server.known_hosts()))),
            &opts,
        )
        .await;
    let fetched = result.unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail(20)));
    assert_eq!(fetched.commit, repo.main);
    assert_shallow(&dest);

    // Without known_hosts the first host key is accepted.
    let (_, result) = h
        .fetch(&source(&url, &repo.first, key(&good, None)), &opts)
        .await;
    let fetched = result?;
    assert_eq!(fetched.commit, repo.first);
    assert!(
        fetched.shallow,
        "protocol v2 over ssh serves any reachable commit"
    );

    let (_, result) = h
        .fetch(&source(&url, "main", key(&other, None)), &opts)
        .await;
    assert_eq!(permanent(result).0, "source_auth_failed");
    let (_, result) = h.fetch(&source(&url, "main", None), &opts).await;
    assert_eq!(permanent(result).0, "source_auth_failed");

    let impostor = format!("[127.0.0.1]:{} {}\n", server.port(), other.public_key);
    let (_, result) = h
        .fetch(&source(&url, "main", key(&good, Some(impostor))), &opts)
        .await;
    let (code, message) = permanent(result);
    assert_eq!(code, "source_auth_failed");
    assert!(message.contains("host key"), "{message}");

    // By name: ssh connects to the address that was checked and still
    // checks the host key under the name.
    let by_name = url.replace("127.0.0.1", "localhost");
    let named_key = server.known_hosts().replace("127.0.0.1", "localhost");
    let (_, result) = h
        .fetch(
            &source(&by_name, "main", key(&good, Some(named_key))),
            &opts,
        )
        .await;
    assert_eq!(result?.commit, repo.main);
    let (_, result) = h
        .fetch(
            &source(&by_name, "main", key(&good, Some(server.known_hosts()))),
            &opts,
        )
        .await;
    let (code, message) = permanent(result);
    assert_eq!(
        code, "source_auth_failed",
        "a key pinned for the address is not the name's"
    );
    assert!(message.contains("host key"), "{message}");

    let missing = url.replace("deploy.git", "missing.git");
    let (_, result) = h
        .fetch(&source(&missing, "main", key(&good, None)), &opts)
        .await;
    assert_eq!(permanent(result).0, "source_not_found");

    let lines = h.lines().await?;
    let key_body = good.private_key.lines().nth(1).unwrap_or_default();
    assert!(!key_body.is_empty());
    assert!(
        lines.iter().all(|l| !l.contains(key_body)),
        "the key is never logged"
    );
    drop(server);
    h.finish().await;
    let leftovers: Vec<_> = key_dirs().difference(&key_dirs_before).cloned().collect();
    assert!(
        leftovers.is_empty(),
        "deploy key dirs are removed: {leftovers:?}"
    );
    Ok(())
}

/// The private dirs fetches write deploy keys into.
fn key_dirs() -> std::collections::HashSet<PathBuf> {
    std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("slipway-git-ssh-")
        })
        .map(|e| e.path())
        .collect()
}
