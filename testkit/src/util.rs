//! Small helpers every integration test needs: free ports, polling with a
//! deadline, HTTP readiness checks, the shared broker URL and unique names.
//!
//! Tests run concurrently (several test binaries, several threads each) and
//! share the system RabbitMQ, so every resource name a test creates must be
//! unique and every wait must end with an error that says what was awaited.

use std::future::Future;
use std::net::TcpListener;
use std::time::Duration;

use anyhow::{anyhow, Context};

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is released before returning, so another process could grab it
/// in between. It is picked below the kernel's ephemeral range (32768 and
/// up here): the ports the kernel gives outgoing connections and the host
/// ports podman publishes releases on come from that range, and a test's
/// Caddy, for one, binds its port only when the test first configures it,
/// long after this returns. Only other tests pick from this range, at
/// random, each checking the port is free.
pub fn free_port() -> u16 {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    for _ in 0..200 {
        let port = rng.gen_range(PICKED_PORTS);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 must work")
}

/// Where [`free_port`] picks from: above the well-known and common service
/// ports, below the ephemeral range.
const PICKED_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// Poll `f` every 50 ms until it returns true; fail after `timeout` with an
/// error naming `what`. A single slow call of `f` is cut off by the deadline
/// too, so a hung probe cannot hang the test.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let poll = async {
        loop {
            if f().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(timeout, poll)
        .await
        .map_err(|_| anyhow!("timed out after {timeout:?} waiting for {what}"))
}

/// Wait until a GET of `url` answers with a 2xx status. The error names the
/// last status or connection error seen, which is usually the useful clue.
pub async fn wait_http_ok(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .context("building HTTP client")?;
    let last = std::sync::Mutex::new(String::from("no attempt finished"));
    let (client, last_ref) = (&client, &last);
    let probe = || async move {
        let outcome = match client.get(url).send().await {
            Ok(resp) if resp.status().is_success() => return true,
            Ok(resp) => format!("status {}", resp.status()),
            Err(e) => format!("error: {e}"),
        };
        *last_ref.lock().expect("not poisoned") = outcome;
        false
    };
    wait_until(timeout, &format!("HTTP 2xx from {url}"), probe)
        .await
        .map_err(|e| {
            let last = last.lock().expect("not poisoned").clone();
            anyhow!("{e} (last: {last})")
        })
}

/// AMQP URL of the shared broker: `SLIPWAY_TEST_AMQP_URL`, else the system
/// RabbitMQ on 127.0.0.1:5672.
pub fn rabbit_url() -> String {
    std::env::var("SLIPWAY_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// A short unique prefix such as `t1a2b3c4d`, for queue and exchange names
/// on a broker that other tests share.
pub fn unique_prefix() -> String {
    format!("t{}", hex8())
}

/// Eight random hex digits.
pub(crate) fn hex8() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// Spawns a server binary of a test in its own process group (killed on
/// drop), stdout and stderr into `log`. A missing binary says how to get it.
pub(crate) fn spawn_server(
    mut command: tokio::process::Command,
    log: &std::path::Path,
    install_hint: &str,
) -> anyhow::Result<(tokio::process::Child, i32)> {
    use anyhow::Context;
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let log = std::fs::File::create(log)?;
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!("{program} is not installed: {install_hint}")
        }
        Err(e) => return Err(e).with_context(|| format!("spawning {program}")),
    };
    let pid = child
        .id()
        .with_context(|| format!("{program} has no pid"))? as i32;
    Ok((child, pid))
}
