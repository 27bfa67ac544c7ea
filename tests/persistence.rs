//! Persistence and pipelining over raw TCP on loopback, against an in-process server: keep-alive
//! and `Connection: close` on HTTP/1.1 and HTTP/1.0, pipelined requests of every framing answered
//! in order, and a bad request that ends its connection (and only its own).
//!
//! Each test starts its own server (its own limits and timeouts) on `127.0.0.1:0` and talks to
//! it with hand-written bytes; every answer is checked exactly. Sockets have 5 s timeouts and
//! every loop is bounded, so a broken server fails a test instead of hanging it.

mod common;

use std::time::Duration;

use common::{
    Client, assert_echo, chunked, echo, expect_rejected, get, pattern, post, quiet, server,
};

#[test]
fn test_keep_alive_serves_three_requests_on_one_connection() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    for i in 0..3 {
        let path = format!("/k{i}");
        let r = c.request(get(&format!("{path}?i={i}")));
        assert_echo(&r, "GET", &path, &format!("i={i}"), b"");
        assert_eq!(r.header("connection"), None, "HTTP/1.1 keeps by default");
    }
    let r = c.request(post("/k3", b"last"));
    assert_echo(&r, "POST", "/k3", "", b"last");
}

#[test]
fn test_http10_closes_by_default() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    let r = c.request("GET /old HTTP/1.0\r\n\r\n");
    assert_echo(&r, "GET", "/old", "", b"");
    assert_eq!(r.header("connection"), Some("close"));
    c.expect_eof();
}

#[test]
fn test_http10_keep_alive_when_asked() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    for i in 0..2 {
        let r = c.request(format!(
            "GET /old{i} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        ));
        assert_echo(&r, "GET", &format!("/old{i}"), "", b"");
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    // Without the option again, it closes.
    let r = c.request("GET /old2 HTTP/1.0\r\n\r\n");
    assert_echo(&r, "GET", "/old2", "", b"");
    assert_eq!(r.header("connection"), Some("close"));
    c.expect_eof();
}

#[test]
fn test_connection_close_is_honoured() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    let r = c.request(get("/a"));
    assert_echo(&r, "GET", "/a", "", b"");
    let r = c.request("GET /b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_echo(&r, "GET", "/b", "", b"");
    assert_eq!(r.header("connection"), Some("close"));
    c.expect_eof();
    // A request pipelined after `Connection: close` is not answered.
    let mut c = Client::connect(addr);
    c.send(format!(
        "GET /c HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, close\r\n\r\n{}",
        get("/never")
    ));
    let r = c.read_response();
    assert_echo(&r, "GET", "/c", "", b"");
    assert_eq!(r.header("connection"), Some("close"));
    c.expect_eof();
}

#[test]
fn test_pipelined_requests_answered_in_order() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    let mut all = String::new();
    for i in 0..8 {
        all.push_str(&get(&format!("/p{i}?n={i}")));
    }
    c.send(all);
    for i in 0..8 {
        let r = c.read_response();
        assert_echo(&r, "GET", &format!("/p{i}"), &format!("n={i}"), b"");
    }
    c.expect_nothing_for(Duration::from_millis(50));
    // The connection is still good for more.
    let r = c.request(get("/after"));
    assert_echo(&r, "GET", "/after", "", b"");
}

#[test]
fn test_pipelined_mix_of_content_length_and_chunked_bodies() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    let mut all = Vec::new();
    all.extend(post("/cl1", b"alpha"));
    all.extend(chunked("/ch1", "3\r\nbet\r\n1\r\na\r\n0\r\n\r\n").into_bytes());
    all.extend(get("/g").into_bytes());
    all.extend(chunked("/ch2", "0\r\n\r\n").into_bytes());
    all.extend(post(
        "/cl2",
        b"gamma\r\n\r\nGET /not-a-request HTTP/1.1\r\n",
    ));
    all.extend(chunked("/ch3", "5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n").into_bytes());
    all.extend(post("/cl3", b""));
    c.send(&all);
    assert_echo(&c.read_response(), "POST", "/cl1", "", b"alpha");
    assert_echo(&c.read_response(), "POST", "/ch1", "", b"beta");
    assert_echo(&c.read_response(), "GET", "/g", "", b"");
    assert_echo(&c.read_response(), "POST", "/ch2", "", b"");
    assert_echo(
        &c.read_response(),
        "POST",
        "/cl2",
        "",
        b"gamma\r\n\r\nGET /not-a-request HTTP/1.1\r\n",
    );
    assert_echo(&c.read_response(), "POST", "/ch3", "", b"hello world");
    assert_echo(&c.read_response(), "POST", "/cl3", "", b"");
    c.expect_nothing_for(Duration::from_millis(50));
}

#[test]
fn test_many_pipelined_requests_across_buffer_boundaries() {
    // Hundreds of requests of every framing and size, written in odd-sized pieces by one
    // thread while another reads the answers: requests straddle every read and buffer edge.
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    let mut raw = Vec::new();
    let mut want = Vec::new();
    for i in 0..600usize {
        let path = format!("/m{i}");
        let body: Vec<u8> = pattern(i * 7 % 300).iter().map(|b| b'a' + b % 26).collect();
        match i % 4 {
            0 => {
                raw.extend(get(&path).into_bytes());
                want.push(echo("GET", &path, "", b""));
            }
            1 | 3 => {
                raw.extend(post(&path, &body));
                want.push(echo("POST", &path, "", &body));
            }
            _ => {
                let mut ch = String::new();
                for part in body.chunks(1 + i % 37) {
                    ch.push_str(&format!("{:x};i={i}\r\n", part.len()));
                    ch.push_str(std::str::from_utf8(part).unwrap());
                    ch.push_str("\r\n");
                }
                ch.push_str("0\r\n\r\n");
                raw.extend(chunked(&path, &ch).into_bytes());
                want.push(echo("POST", &path, "", &body));
            }
        }
    }
    let mut w = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for piece in raw.chunks(1021) {
            std::io::Write::write_all(&mut w, piece).unwrap();
        }
    });
    for (i, body) in want.iter().enumerate() {
        let r = c.read_response();
        assert_eq!(r.status, 200, "request {i}");
        assert!(r.body == *body, "request {i}: {:?}", r.text());
    }
    writer.join().unwrap();
    c.expect_nothing_for(Duration::from_millis(20));
}

#[test]
fn test_pipelined_large_and_small_bodies() {
    // Large borrowed bodies grow the read buffer past the size it is given back at; the
    // requests pipelined behind them must survive that.
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    let sizes = [
        40_000, 60_000, 10, 70_000, 0, 3, 100_000, 130_000, 1, 65_000, 2,
    ];
    let mut raw = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let body: Vec<u8> = pattern(n + i).split_off(i);
        raw.extend(post("/ref", &body));
        raw.extend(get(&format!("/after{i}")).into_bytes());
    }
    let mut w = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        std::io::Write::write_all(&mut w, &raw).unwrap();
    });
    for (i, &n) in sizes.iter().enumerate() {
        let r = c.read_response();
        assert_eq!(r.status, 200, "request {i}");
        assert!(r.body == pattern(n + i)[i..], "body {i} arrived changed");
        assert_echo(&c.read_response(), "GET", &format!("/after{i}"), "", b"");
    }
    writer.join().unwrap();
    c.expect_nothing_for(Duration::from_millis(20));
}

#[test]
fn test_empty_lines_between_pipelined_requests_are_ignored() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    c.send(format!(
        "{}\r\n{}\r\n\r\n{}",
        String::from_utf8(post("/a", b"xy")).unwrap(),
        get("/b"),
        get("/c")
    ));
    assert_echo(&c.read_response(), "POST", "/a", "", b"xy");
    assert_echo(&c.read_response(), "GET", "/b", "", b"");
    assert_echo(&c.read_response(), "GET", "/c", "", b"");
    c.expect_nothing_for(Duration::from_millis(20));
}

#[test]
fn test_bad_request_after_good_ones_on_the_same_connection_closes_it() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    c.send(format!(
        "{}GET / HTTP/1.1\r\n\r\n{}",
        get("/ok"),
        get("/never")
    ));
    assert_echo(&c.read_response(), "GET", "/ok", "", b"");
    expect_rejected(&mut c, 400, "missing Host header");
    // The same after a chunked request: its framing error closes the connection.
    let mut c = Client::connect(addr);
    let r = c.request(chunked("/c", "1\r\na\r\n0\r\n\r\n"));
    assert_echo(&r, "POST", "/c", "", b"a");
    c.send(chunked("/c", "g\r\n"));
    expect_rejected(&mut c, 400, "invalid chunk size");
}

#[test]
fn test_bad_connection_does_not_disturb_a_concurrent_good_one() {
    let (_server, addr) = server(quiet());
    let mut good = Client::connect(addr);
    let req = post("/good", b"0123456789");
    good.send(&req[..20]);
    let mut bad = Client::connect(addr);
    bad.send("BAD\r\n\r\n");
    expect_rejected(&mut bad, 400, "invalid request line");
    good.expect_nothing_for(Duration::from_millis(20));
    good.send(&req[20..]);
    assert_echo(&good.read_response(), "POST", "/good", "", b"0123456789");
    assert_echo(&good.request(get("/again")), "GET", "/again", "", b"");
}
