//! Reading what the kernel says about a container's sockets: the
//! `/proc/PID/net/tcp` and `/proc/PID/net/tcp6` tables of its network
//! namespace, and how long its main process has run (`/proc/uptime` and
//! `/proc/PID/stat`). Pure parsers, so the listening check's inputs are
//! table-tested without a container.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The socket state `LISTEN` in the tables' `st` column.
const TCP_LISTEN: &str = "0A";
/// Clock ticks a second in `/proc/PID/stat` (`USER_HZ`, 100 on every
/// architecture Slipway targets run on).
const USER_HZ: f64 = 100.0;

/// Every listening socket in a `/proc/net/tcp` or `/proc/net/tcp6` table
/// (the header and malformed lines are skipped). Addresses are written in
/// the target's byte order, taken to be little-endian (x86-64, arm64).
pub fn listening(table: &str) -> Vec<SocketAddr> {
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _slot = fields.next()?;
            let local = fields.next()?;
            let _remote = fields.next()?;
            (fields.next()? == TCP_LISTEN).then_some(())?;
            parse_address(local)
        })
        .collect()
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6).
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<[u8; 4]> = (0..ip.len() / 8)
        .map(|i| ip.get(i * 8..i * 8 + 8))
        .map(|word| Some(u32::from_str_radix(word?, 16).ok()?.to_le_bytes()))
        .collect::<Option<_>>()?;
    let ip = match words.as_slice() {
        [v4] if ip.len() == 8 => IpAddr::V4(Ipv4Addr::from(*v4)),
        [a, b, c, d] if ip.len() == 32 => {
            let mut bytes = [0u8; 16];
            for (i, word) in [a, b, c, d].into_iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(word);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// How long the process has run: `/proc/uptime` (seconds since boot) less
/// its start in `/proc/PID/stat` (field 22, clock ticks since boot). Both
/// are read on the target, so its clock and this host's need not agree.
pub fn process_age(uptime: &str, stat: &str) -> Option<Duration> {
    let since_boot: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let started_ticks: f64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (since_boot - started_ticks / USER_HZ).max(0.0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn listening_sockets_are_read_from_both_tables() {
        let cases: &[(&str, &[&str])] = &[
            // 0.0.0.0:8080 listening, an established connection skipped.
            (
                "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
                 \x20  1: 0100007F:1F90 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1",
                &["0.0.0.0:8080"],
            ),
            // 127.0.0.1:3000 only.
            (
                "   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 3 1 0 100 0 0 10 0",
                &["127.0.0.1:3000"],
            ),
            // 10.88.0.5:80 (the container's own address).
            (
                "   0: 0500580A:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0 0 10 0",
                &["10.88.0.5:80"],
            ),
            // tcp6: [::]:3000 and [::1]:9000.
            (
                "   0: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5 1 0 100 0 0 10 0\n\
                 \x20  1: 00000000000000000000000001000000:2328 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 6 1 0 100 0 0 10 0",
                &["[::]:3000", "[::1]:9000"],
            ),
            // tcp6: ::ffff:127.0.0.1 (a v4-mapped loopback).
            (
                "   0: 0000000000000000FFFF00000100007F:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 7 1 0 100 0 0 10 0",
                &["[::ffff:127.0.0.1]:3000"],
            ),
            // A socket in TIME_WAIT (06) and a garbled line.
            (
                "   0: 00000000:1F90 0100007F:D2C4 06 00000000:00000000 03:00000F5A 00000000     0        0 0 3 0\n   1: zz:yy 0 0A",
                &[],
            ),
            ("", &[]),
        ];
        for (rows, expected) in cases {
            let table = format!("{HEADER}\n{rows}\n");
            let want: Vec<SocketAddr> = expected.iter().map(|a| addr(a)).collect();
            assert_eq!(listening(&table), want, "{rows}");
        }
    }

    #[test]
    fn the_age_of_a_process_comes_from_the_targets_own_clock() {
        let stat = "4242 (node server.js) S 4200 4242 4242 0 -1 4194560 1000 0 0 0 5 1 0 0 20 0 11 0 123450 1000000 5000 18446744073709551615";
        let cases = [
            ("1235.50 4000.00\n", Some(Duration::from_millis(1000))),
            ("1234.50 4000.00\n", Some(Duration::ZERO)),
            // A start after "now" (rounding) is no age, not a panic.
            ("1234.00 1.00\n", Some(Duration::ZERO)),
            ("", None),
        ];
        for (uptime, want) in cases {
            let age = process_age(uptime, stat).map(|d| d.as_millis());
            assert_eq!(age, want.map(|d| d.as_millis()), "{uptime:?}");
        }
        assert_eq!(process_age("10.0 1.0", "4242 (x) S 1"), None);
    }
}
