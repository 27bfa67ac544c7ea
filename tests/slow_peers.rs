//! Slow and vanishing peers, against an in-process server: large responses to readers slower
//! than the socket buffers while others are served, and peers that close or reset mid-head,
//! mid-body and mid-response without disturbing the next connection.
//!
//! Each test starts its own server (its own limits and timeouts) on `127.0.0.1:0` and talks to
//! it with hand-written bytes; every answer is checked exactly. Sockets have 5 s timeouts and
//! every loop is bounded, so a broken server fails a test instead of hanging it.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::thread::sleep;
use std::time::Duration;

use common::{
    Client, assert_echo, get, pattern, post, quiet, read_head_bytes, read_slowly, reset, server,
    set_rcvbuf,
};

/// Sends a `/ref` request with an `n`-byte body and a small request after it in one write,
/// waits before reading (the server's write fills the socket buffers), then reads the borrowed
/// body back slowly; checks it byte for byte, then the pipelined request, then one more. If
/// `other` is given, it is served while the big response is stuck.
fn borrowed_round_trip(c: &mut Client, n: usize, other: Option<&mut Client>) {
    let body = pattern(n);
    let mut raw = post("/ref", &body);
    raw.extend(post("/ref", b"small, after"));
    c.send(&raw);
    sleep(Duration::from_millis(200));
    if let Some(o) = other {
        assert_echo(&o.request(get("/meanwhile")), "GET", "/meanwhile", "", b"");
    }
    let head = read_head_bytes(c);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nContent-Length: {n}\r\n")),
        "{head}"
    );
    assert!(
        head.contains("\r\nContent-Type: application/octet-stream\r\n"),
        "{head}"
    );
    let got = read_slowly(c, n, 16 * 1024, |_| {});
    assert!(got == body, "the borrowed body arrived changed");
    assert_eq!(c.read_response().body, b"small, after");
    // The connection goes on after its buffer shrank back.
    assert_eq!(c.request(post("/ref", b"again")).body, b"again");
}

#[test]
fn test_large_borrowed_body_to_slow_reader() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    borrowed_round_trip(&mut c, 1 << 20, None);
}

#[test]
fn test_borrowed_body_larger_than_socket_buffers_blocks_and_resumes() {
    // The client's receive buffer is pinned small, so 5 MiB cannot all be in flight (the
    // server's send buffer is at most `net.ipv4.tcp_wmem`'s 4 MiB): the write must block.
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    set_rcvbuf(&c.stream, 64 * 1024);
    let mut other = Client::connect(addr);
    borrowed_round_trip(&mut c, 5 << 20, Some(&mut other));
}

#[test]
fn test_large_owned_response_to_slow_reader_while_another_is_served() {
    // 6 MiB against a pinned 64 KiB receive buffer: more than the server's send buffer can
    // take (at most 4 MiB), so its write blocks and resumes many times.
    let (_server, addr) = server(quiet());
    let n = 6 << 20;
    let mut slow = Client::connect(addr);
    set_rcvbuf(&slow.stream, 64 * 1024);
    slow.send(get(&format!("/big?{n}")));
    let mut other = Client::connect(addr);
    sleep(Duration::from_millis(100));
    // The big response is stuck on the slow reader; the other connection is served.
    assert_echo(&other.request(get("/o")), "GET", "/o", "", b"");
    let head = read_head_bytes(&mut slow);
    assert!(
        head.contains(&format!("\r\nContent-Length: {n}\r\n")),
        "{head}"
    );
    let mut served = 0;
    let got = read_slowly(&mut slow, n, 32 * 1024, |at| {
        let r = other.request(get(&format!("/o{at}")));
        assert_echo(&r, "GET", &format!("/o{at}"), "", b"");
        served += 1;
    });
    assert!(got == pattern(n), "the large body arrived changed");
    assert!(served >= 23, "{served}");
    assert_echo(&slow.request(get("/then")), "GET", "/then", "", b"");
}

fn peer_goes_away(abort: fn(TcpStream)) {
    let (_server, addr) = server(quiet());
    let mut bystander = Client::connect(addr);
    bystander.send(b"POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab");
    let partials: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\nHo",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
        b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n",
        b"GET /big?3000000 HTTP/1.1\r\nHost: t\r\n\r\n",
    ];
    for p in partials {
        let mut c = Client::connect(addr);
        c.send(p);
        sleep(Duration::from_millis(20));
        abort(c.stream);
        sleep(Duration::from_millis(20));
        let mut next = Client::connect(addr);
        assert_echo(&next.request(post("/n", b"ok")), "POST", "/n", "", b"ok");
    }
    bystander.send("cd");
    assert_echo(&bystander.read_response(), "POST", "/b", "", b"abcd");
}

#[test]
fn test_peer_close_mid_head_and_mid_body_does_not_affect_next_connection() {
    peer_goes_away(drop);
}

#[test]
fn test_peer_reset_mid_head_and_mid_body_does_not_affect_next_connection() {
    peer_goes_away(reset);
}

#[test]
fn test_peer_half_close_after_request_still_gets_response() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    c.send(post("/h", b"half"));
    c.send(get("/h2"));
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_echo(&c.read_response(), "POST", "/h", "", b"half");
    assert_echo(&c.read_response(), "GET", "/h2", "", b"");
    c.expect_eof();
    let mut buf = [0u8; 1];
    assert_eq!(c.stream.read(&mut buf).unwrap(), 0);
}
