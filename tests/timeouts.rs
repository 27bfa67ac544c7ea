//! Timeouts, against an in-process server with short ones: a head or body that stalls gets a
//! 408, one that keeps arriving does not; an idle connection closes; a reader that stops reading
//! is closed, one that keeps reading is not.
//!
//! Each test starts its own server (its own limits and timeouts) on `127.0.0.1:0` and talks to
//! it with hand-written bytes; every answer is checked exactly. Sockets have 5 s timeouts and
//! every loop is bounded, so a broken server fails a test instead of hanging it.
//!
//! A timeout is checked from below (nothing fires before it: a busy machine only delays); a
//! client that must beat a stall timeout pauses for a small fraction of it, and the 3 s bounds
//! are the test's guard against a timer that never fires, fifteen times the timeouts set here.

mod common;

use std::io::Read;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::sockets::wait_until_closed_by_peer;
use common::{
    Client, assert_echo, chunked, expect_rejected, get, pattern, quiet, read_head_bytes,
    read_slowly, server, set_rcvbuf, short_timeouts,
};
use scf_lean::Config;

/// Expects the 408 and the close, at least `at_least` and less than 3 s after `t0`.
fn expect_408(c: &mut Client, t0: Instant, at_least: Duration) {
    expect_rejected(c, 408, "the request did not arrive in time");
    let took = t0.elapsed();
    assert!(took >= at_least, "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn test_partial_head_times_out_with_408() {
    let (_server, addr) = server(short_timeouts());
    let mut c = Client::connect(addr);
    let t0 = Instant::now();
    c.send("GET / HTTP/1.1\r\nHost: t\r\n");
    expect_408(&mut c, t0, Duration::from_millis(150));
    // A head trickled in stays bounded by the head timeout from its first byte.
    let mut c = Client::connect(addr);
    let t0 = Instant::now();
    for b in get("/slow").bytes().take(30) {
        // After the 408 the server drains what still comes; a failed write ends the trickle.
        if std::io::Write::write_all(&mut c.stream, &[b]).is_err() {
            break;
        }
        sleep(Duration::from_millis(20));
    }
    expect_408(&mut c, t0, Duration::ZERO);
}

#[test]
fn test_body_that_keeps_arriving_is_not_timed_out() {
    // The body timeout is a stall timeout: a body trickling in for longer than it, each gap
    // shorter, is served. The gaps (50 ms) are a twentieth of it, so that a busy machine
    // stretching one does not make it a stall.
    let body_timeout = Duration::from_secs(1);
    let (_server, addr) = server(Config {
        body_timeout,
        ..short_timeouts()
    });
    let mut c = Client::connect(addr);
    c.send("POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 24\r\n\r\n");
    let t0 = Instant::now();
    let body = b"abcdefghijklmnopqrstuvwx";
    for b in body {
        sleep(Duration::from_millis(50));
        c.send([*b]);
    }
    assert!(t0.elapsed() > body_timeout);
    assert_echo(&c.read_response(), "POST", "/slow", "", body);
}

#[test]
fn test_stalled_body_times_out_with_408() {
    let (_server, addr) = server(short_timeouts());
    let mut c = Client::connect(addr);
    let t0 = Instant::now();
    c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    expect_408(&mut c, t0, Duration::from_millis(150));
    let mut c = Client::connect(addr);
    let t0 = Instant::now();
    c.send(chunked("/", "5\r\nab"));
    expect_408(&mut c, t0, Duration::ZERO);
}

#[test]
fn test_idle_keep_alive_connection_closed_without_response() {
    let (_server, addr) = server(short_timeouts());
    let mut c = Client::connect(addr);
    // The idle time starts after the response, so at least 300 ms after this.
    let t0 = Instant::now();
    assert_echo(&c.request(get("/a")), "GET", "/a", "", b"");
    c.expect_eof();
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // A connection that never sends a byte is closed after the first-byte timeout.
    let t0 = Instant::now();
    let mut c = Client::connect(addr);
    c.expect_eof();
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn test_reader_that_keeps_reading_is_not_timed_out() {
    // The same stall timeout guards a response: a reader that keeps taking bytes may take
    // longer than it in total.
    let (_server, addr) = server(Config {
        body_timeout: Duration::from_millis(500),
        max_response_bytes: 32 << 20,
        memory_budget_bytes: 64 << 20,
        ..quiet()
    });
    let mut c = Client::connect(addr);
    set_rcvbuf(&c.stream, 64 * 1024);
    let n = 20 << 20;
    c.send(get(&format!("/big?{n}")));
    let t0 = Instant::now();
    let head = read_head_bytes(&mut c);
    assert!(
        head.contains(&format!("\r\nContent-Length: {n}\r\n")),
        "{head}"
    );
    let got = read_slowly(&mut c, n, 32 * 1024, |_| {});
    assert!(
        t0.elapsed() > Duration::from_millis(600),
        "{:?}",
        t0.elapsed()
    );
    assert!(got == pattern(n), "the body arrived changed");
    assert_echo(&c.request(get("/then")), "GET", "/then", "", b"");
}

#[test]
fn test_reader_that_stops_reading_is_closed_after_body_timeout() {
    let (_server, addr) = server(short_timeouts());
    let mut c = Client::connect(addr);
    set_rcvbuf(&c.stream, 64 * 1024);
    // More than the socket buffers hold (the client's is pinned at 64 KiB, the server's is at
    // most 4 MiB), so the server's write must wait.
    let n = 6 << 20;
    c.send(get(&format!("/big?{n}")));
    // Once the answer has begun, read nothing for well past the timeout: the server stops
    // waiting and closes.
    let head = read_head_bytes(&mut c);
    assert!(
        head.contains(&format!("\r\nContent-Length: {n}\r\n")),
        "{head}"
    );
    // Until the server closes its end (what is sent stays unread meanwhile): a read before
    // that would be progress, and restart its stall timer.
    wait_until_closed_by_peer(&c.stream);
    let t0 = Instant::now();
    let mut got = c.take_buffered().len();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => got += k,
            // The close may come as a reset when it drops unsent data.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("{e} after {got} bytes"),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "still open after {got} bytes"
        );
    }
    assert!(got > 0 && got < n, "{got}");
    // The server is fine.
    let mut c = Client::connect(addr);
    assert_echo(&c.request(get("/ok")), "GET", "/ok", "", b"");
}

#[test]
fn test_a_connection_that_never_speaks_is_closed_after_the_first_byte_timeout() {
    let (_server, addr) = server(Config {
        first_byte_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_secs(60),
        ..quiet()
    });
    let t0 = Instant::now();
    let mut silent = Client::connect(addr);
    // One that has spoken keeps the long idle timeout.
    let mut spoke = Client::connect(addr);
    assert_echo(&spoke.request(get("/s")), "GET", "/s", "", b"");
    silent.expect_eof();
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    spoke.expect_nothing_for(Duration::from_millis(300));
    assert_echo(&spoke.request(get("/s2")), "GET", "/s2", "", b"");
}

#[test]
fn test_a_body_that_keeps_arriving_past_the_body_deadline_gets_408() {
    // Every gap (100 ms) is far shorter than the stall timeout (2 s), so a busy machine does
    // not make one a stall; the whole body takes at least 1 s, past the 500 ms deadline. All of
    // it is sent: without the deadline it would be answered 200.
    let (_server, addr) = server(Config {
        body_timeout: Duration::from_secs(2),
        body_deadline: Duration::from_millis(500),
        ..quiet()
    });
    let mut c = Client::connect(addr);
    c.send("POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n");
    let t0 = Instant::now();
    for b in b"0123456789" {
        sleep(Duration::from_millis(100));
        // After the 408 the server drains what still comes; a failed write ends the trickle.
        if std::io::Write::write_all(&mut c.stream, &[*b]).is_err() {
            break;
        }
    }
    expect_408(&mut c, t0, Duration::from_millis(400));
}
