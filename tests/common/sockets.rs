//! What the kernel says of the IPv4 TCP sockets of this network namespace (`/proc/net/tcp`):
//! how many bytes wait in each queue, and which port a process listens on. A test waits for
//! what it needs to have happened there, instead of sleeping and hoping it did.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long a wait on the kernel's view may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The `ESTABLISHED` state in `/proc/net/tcp`.
const ESTABLISHED: u8 = 0x01;
/// The `LISTEN` state in `/proc/net/tcp`.
const LISTEN: u8 = 0x0A;

/// One row of `/proc/net/tcp`.
#[derive(Debug, Clone, Copy)]
struct Row {
    local: SocketAddr,
    remote: SocketAddr,
    state: u8,
    /// Bytes written and not yet acknowledged by the peer.
    tx_queue: u64,
    /// Bytes received and not yet read by the socket's owner (for a listener: connections
    /// waiting to be accepted).
    rx_queue: u64,
    inode: u64,
}

/// `0100007F:1F90`: the address as the kernel stores it (network order, printed as a native
/// integer) and the port.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::from((Ipv4Addr::from(ip.to_ne_bytes()), port)))
}

fn parse_row(line: &str) -> Option<Row> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (tx, rx) = f.get(4)?.split_once(':')?;
    Some(Row {
        local: parse_addr(f.get(1)?)?,
        remote: parse_addr(f.get(2)?)?,
        state: u8::from_str_radix(f.get(3)?, 16).ok()?,
        tx_queue: u64::from_str_radix(tx, 16).ok()?,
        rx_queue: u64::from_str_radix(rx, 16).ok()?,
        inode: f.get(9)?.parse().ok()?,
    })
}

/// Every IPv4 TCP socket of this network namespace.
fn rows() -> Vec<Row> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).filter_map(parse_row).collect()
}

/// Waits (at most [`WAIT`]) until the peer of `s` has read every byte written on `s`: none
/// left unacknowledged in this socket's send queue, none unread in the peer's receive queue.
/// Both ends must be on this machine (loopback). Panics when that does not happen in time.
pub fn wait_until_read(s: &TcpStream) {
    wait_until_all_read([s]);
}

/// [`wait_until_read`] for every one of `streams`, with one look at the kernel's table for all
/// of them at a time.
pub fn wait_until_all_read<'a>(streams: impl IntoIterator<Item = &'a TcpStream>) {
    let pairs: Vec<(SocketAddr, SocketAddr)> = streams
        .into_iter()
        .filter_map(|s| Some((s.local_addr().ok()?, s.peer_addr().ok()?)))
        .collect();
    // First everything acknowledged (so in the peers' queues, or read), then, in a later look,
    // the peers' queues empty: one look at both could see them at different moments. A socket
    // gone from the table (a reset) has nothing waiting, nor has a peer that closed.
    wait_for_table("acknowledged", |table| {
        pairs
            .iter()
            .all(|&(me, peer)| table.get(&(me, peer)).is_none_or(|r| r.tx_queue == 0))
    });
    wait_for_table("read", |table| {
        pairs
            .iter()
            .all(|&(me, peer)| table.get(&(peer, me)).is_none_or(|r| r.rx_queue == 0))
    });
}

/// Looks at the table until `done` holds, at most [`WAIT`]; panics after that, saying what was
/// waited for.
fn wait_for_table(
    what: &str,
    mut done: impl FnMut(&HashMap<(SocketAddr, SocketAddr), Row>) -> bool,
) {
    let until = Instant::now() + WAIT;
    loop {
        let table = rows()
            .into_iter()
            .map(|r| ((r.local, r.remote), r))
            .collect();
        if done(&table) {
            return;
        }
        assert!(
            Instant::now() < until,
            "what was sent was not {what} within {WAIT:?}"
        );
        sleep(Duration::from_millis(2));
    }
}

/// Waits (at most [`WAIT`]) until the listener at `addr` has accepted every connection made to
/// it: none left in its queue. Panics when that does not happen in time.
pub fn wait_until_accepted(addr: SocketAddr) {
    let until = Instant::now() + WAIT;
    while rows()
        .iter()
        .any(|r| r.state == LISTEN && r.local == addr && r.rx_queue > 0)
    {
        assert!(
            Instant::now() < until,
            "connections to {addr} not accepted within {WAIT:?}"
        );
        sleep(Duration::from_millis(2));
    }
}

/// Waits (at most [`WAIT`]) until the peer of `s` has closed its end of the connection: its
/// socket is no longer established (or gone, after a reset), even while what it sent before
/// the close is still queued. Both ends must be on this machine (loopback). Panics when that
/// does not happen in time.
pub fn wait_until_closed_by_peer(s: &TcpStream) {
    let me = s.local_addr().expect("local address");
    let Ok(peer) = s.peer_addr() else {
        return; // reset already: not connected
    };
    let until = Instant::now() + WAIT;
    while rows()
        .iter()
        .any(|r| r.local == peer && r.remote == me && r.state == ESTABLISHED)
    {
        assert!(
            Instant::now() < until,
            "{peer} did not close its connection to {me} within {WAIT:?}"
        );
        sleep(Duration::from_millis(2));
    }
}

/// The port process `pid` listens on (a TCP listener among its descriptors), if it has one.
pub fn listening_port(pid: u32) -> Option<u16> {
    let inodes: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| {
            let link = std::fs::read_link(e.ok()?.path()).ok()?;
            let link = link.to_str()?;
            link.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    rows()
        .into_iter()
        .find(|r| r.state == LISTEN && inodes.contains(&r.inode))
        .map(|r| r.local.port())
}

/// Sockets of process `pid`: its listener and its connections. (Its other descriptors, an
/// epoll instance or a signalfd, are made once during start-up, at moments a test does not see.)
pub fn socket_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|l| l.to_str().is_some_and(|l| l.starts_with("socket:")))
                .count()
        })
        .unwrap_or(0)
}
