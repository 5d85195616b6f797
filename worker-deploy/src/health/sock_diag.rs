//! The listening TCP sockets of a container's network namespace from the
//! kernel's socket diagnostics (`NETLINK_SOCK_DIAG`, what `ss -lt` asks),
//! not from `/proc/PID/net/tcp`. Why: however little of the table a read
//! asks for, the kernel fills a page of it, and a container with one
//! listener fills the rest by walking the whole host's established-socket
//! hash (sized by the host's memory, shared by every namespace): at 100
//! idle apps that walk, every monitor round, was most of the deploy
//! worker's CPU (`established_get_first` in `perf`). A dump asked for
//! listening sockets only never enters that hash.
//!
//! A netlink socket answers for the namespace it was made in, so it is
//! made on a thread of its own that first joins the container's namespace
//! (`setns`, which changes the calling thread only; the thread ends right
//! after). That takes the right to enter it (root, or the namespace's own
//! user); without it the caller reads `/proc` as before.

use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{
    recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

/// `SOCK_DIAG_BY_FAMILY`: the request and each answer's message type.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_ROOT | NLM_F_MATCH`: every socket that matches.
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
/// The kernel's `TCP_LISTEN` state; the request's state mask holds only it.
const TCP_LISTEN: u32 = 10;
/// `struct nlmsghdr`.
const HEADER_LEN: usize = 16;
/// `struct inet_diag_req_v2`: family, protocol, extensions, padding, the
/// state mask, and a 48-byte socket id (all zero: any socket).
const REQUEST_LEN: usize = 56;
/// `struct inet_diag_msg`: family, state, timer, retransmits, the socket
/// id (source port at 4, source address at 8), then five 32-bit fields.
const MESSAGE_LEN: usize = 72;

/// Every listening TCP socket (IPv4 and IPv6) in the network namespace of
/// process `pid` on this host.
pub fn listening_in(pid: u32) -> io::Result<Vec<SocketAddr>> {
    let namespace = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(&namespace, CloneFlags::CLONE_NEWNET)?;
                listening_here()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the socket diagnostics thread panicked")))
    })
}

/// Every listening TCP socket in the calling thread's network namespace.
pub fn listening_here() -> io::Result<Vec<SocketAddr>> {
    let diag = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )?;
    let mut found = dump(&diag, AF_INET)?;
    found.extend(dump(&diag, AF_INET6)?);
    Ok(found)
}

/// One dump request for `family` and its answers up to `NLMSG_DONE`.
fn dump(diag: &OwnedFd, family: u8) -> io::Result<Vec<SocketAddr>> {
    sendto(
        diag.as_raw_fd(),
        &request(family),
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    let mut buffer = vec![0u8; 32 * 1024];
    let mut found = Vec::new();
    loop {
        let received = recv(diag.as_raw_fd(), &mut buffer, MsgFlags::empty())?;
        if received == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if parse(&buffer[..received], &mut found)? {
            return Ok(found);
        }
    }
}

fn request(family: u8) -> Vec<u8> {
    let mut request = Vec::with_capacity(HEADER_LEN + REQUEST_LEN);
    request.extend(((HEADER_LEN + REQUEST_LEN) as u32).to_ne_bytes());
    request.extend(SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    request.extend((NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    request.extend(1u32.to_ne_bytes()); // sequence number
    request.extend(0u32.to_ne_bytes()); // port id: the kernel fills it in
    request.extend([family, IPPROTO_TCP, 0, 0]);
    request.extend((1u32 << TCP_LISTEN).to_ne_bytes());
    request.extend([0u8; 48]);
    request
}

/// Adds the sockets of one datagram's messages to `found`; whether the
/// dump is done.
fn parse(datagram: &[u8], found: &mut Vec<SocketAddr>) -> io::Result<bool> {
    let malformed = || io::Error::new(io::ErrorKind::InvalidData, "malformed sock_diag answer");
    let mut at = 0;
    while at + HEADER_LEN <= datagram.len() {
        let length = u32_at(datagram, at).ok_or_else(malformed)? as usize;
        let kind = u16::from_ne_bytes([datagram[at + 4], datagram[at + 5]]);
        if length < HEADER_LEN || at + length > datagram.len() {
            return Err(malformed());
        }
        let body = &datagram[at + HEADER_LEN..at + length];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = u32_at(body, 0).ok_or_else(malformed)? as i32;
                return Err(io::Error::from_raw_os_error(-errno));
            }
            SOCK_DIAG_BY_FAMILY => found.extend(socket_of(body)),
            _ => {}
        }
        // Messages are aligned to four bytes.
        at += (length + 3) & !3;
    }
    Ok(false)
}

/// The native-endian 32-bit word at `at`, if the bytes hold one.
fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let word: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_ne_bytes(word))
}

/// The local address of one `inet_diag_msg`.
fn socket_of(message: &[u8]) -> Option<SocketAddr> {
    if message.len() < MESSAGE_LEN {
        return None;
    }
    let port = u16::from_be_bytes([message[4], message[5]]);
    let source = &message[8..24];
    let ip = match message[0] {
        AF_INET => IpAddr::V4(Ipv4Addr::new(source[0], source[1], source[2], source[3])),
        AF_INET6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(source).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_of_this_namespace_is_found_and_a_closed_port_is_not() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v4_addr = v4.local_addr().unwrap();
        let v6 = std::net::TcpListener::bind("[::1]:0").ok();
        let found = listening_here().unwrap();
        assert!(found.contains(&v4_addr), "{v4_addr} not in {found:?}");
        if let Some(v6) = &v6 {
            let v6_addr = v6.local_addr().unwrap();
            assert!(found.contains(&v6_addr), "{v6_addr} not in {found:?}");
        }
        // A connected socket is not a listener.
        let connected = std::net::TcpStream::connect(v4_addr).unwrap();
        let local = connected.local_addr().unwrap();
        let again = listening_here().unwrap();
        assert!(!again.contains(&local), "{local} listed as listening");
        drop(v4);
        let after = listening_here().unwrap();
        assert!(
            !after.contains(&v4_addr),
            "{v4_addr} still listed after close"
        );
    }

    #[test]
    fn the_namespace_of_a_process_is_read_through_its_pid() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let found = listening_in(std::process::id()).unwrap();
        assert!(found.contains(&addr), "{addr} not in {found:?}");
        assert!(listening_in(u32::MAX).is_err());
    }

    #[test]
    fn answers_are_parsed_by_message() {
        let mut message = vec![0u8; MESSAGE_LEN];
        message[0] = AF_INET;
        message[1] = TCP_LISTEN as u8;
        message[4..6].copy_from_slice(&8080u16.to_be_bytes());
        message[8..12].copy_from_slice(&[10, 0, 0, 7]);
        let mut datagram = Vec::new();
        datagram.extend(((HEADER_LEN + MESSAGE_LEN) as u32).to_ne_bytes());
        datagram.extend(SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        datagram.extend([0u8; 10]);
        datagram.extend(&message);
        datagram.extend((HEADER_LEN as u32 + 4).to_ne_bytes());
        datagram.extend(NLMSG_DONE.to_ne_bytes());
        datagram.extend([0u8; 14]);
        let mut found = Vec::new();
        assert!(parse(&datagram, &mut found).unwrap());
        assert_eq!(found, vec!["10.0.0.7:8080".parse().unwrap()]);
        // A length past the datagram is refused, not read.
        let mut bad = datagram.clone();
        bad[0..4].copy_from_slice(&999u32.to_ne_bytes());
        assert!(parse(&bad, &mut Vec::new()).is_err());
        // An error message carries a negative errno.
        let mut error = Vec::new();
        error.extend((HEADER_LEN as u32 + 4).to_ne_bytes());
        error.extend(NLMSG_ERROR.to_ne_bytes());
        error.extend([0u8; 10]);
        error.extend((-2i32).to_ne_bytes());
        let err = parse(&error, &mut Vec::new()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(2));
    }
}
