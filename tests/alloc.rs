//! A keep-alive request served through the raw-bytes API allocates nothing once the
//! buffers have grown to fit: proved with a counting global allocator over a thousand requests
//! on one connection and over 32 connections taking turns, on the event path (the context read,
//! the answer written into the reused buffer) and on the HTTP path (a chunked body decoded in
//! place and answered borrowed), both through the common echo.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use scf_lean::testing::TestServer;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

// The count is process-wide, so one test runs both cases in turn: with two tests, the test
// runner's own work on one's completion (a message, a line) fell into the other's count.

const EVENT: &[u8] = b"POST /event-invoke HTTP/1.1\r\nHost: fc\r\nX-Scf-Request-Id: 0f2a-77\r\n\
X-Scf-Memory: 128\r\nX-Scf-Timeout: 3000\r\nX-Scf-Secret-Key: k\r\nContent-Length: 17\r\n\r\n{\"Type\":\"timer\"}\n";
/// Answered with its own body, borrowed (the echo's `/ref`).
const HTTP: &[u8] =
    b"PUT /ref?q=1 HTTP/1.1\r\nHost: fc\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";

/// Sends `req` and reads one response into `buf` without allocating; returns its length.
fn round_trip(s: &mut TcpStream, req: &[u8], buf: &mut [u8; 1024]) -> usize {
    s.write_all(req).unwrap();
    let mut n = 0;
    loop {
        let k = s.read(&mut buf[n..]).unwrap();
        assert!(k > 0, "EOF after {n} bytes of a response");
        n += k;
        let text = &buf[..n];
        if let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = &text[..end];
            let key = b"Content-Length: ";
            let at = head.windows(key.len()).position(|w| w == key).unwrap() + key.len();
            let len = head[at..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .fold(0, |a, d| a * 10 + usize::from(d - b'0'));
            if n >= end + 4 + len {
                assert_eq!(n, end + 4 + len);
                return n;
            }
        }
    }
}

/// The common echo on a loopback port, in a thread of its own, with logging off.
fn start() -> (TestServer, SocketAddr) {
    common::start(common::quiet(), common::Echo)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

#[test]
fn test_keep_alive_requests_allocate_nothing() {
    one_connection();
    many_connections();
}

fn one_connection() {
    let (_server, addr) = start();
    let mut s = connect(addr);
    let mut buf = [0u8; 1024];
    for req in [EVENT, HTTP] {
        // Warm up: the connection's buffers grow to fit.
        for _ in 0..50 {
            round_trip(&mut s, req, &mut buf);
        }
        let n = round_trip(&mut s, req, &mut buf);
        let before = ALLOCS.load(Ordering::SeqCst);
        for _ in 0..1000 {
            assert_eq!(round_trip(&mut s, req, &mut buf), n);
        }
        let allocs = ALLOCS.load(Ordering::SeqCst) - before;
        assert_eq!(allocs, 0, "allocations over 1000 requests");
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.ends_with("\r\n\r\nevent n=17 id=0f2a-77\n{\"Type\":\"timer\"}\n")
                || text.ends_with("application/octet-stream\r\nX-Query: q=1\r\n\r\nhello"),
            "{text}"
        );
    }
}

/// 32 connections take turns: each request borrows the loop's spare buffers and gives them
/// back, so that neither the connections nor the requests cost an allocation.
fn many_connections() {
    let (_server, addr) = start();
    let mut conns: Vec<TcpStream> = (0..32).map(|_| connect(addr)).collect();
    let mut buf = [0u8; 1024];
    for req in [EVENT, HTTP] {
        for _ in 0..3 {
            for s in &mut conns {
                round_trip(s, req, &mut buf);
            }
        }
        let before = ALLOCS.load(Ordering::SeqCst);
        for _ in 0..10 {
            for s in &mut conns {
                round_trip(s, req, &mut buf);
            }
        }
        let allocs = ALLOCS.load(Ordering::SeqCst) - before;
        assert_eq!(allocs, 0, "allocations over 320 requests on 32 connections");
    }
}
