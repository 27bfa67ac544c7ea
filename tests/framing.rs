//! Message framing on the wire, against an in-process server: chunked bodies, `Expect:
//! 100-continue`, HEAD, 204 and `Date`, the target forms, and a request split at every byte
//! offset. The rejections of bad framing are one line each in `smuggling.rs`.
//!
//! Each test starts its own server (its own limits and timeouts) on `127.0.0.1:0` and talks to
//! it with hand-written bytes; every answer is checked exactly. Sockets have 5 s timeouts and
//! every loop is bounded, so a broken server fails a test instead of hanging it.

mod common;

use std::time::Duration;

use common::{Client, assert_echo, chunked, expect_rejected, get, pattern, quiet, server};
use scf_lean::Config;

#[test]
fn test_chunked_body_decoded_with_extensions_and_trailers() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    let raw = "5;name=value;flag\r\nhello\r\nA ; q=\"x y\"\r\n, chunked!\r\n000;last\r\n\
               X-Trailer: 1\r\nOther: two words\r\n\r\n";
    let r = c.request(chunked("/c", raw));
    assert_echo(&r, "POST", "/c", "", b"hello, chunked!");
    // Upper-case hex, a chunk-size with leading zeros, and a body borrowed back as is.
    let r = c.request(chunked(
        "/ref",
        "0010\r\n0123456789ABCDEF\r\n1\r\n!\r\n0\r\n\r\n",
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"0123456789ABCDEF!");
}

#[test]
fn test_chunked_body_of_one_byte_chunks_at_the_limit() {
    // The framing is six times the data: it is decoded as it arrives, not buffered whole.
    let n = 50_000;
    let (_server, addr) = server(Config {
        max_body_bytes: n,
        ..quiet()
    });
    let mut c = Client::connect(addr);
    let body = pattern(n);
    let mut raw = b"POST /ref HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for &b in &body {
        raw.extend_from_slice(b"1\r\n");
        raw.push(b);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = c.request(&raw);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
}

#[test]
fn test_expect_continue_sends_100_before_body() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    c.send("POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(c.read_exact_bytes(25), b"HTTP/1.1 100 Continue\r\n\r\n");
    c.expect_nothing_for(Duration::from_millis(50));
    c.send("hello");
    let r = c.read_response();
    assert_echo(&r, "POST", "/e", "", b"hello");
    // The same for a chunked body, and the connection goes on.
    c.send("POST /e2 HTTP/1.1\r\nHost: t\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(c.read_exact_bytes(25), b"HTTP/1.1 100 Continue\r\n\r\n");
    c.send("3\r\nabc\r\n0\r\n\r\n");
    assert_echo(&c.read_response(), "POST", "/e2", "", b"abc");
    let r = c.request(get("/after"));
    assert_echo(&r, "GET", "/after", "", b"");
}

#[test]
fn test_expect_other_than_100_continue_is_417() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    c.send("POST / HTTP/1.1\r\nHost: t\r\nExpect: something-else\r\nContent-Length: 1\r\n\r\nx");
    expect_rejected(&mut c, 417, "only Expect: 100-continue is supported");
    // HTTP/1.0 knows no Expect: it is ignored, and no 100 is sent.
    let mut c = Client::connect(addr);
    c.send("POST /e HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    c.expect_nothing_for(Duration::from_millis(50));
    c.send("ok");
    let r = c.read_response();
    assert_echo(&r, "POST", "/e", "", b"ok");
    assert_eq!(r.header("connection"), Some("close"));
    c.expect_eof();
}

#[test]
fn test_head_has_get_headers_and_no_body() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    let g = c.request(get("/h?x=1"));
    assert_echo(&g, "GET", "/h", "x=1", b"");
    c.send("HEAD /h?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    let h = c.read_head_response();
    assert_eq!(h.status, 200);
    assert_eq!(h.headers_without_date(), g.headers_without_date());
    assert_eq!(
        h.header("content-length"),
        Some(g.body.len().to_string().as_str())
    );
    // Had any body byte been sent, this response would not parse.
    let r = c.request(get("/next"));
    assert_echo(&r, "GET", "/next", "", b"");
    // Pipelined HEADs too.
    c.send(format!(
        "HEAD /h?x=1 HTTP/1.1\r\nHost: t\r\n\r\nHEAD /h?x=1 HTTP/1.1\r\nHost: t\r\n\r\n{}",
        get("/last")
    ));
    for _ in 0..2 {
        let h = c.read_head_response();
        assert_eq!(h.headers_without_date(), g.headers_without_date());
    }
    assert_echo(&c.read_response(), "GET", "/last", "", b"");
}

#[test]
fn test_head_of_an_error_has_no_body() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    let g = c.request(get("/error"));
    c.send("HEAD /error HTTP/1.1\r\nHost: t\r\n\r\n");
    let h = c.read_head_response();
    assert_eq!(h.status, 500);
    assert_eq!(h.headers_without_date(), g.headers_without_date());
    assert_echo(&c.request(get("/next")), "GET", "/next", "", b"");
}

#[test]
fn test_absolute_and_asterisk_form_targets() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    let r = c.request("GET http://example.com/p/q?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_echo(&r, "GET", "/p/q", "x=1", b"");
    let r = c.request("GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_echo(&r, "GET", "/", "", b"");
    let r = c.request("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_echo(&r, "OPTIONS", "*", "", b"");
    c.send("GET * HTTP/1.1\r\nHost: t\r\n\r\n");
    expect_rejected(&mut c, 400, "invalid request target");
}

#[test]
fn test_date_header_is_imf_fixdate() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    let r = c.request(get("/"));
    let d = r.header("date").unwrap();
    // e.g. "Sun, 06 Nov 1994 08:49:37 GMT"
    assert_eq!(d.len(), 29, "{d:?}");
    assert!(d.ends_with(" GMT"), "{d:?}");
    let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    assert!(days.contains(&&d[..3]), "{d:?}");
    assert_eq!(&d[3..5], ", ");
    assert!(months.contains(&&d[8..11]), "{d:?}");
    let digits = |r: std::ops::Range<usize>| d[r].bytes().all(|b| b.is_ascii_digit());
    assert!(digits(5..7) && digits(12..16) && digits(17..19) && digits(20..22) && digits(23..25));
    assert_eq!((&d[7..8], &d[11..12], &d[16..17]), (" ", " ", " "));
    assert_eq!((&d[19..20], &d[22..23]), (":", ":"));
    let year: u32 = d[12..16].parse().unwrap();
    assert!((2024..2200).contains(&year), "{d:?}");
    // Error answers carry it too.
    let mut c = Client::connect(addr);
    c.send("GET / HTTP/2.0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.header("date").map(str::len), Some(29));
}

#[test]
fn test_204_has_no_content_length_and_no_body() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    c.send(format!("{}{}", get("/204"), get("/after")));
    let r = c.read_response();
    assert_eq!((r.status, r.reason.as_str()), (204, "No Content"));
    assert_eq!(r.header("content-length"), None);
    assert!(r.body.is_empty());
    assert_echo(&c.read_response(), "GET", "/after", "", b"");
}

/// Sends `raw` on a fresh connection in two writes cut at `cut`; checks that nothing is
/// answered before the last byte; returns the response.
fn send_split(addr: std::net::SocketAddr, raw: &[u8], cut: usize) -> common::Resp {
    let mut c = Client::connect(addr);
    c.send(&raw[..cut]);
    c.expect_nothing_for(Duration::from_millis(5));
    c.send(&raw[cut..]);
    let r = c.read_response();
    c.expect_nothing_for(Duration::from_millis(1));
    r
}

fn assert_same_at_every_split(raw: &[u8], want_body: &[u8]) {
    let (_server, addr) = server(quiet());
    let one = Client::connect(addr).request(raw);
    assert_echo(&one, "POST", "/split", "q=1", want_body);
    for cut in 1..raw.len() {
        let r = send_split(addr, raw, cut);
        assert_eq!(r.status, one.status, "cut at {cut}");
        assert_eq!(
            r.headers_without_date(),
            one.headers_without_date(),
            "cut at {cut}"
        );
        assert_eq!(r.body, one.body, "cut at {cut}");
    }
}

#[test]
fn test_request_split_at_every_offset_matches_one_shot() {
    let body = b"{\"split\": \"at every byte\", \"n\": 12345}";
    let mut raw = format!(
        "POST /split?q=1 HTTP/1.1\r\nHost: example\r\nX-Scf-Request-Id: r-1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    assert!(raw.len() > 140 && raw.len() < 200, "{}", raw.len());
    assert_same_at_every_split(&raw, body);
}

#[test]
fn test_chunked_request_split_at_every_offset_matches_one_shot() {
    let raw = "POST /split?q=1 HTTP/1.1\r\nHost: example\r\nTransfer-Encoding: chunked\r\n\r\n\
               7;ext=1\r\nchunked\r\n10\r\n body split at e\r\n9\r\nvery byte\r\n0\r\nT: v\r\n\r\n";
    assert_same_at_every_split(raw.as_bytes(), b"chunked body split at every byte");
}
