//! A second "server" on this machine: a network namespace of the test's own
//! with a veth pair in a private /30 (`10.213.X.Y`), routed only between
//! this host and the namespace, and an sshd and a Caddy running inside it.
//! Needs root, `ip`, `nsenter`, `/usr/sbin/sshd` and `caddy`.
//!
//! Servers enter only the namespace's network (`nsenter --net`), not its
//! mounts: `ip netns exec` remounts `/sys`, which hides the cgroup mounts
//! podman needs (runc then fails with "no cgroup mount found"). Commands
//! run over SSH inherit sshd's network namespace, so podman on the
//! "target" shares this host's image and container storage but publishes
//! ports on the namespace's loopback only.
//!
//! Everything is undone on drop: processes killed by process group, then
//! any other process inside the namespace by pid, the namespace (and with
//! it the veth pair) deleted.

use crate::git::ssh_keygen;
use crate::os;
use crate::util::hex8;
use anyhow::{bail, Context};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Netns {
    pub name: String,
    /// This host's end of the veth pair.
    pub host_addr: String,
    /// The namespace's end: the "server's" address.
    pub addr: String,
    host_link: String,
    dir: PathBuf,
    children: Vec<Child>,
    /// The pid of the Caddy `start_caddy` started, for `restart_caddy`.
    caddy: Option<u32>,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Netns {
    /// A fresh namespace `slw-XXXXXXXX` with a veth pair in a random /30
    /// of 10.213.0.0/16, both ends up.
    pub fn create() -> anyhow::Result<Netns> {
        let id = hex8();
        let name = format!("slw-{id}");
        let byte = u8::from_str_radix(&id[..2], 16)?;
        let quad = u8::from_str_radix(&id[2..4], 16)? & 0xfc;
        let host_addr = format!("10.213.{byte}.{}", quad + 1);
        let addr = format!("10.213.{byte}.{}", quad + 2);
        let dir = std::env::temp_dir().join(format!("slipway-netns-{id}"));
        std::fs::create_dir_all(&dir)?;
        ip(&["netns", "add", &name])?;
        let ns = Netns {
            host_link: format!("slwh{id}"),
            name,
            host_addr,
            addr,
            dir,
            children: Vec::new(),
            caddy: None,
        };
        let peer = format!("slwn{id}");
        ip(&[
            "link",
            "add",
            &ns.host_link,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        ip(&["link", "set", &peer, "netns", &ns.name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", ns.host_addr),
            "dev",
            &ns.host_link,
        ])?;
        ip(&["link", "set", &ns.host_link, "up"])?;
        let inside = |args: &[&str]| -> anyhow::Result<()> {
            let mut all = vec!["-n", ns.name.as_str()];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["addr", "add", &format!("{}/30", ns.addr), "dev", &peer])?;
        inside(&["link", "set", &peer, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A command that runs inside the namespace's network.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", self.name))
            .arg("--")
            .arg(program);
        command
    }

    /// Starts a server inside the namespace in its own process group, its
    /// output in `DIR/NAME.log`; it is killed on drop.
    pub fn spawn(&mut self, log_name: &str, mut command: Command) -> anyhow::Result<u32> {
        let log = std::fs::File::create(self.dir.join(format!("{log_name}.log")))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("spawning {log_name}"))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    pub fn log_tail(&self, log_name: &str, n: usize) -> String {
        os::file_tail(&self.dir.join(format!("{log_name}.log")), n)
    }

    /// Starts sshd on `ADDR:22` letting root in with a new key. Returns the
    /// private key and the known_hosts line pinning the server's host key.
    pub fn start_sshd(&mut self) -> anyhow::Result<(String, String)> {
        self.start_sshd_with_env(&[])
    }

    /// Like `start_sshd`, every session getting the variables `env` (sshd's
    /// `SetEnv`): e.g. `DOCKER_HOST` naming a [`crate::dockerd::Dockerd`].
    pub fn start_sshd_with_env(
        &mut self,
        env: &[(&str, &str)],
    ) -> anyhow::Result<(String, String)> {
        std::fs::create_dir_all("/run/sshd")?;
        let dir = self.dir.join("sshd");
        std::fs::create_dir_all(&dir)?;
        let client = ssh_keygen(&dir, "client_key")?;
        let host = ssh_keygen(&dir, "host_key")?;
        std::fs::write(
            dir.join("authorized_keys"),
            format!("{}\n", client.public_key),
        )?;
        let d = dir.display();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "ListenAddress {addr}:22\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
                 PidFile none\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nAllowUsers root\nStrictModes no\n\
                 AllowTcpForwarding yes\nLogLevel VERBOSE\n{set_env}",
                addr = self.addr,
                set_env = env
                    .iter()
                    .map(|(k, v)| format!("SetEnv {k}={v}\n"))
                    .collect::<String>(),
            ),
        )?;
        let mut command = self.command("/usr/sbin/sshd");
        command
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"));
        self.spawn("sshd", command)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let addr: std::net::SocketAddr = format!("{}:22", self.addr).parse()?;
            if let Ok(mut stream) =
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut banner = [0u8; 4];
                if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "sshd in {} did not answer: {}",
                    self.name,
                    self.log_tail("sshd", 10)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut fields = host.public_key.split_whitespace();
        let (kind, key) = (
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
        );
        Ok((client.private_key, format!("{} {kind} {key}\n", self.addr)))
    }

    /// Starts Caddy with its admin API on the namespace's `127.0.0.1:2019`
    /// (reachable only from inside) and waits until it answers.
    pub fn start_caddy(&mut self) -> anyhow::Result<()> {
        let dir = self.dir.join("caddy");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("caddy.json"),
            r#"{"admin": {"listen": "127.0.0.1:2019"}}"#,
        )?;
        let mut command = self.command("caddy");
        command
            .arg("run")
            .arg("--config")
            .arg(dir.join("caddy.json"))
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("HOME", &dir);
        self.caddy = Some(self.spawn("caddy", command)?);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ok = self
                .command("curl")
                .args(["-sf", "-o", "/dev/null", "http://127.0.0.1:2019/config/"])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "caddy in {} did not answer: {}",
                    self.name,
                    self.log_tail("caddy", 10)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// An ACME CA inside a namespace (see [`Netns::start_acme_ca`]).
pub struct AcmeCa {
    /// The CA's ACME directory URL.
    pub directory: String,
    /// Its root certificate (PEM): what a client trusts to verify what it
    /// issued, and what the ACME client trusts to reach the CA.
    pub root_pem: PathBuf,
}

impl Netns {
    /// Starts an ACME CA (Caddy's `acme_server` on its internal CA) on
    /// `ADDR:9000` over HTTPS, for which `names` resolve to the namespace's
    /// address: it runs in a mount namespace of its own with a bind-mounted
    /// `/etc/hosts`, so the names mean something to it alone, and it
    /// validates the HTTP-01 challenge at `NAME:80` inside the namespace.
    pub fn start_acme_ca(&mut self, names: &[&str]) -> anyhow::Result<AcmeCa> {
        let dir = self.dir.join("acme-ca");
        std::fs::create_dir_all(&dir)?;
        let hosts = dir.join("hosts");
        std::fs::write(
            &hosts,
            format!("127.0.0.1 localhost\n{} {}\n", self.addr, names.join(" ")),
        )?;
        let listen = format!("{}:9000", self.addr);
        let config = serde_json::json!({
            "admin": {"listen": "127.0.0.1:2999"},
            "apps": {
                "pki": {"certificate_authorities": {"local": {"install_trust": false}}},
                // The CA's own HTTPS: a certificate for its IP address.
                "tls": {
                    "automation": {"policies": [{"subjects": [self.addr], "issuers": [{"module": "internal"}]}]},
                    "certificates": {"automate": [self.addr]},
                },
                "http": {"servers": {"ca": {
                    "listen": [listen],
                    "automatic_https": {"disable": true},
                    "tls_connection_policies": [{}],
                    "routes": [{"handle": [{"handler": "acme_server", "ca": "local"}]}],
                }}},
            },
        });
        std::fs::write(dir.join("caddy.json"), config.to_string())?;
        let script = format!(
            "mount --bind {} /etc/hosts && exec caddy run --config {}",
            hosts.display(),
            dir.join("caddy.json").display()
        );
        let mut command = self.command("unshare");
        command
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("HOME", &dir);
        self.spawn("acme-ca", command)?;
        let ca = AcmeCa {
            directory: format!("https://{listen}/acme/local/directory"),
            root_pem: dir.join("data/caddy/pki/authorities/local/root.crt"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = ca.root_pem.is_file()
                && self
                    .command("curl")
                    .arg("-sf")
                    .arg("--cacert")
                    .arg(&ca.root_pem)
                    .args(["-o", "/dev/null", &ca.directory])
                    .status()
                    .is_ok_and(|s| s.success());
            if ok {
                return Ok(ca);
            }
            if Instant::now() > deadline {
                bail!(
                    "the ACME CA in {} did not answer: {}",
                    self.name,
                    self.log_tail("acme-ca", 10)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Netns {
    /// Kills the Caddy `start_caddy` started and starts a fresh one with
    /// only its admin API configured, as after a crash: every server and
    /// route it had is gone.
    pub fn restart_caddy(&mut self) -> anyhow::Result<()> {
        let pid = self.caddy.take().context("no Caddy was started")?;
        if let Some(at) = self.children.iter().position(|c| c.id() == pid) {
            let mut child = self.children.remove(at);
            os::kill_group(pid as i32);
            let _ = child.wait();
        }
        self.start_caddy()
    }

    /// Takes this host's end of the veth pair down (`false`: the server
    /// stops answering, connections time out) or up again.
    pub fn set_link_up(&self, up: bool) -> anyhow::Result<()> {
        let state = if up { "up" } else { "down" };
        ip(&["link", "set", &self.host_link, state])?;
        if up {
            // The address's route comes back with the link; wait for it.
            let deadline = Instant::now() + Duration::from_secs(10);
            let addr: std::net::SocketAddr = format!("{}:22", self.addr).parse()?;
            while std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
                if Instant::now() > deadline {
                    bail!("{} does not answer after the link came up", self.addr);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in &mut self.children {
            os::kill_group(child.id() as i32);
            let _ = child.wait();
        }
        // What the servers started inside (a Caddy that provisioning
        // started over SSH, detached): every process left in the
        // namespace, by pid.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        // Deleting the namespace deletes the veth pair with it.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_link]);
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
