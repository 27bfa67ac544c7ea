//! Fuzzing entry points (feature `fuzzing`, hidden): what the `fuzz/` targets call, with the
//! invariants checked inside by `assert!`, so that libFuzzer sees a violation as a crash.
//!
//! - [`framing`]: the request head and the chunked decoder on their own, with small limits.
//! - [`connection`]: a whole [`Conn`] driven over an in-memory stream that hands out the input
//!   and takes the output in pieces cut at data-derived points, as readiness events would.
//!
//! The input is the raw bytes a client sends; the cut points come from a hash of the input, so
//! that a seed corpus of plain requests stays readable and every run is reproducible.

use std::time::{Duration, Instant};

use crate::buf::INITIAL_BUF;
use crate::call::Shared;
use crate::chunked::decode_in_pieces;
use crate::config::{Config, MAX_HEADERS};
use crate::conn::Conn;
use crate::dispatch::Dispatch;
use crate::log::Level;
use crate::mem::Mem;
use crate::request::{Framing, HeadScan, parse_head};
use crate::{Context, Error, Function, Request, Response};

/// Room in a response for the status line, the server's headers and the function's.
const HEAD_ROOM: usize = 1024;
/// Readiness events a connection may take before it counts as hung.
const MAX_EVENTS: usize = 200_000;

/// Small limits, so that the fuzzer reaches every one of them.
fn limits() -> Config {
    Config {
        max_head_bytes: 1024,
        max_headers: 24,
        max_target_bytes: 256,
        max_body_bytes: 512,
        max_chunk_meta_bytes: 64,
        head_timeout: Duration::from_millis(10),
        body_timeout: Duration::from_millis(10),
        idle_timeout: Duration::from_millis(10),
        first_byte_timeout: Duration::from_millis(10),
        body_deadline: Duration::from_millis(40),
        linger: Duration::from_millis(10),
        max_response_bytes: 4096,
        log_level: Level::Off,
        ..Config::default()
    }
}

/// A small deterministic generator seeded from the input (FNV-1a, then xorshift).
struct Rng(u64);

impl Rng {
    fn new(data: &[u8]) -> Rng {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for &b in data {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Mostly small pieces, sometimes large ones: how reads and writes come on a socket.
    fn piece(&mut self) -> usize {
        match self.below(8) {
            0 => 1,
            1..=4 => 1 + self.below(16),
            5 | 6 => 1 + self.below(256),
            _ => 1 + self.below(8192),
        }
    }
}

/// Whether `parse_head` finds a complete head in `buf`.
fn parses_complete(buf: &[u8], config: &Config) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let max = config.max_headers.min(MAX_HEADERS);
    match parse_head(buf, &mut headers[..max], config, Instant::now()) {
        Ok(Some(h)) => Some(h.len),
        _ => None,
    }
}

/// The request head and, when chunked, its body, on their own.
///
/// # Panics
/// When an invariant fails: a head longer than its input or its limit, a `Content-Length`
/// past the body limit, a [`HeadScan`] that says "not complete" for a prefix that parses
/// complete, or a chunked body that decodes differently in one piece and in two.
pub fn framing(data: &[u8]) {
    let config = limits();
    let mut rng = Rng::new(data);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let max = config.max_headers.min(MAX_HEADERS);
    let head = parse_head(data, &mut headers[..max], &config, Instant::now());

    // The scan, fed growing prefixes as reads would bring them, until the head parses (the
    // connection stops feeding it there).
    let mut scan = HeadScan::default();
    let mut at = 0;
    while at < data.len() {
        at = (at + rng.piece()).min(data.len());
        let maybe = scan.feed(&data[..at]);
        let complete = parses_complete(&data[..at], &config).is_some();
        assert!(
            maybe || !complete,
            "HeadScan said incomplete at {at} but the head parses"
        );
        if complete {
            break;
        }
    }

    let Ok(Some(head)) = head else { return };
    assert!(head.len <= data.len(), "head longer than its input");
    assert!(head.len <= config.max_head_bytes, "head past its limit");
    assert!(head.fields <= max, "more fields than the limit");
    // The head ends where it says: no shorter prefix is complete, the prefix itself is.
    assert_eq!(parses_complete(&data[..head.len], &config), Some(head.len));
    let k = rng.below(head.len);
    assert!(
        parses_complete(&data[..k], &config).is_none(),
        "a prefix of {k} bytes parses complete, the head is {} bytes",
        head.len
    );
    match head.framing {
        Framing::Length(n) => assert!(n <= config.max_body_bytes, "Content-Length past limit"),
        Framing::Chunked => {
            let rest = &data[head.len..];
            let cut = if rest.is_empty() {
                0
            } else {
                rng.below(rest.len() + 1)
            };
            let (body, meta) = (config.max_body_bytes, config.max_chunk_meta_bytes);
            let one = decode_in_pieces(rest, &[], body, meta);
            let two = decode_in_pieces(rest, &[cut], body, meta);
            assert_eq!(one, two, "chunked decoding differs when cut at {cut}");
        }
    }
}

/// What the function was asked and answered, to check the output against.
struct Call {
    head: bool,
    status: u16,
    body: Vec<u8>,
}

/// The function under the harness: counts its calls and answers by the first letter of the
/// path — `r` borrows the request body, `n` 204, `m` 304, `e` an error, `s` a static body,
/// anything else the body length; an event answers its length, or itself when that is even.
#[derive(Default)]
struct Probe {
    calls: Vec<Call>,
}

impl Probe {
    fn note(&mut self, head: bool, out: &Response<'_>) {
        let (status, body) = match out.status() {
            204 | 304 => (out.status(), Vec::new()),
            s => (s, out.body().to_vec()),
        };
        self.calls.push(Call { head, status, body });
    }
}

impl Function for Probe {
    fn event<'a>(
        &mut self,
        event: &'a [u8],
        _ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        if event.len() % 2 == 0 {
            out.set_body_ref(event);
        } else {
            out.body_mut()
                .extend_from_slice(itoa::Buffer::new().format(event.len()).as_bytes());
        }
        self.note(false, out);
        Ok(())
    }

    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        match req.path().as_bytes().get(1) {
            Some(b'r') => {
                out.set_body_ref(req.body());
            }
            Some(b'n') => {
                out.set_status(204);
            }
            Some(b'm') => {
                out.set_status(304);
            }
            Some(b'e') => {
                let e = Error::new("probe error");
                let mut r = Response::new();
                r.set_error(&e);
                self.note(req.is_head(), &r);
                return Err(e);
            }
            Some(b's') => {
                out.set_body_static(b"static body");
            }
            _ => {
                out.content_type("text/plain");
                out.body_mut()
                    .extend_from_slice(itoa::Buffer::new().format(req.body().len()).as_bytes());
            }
        }
        self.note(req.is_head(), out);
        Ok(())
    }
}

/// A whole connection over an in-memory stream.
///
/// # Panics
/// When an invariant fails: the connection does not close once the input has ended, writes
/// after shutting its write side, outgrows its buffers, or its output is not a sequence of
/// well-formed responses — one per function call, plus at most one error answer, each with
/// the right `Content-Length` and body, nothing after `Connection: close`.
pub fn connection(data: &[u8]) {
    let mut config = limits();
    let mut rng = Rng::new(data);
    if rng.below(4) == 0 {
        config.linger = Duration::ZERO;
    }
    let closing = rng.below(16) == 0;
    let mut shared = Shared::new(config.clone());
    let start = Instant::now();
    let mut probe = Dispatch::new(Probe::default(), &config, &mut shared.log);
    let stream = Mem::new(data, 0, 0);
    let mut conn = Conn::new(stream, start, &config);
    let buf_limit =
        config.max_head_bytes + config.max_body_bytes + config.max_chunk_meta_bytes + INITIAL_BUF;
    let out_limit = HEAD_ROOM + config.max_body_bytes;
    let mut events = 0;
    while !conn.is_closed() {
        events += 1;
        assert!(events <= MAX_EVENTS, "the connection does not close");
        let now = start + Duration::from_millis(events as u64);
        let mut cx = shared.cx(now, closing);
        // A readiness event: more input has arrived, the peer's window opened.
        let s = conn.stream();
        s.arrived = (s.arrived + rng.piece()).min(s.input.len());
        s.room = if rng.below(8) == 0 { 0 } else { rng.piece() };
        if rng.below(32) == 0 && !conn.wants_write() {
            // A deadline passed (never while a response is being written: that would cut it).
            conn.expire(&mut cx, &mut probe);
        } else {
            // EPOLLRDHUP comes with the event once the whole input (and so the FIN) is queued.
            let read_closed = conn.stream().arrived == data.len();
            conn.drive(&mut cx, &mut probe, read_closed);
        }
        let (begin, end, cap, pending) = conn.buffers();
        assert!(
            begin <= end && end <= cap,
            "buffer indexes {begin} {end} {cap}"
        );
        assert!(cap <= buf_limit, "read buffer {cap} past {buf_limit}");
        assert!(pending <= out_limit, "response {pending} past {out_limit}");
    }
    let out = std::mem::take(&mut conn.stream().out);
    check_output(&out, &probe.function().calls);
}

/// The output is a sequence of well-formed responses that answer `calls` in order, then at
/// most one answer of the server's own; none after one that says `Connection: close`.
fn check_output(out: &[u8], calls: &[Call]) {
    let mut pos = 0;
    let mut finals = 0;
    while pos < out.len() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut headers);
        let n = match r.parse(&out[pos..]) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("bad response at {pos}: {other:?}"),
        };
        let status = r.code.expect("status");
        assert_eq!(r.version, Some(1), "not HTTP/1.1");
        let field = |name: &str| {
            let mut it = r
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name));
            let v = it.next().map(|h| h.value);
            assert!(it.next().is_none(), "{name} twice");
            v
        };
        let length = field("content-length").map(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
                .expect("Content-Length is a number")
        });
        let close = field("connection") == Some(&b"close"[..]);
        pos += n;
        if (100..200).contains(&status) {
            assert_eq!(status, 100, "only 100 Continue is interim");
            assert!(length.is_none() && !close, "fields on 100 Continue");
            continue;
        }
        assert!(field("date").is_some(), "no Date");
        let call = calls.get(finals);
        finals += 1;
        let head = call.is_some_and(|c| c.head);
        let body_len = match (status, length) {
            (204 | 304, None) => 0,
            (204 | 304, Some(_)) => panic!("Content-Length on {status}"),
            (_, None) => panic!("no Content-Length on {status}"),
            (_, Some(_)) if head => 0,
            (_, Some(l)) => l,
        };
        assert!(out.len() - pos >= body_len, "response body cut short");
        let body = &out[pos..pos + body_len];
        pos += body_len;
        match call {
            Some(c) => {
                assert_eq!(status, c.status, "status of call {}", finals - 1);
                if !head && status != 204 && status != 304 {
                    assert_eq!(body, &c.body[..], "body of call {}", finals - 1);
                }
            }
            None => {
                assert!(
                    status >= 400 && close,
                    "an extra answer that is not an error"
                );
            }
        }
        if close {
            assert_eq!(pos, out.len(), "bytes after Connection: close");
        }
    }
    assert!(
        finals == calls.len() || finals == calls.len() + 1,
        "{finals} responses for {} calls",
        calls.len()
    );
}
