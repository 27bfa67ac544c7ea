//! End-to-end HTTP/1.1 behaviour over raw TCP on loopback, against an in-process server.
//!
//! Each test starts its own server (its own limits and timeouts) on `127.0.0.1:0` and talks to
//! it with hand-written bytes; every answer is checked exactly. Sockets have 5 s timeouts and
//! every loop is bounded, so a broken server fails a test instead of hanging it.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Client, assert_json_error, expect_rejected, get, post, quiet, start};
use scf_lean::{Config, Context, Error, Function, Request, Response};

/// The test function. `event` answers `event n=<len>\n<body>`; `http` answers by path:
/// - `/panic` panics, `/error` returns an error,
/// - `/ref` answers the request body itself, borrowed (no copy),
/// - `/bad-header` sets a header the server owns (an invalid response),
/// - `/204` answers 204 (with a body, which must not be sent),
/// - `/big?<n>` answers `n` bytes of [`pattern`] from its own buffer,
/// - anything else echoes: `<method> <path> ?<query> n=<body len>\n<body>`.
struct TestFn;

impl Function for TestFn {
    fn event<'a>(
        &mut self,
        event: &'a [u8],
        _ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        out.content_type("text/plain");
        let b = out.body_mut();
        b.extend_from_slice(format!("event n={}\n", event.len()).as_bytes());
        b.extend_from_slice(event);
        Ok(())
    }

    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        match req.path() {
            "/panic" => panic!("boom"),
            "/error" => Err(Error::new("it went \"wrong\"")),
            "/ref" => {
                out.content_type("application/octet-stream");
                out.set_body_ref(req.body());
                Ok(())
            }
            "/bad-header" => {
                out.header("Content-Length", "5");
                out.set_body_static(b"hello");
                Ok(())
            }
            "/204" => {
                // A body on a 204 is not sent.
                out.set_status(204).set_body_static(b"not sent");
                Ok(())
            }
            "/big" => {
                let n: usize = req.query().parse()?;
                out.body_mut().extend_from_slice(&pattern(n));
                Ok(())
            }
            _ => {
                out.content_type("text/plain");
                let b = out.body_mut();
                b.extend_from_slice(&echo(req.method(), req.path(), req.query(), req.body()));
                Ok(())
            }
        }
    }
}

/// What [`TestFn`] echoes for a request.
fn echo(method: &str, path: &str, query: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!("{method} {path} ?{query} n={}\n", body.len()).into_bytes();
    v.extend_from_slice(body);
    v
}

/// `n` bytes that repeat only every 251 (a prime), so a lost, doubled or moved block shows.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Asserts a 200 answer of [`TestFn`]'s echo for this request, with a matching Content-Length.
fn assert_echo(r: &common::Resp, method: &str, path: &str, query: &str, body: &[u8]) {
    assert_eq!(r.status, 200, "{r:?} {:?}", r.text());
    assert_eq!(r.reason, "OK");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert_eq!(
        r.text(),
        String::from_utf8_lossy(&echo(method, path, query, body))
    );
}

fn server(config: Config) -> std::net::SocketAddr {
    start(config, TestFn)
}

/// Short timeouts, for the tests that wait for them.
fn short_timeouts() -> Config {
    Config {
        head_timeout: Duration::from_millis(200),
        body_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(300),
        ..quiet()
    }
}

/// A chunked POST with the given raw chunked body.
fn chunked(path: &str, raw_body: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{raw_body}")
}

// ---------------------------------------------------------------------------------------------
// Persistence

#[test]
fn test_keep_alive_serves_three_requests_on_one_connection() {
    let addr = server(quiet());
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
    let addr = server(quiet());
    let mut c = Client::connect(addr);
    let r = c.request("GET /old HTTP/1.0\r\n\r\n");
    assert_echo(&r, "GET", "/old", "", b"");
    assert_eq!(r.header("connection"), Some("close"));
    c.expect_eof();
}

#[test]
fn test_http10_keep_alive_when_asked() {
    let addr = server(quiet());
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
    let addr = server(quiet());
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

// ---------------------------------------------------------------------------------------------
// Pipelining

#[test]
fn test_pipelined_requests_answered_in_order() {
    let addr = server(quiet());
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
    let addr = server(quiet());
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
    let addr = server(quiet());
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
    let addr = server(quiet());
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
    let addr = server(quiet());
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

// ---------------------------------------------------------------------------------------------
// Chunked bodies

#[test]
fn test_chunked_body_decoded_with_extensions_and_trailers() {
    let addr = server(quiet());
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
    let addr = server(Config {
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
fn test_bad_chunk_size_is_400_and_closes() {
    let addr = server(quiet());
    for raw in [
        "x\r\nhello\r\n0\r\n\r\n",
        "5x\r\nhello\r\n0\r\n\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
    ] {
        let mut c = Client::connect(addr);
        c.send(chunked("/c", raw));
        expect_rejected(&mut c, 400, "invalid chunk size");
    }
    let mut c = Client::connect(addr);
    c.send(chunked("/c", "00000000000000001\r\nh\r\n0\r\n\r\n"));
    expect_rejected(&mut c, 400, "chunk size too long");
    // A good request after a good one, then a bad one on the same connection.
    let mut c = Client::connect(addr);
    let r = c.request(chunked("/c", "1\r\na\r\n0\r\n\r\n"));
    assert_echo(&r, "POST", "/c", "", b"a");
    c.send(chunked("/c", "g\r\n"));
    expect_rejected(&mut c, 400, "invalid chunk size");
}

#[test]
fn test_lf_only_chunk_line_is_400() {
    let addr = server(quiet());
    let mut c = Client::connect(addr);
    c.send(chunked("/c", "5\nhello\r\n0\r\n\r\n"));
    expect_rejected(&mut c, 400, "invalid chunk size");
    let crlf = "invalid chunked framing: lines must end in CRLF";
    for raw in ["5\r\nhello\n0\r\n\r\n", "0\r\n\n", "0\r\nT: v\n\r\n"] {
        let mut c = Client::connect(addr);
        c.send(chunked("/c", raw));
        expect_rejected(&mut c, 400, crlf);
    }
}

// ---------------------------------------------------------------------------------------------
// Expect: 100-continue

#[test]
fn test_expect_continue_sends_100_before_body() {
    let addr = server(quiet());
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
    let addr = server(quiet());
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
fn test_expect_continue_over_body_limit_is_413_without_100() {
    let addr = server(Config {
        max_body_bytes: 16,
        ..quiet()
    });
    let mut c = Client::connect(addr);
    c.send("POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 17\r\n\r\n");
    // The first bytes are the final answer, not `100 Continue`.
    expect_rejected(&mut c, 413, "the request body is too large");
}

// ---------------------------------------------------------------------------------------------
// HEAD, Date, 204

#[test]
fn test_head_has_get_headers_and_no_body() {
    let addr = server(quiet());
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
    let addr = server(quiet());
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
    let addr = server(quiet());
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
    let addr = server(quiet());
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
    let addr = server(quiet());
    let mut c = Client::connect(addr);
    c.send(format!("{}{}", get("/204"), get("/after")));
    let r = c.read_response();
    assert_eq!((r.status, r.reason.as_str()), (204, "No Content"));
    assert_eq!(r.header("content-length"), None);
    assert!(r.body.is_empty());
    assert_echo(&c.read_response(), "GET", "/after", "", b"");
}

// ---------------------------------------------------------------------------------------------
// Limits, at and past their value

/// `GET /` whose head is exactly `n` bytes, padded with one header.
fn head_of_len(n: usize) -> String {
    let base = "GET / HTTP/1.1\r\nHost: t\r\nX-Pad: \r\n\r\n".len();
    format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(n - base)
    )
}

#[test]
fn test_head_bytes_at_limit_ok_past_is_431() {
    let addr = server(Config {
        max_head_bytes: 512,
        ..quiet()
    });
    let mut c = Client::connect(addr);
    let at = head_of_len(512);
    assert_eq!(at.len(), 512);
    assert_echo(&c.request(&at), "GET", "/", "", b"");
    assert_echo(&c.request(&at), "GET", "/", "", b"");
    let mut c = Client::connect(addr);
    c.send(head_of_len(513));
    expect_rejected(
        &mut c,
        431,
        "the request head is too large or has too many fields",
    );
    // A head that never ends is refused as soon as it is past the limit.
    let mut c = Client::connect(addr);
    c.send(format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Pad: {}",
        "p".repeat(600)
    ));
    expect_rejected(
        &mut c,
        431,
        "the request head is too large or has too many fields",
    );
}

#[test]
fn test_header_count_at_limit_ok_past_is_431() {
    let addr = server(Config {
        max_headers: 10,
        ..quiet()
    });
    let with = |n: usize| {
        let mut s = String::from("GET /h HTTP/1.1\r\nHost: t\r\n");
        for i in 1..n {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        s + "\r\n"
    };
    let mut c = Client::connect(addr);
    assert_echo(&c.request(with(10)), "GET", "/h", "", b"");
    let mut c = Client::connect(addr);
    c.send(with(11));
    expect_rejected(
        &mut c,
        431,
        "the request head is too large or has too many fields",
    );
}

#[test]
fn test_target_length_at_limit_ok_past_is_414() {
    let addr = server(Config {
        max_target_bytes: 64,
        ..quiet()
    });
    let target = |n: usize| format!("/{}", "a".repeat(n - 1));
    let mut c = Client::connect(addr);
    let t = target(64);
    assert_echo(&c.request(get(&t)), "GET", &t, "", b"");
    let mut c = Client::connect(addr);
    c.send(get(&target(65)));
    expect_rejected(&mut c, 414, "the request target is too long");
    // A request line that never ends is refused once it cannot fit.
    let mut c = Client::connect(addr);
    c.send(format!("GET {}", target(200)));
    expect_rejected(&mut c, 414, "the request target is too long");
}

#[test]
fn test_body_limit_content_length_at_ok_past_is_413_and_closes() {
    let addr = server(Config {
        max_body_bytes: 64,
        ..quiet()
    });
    let mut c = Client::connect(addr);
    let body = pattern(64);
    let r = c.request(post("/ref", &body));
    assert_eq!((r.status, &r.body), (200, &body));
    // Past it: refused from the head alone, the body sent anyway is dropped.
    let mut c = Client::connect(addr);
    c.send(post("/ref", &pattern(65)));
    expect_rejected(&mut c, 413, "the request body is too large");
    // Refused without waiting for a body that is never sent.
    let mut c = Client::connect(addr);
    c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n");
    expect_rejected(&mut c, 413, "the request body is too large");
}

#[test]
fn test_rejected_request_with_unread_body_still_gets_its_answer() {
    // The server answers 413 from the head while a large body is still arriving. It must drain
    // that body instead of closing on unread input, which would reset the connection and could
    // destroy the answer before the client reads it.
    let addr = server(Config {
        max_body_bytes: 64,
        ..quiet()
    });
    let mut c = Client::connect(addr);
    let n = 2 << 20;
    let mut w = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let head = format!("POST /ref HTTP/1.1\r\nHost: t\r\nContent-Length: {n}\r\n\r\n");
        std::io::Write::write_all(&mut w, head.as_bytes())?;
        for piece in pattern(n).chunks(64 * 1024) {
            std::io::Write::write_all(&mut w, piece)?;
            sleep(Duration::from_millis(1));
        }
        w.shutdown(std::net::Shutdown::Write)
    });
    expect_rejected(&mut c, 413, "the request body is too large");
    writer.join().unwrap().expect("the whole body is taken in");
}

#[test]
fn test_body_limit_chunked_at_ok_past_is_413() {
    let addr = server(Config {
        max_body_bytes: 64,
        ..quiet()
    });
    let body = |n: usize| {
        format!(
            "20\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            "a".repeat(32),
            n - 32,
            "b".repeat(n - 32)
        )
    };
    let mut c = Client::connect(addr);
    let r = c.request(chunked("/ref", &body(64)));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), format!("{}{}", "a".repeat(32), "b".repeat(32)));
    let mut c = Client::connect(addr);
    c.send(chunked("/ref", &body(65)));
    expect_rejected(&mut c, 413, "the request body is too large");
}

#[test]
fn test_chunk_meta_limit_at_ok_past_is_400() {
    let addr = server(Config {
        max_chunk_meta_bytes: 32,
        ..quiet()
    });
    let msg = "chunk extensions or trailers too large";
    // The extension counts from its `;`.
    let ext = |n: usize| format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(n - 1));
    let mut c = Client::connect(addr);
    assert_echo(&c.request(chunked("/m", &ext(32))), "POST", "/m", "", b"x");
    let mut c = Client::connect(addr);
    c.send(chunked("/m", &ext(33)));
    expect_rejected(&mut c, 400, msg);
    // Trailer lines count without their CRLF; extensions and trailers share the limit.
    let trailer = |n: usize| format!("0\r\nX-T: {}\r\n\r\n", "t".repeat(n - 5));
    let mut c = Client::connect(addr);
    assert_echo(
        &c.request(chunked("/m", &trailer(32))),
        "POST",
        "/m",
        "",
        b"",
    );
    let mut c = Client::connect(addr);
    c.send(chunked("/m", &trailer(33)));
    expect_rejected(&mut c, 400, msg);
    let mut c = Client::connect(addr);
    c.send(chunked(
        "/m",
        &format!("1;{}\r\nx\r\n0\r\nX-T: v\r\n\r\n", "e".repeat(27)),
    ));
    expect_rejected(&mut c, 400, msg);
}

// ---------------------------------------------------------------------------------------------
// Bad input: each answer closes the connection

#[test]
fn test_malformed_request_line_is_400() {
    let addr = server(quiet());
    let cases: [(&[u8], &str); 5] = [
        (b"GET\r\n\r\n", "invalid request line"),
        (b"G(T / HTTP/1.1\r\nHost: t\r\n\r\n", "invalid request line"),
        (b"GET / HTTX/1.1\r\nHost: t\r\n\r\n", "invalid HTTP version"),
        (
            b"GET nope HTTP/1.1\r\nHost: t\r\n\r\n",
            "invalid request target",
        ),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            "invalid request line",
        ),
    ];
    for (raw, msg) in cases {
        let mut c = Client::connect(addr);
        c.send(raw);
        expect_rejected(&mut c, 400, msg);
    }
}

#[test]
fn test_malformed_header_field_is_400() {
    let addr = server(quiet());
    let cases: [(&[u8], &str); 5] = [
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n",
            "invalid header value",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nBad Name: v\r\n\r\n",
            "invalid header name",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nno-colon\r\n\r\n",
            "invalid header name",
        ),
        (b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", "invalid header name"),
        (b"GET / HTTP/1.1\rHost: t\r\n\r\n", "invalid line ending"),
    ];
    for (raw, msg) in cases {
        let mut c = Client::connect(addr);
        c.send(raw);
        expect_rejected(&mut c, 400, msg);
    }
}

#[test]
fn test_content_length_with_transfer_encoding_is_400() {
    let addr = server(quiet());
    for raw in [
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    ] {
        let mut c = Client::connect(addr);
        c.send(raw);
        expect_rejected(&mut c, 400, "both Content-Length and Transfer-Encoding");
    }
}

#[test]
fn test_differing_duplicate_content_length_is_400() {
    let addr = server(quiet());
    let mut c = Client::connect(addr);
    c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd");
    expect_rejected(&mut c, 400, "conflicting Content-Length");
    // The same value twice is one length.
    let mut c = Client::connect(addr);
    let r = c.request(
        "POST /d HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_echo(&r, "POST", "/d", "", b"abc");
}

#[test]
fn test_non_digit_content_length_is_400() {
    let addr = server(quiet());
    for v in ["abc", "+5", "-1", "5 5", "0x5", "5,5", ""] {
        let mut c = Client::connect(addr);
        c.send(format!(
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {v}\r\n\r\n"
        ));
        expect_rejected(&mut c, 400, "invalid Content-Length");
    }
    let mut c = Client::connect(addr);
    c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n");
    expect_rejected(&mut c, 400, "Content-Length overflows");
}

#[test]
fn test_transfer_encoding_gzip_is_501() {
    let addr = server(quiet());
    for te in ["gzip", "gzip, chunked"] {
        let mut c = Client::connect(addr);
        c.send(format!(
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n"
        ));
        expect_rejected(
            &mut c,
            501,
            "only the chunked transfer coding is implemented",
        );
    }
    // RFC 9112 §6.3: with a coding after chunked the length is unknown, which is a 400.
    let mut c = Client::connect(addr);
    c.send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n");
    expect_rejected(&mut c, 400, "chunked is not the final transfer coding");
}

#[test]
fn test_transfer_encoding_on_http10_is_400() {
    let addr = server(quiet());
    let mut c = Client::connect(addr);
    c.send("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    expect_rejected(&mut c, 400, "Transfer-Encoding on HTTP/1.0");
    let mut c = Client::connect(addr);
    c.send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n");
    expect_rejected(&mut c, 400, "chunked applied twice");
}

#[test]
fn test_obs_fold_is_400() {
    let addr = server(quiet());
    for fold in [" ", "\t"] {
        let mut c = Client::connect(addr);
        c.send(format!(
            "GET / HTTP/1.1\r\nHost: t\r\nX-Long: first\r\n{fold}second\r\n\r\n"
        ));
        expect_rejected(&mut c, 400, "invalid header name");
    }
}

#[test]
fn test_missing_host_on_http11_is_400() {
    let addr = server(quiet());
    let mut c = Client::connect(addr);
    c.send("GET / HTTP/1.1\r\nX-A: b\r\n\r\n");
    expect_rejected(&mut c, 400, "missing Host header");
    let mut c = Client::connect(addr);
    c.send("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    expect_rejected(&mut c, 400, "more than one Host header");
}

#[test]
fn test_http2_version_is_505() {
    let addr = server(quiet());
    for v in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9"] {
        let mut c = Client::connect(addr);
        c.send(format!("GET / {v}\r\nHost: t\r\n\r\n"));
        expect_rejected(&mut c, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    }
}

#[test]
fn test_bad_request_after_good_ones_on_the_same_connection_closes_it() {
    let addr = server(quiet());
    let mut c = Client::connect(addr);
    c.send(format!(
        "{}GET / HTTP/1.1\r\n\r\n{}",
        get("/ok"),
        get("/never")
    ));
    assert_echo(&c.read_response(), "GET", "/ok", "", b"");
    expect_rejected(&mut c, 400, "missing Host header");
}

#[test]
fn test_bad_connection_does_not_disturb_a_concurrent_good_one() {
    let addr = server(quiet());
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

// ---------------------------------------------------------------------------------------------
// Timeouts

#[test]
fn test_partial_head_times_out_with_408() {
    let addr = server(short_timeouts());
    let mut c = Client::connect(addr);
    let t0 = Instant::now();
    c.send("GET / HTTP/1.1\r\nHost: t\r\n");
    expect_rejected(&mut c, 408, "the request did not arrive in time");
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
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
    expect_rejected(&mut c, 408, "the request did not arrive in time");
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[test]
fn test_body_that_keeps_arriving_is_not_timed_out() {
    // The body timeout is a stall timeout: a body trickling in for longer than it, each gap
    // shorter, is served.
    let addr = server(short_timeouts());
    let mut c = Client::connect(addr);
    c.send("POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n");
    let t0 = Instant::now();
    for b in b"0123456789" {
        sleep(Duration::from_millis(60));
        c.send([*b]);
    }
    assert!(t0.elapsed() > Duration::from_millis(500));
    assert_echo(&c.read_response(), "POST", "/slow", "", b"0123456789");
}

#[test]
fn test_stalled_body_times_out_with_408() {
    let addr = server(short_timeouts());
    let mut c = Client::connect(addr);
    let t0 = Instant::now();
    c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    expect_rejected(&mut c, 408, "the request did not arrive in time");
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let mut c = Client::connect(addr);
    let t0 = Instant::now();
    c.send(chunked("/", "5\r\nab"));
    expect_rejected(&mut c, 408, "the request did not arrive in time");
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[test]
fn test_idle_keep_alive_connection_closed_without_response() {
    let addr = server(short_timeouts());
    let mut c = Client::connect(addr);
    // The idle time starts after the response, so at least 300 ms after this.
    let t0 = Instant::now();
    assert_echo(&c.request(get("/a")), "GET", "/a", "", b"");
    c.expect_eof();
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // A connection that never sends a byte is idle from the start.
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
    let addr = server(Config {
        body_timeout: Duration::from_millis(500),
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
    let addr = server(short_timeouts());
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
    sleep(Duration::from_millis(1000));
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

// ---------------------------------------------------------------------------------------------
// Connection limit
#[test]
fn test_many_concurrent_connections_interleaved() {
    let addr = server(quiet());
    let mut conns: Vec<Client> = (0..128).map(|_| Client::connect(addr)).collect();
    // Every connection has a partial request in the server at once.
    for (i, c) in conns.iter_mut().enumerate() {
        c.send(format!(
            "POST /c{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab"
        ));
    }
    for (i, c) in conns.iter_mut().enumerate().rev() {
        c.send("cd");
        assert_echo(&c.read_response(), "POST", &format!("/c{i}"), "", b"abcd");
    }
    // Half of them go away; the slots are reused by new ones.
    conns.truncate(64);
    conns.extend((0..64).map(|_| Client::connect(addr)));
    for (i, c) in conns.iter_mut().enumerate() {
        assert_echo(
            &c.request(get(&format!("/d{i}"))),
            "GET",
            &format!("/d{i}"),
            "",
            b"",
        );
    }
}

#[test]
fn test_connection_limit_defers_extra_connection_until_one_closes() {
    let addr = server(Config {
        max_connections: 2,
        ..quiet()
    });
    let mut c1 = Client::connect(addr);
    assert_echo(&c1.request(get("/1")), "GET", "/1", "", b"");
    let mut c2 = Client::connect(addr);
    assert_echo(&c2.request(get("/2")), "GET", "/2", "", b"");
    // The third is taken by the kernel's backlog, but not served.
    let mut c3 = Client::connect(addr);
    c3.send(get("/3"));
    c3.expect_nothing_for(Duration::from_millis(300));
    // The open ones are still served meanwhile.
    assert_echo(&c2.request(get("/2b")), "GET", "/2b", "", b"");
    drop(c1);
    let t0 = Instant::now();
    assert_echo(&c3.read_response(), "GET", "/3", "", b"");
    assert!(t0.elapsed() < Duration::from_secs(3));
    // Now c2 and c3 are open: a fourth waits for one of them.
    let mut c4 = Client::connect(addr);
    c4.send(get("/4"));
    c4.expect_nothing_for(Duration::from_millis(100));
    c3.send("GET /3b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_echo(&c3.read_response(), "GET", "/3b", "", b"");
    c3.expect_eof();
    assert_echo(&c4.read_response(), "GET", "/4", "", b"");
}

// ---------------------------------------------------------------------------------------------
// The function's own failures, and the two handlers

#[test]
fn test_function_error_is_500_json() {
    let addr = server(quiet());
    let mut c = Client::connect(addr);
    let r = c.request(get("/error"));
    assert_json_error(&r, 500, "it went \"wrong\"");
    assert_eq!(r.reason, "Internal Server Error");
    assert_eq!(
        r.header("connection"),
        None,
        "a function error keeps the connection"
    );
    assert_echo(&c.request(get("/next")), "GET", "/next", "", b"");
    // `?` turns any std error into a 500 with its message.
    let r = c.request(get("/big?not-a-number"));
    assert_json_error(&r, 500, "invalid digit found in string");
    // A response the function filled wrongly is a 500 too, and nothing of it is sent.
    let r = c.request(get("/bad-header"));
    assert_json_error(&r, 500, "the server writes this response header itself");
    assert_echo(&c.request(get("/last")), "GET", "/last", "", b"");
}

#[test]
fn test_function_panic_is_500_and_server_keeps_serving() {
    let addr = server(quiet());
    let mut c = Client::connect(addr);
    c.send(format!("{}{}", get("/panic"), get("/after")));
    let r = c.read_response();
    assert_json_error(&r, 500, "the function panicked");
    assert_eq!(
        r.text(),
        r#"{"errorCode":500,"errorMessage":"the function panicked"}"#
    );
    assert_echo(&c.read_response(), "GET", "/after", "", b"");
    for _ in 0..3 {
        assert_json_error(&c.request(get("/panic")), 500, "the function panicked");
    }
    let mut c = Client::connect(addr);
    assert_echo(&c.request(post("/x", b"fine")), "POST", "/x", "", b"fine");
}

#[test]
fn test_event_invoke_goes_to_the_event_handler() {
    let addr = server(quiet());
    let mut c = Client::connect(addr);
    let r = c.request(post("/event-invoke", br#"{"a":1}"#));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "event n=7\n{\"a\":1}");
    // Only POST goes to it.
    assert_echo(
        &c.request(get("/event-invoke")),
        "GET",
        "/event-invoke",
        "",
        b"",
    );
}

#[test]
fn test_event_invoke_to_http_only_function_is_404() {
    let addr = start(
        quiet(),
        scf_lean::http_fn(|req, out| {
            out.body_mut().extend_from_slice(req.path().as_bytes());
            Ok(())
        }),
    );
    let mut c = Client::connect(addr);
    let r = c.request(post("/event-invoke", b"{}"));
    assert_json_error(
        &r,
        404,
        "this function has no event handler: it serves HTTP requests only",
    );
    assert_eq!(r.header("connection"), None);
    let r = c.request(get("/p"));
    assert_eq!((r.status, r.text().as_str()), (200, "/p"));
}

#[test]
fn test_http_request_to_event_only_function_is_404() {
    let addr = start(
        quiet(),
        scf_lean::event_fn(|event, _ctx, out| {
            out.body_mut().extend_from_slice(event);
            Ok(())
        }),
    );
    let mut c = Client::connect(addr);
    let r = c.request(get("/p"));
    assert_json_error(
        &r,
        404,
        "this function has no HTTP handler: send events as POST /event-invoke",
    );
    assert_eq!(r.header("connection"), None);
    let r = c.request(post("/event-invoke", b"[1]"));
    assert_eq!((r.status, r.text().as_str()), (200, "[1]"));
}

// ---------------------------------------------------------------------------------------------
// A request split at every byte offset

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
    let addr = server(quiet());
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

// ---------------------------------------------------------------------------------------------
// Large bodies and slow readers

#[test]
fn test_borrowed_body_echoes_exactly() {
    let addr = server(quiet());
    let mut c = Client::connect(addr);
    for body in [&b""[..], b"x", b"\x00\xff binary \r\n\r\n", &pattern(5000)] {
        let r = c.request(post("/ref", body));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        assert_eq!(r.body, body);
    }
    // Pipelined: each borrowed body is the right slice of the shared buffer.
    let mut all = Vec::new();
    for i in 0..5u8 {
        all.extend(post("/ref", &vec![b'a' + i; 100 * usize::from(i)]));
    }
    c.send(&all);
    for i in 0..5u8 {
        assert_eq!(c.read_response().body, vec![b'a' + i; 100 * usize::from(i)]);
    }
}

/// Reads `n` body bytes slowly: `step` at a time with a pause between reads, calling `between`
/// after every 256 KiB or so.
fn read_slowly(c: &mut Client, n: usize, step: usize, mut between: impl FnMut(usize)) -> Vec<u8> {
    let mut got = Vec::with_capacity(n);
    let mut mark = 0;
    while got.len() < n {
        let k = step.min(n - got.len());
        got.extend(c.read_exact_bytes(k));
        sleep(Duration::from_millis(1));
        if got.len() - mark >= 256 * 1024 {
            mark = got.len();
            between(got.len());
        }
    }
    got
}

/// Reads a response head byte by byte (so that no body byte is taken with it).
fn read_head_bytes(c: &mut Client) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.extend(c.read_exact_bytes(1));
        assert!(head.len() < 1000, "{:?}", String::from_utf8_lossy(&head));
    }
    String::from_utf8(head).unwrap()
}

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
    let addr = server(quiet());
    let mut c = Client::connect(addr);
    borrowed_round_trip(&mut c, 1 << 20, None);
}

#[test]
fn test_borrowed_body_larger_than_socket_buffers_blocks_and_resumes() {
    // The client's receive buffer is pinned small, so 5 MiB cannot all be in flight (the
    // server's send buffer is at most `net.ipv4.tcp_wmem`'s 4 MiB): the write must block.
    let addr = server(quiet());
    let mut c = Client::connect(addr);
    set_rcvbuf(&c.stream, 64 * 1024);
    let mut other = Client::connect(addr);
    borrowed_round_trip(&mut c, 5 << 20, Some(&mut other));
}

#[test]
fn test_large_owned_response_to_slow_reader_while_another_is_served() {
    // 6 MiB against a pinned 64 KiB receive buffer: more than the server's send buffer can
    // take (at most 4 MiB), so its write blocks and resumes many times.
    let addr = server(quiet());
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

// ---------------------------------------------------------------------------------------------
// Peers that go away

/// `setsockopt(SOL_SOCKET, name, value)` on a test socket.
fn set_socket_option<T>(s: &TcpStream, name: libc::c_int, value: T) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is an open socket, and `value` lives across the call with the
    // size given.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&raw const value).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

/// Pins the receive buffer of a client socket (which also stops its autotuning).
fn set_rcvbuf(s: &TcpStream, bytes: libc::c_int) {
    set_socket_option(s, libc::SO_RCVBUF, bytes);
}

/// Closes `s` with a reset (RST) instead of a FIN.
fn reset(s: TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    set_socket_option(&s, libc::SO_LINGER, l);
    drop(s);
}

fn peer_goes_away(abort: fn(TcpStream)) {
    let addr = server(quiet());
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
    let addr = server(quiet());
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
