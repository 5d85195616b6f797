//! Running the real `slipway` binary: as a plain child (pipes, so not a
//! terminal), followed line by line, or on a pseudo-terminal for the
//! interactive parts (the rollback picker).

use anyhow::Context;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The CLI with its config in `home` and no inherited SLIPWAY_* settings.
pub struct Cli {
    pub home: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Cli {
    pub fn new(home: &Path) -> Cli {
        Cli {
            home: home.to_path_buf(),
            env: Vec::new(),
        }
    }

    /// The same, from `SLIPWAY_URL` and `SLIPWAY_TOKEN` as in CI.
    pub fn with_env(home: &Path, url: &str, token: &str) -> Cli {
        Cli {
            home: home.to_path_buf(),
            env: vec![
                ("SLIPWAY_URL".into(), url.into()),
                ("SLIPWAY_TOKEN".into(), token.into()),
            ],
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(slipway_testkit::bin_path("slipway"));
        command
            .args(args)
            .env_remove("SLIPWAY_URL")
            .env_remove("SLIPWAY_TOKEN")
            .env_remove("SLIPWAY_CONFIG")
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs to the end with stdin closed; never a terminal.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut command = self.command(args);
        command.stdin(Stdio::null());
        let output = tokio::task::spawn_blocking(move || command.output())
            .await?
            .context("running slipway")?;
        Ok(Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Starts a long-running command (`logs -f`) whose stdout lines arrive
    /// on the returned channel.
    pub fn spawn_lines(
        &self,
        args: &[&str],
    ) -> anyhow::Result<(std::process::Child, mpsc::Receiver<String>)> {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok((child, rx))
    }

    /// Runs on a pseudo-terminal (stdin, stdout and stderr): when the
    /// screen shows `prompt`, types `answer`; returns the exit code and
    /// everything shown.
    pub fn run_on_pty(
        &self,
        args: &[&str],
        prompt: &str,
        answer: &str,
        timeout: Duration,
    ) -> anyhow::Result<(i32, String)> {
        let pty = nix::pty::openpty(None, None)?;
        let slave = std::fs::File::from(pty.slave);
        let mut child = self
            .command(args)
            .stdin(slave.try_clone()?)
            .stdout(slave.try_clone()?)
            .stderr(slave)
            .spawn()?;
        let mut master = std::fs::File::from(pty.master);
        let mut reader = master.try_clone()?;
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            // EIO once the child closed its end: the screen is complete.
            while let Ok(n) = reader.read(&mut buffer) {
                if n == 0 || tx.send(buffer[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + timeout;
        let mut screen = Vec::new();
        let mut answered = false;
        loop {
            while let Ok(bytes) = rx.recv_timeout(Duration::from_millis(50)) {
                screen.extend_from_slice(&bytes);
            }
            let text = String::from_utf8_lossy(&screen).into_owned();
            if !answered && text.contains(prompt) {
                master.write_all(answer.as_bytes())?;
                answered = true;
            }
            if let Some(status) = child.try_wait()? {
                while let Ok(bytes) = rx.recv_timeout(Duration::from_millis(200)) {
                    screen.extend_from_slice(&bytes);
                }
                let text = String::from_utf8_lossy(&screen).into_owned();
                return Ok((status.code().unwrap_or(-1), text));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                anyhow::bail!("slipway {args:?} on a pty did not finish; the screen:\n{text}");
            }
        }
    }
}

/// Waits for a line containing `needle`; returns when it came.
pub fn wait_line(
    rx: &mpsc::Receiver<String>,
    needle: &str,
    timeout: Duration,
) -> anyhow::Result<(String, Instant)> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Ok((line, Instant::now())),
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    anyhow::bail!(
        "no line with `{needle}` within {timeout:?}; saw:\n{}",
        seen.join("\n")
    )
}
