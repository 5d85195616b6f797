//! A DNS server of the test's own, for names whose answer the test changes:
//! UDP on a random 127.53.X.Y port 53 (glibc's resolver asks port 53
//! only), A records for the names it serves (AAAA: none; anything else:
//! NXDOMAIN), the answer of each name set by the test, and a count of the
//! A queries each name got.
//!
//! The Slipway processes a test points at it run in a mount namespace of
//! their own in which `/etc/resolv.conf` names this server
//! ([`DnsServer::wrapper`]); their network is the host's, so they still
//! reach the test's Postgres, RabbitMQ and git servers on loopback.

use crate::util::hex8;
use anyhow::Context;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What one name answers: `first` for that many A queries, then `then`.
#[derive(Debug, Clone, Default)]
struct Answer {
    first: Vec<Ipv4Addr>,
    then: Option<Ipv4Addr>,
    queries: usize,
}

pub struct DnsServer {
    addr: Ipv4Addr,
    names: Arc<Mutex<HashMap<String, Answer>>>,
    dir: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    pub async fn start() -> anyhow::Result<DnsServer> {
        use rand::Rng;
        let mut last_error = None;
        for _ in 0..50 {
            let (x, y) = rand::thread_rng().gen::<(u8, u8)>();
            let addr = Ipv4Addr::new(127, 53, x, y.max(1));
            match tokio::net::UdpSocket::bind((addr, 53)).await {
                Ok(socket) => {
                    let names = Arc::new(Mutex::new(HashMap::new()));
                    let task = tokio::spawn(serve(socket, names.clone()));
                    let dir = std::env::temp_dir().join(format!("slipway-dns-{}", hex8()));
                    std::fs::create_dir_all(&dir)?;
                    std::fs::write(
                        dir.join("resolv.conf"),
                        format!("nameserver {addr}\noptions timeout:2 attempts:2\n"),
                    )?;
                    return Ok(DnsServer {
                        addr,
                        names,
                        dir,
                        task,
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.context("no address to bind")?).context("binding a DNS port (needs root)")
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// `name` answers `addr` from now on.
    pub fn set(&self, name: &str, addr: Ipv4Addr) {
        self.answer(name, Vec::new(), addr);
    }

    /// `name` answers `first` to its next A query, then `then`.
    pub fn flip_after_one(&self, name: &str, first: Ipv4Addr, then: Ipv4Addr) {
        self.answer(name, vec![first], then);
    }

    fn answer(&self, name: &str, first: Vec<Ipv4Addr>, then: Ipv4Addr) {
        let mut names = self.names.lock().expect("dns state");
        let entry = names.entry(name.to_ascii_lowercase()).or_default();
        entry.first = first;
        entry.then = Some(then);
    }

    /// A queries `name` got so far.
    pub fn queries(&self, name: &str) -> usize {
        let names = self.names.lock().expect("dns state");
        names
            .get(&name.to_ascii_lowercase())
            .map_or(0, |a| a.queries)
    }

    /// A command prefix that runs a program with `/etc/resolv.conf` naming
    /// this server (a private mount namespace, network shared).
    pub fn wrapper(&self) -> Vec<String> {
        let conf = self.dir.join("resolv.conf");
        vec![
            "unshare".into(),
            "--mount".into(),
            "--propagation".into(),
            "private".into(),
            "sh".into(),
            "-c".into(),
            r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#.into(),
            conf.display().to_string(),
        ]
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn serve(socket: tokio::net::UdpSocket, names: Arc<Mutex<HashMap<String, Answer>>>) {
    let mut buf = [0u8; 512];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            return;
        };
        if let Some(reply) = reply(&buf[..len], &names) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

const TYPE_A: u16 = 1;

/// The answer to one query; `None` for what is not a plain query.
fn reply(query: &[u8], names: &Mutex<HashMap<String, Answer>>) -> Option<Vec<u8>> {
    if query.len() < 12 || u16::from_be_bytes([query[4], query[5]]) != 1 {
        return None;
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let question = query.get(12..at + 4)?;
    let name = labels.join(".");
    let (rcode, addr) = {
        let mut names = names.lock().ok()?;
        match names.get_mut(&name) {
            None => (3, None),
            Some(_) if qtype != TYPE_A => (0, None),
            Some(answer) => {
                answer.queries += 1;
                let addr = if answer.first.is_empty() {
                    answer.then
                } else {
                    Some(answer.first.remove(0))
                };
                (0, addr)
            }
        }
    };
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&query[..2]);
    out.extend_from_slice(&(0x8180u16 | rcode).to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&u16::from(addr.is_some()).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(question);
    if let Some(addr) = addr {
        // A pointer to the question's name, A, IN, TTL 0, 4 bytes.
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        out.extend_from_slice(&addr.octets());
    }
    Some(out)
}
