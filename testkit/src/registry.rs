//! A test-owned OCI registry (docker-registry, the CNCF distribution
//! registry) on a free loopback port with its own temp storage, so tests can
//! push and pull without sharing the host's registry. Killed by pid (its own
//! process group) and its storage removed on `Drop`. `start_with_login`
//! makes one that answers 401 to anyone but one htpasswd user (bcrypt hash
//! made by Python's `crypt`, so no htpasswd tool is needed).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::os;
use crate::util::{free_port, hex8, spawn_server, wait_http_ok};

const BINARY: &str = "docker-registry";

pub struct Registry {
    addr: String,
    dir: PathBuf,
    child: tokio::process::Child,
    pid: i32,
}

impl Registry {
    /// Starts a registry on `127.0.0.1:<free port>` and waits until `/v2/`
    /// answers. Fails with a hint when docker-registry is not installed.
    pub async fn start() -> anyhow::Result<Registry> {
        Self::start_with_auth(None).await
    }

    /// A registry that serves only `user` with `password` (HTTP basic auth).
    pub async fn start_with_login(user: &str, password: &str) -> anyhow::Result<Registry> {
        Self::start_with_auth(Some((user, password))).await
    }

    async fn start_with_auth(login: Option<(&str, &str)>) -> anyhow::Result<Registry> {
        let dir = std::env::temp_dir().join(format!("slipway-registry-{}", hex8()));
        std::fs::create_dir_all(dir.join("data"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let auth = match login {
            None => String::new(),
            Some((user, password)) => {
                let htpasswd = dir.join("htpasswd");
                std::fs::write(&htpasswd, format!("{user}:{}\n", bcrypt(password)?))?;
                format!(
                    "auth:\n  htpasswd:\n    realm: slipway-test\n    path: {}\n",
                    htpasswd.display()
                )
            }
        };
        // A port grabbed between free_port and the bind makes the registry
        // exit at once; a few attempts cover that race.
        let mut last_error = None;
        for _ in 0..3 {
            let addr = format!("127.0.0.1:{}", free_port());
            match Self::start_on(&dir, &addr, &auth).await {
                Ok(registry) => return Ok(registry),
                Err(e) => last_error = Some(e),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last_error.expect("at least one attempt"))
    }

    async fn start_on(dir: &std::path::Path, addr: &str, auth: &str) -> anyhow::Result<Registry> {
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth}",
                dir.join("data").display()
            ),
        )?;
        let mut command = tokio::process::Command::new(BINARY);
        command.arg("serve").arg(&config);
        let (child, pid) = spawn_server(
            command,
            &dir.join("registry.log"),
            "run scripts/build-tools.sh (as root) first",
        )?;
        let mut registry = Registry {
            addr: addr.to_string(),
            dir: dir.to_path_buf(),
            child,
            pid,
        };
        // With a login /v2/ answers 401 once it is up; the health route does
        // not exist in this registry version, so wait for any answer then.
        let url = format!("http://{addr}/v2/");
        let ready = tokio::select! {
            ready = wait_answering(&url, !auth.is_empty()) => ready,
            status = registry.child.wait() => Err(anyhow::anyhow!(
                "docker-registry exited at once ({status:?}): {}",
                os::file_tail(&dir.join("registry.log"), 10)
            )),
        };
        match ready {
            Ok(()) => Ok(registry),
            Err(e) => {
                os::kill_group(registry.pid);
                // Keep the storage dir for the next attempt; only this process goes.
                registry.dir = PathBuf::new();
                Err(e)
            }
        }
    }

    /// `127.0.0.1:PORT`, as image references want it.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The registry process' pid (also its process group).
    pub fn pid(&self) -> i32 {
        self.pid
    }
}

async fn wait_answering(url: &str, any_status: bool) -> anyhow::Result<()> {
    if !any_status {
        return wait_http_ok(url, Duration::from_secs(15)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if reqwest::get(url).await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{url} did not answer within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A bcrypt hash (`$2b$...`) of `password`, as docker-registry's htpasswd wants.
fn bcrypt(password: &str) -> anyhow::Result<String> {
    let output = std::process::Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
            password,
        ])
        .output()
        .context("running python3 to hash the registry password")?;
    let hash = String::from_utf8_lossy(&output.stdout).trim().to_string();
    anyhow::ensure!(
        output.status.success() && hash.starts_with("$2"),
        "python3 made no bcrypt hash: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(hash)
}

impl Drop for Registry {
    fn drop(&mut self) {
        os::kill_group(self.pid);
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
