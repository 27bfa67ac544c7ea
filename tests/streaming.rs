//! Streamed answers and Server-Sent Events, over loopback against an in-process server: chunked
//! on HTTP/1.1 (and the connection kept), close-delimited on HTTP/1.0, the head only for HEAD,
//! a function that returns without finishing, an error mid-stream (the body cut off), each piece
//! on the wire before the next is written, a client that disconnects, a client that stops
//! reading, and the SSE framing. Every socket has a timeout; every wait is bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use scf_lean::testing::TestServer;
use scf_lean::{Config, Error, Level, Request, Response, http_fn};

/// What the last endless stream's `send` failed with.
type Seen = Arc<Mutex<Option<ErrorKind>>>;

/// Held shut by a test until it has seen what a function sent before waiting on it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }

    /// Waits until it is open, at most 10 s (a test that never opens it has failed already).
    fn wait(&self) {
        let shut = self.0.0.lock().unwrap();
        let _ = self
            .0
            .1
            .wait_timeout_while(shut, Duration::from_secs(10), |open| !*open);
    }
}

fn streamer(
    seen: Seen,
    gate: Gate,
) -> impl FnMut(&Request<'_>, &mut Response<'_>) -> Result<(), Error> {
    move |req, out| match req.path() {
        "/count" => {
            let n: u32 = req
                .query_param("n")
                .and_then(|n| n.parse().ok())
                .unwrap_or(3);
            out.content_type("text/plain");
            let mut body = out.stream()?;
            for i in 0..n {
                body.send(format!("{i}\n").as_bytes())?;
            }
            Ok(body.finish()?)
        }
        "/open" => {
            let mut body = out.stream()?;
            body.send(b"left ")?;
            body.send(b"open")?;
            Ok(())
        }
        "/fail" => {
            let mut body = out.stream()?;
            body.send(b"partial")?;
            Err(Error::new("the source failed"))
        }
        "/gated" => {
            let mut body = out.stream()?;
            body.send(b"first")?;
            gate.wait();
            body.send(b"second")?;
            Ok(())
        }
        "/forever" => {
            let mut body = out.stream()?;
            let piece = vec![b'x'; 64 * 1024];
            let e = loop {
                if let Err(e) = body.send(&piece) {
                    break e;
                }
            };
            *seen.lock().unwrap() = Some(e.kind());
            Err(e.into())
        }
        "/sse" => {
            let mut events = out.sse()?;
            events.retry(1500)?;
            events.event(Some("token"), Some("1"), "Hel")?;
            events.data("two\nlines\r\nand\rmore")?;
            events.comment("still here")?;
            events.event(Some("bad\nname"), Some("7\r"), "")?;
            Ok(events.finish()?)
        }
        _ => {
            out.set_body_static(b"plain");
            Ok(())
        }
    }
}

fn server(body_timeout: Duration) -> (TestServer, Seen) {
    let (s, seen, _) = server_with_gate(body_timeout);
    (s, seen)
}

fn server_with_gate(body_timeout: Duration) -> (TestServer, Seen, Gate) {
    let (seen, gate) = (Seen::default(), Gate::default());
    let config = Config {
        log_level: Level::Off,
        body_timeout,
        ..Config::default()
    };
    let s = TestServer::with_config(config, http_fn(streamer(seen.clone(), gate.clone())));
    (s, seen, gate)
}

fn connect(s: &TestServer) -> TcpStream {
    let c = TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

/// Reads up to the end of a head: (head, bytes read past it).
fn read_head(c: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return (String::from_utf8(buf).unwrap(), rest);
        }
        let n = c.read(&mut b).unwrap();
        assert!(n > 0, "EOF before the end of the head: {buf:?}");
        buf.extend_from_slice(&b[..n]);
    }
}

/// Reads a chunked body to its last chunk: the data, and the bytes read past it.
fn read_chunked(c: &mut TcpStream, mut buf: Vec<u8>) -> Result<(Vec<u8>, Vec<u8>), Vec<u8>> {
    let mut data = Vec::new();
    let mut b = [0u8; 65536];
    loop {
        // One whole chunk in the buffer?
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&buf[..i]).unwrap(), 16).unwrap();
            if buf.len() >= i + 2 + size + 2 {
                data.extend_from_slice(&buf[i + 2..i + 2 + size]);
                assert_eq!(&buf[i + 2 + size..i + 4 + size], b"\r\n");
                buf.drain(..i + 4 + size);
                if size == 0 {
                    return Ok((data, buf));
                }
                continue;
            }
        }
        match c.read(&mut b) {
            Ok(0) | Err(_) => return Err(data),
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
}

fn read_to_end(c: &mut TcpStream, mut buf: Vec<u8>) -> Vec<u8> {
    c.read_to_end(&mut buf).unwrap();
    buf
}

#[test]
fn test_http11_streams_chunked_and_keeps_the_connection() {
    let (s, _) = server(Duration::from_secs(5));
    let mut c = connect(&s);
    c.write_all(b"GET /count?n=3 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (head, rest) = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nTransfer-Encoding: chunked\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nContent-Type: text/plain\r\n"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    let (data, rest) = read_chunked(&mut c, rest).unwrap();
    assert_eq!(
        (data.as_slice(), rest.as_slice()),
        (&b"0\n1\n2\n"[..], &b""[..])
    );
    // The same connection serves the next request.
    c.write_all(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (head, rest) = read_head(&mut c);
    assert!(head.contains("Content-Length: 5"), "{head}");
    let mut body = rest;
    while body.len() < 5 {
        let mut b = [0u8; 16];
        let n = c.read(&mut b).unwrap();
        body.extend_from_slice(&b[..n]);
    }
    assert_eq!(body, b"plain");
    // A function that returns without finishing: the last chunk is written for it.
    c.write_all(b"GET /open HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (_, rest) = read_head(&mut c);
    let (data, _) = read_chunked(&mut c, rest).unwrap();
    assert_eq!(data, b"left open");
}

#[test]
fn test_http10_streams_until_the_connection_closes() {
    let (s, _) = server(Duration::from_secs(5));
    let mut c = connect(&s);
    c.write_all(b"GET /count?n=4 HTTP/1.0\r\n\r\n").unwrap();
    let (head, rest) = read_head(&mut c);
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    assert!(!head.contains("Transfer-Encoding"), "{head}");
    assert_eq!(read_to_end(&mut c, rest), b"0\n1\n2\n3\n");
}

#[test]
fn test_head_gets_the_head_only_and_keeps_the_connection() {
    let (s, _) = server(Duration::from_secs(5));
    let mut c = connect(&s);
    c.write_all(b"HEAD /count HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (head, rest) = read_head(&mut c);
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    // Nothing of a body before the next answer.
    let mut next = rest;
    while !next.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut b = [0u8; 256];
        let n = c.read(&mut b).unwrap();
        assert!(n > 0);
        next.extend_from_slice(&b[..n]);
    }
    assert!(
        next.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{:?}",
        String::from_utf8_lossy(&next)
    );
}

#[test]
fn test_an_error_mid_stream_cuts_the_body_and_closes() {
    let (s, _) = server(Duration::from_secs(5));
    let mut c = connect(&s);
    c.write_all(b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (head, rest) = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    // No last chunk: the client sees the body incomplete, then the end of the connection.
    let cut = read_chunked(&mut c, rest).unwrap_err();
    assert_eq!(cut, b"partial");
    assert_eq!(s.get("/after").text(), "plain");
}

/// The function sends its first piece, then waits until the test has read it before it sends
/// the second: a server that held the first back until the function returned would never
/// deliver it (the read times out), however fast or slow the machine.
#[test]
fn test_each_piece_is_on_the_wire_before_the_next_is_written() {
    let (s, _, gate) = server_with_gate(Duration::from_secs(5));
    let mut c = connect(&s);
    c.write_all(b"GET /gated HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (_, mut buf) = read_head(&mut c);
    while !buf.windows(5).any(|w| w == b"first") {
        let mut b = [0u8; 256];
        let n = c
            .read(&mut b)
            .expect("the first piece, while the function waits");
        assert!(n > 0, "EOF before the first piece");
        buf.extend_from_slice(&b[..n]);
    }
    assert!(
        !buf.windows(6).any(|w| w == b"second"),
        "the second piece came before it was written"
    );
    gate.open();
    let (data, _) = read_chunked(&mut c, buf).unwrap();
    assert_eq!(data, b"firstsecond");
}

#[test]
fn test_a_client_that_disconnects_ends_the_stream_with_an_error() {
    let (s, seen) = server(Duration::from_secs(5));
    let mut c = connect(&s);
    c.write_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    read_head(&mut c);
    drop(c);
    // The function saw its send fail, and the server serves the next client.
    assert_eq!(s.get("/after").text(), "plain");
    let kind = seen.lock().unwrap().take();
    assert!(
        matches!(
            kind,
            Some(ErrorKind::BrokenPipe | ErrorKind::ConnectionReset)
        ),
        "{kind:?}"
    );
}

#[test]
fn test_a_client_that_stops_reading_times_the_stream_out() {
    let (s, seen) = server(Duration::from_millis(300));
    let mut c = connect(&s);
    c.write_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Never reads: the kernel buffers fill, then the write waits 300 ms and fails. (The 5 s
    // bound guards against a timer that does not fire: many times the 300 ms set here.)
    let t = Instant::now();
    let r = s.get("/after");
    assert_eq!(r.text(), "plain");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(seen.lock().unwrap().take(), Some(ErrorKind::TimedOut));
    drop(c);
}

#[test]
fn test_server_sent_events_are_framed() {
    let (s, _) = server(Duration::from_secs(5));
    let mut c = connect(&s);
    c.write_all(b"GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let (head, rest) = read_head(&mut c);
    for h in [
        "Content-Type: text/event-stream",
        "Cache-Control: no-cache",
        "X-Accel-Buffering: no",
        "Transfer-Encoding: chunked",
    ] {
        assert!(head.contains(h), "{h}: {head}");
    }
    let (data, _) = read_chunked(&mut c, rest).unwrap();
    assert_eq!(
        String::from_utf8(data).unwrap(),
        "retry: 1500\n\n\
         event: token\nid: 1\ndata: Hel\n\n\
         data: two\ndata: lines\ndata: and\ndata: more\n\n\
         : still here\n\n\
         event: badname\nid: 7\ndata: \n\n"
    );
}

#[test]
fn test_an_event_cannot_stream() {
    let s = TestServer::start(scf_lean::event_fn(|_, _, out| {
        out.stream()?;
        Ok(())
    }));
    let r = s.event("{}");
    assert_eq!(r.status, 500);
    assert!(
        r.text().contains("only be streamed to an HTTP request"),
        "{}",
        r.text()
    );
}

#[test]
fn test_head_ends_the_stream_at_the_first_send_and_keeps_the_connection() {
    let (s, seen) = server(Duration::from_secs(5));
    let mut c = connect(&s);
    c.write_all(b"HEAD /forever HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (head, mut next) = read_head(&mut c);
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    while !next.windows(5).any(|w| w == b"plain") {
        let mut b = [0u8; 256];
        let n = c.read(&mut b).unwrap();
        assert!(n > 0);
        next.extend_from_slice(&b[..n]);
    }
    // The endless function stopped at its first send: nothing held the server (else the GET
    // behind it would not have been answered).
    assert_eq!(seen.lock().unwrap().take(), Some(ErrorKind::Unsupported));
}

#[test]
fn test_a_request_that_closes_gets_connection_close_on_its_stream() {
    let (s, _) = server(Duration::from_secs(5));
    let mut c = connect(&s);
    c.write_all(b"GET /count?n=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (head, rest) = read_head(&mut c);
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    assert!(
        head.contains("\r\nTransfer-Encoding: chunked\r\n"),
        "{head}"
    );
    let (data, rest) = read_chunked(&mut c, rest).unwrap();
    assert_eq!(data, b"0\n1\n");
    assert_eq!(read_to_end(&mut c, rest), b"");
}

#[test]
fn test_sse_keeps_headers_the_function_set() {
    let s = TestServer::start(http_fn(|_, out| {
        out.header("Cache-Control", "no-store");
        let mut events = out.sse()?;
        events.event(None, Some("a\0b"), "x")?;
        Ok(())
    }));
    let r = s.get("/");
    let cache: Vec<_> = r
        .headers
        .iter()
        .filter(|(n, _)| n == "Cache-Control")
        .collect();
    assert_eq!(cache.len(), 1, "{r:?}");
    assert_eq!(cache[0].1, "no-store");
    assert_eq!(r.text(), "id: ab\ndata: x\n\n");
}
