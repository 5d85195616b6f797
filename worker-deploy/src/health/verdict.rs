//! The listening rule as a pure verdict: given what a probe saw of a
//! container (its state, how long its main process has run, the sockets
//! listening in its network namespace), is the app healthy, still coming
//! up, or down for good? The wait loop and the monitor act on the verdict;
//! the words of a failure come from here too, so they name what was
//! checked.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// What a probe saw of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Running: its main process's age and the listening sockets of its
    /// network namespace.
    Running {
        age: Duration,
        listening: Vec<SocketAddr>,
    },
    /// Exited (or was stopped) with this code.
    Exited { code: i32 },
    /// No such container (removed).
    Gone,
    /// Any other engine state (`created`, `paused`, `restarting`, ...) or
    /// a running container whose process went away under the probe.
    Other { state: String },
}

/// Why the app's port is not (reachably) listened on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// No listening socket at all.
    Nothing,
    /// The port is listened on only on a loopback address inside the
    /// container, which the published port does not reach.
    LoopbackOnly(SocketAddr),
    /// Other ports are listened on, not this one.
    OtherPorts(Vec<u16>),
}

/// The listening rule's answer for one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Listening on a reachable address and up for the settle time.
    Healthy,
    /// Listening, not up long enough yet: look again after `remaining`.
    Settling { remaining: Duration },
    /// Running, the port not (reachably) listened on: keep waiting.
    NotListening(Miss),
    /// Exited: it will not become healthy by waiting.
    Exited { code: i32 },
    /// Removed: it will not become healthy either.
    Gone,
    /// Not running for another reason; may still change (e.g. `created`).
    NotRunning { state: String },
}

/// Judges one observation of a container whose app must listen on `port`
/// and stay up for `settle`.
pub fn judge(observation: &Observation, port: u16, settle: Duration) -> Verdict {
    let (age, listening) = match observation {
        Observation::Running { age, listening } => (*age, listening),
        Observation::Exited { code } => return Verdict::Exited { code: *code },
        Observation::Gone => return Verdict::Gone,
        Observation::Other { state } => {
            return Verdict::NotRunning {
                state: state.clone(),
            }
        }
    };
    let on_port: Vec<&SocketAddr> = listening.iter().filter(|s| s.port() == port).collect();
    if on_port.iter().any(|s| !is_loopback(s.ip())) {
        return match settle.checked_sub(age) {
            Some(remaining) if !remaining.is_zero() => Verdict::Settling { remaining },
            _ => Verdict::Healthy,
        };
    }
    Verdict::NotListening(match on_port.first() {
        Some(loopback) => Miss::LoopbackOnly(**loopback),
        None if listening.is_empty() => Miss::Nothing,
        None => {
            let mut ports: Vec<u16> = listening.iter().map(SocketAddr::port).collect();
            ports.sort_unstable();
            ports.dedup();
            Miss::OtherPorts(ports)
        }
    })
}

/// 127.0.0.0/8, `::1` and `::ffff:127.x.y.z`.
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

impl fmt::Display for Miss {
    /// The part of a message after "nothing listening": the hint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Miss::Nothing => f.write_str("no socket is listening in the container"),
            Miss::LoopbackOnly(addr) => write!(
                f,
                "the app listens on {addr} only, which the published port does not reach; listen on 0.0.0.0"
            ),
            Miss::OtherPorts(ports) => {
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                write!(
                    f,
                    "the app listens on port {} instead; listen on $PORT or set runtime.port",
                    ports.join(", ")
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(age_ms: u64, listening: &[&str]) -> Observation {
        Observation::Running {
            age: Duration::from_millis(age_ms),
            listening: listening.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn verdicts_follow_the_listening_rule() {
        let settle = Duration::from_secs(1);
        let cases = [
            (running(1500, &["0.0.0.0:3000"]), Verdict::Healthy),
            (running(1000, &["[::]:3000"]), Verdict::Healthy),
            (running(5000, &["10.88.0.5:3000"]), Verdict::Healthy),
            // Loopback and a reachable address both: reachable wins.
            (
                running(2000, &["127.0.0.1:3000", "0.0.0.0:3000"]),
                Verdict::Healthy,
            ),
            (
                running(300, &["0.0.0.0:3000"]),
                Verdict::Settling {
                    remaining: Duration::from_millis(700),
                },
            ),
            (running(2000, &[]), Verdict::NotListening(Miss::Nothing)),
            (
                running(2000, &["127.0.0.1:3000"]),
                Verdict::NotListening(Miss::LoopbackOnly("127.0.0.1:3000".parse().unwrap())),
            ),
            (
                running(2000, &["[::1]:3000"]),
                Verdict::NotListening(Miss::LoopbackOnly("[::1]:3000".parse().unwrap())),
            ),
            (
                running(2000, &["[::ffff:127.0.0.1]:3000"]),
                Verdict::NotListening(Miss::LoopbackOnly(
                    "[::ffff:127.0.0.1]:3000".parse().unwrap(),
                )),
            ),
            (
                running(2000, &["0.0.0.0:8080", "[::]:8080", "127.0.0.1:9229"]),
                Verdict::NotListening(Miss::OtherPorts(vec![8080, 9229])),
            ),
            (Observation::Exited { code: 3 }, Verdict::Exited { code: 3 }),
            (Observation::Gone, Verdict::Gone),
            (
                Observation::Other {
                    state: "created".into(),
                },
                Verdict::NotRunning {
                    state: "created".into(),
                },
            ),
        ];
        for (observation, want) in cases {
            assert_eq!(judge(&observation, 3000, settle), want, "{observation:?}");
        }
        // No settle time: listening is enough.
        assert_eq!(
            judge(&running(0, &["0.0.0.0:3000"]), 3000, Duration::ZERO),
            Verdict::Healthy
        );
    }

    #[test]
    fn misses_say_what_to_change() {
        let loopback = Miss::LoopbackOnly("127.0.0.1:3000".parse().unwrap()).to_string();
        assert!(loopback.contains("127.0.0.1:3000 only"), "{loopback}");
        assert!(loopback.contains("listen on 0.0.0.0"), "{loopback}");
        let other = Miss::OtherPorts(vec![8080]).to_string();
        assert!(other.contains("port 8080 instead"), "{other}");
    }
}
