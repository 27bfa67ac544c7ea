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
use std::net::SocketAddr;

mod common;

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
) -> impl FnMut(&Request<'_>, &mut Response<'_>) -> Result<(), Error> + Send + 'static {
    move |req, out| match req.path() {
        "/count" => {
            let n: u32 = req
                .query_param("n")
                .and_then(|n| n.parse().ok())
                .unwrap_or(3);
            out.content_type("text/plain");
            out.stream(move |body| {
                for i in 0..n {
                    body.send(format!("{i}\n").as_bytes())?;
                }
                Ok(body.finish()?)
            })
        }
        "/open" => out.stream(|body| {
            body.send(b"left ")?;
            body.send(b"open")?;
            Ok(())
        }),
        "/fail" => out.stream(|body| {
            body.send(b"partial")?;
            Err(Error::new("the source failed"))
        }),
        "/gated" => {
            let gate = gate.clone();
            out.stream(move |body| {
                body.send(b"first")?;
                gate.wait();
                body.send(b"second")?;
                Ok(())
            })
        }
        "/held" => {
            // Sends, waits for the test, sends again: what the second send met is recorded.
            let (gate, seen) = (gate.clone(), seen.clone());
            out.stream(move |body| {
                body.send(b"first")?;
                gate.wait();
                let second = body.send(b"second");
                *seen.lock().unwrap() = Some(
                    second
                        .as_ref()
                        .map_or_else(|e| e.kind(), |()| ErrorKind::Other),
                );
                Ok(second?)
            })
        }
        "/forever" => {
            let seen = seen.clone();
            out.stream(move |body| {
                let piece = vec![b'x'; 64 * 1024];
                let e = loop {
                    if let Err(e) = body.send(&piece) {
                        break e;
                    }
                };
                *seen.lock().unwrap() = Some(e.kind());
                Err(e.into())
            })
        }
        "/ticking" => {
            // A small piece every 5 ms, for as long as the stream lasts.
            let seen = seen.clone();
            out.stream(move |body| {
                let e = loop {
                    if let Err(e) = body.send(b"tick\n") {
                        break e;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                };
                *seen.lock().unwrap() = Some(e.kind());
                Err(e.into())
            })
        }
        "/sse" => out.sse(|events| {
            events.retry(1500)?;
            events.event(Some("token"), Some("1"), "Hel")?;
            events.data("two\nlines\r\nand\rmore")?;
            events.comment("still here")?;
            events.event(Some("bad\nname"), Some("7\r"), "")?;
            Ok(events.finish()?)
        }),
        _ => {
            out.set_body_static(b"plain");
            Ok(())
        }
    }
}

/// What the endless stream's `send` failed with, once it has (within 10 s).
fn wait_seen(seen: &Seen) -> Option<ErrorKind> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(k) = *seen.lock().unwrap() {
            return Some(k);
        }
        if Instant::now() > until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
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
    let kind = wait_seen(&seen);
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
    // Never reads: the kernel buffers and the stream's queue fill, and after 300 ms without
    // progress the stream is cut off: `send` fails. Others are served all along.
    let r = s.get("/after");
    assert_eq!(r.text(), "plain");
    assert_eq!(wait_seen(&seen), Some(ErrorKind::TimedOut));
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
        out.stream(|body| Ok(body.send(b"x")?))
    }));
    let r = s.event("{}");
    assert_eq!(r.status, 500);
    assert!(
        r.text().contains("an event's answer cannot be streamed"),
        "{}",
        r.text()
    );
}

#[test]
fn test_head_does_not_run_the_producer_and_keeps_the_connection() {
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
    // The head was the whole answer: the endless producer never ran.
    assert_eq!(*seen.lock().unwrap(), None);
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
        out.sse(|events| Ok(events.event(None, Some("a\0b"), "x")?))
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

/// A client that stopped reading a long stream (its buffers and the stream's queue full)
/// holds no one else: plain requests beside it are answered, one after another, while it stays
/// open. (If the stream held the server, the first of them would wait for the body timeout,
/// 30 s, and the test client gives up after 10 s.)
#[test]
fn test_a_stalled_reader_beside_plain_requests_holds_no_one() {
    let (s, seen) = server(Duration::from_secs(30));
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut c = connect(&s);
        c.write_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        read_head(&mut c);
        stalled.push(c);
    }
    for _ in 0..50 {
        assert_eq!(s.get("/plain").text(), "plain");
    }
    assert_eq!(*seen.lock().unwrap(), None, "no stream was cut");
    drop(stalled);
    assert_eq!(
        wait_seen(&seen),
        Some(ErrorKind::BrokenPipe),
        "the producers see their clients go"
    );
}

/// A reader that trickles (a few bytes at a time, with pauses) gets the whole stream in order,
/// and plain requests are served between its reads.
#[test]
fn test_a_trickling_reader_gets_every_piece_and_others_are_served_meanwhile() {
    let (s, _) = server(Duration::from_secs(30));
    let mut c = connect(&s);
    c.write_all(b"GET /count?n=2000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (_, mut buf) = read_head(&mut c);
    let mut b = [0u8; 512];
    let mut reads = 0;
    while !buf.ends_with(b"0\r\n\r\n") {
        let n = c.read(&mut b).unwrap();
        assert!(n > 0, "EOF in the middle of the stream");
        buf.extend_from_slice(&b[..n]);
        reads += 1;
        if reads % 20 == 0 {
            assert_eq!(s.get("/plain").text(), "plain");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let (data, _) = read_chunked(&mut c, buf).unwrap();
    let expect: String = (0..2000).map(|i| format!("{i}\n")).collect();
    assert_eq!(String::from_utf8(data).unwrap(), expect);
}

/// A stream is cut off at the invocation's time limit (`X-Scf-Timeout`, in ms): the body ends
/// without its last chunk and the producer's `send` fails with `TimedOut`.
#[test]
fn test_a_stream_is_cut_off_at_the_time_limit() {
    let (s, seen) = server(Duration::from_secs(30));
    let mut c = connect(&s);
    let t = Instant::now();
    c.write_all(b"GET /ticking HTTP/1.1\r\nHost: x\r\nX-Scf-Timeout: 300\r\n\r\n")
        .unwrap();
    let (_, rest) = read_head(&mut c);
    let cut = read_chunked(&mut c, rest).expect_err("no last chunk");
    assert!(cut.starts_with(b"tick\n"), "{cut:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(wait_seen(&seen), Some(ErrorKind::TimedOut));
}

/// Without `X-Scf-Timeout`, `SCF_LEAN_TIME_LIMIT_MS` is the limit.
#[test]
fn test_the_time_limit_setting_applies_without_the_header() {
    let (seen, gate) = (Seen::default(), Gate::default());
    let config = Config {
        log_level: Level::Off,
        time_limit: Duration::from_millis(200),
        ..Config::default()
    };
    let s = TestServer::with_config(config, http_fn(streamer(seen.clone(), gate)));
    let mut c = connect(&s);
    c.write_all(b"GET /ticking HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (_, rest) = read_head(&mut c);
    read_chunked(&mut c, rest).expect_err("no last chunk");
    assert_eq!(wait_seen(&seen), Some(ErrorKind::TimedOut));
}

/// Many streams at once, each with its own producer thread, all complete and in order.
#[test]
fn test_many_streams_at_once_each_complete() {
    let (s, _) = server(Duration::from_secs(30));
    let addr: SocketAddr = s.addr();
    let clients: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                c.write_all(b"GET /count?n=500 HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                let (_, rest) = read_head(&mut c);
                read_chunked(&mut c, rest).unwrap().0
            })
        })
        .collect();
    let expect: String = (0..500).map(|i| format!("{i}\n")).collect();
    for c in clients {
        assert_eq!(String::from_utf8(c.join().unwrap()).unwrap(), expect);
    }
}

#[test]
fn test_collect_stream_runs_a_producer_in_a_unit_test() {
    let mut f = http_fn(streamer(Seen::default(), Gate::default()));
    use scf_lean::Function;
    let mut out = Response::new();
    f.http(&Request::new("GET", "/count?n=2", &[], b""), &mut out)
        .unwrap();
    assert_eq!(out.collect_stream().unwrap().unwrap(), b"0\n1\n");
    let mut out = Response::new();
    f.http(&Request::new("GET", "/fail", &[], b""), &mut out)
        .unwrap();
    let e = out.collect_stream().unwrap().unwrap_err();
    assert_eq!(e.message(), "the source failed");
}

/// A client that shuts its side while its stream is open has left: the stream is cut off at
/// once (its connection closed, no last chunk), not at the producer's next piece, and the
/// producer's next `send` fails.
#[test]
fn test_a_client_that_hangs_up_cuts_its_stream_at_once() {
    let (s, seen, gate) = server_with_gate(Duration::from_secs(30));
    let mut c = connect(&s);
    c.write_all(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (_, mut buf) = read_head(&mut c);
    while !buf.windows(5).any(|w| w == b"first") {
        let mut b = [0u8; 256];
        let n = c.read(&mut b).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&b[..n]);
    }
    // The producer waits on the gate; the client hangs up (its write side) and reads on.
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let rest = read_to_end(&mut c, Vec::new());
    assert!(!rest.ends_with(b"0\r\n\r\n"), "{rest:?}");
    gate.open();
    assert_eq!(wait_seen(&seen), Some(ErrorKind::BrokenPipe));
}

/// Streams count what they hold against the memory budget, not their queue's bound: many
/// open streams that send little leave the budget to everyone else.
#[test]
fn test_idle_streams_cost_the_budget_little() {
    let (seen, gate) = (Seen::default(), Gate::default());
    let config = Config {
        log_level: Level::Off,
        memory_budget_bytes: 1 << 20,
        ..Config::default()
    };
    let s = TestServer::with_config(config, http_fn(streamer(seen, gate.clone())));
    // 40 streams at the default queue bound (64 KiB) would be 2.5 MiB: counted at that, the
    // 1 MiB budget would refuse the later ones and everyone else.
    let mut open = Vec::new();
    for _ in 0..40 {
        let mut c = connect(&s);
        c.write_all(b"GET /gated HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (head, _) = read_head(&mut c);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        open.push(c);
    }
    for _ in 0..20 {
        assert_eq!(s.get("/plain").status, 200);
    }
    gate.open();
}

/// When the budget is full, a stream whose client reads nothing gives way to a request that
/// needs the memory, as a partial request does: it is cut off, and the request is served.
#[test]
fn test_unread_streams_give_way_when_memory_is_needed() {
    let (seen, gate) = (Seen::default(), Gate::default());
    let config = Config {
        log_level: Level::Off,
        memory_budget_bytes: 512 << 10,
        body_timeout: Duration::from_secs(60),
        ..Config::default()
    };
    let s = TestServer::with_config(config, http_fn(streamer(seen.clone(), gate)));
    let mut unread = Vec::new();
    for _ in 0..12 {
        let c = connect(&s);
        common::set_rcvbuf(&c, 4096);
        (&c).write_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        unread.push(c);
    }
    // The streams fill the budget. While they start, the kernel takes what they send (on
    // loopback its buffers grow to megabytes at once), so they are making progress and a plain
    // request may meet a full budget: a 503, by design. Once their clients' buffers are full
    // they stall, and a request that needs the memory makes the stalest give way, which its
    // producer sees (the body timeout is a minute away).
    let until = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_none() {
        assert!(Instant::now() < until, "no stream gave way");
        let r = s.get("/plain");
        assert!(matches!(r.status, 200 | 503), "{} {}", r.status, r.text());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(*seen.lock().unwrap(), Some(ErrorKind::TimedOut));
    // From then on the stalled streams keep giving way: plain requests are served, not refused
    // for good (every stream that has not given way yet is stalled or soon is).
    let mut in_a_row = 0;
    while in_a_row < 20 {
        assert!(
            Instant::now() < until,
            "plain requests still refused: {in_a_row} in a row"
        );
        let r = s.get("/plain");
        match r.status {
            200 => in_a_row += 1,
            503 => in_a_row = 0,
            other => panic!("{other} {}", r.text()),
        }
    }
    drop(unread);
}
