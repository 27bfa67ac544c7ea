//! One connection: its state machine, its buffers, and the function call for each request.
//!
//! ```text
//!            first byte              head complete,              whole request in
//!   Idle ────────────────▶ Head ───── body incomplete ──▶ Body ──────────────────────┐
//!    ▲                      │ whole request in                                        ▼
//!    │                      └────────────────────────────────────────────────────▶ Send
//!    │                   response written, connection kept                         │ │
//!    └─────────────────────────────────────────────────────────────────────────────┘ │
//!                        response written, connection closing                         ▼
//!   Closed ◀──── EOF, linger time over ──── Linger (write side shut, input drained) ◀─┘
//! ```
//!
//! Every transition goes through [`Conn::set_state`], which also sets the one deadline each
//! state has (idle, head, body/send stall, linger). [`Conn::drive`] is called on every readiness
//! event and on expiry; it loops — write what is pending, serve what is buffered, read more —
//! until the socket would block, so it works with edge-triggered readiness and with spurious
//! events alike.
//!
//! The read buffer holds the request being served from `start`; pipelined requests follow it.
//! It is compacted or grown only when a read needs room, which never happens while a response
//! is pending, so a response may borrow the request it answers.
//!
//! A connection holds buffers only while a request or response is in flight. Once it is idle
//! with nothing buffered it hands its read buffer and its response buffers to the loop's
//! [`Spare`] set, and the next connection that reads takes them from there. The loop answers a
//! request within one turn, so a few buffers serve any number of idle keep-alive connections:
//! memory grows with the requests in flight, not with the connections open.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use crate::chunked::Chunked;
use crate::config::{Config, MAX_HEADERS};
use crate::date::HttpDate;
use crate::error::{Error, Reject};
use crate::log::{Access, Level, Log};
use crate::request::{Framing, Head, HeadScan, Request, parse_head};
use crate::response::{BodyRef, Output, Persist, Response, Src};
use crate::{Function, panic_hook};

/// Size of a connection's first read buffer; it grows as a request needs.
pub(crate) const INITIAL_BUF: usize = 4 * 1024;
/// A read buffer grown past this is given back once it is empty.
const SHRINK_ABOVE: usize = 64 * 1024;
/// Room for the method and version around a request target of `MAX_TARGET_BYTES`.
const LINE_SLACK: usize = 32;
/// Idle buffer sets the loop keeps for the next connection that needs one; more are freed.
const SPARE_SETS: usize = 4;

/// Buffers of idle connections, lent to the next connection that reads or answers.
pub(crate) struct Spare {
    reads: Vec<Vec<u8>>,
    outs: Vec<Output>,
}

impl Spare {
    pub fn new() -> Spare {
        Spare {
            reads: Vec::new(),
            outs: Vec::new(),
        }
    }

    /// A read buffer of at least `INITIAL_BUF` bytes, all initialized.
    fn read_buf(&mut self) -> Vec<u8> {
        self.reads.pop().unwrap_or_else(|| vec![0; INITIAL_BUF])
    }

    /// Gives `out` response buffers if it has none.
    fn lend_output(&mut self, out: &mut Output) {
        if !out.has_buffers() {
            if let Some(o) = self.outs.pop() {
                *out = o;
            }
        }
    }

    /// Keeps an emptied read buffer, unless it has grown past `SHRINK_ABOVE`.
    fn keep_read(&mut self, buf: Vec<u8>) {
        if (INITIAL_BUF..=SHRINK_ABOVE).contains(&buf.len()) && self.reads.len() < SPARE_SETS {
            self.reads.push(buf);
        }
    }

    /// Keeps a finished response's buffers, less any that grew past `SHRINK_ABOVE`.
    fn keep_output(&mut self, mut out: Output) {
        if self.outs.len() < SPARE_SETS {
            out.recycle(SHRINK_ABOVE);
            self.outs.push(out);
        }
    }

    /// (read buffers, response buffer sets) kept.
    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        (self.reads.len(), self.outs.len())
    }
}

/// What the loop shares with every connection for one turn.
pub(crate) struct Cx<'s> {
    pub config: &'s Config,
    pub log: &'s mut Log,
    pub date: &'s HttpDate,
    pub spare: &'s mut Spare,
    /// The time of this loop turn.
    pub now: Instant,
    /// The server is shutting down: every response closes its connection.
    pub closing: bool,
}

/// Where a connection is in the life of a request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum State {
    /// No byte of the next request yet. Deadline: the idle timeout.
    Idle,
    /// Part of a head has arrived. Deadline: the head timeout, from its first byte.
    Head,
    /// The head is in, the body is arriving. Deadline: the body timeout, from the last byte.
    Body(Body),
    /// A response is being written. Deadline: the body timeout, from the last progress.
    Send { close: bool },
    /// The last response is out and the write side shut; input is read and dropped until EOF,
    /// so that closing does not reset the response away. Deadline: the linger time.
    Linger,
    /// The socket is done with; the slot is free.
    Closed,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Head => "Head",
            State::Body(_) => "Body",
            State::Send { .. } => "Send",
            State::Linger => "Linger",
            State::Closed => "Closed",
        }
    }
}

/// A body being received.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Body {
    /// Length of the head before it.
    head_len: usize,
    kind: BodyKind,
}

#[derive(Clone, Copy, Debug)]
enum BodyKind {
    /// `Content-Length` bytes.
    Length(usize),
    /// Chunked; the decoded data ends at `data_end` (an index into the read buffer).
    Chunked { decoder: Chunked, data_end: usize },
}

/// What a read brought.
enum Fill {
    Data,
    Eof,
    Blocked,
    /// The buffer is at its limit and the request still incomplete.
    Full,
    Failed,
}

/// What a connection needs of its socket: bytes in, bytes out, and an end to the output.
/// `mio`'s `TcpStream` in the server; an in-memory stream in the fuzz harness.
pub(crate) trait Stream: Read + Write {
    /// Shuts the write side (a FIN after the last response); errors do not matter here.
    fn shutdown_write(&self);
}

impl Stream for TcpStream {
    fn shutdown_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

/// A client connection.
pub(crate) struct Conn<S = TcpStream> {
    stream: S,
    state: State,
    /// The read buffer; `len()` is its capacity, all of it initialized.
    buf: Vec<u8>,
    /// The request being served starts here.
    start: usize,
    /// Bytes read end here.
    end: usize,
    scan: HeadScan,
    out: Output,
    /// When the current request's head began to arrive.
    arrival: Instant,
    deadline: Instant,
    /// The peer has shut its write side.
    eof: bool,
    /// A read since the last readiness event returned less than it asked for: the socket is
    /// drained, and new input will raise a new (edge-triggered) event. Reading again would only
    /// return `EAGAIN`.
    drained: bool,
    /// Whether WRITABLE interest is registered.
    pub writable: bool,
}

impl<S: Stream> Conn<S> {
    pub fn new(stream: S, now: Instant, config: &Config) -> Conn<S> {
        Conn {
            stream,
            state: State::Idle,
            buf: Vec::new(),
            start: 0,
            end: 0,
            scan: HeadScan::default(),
            out: Output::new(),
            arrival: now,
            deadline: later(now, config.idle_timeout),
            eof: false,
            drained: false,
            writable: false,
        }
    }

    pub fn stream(&mut self) -> &mut S {
        &mut self.stream
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether a response is waiting for the socket.
    pub fn wants_write(&self) -> bool {
        self.out.pending
    }

    /// (request start, bytes read end, read buffer size, bytes of the pending response): for
    /// the fuzz harness, which checks them against the limits.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn buffers(&self) -> (usize, usize, usize, usize) {
        let pending = if self.out.pending {
            self.out.wire_len(&self.buf)
        } else {
            0
        };
        (self.start, self.end, self.buf.len(), pending)
    }

    /// Whether nothing of a request is under way: closing it loses nothing.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle) && self.start == self.end && !self.out.pending
    }

    /// The one place where the state changes; sets the deadline of the new state.
    fn set_state(&mut self, state: State, cx: &mut Cx<'_>) {
        let c = cx.config;
        let wait = match state {
            State::Idle => c.idle_timeout,
            State::Head => c.head_timeout,
            State::Body(_) | State::Send { .. } => c.body_timeout,
            State::Linger => c.linger,
            State::Closed => Duration::ZERO,
        };
        self.deadline = later(cx.now, wait);
        if cx.log.enabled(Level::Debug) {
            let mut msg = String::from("connection ");
            msg.push_str(self.state.name());
            msg.push_str(" -> ");
            msg.push_str(state.name());
            cx.log.line(Level::Debug, None, &msg);
        }
        self.state = state;
    }

    /// A readiness event: makes all the progress the socket allows — write, serve, read —
    /// until it would block, then lends its buffers to `cx.spare` if it is left idle.
    ///
    /// `read_closed` is the event's `EPOLLRDHUP`/`EPOLLHUP`: the peer's FIN may already be
    /// queued behind the data, so reads go on until they return it. Otherwise a short read
    /// ends the reading until the next event.
    pub fn drive<F: Function>(&mut self, cx: &mut Cx<'_>, f: &mut F, read_closed: bool) {
        self.drained = false;
        self.progress(cx, f, !read_closed);
        self.park(cx.spare);
    }

    /// Hands the buffers to `spare` if nothing is in flight: idle with nothing buffered, or
    /// closed.
    fn park(&mut self, spare: &mut Spare) {
        if !(self.is_idle() || self.is_closed()) {
            return;
        }
        if !self.buf.is_empty() {
            spare.keep_read(std::mem::take(&mut self.buf));
            (self.start, self.end) = (0, 0);
        }
        if self.out.has_buffers() {
            spare.keep_output(std::mem::replace(&mut self.out, Output::new()));
        }
    }

    /// The loop of [`Conn::drive`]; `trust_short` lets a short read end the reading.
    fn progress<F: Function>(&mut self, cx: &mut Cx<'_>, f: &mut F, trust_short: bool) {
        loop {
            if self.out.pending {
                let before = self.out.sent;
                match self.out.write_to(&mut self.stream, &self.buf) {
                    Ok(_) => self.sent(cx),
                    Err(e) if would_block(&e) => {
                        if self.out.sent != before {
                            self.deadline = later(cx.now, cx.config.body_timeout);
                        }
                        return;
                    }
                    Err(_) => return self.close(cx),
                }
                continue;
            }
            match self.state {
                State::Closed => return,
                State::Linger => return self.drain(cx),
                _ => {}
            }
            if self.serve(cx, f) {
                continue;
            }
            if self.eof {
                // Nothing complete is left to answer.
                return self.close(cx);
            }
            if self.drained && trust_short {
                return;
            }
            match self.fill(cx) {
                Fill::Data => {}
                Fill::Eof => self.eof = true,
                Fill::Blocked => return,
                Fill::Full => {
                    let r = match self.state {
                        State::Body(_) => Reject::PayloadTooLarge,
                        _ => Reject::HeadTooLarge,
                    };
                    self.reject(cx, r);
                }
                Fill::Failed => return self.close(cx),
            }
        }
    }

    /// The deadline of the current state has passed.
    pub fn expire<F: Function>(&mut self, cx: &mut Cx<'_>, f: &mut F) {
        match self.state {
            State::Head | State::Body(_) if !self.out.pending => {
                self.reject(cx, Reject::Timeout);
                self.drained = false;
                self.progress(cx, f, false);
            }
            State::Closed => {}
            _ => self.close(cx),
        }
        self.park(cx.spare);
    }

    /// The server is shutting down: an idle connection closes now, a busy one after its
    /// response (which says `Connection: close`).
    pub fn shutdown(&mut self, cx: &mut Cx<'_>) {
        if self.is_idle() {
            self.close(cx);
            self.park(cx.spare);
        }
    }

    fn close(&mut self, cx: &mut Cx<'_>) {
        self.set_state(State::Closed, cx);
    }

    /// A response is fully written.
    fn sent(&mut self, cx: &mut Cx<'_>) {
        match self.state {
            State::Send { close: true } => {
                self.stream.shutdown_write();
                if cx.config.linger.is_zero() {
                    self.close(cx);
                } else {
                    self.set_state(State::Linger, cx);
                }
            }
            // An emptied buffer that grew past SHRINK_ABOVE is dropped by `park`.
            State::Send { close: false } => self.set_state(State::Idle, cx),
            // `100 Continue` went out: the body may come.
            _ => {}
        }
    }

    /// Reads and drops input after the final response.
    fn drain(&mut self, cx: &mut Cx<'_>) {
        if self.buf.is_empty() {
            self.buf = cx.spare.read_buf();
        }
        loop {
            match self.stream.read(&mut self.buf) {
                Ok(0) => return self.close(cx),
                Ok(_) => {}
                Err(e) if would_block(&e) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(cx),
            }
        }
    }

    /// Reads once into the buffer, making room first.
    fn fill(&mut self, cx: &mut Cx<'_>) -> Fill {
        if self.start == self.end && !matches!(self.state, State::Body(_)) {
            (self.start, self.end) = (0, 0);
        }
        if self.buf.is_empty() {
            self.buf = cx.spare.read_buf();
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.compact();
            }
            if self.end == self.buf.len() && !self.grow(cx.config) {
                return Fill::Full;
            }
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Fill::Eof,
                Ok(n) => {
                    self.drained = self.end + n < self.buf.len();
                    self.end += n;
                    if let State::Body(_) = self.state {
                        self.deadline = later(cx.now, cx.config.body_timeout);
                    }
                    return Fill::Data;
                }
                Err(e) if would_block(&e) => return Fill::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Fill::Failed,
            }
        }
    }

    /// Moves the current request to the front of the buffer.
    fn compact(&mut self) {
        let shift = self.start;
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= shift;
        self.start = 0;
        if let State::Body(Body {
            kind: BodyKind::Chunked { data_end, .. },
            ..
        }) = &mut self.state
        {
            *data_end -= shift;
        }
    }

    /// Grows the buffer toward what the request needs; false at the limit.
    fn grow(&mut self, c: &Config) -> bool {
        let limit = c
            .max_head_bytes
            .saturating_add(c.max_body_bytes)
            .saturating_add(c.max_chunk_meta_bytes)
            .saturating_add(INITIAL_BUF);
        let len = self.buf.len();
        if len >= limit {
            return false;
        }
        let need = match self.state {
            State::Body(Body {
                head_len,
                kind: BodyKind::Length(n),
            }) => self.start + head_len + n,
            _ => 0,
        };
        let new = (len * 2).max(INITIAL_BUF).max(need).min(limit);
        self.buf.resize(new, 0);
        true
    }

    /// Serves the request at `start` if it is complete; true once a response is under way.
    fn serve<F: Function>(&mut self, cx: &mut Cx<'_>, f: &mut F) -> bool {
        match self.state {
            State::Idle | State::Head => self.serve_head(cx, f),
            State::Body(b) => self.serve_body(b, cx, f),
            State::Send { .. } | State::Linger | State::Closed => false,
        }
    }

    fn serve_head<F: Function>(&mut self, cx: &mut Cx<'_>, f: &mut F) -> bool {
        if self.start == self.end {
            return false;
        }
        if let State::Idle = self.state {
            self.arrival = cx.now;
            self.scan = HeadScan::default();
            self.set_state(State::Head, cx);
        }
        let avail = self.end - self.start;
        // The first look at a request goes straight to the parser: a head nearly always arrives
        // whole. The scan guards only the retries of a head that comes in pieces, so that the
        // parser runs again only once an empty line has arrived.
        let first = self.scan.is_fresh();
        if !first && !self.scan.feed(&self.buf[self.start..self.end]) {
            return self.check_partial(cx, avail);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let max = cx.config.max_headers.min(MAX_HEADERS);
        let input = &self.buf[self.start..self.end];
        let head = match parse_head(input, &mut headers[..max], cx.config, self.arrival) {
            Ok(Some(head)) => head,
            Ok(None) => {
                if first {
                    self.scan.feed(&self.buf[self.start..self.end]);
                }
                return self.check_partial(cx, avail);
            }
            Err(r) => {
                self.reject(cx, r);
                return true;
            }
        };
        let body_start = self.start + head.len;
        let (head_len, expect) = (head.len, head.expect_continue);
        let body = match head.framing {
            Framing::Length(n) if self.end - body_start >= n => {
                let next = body_start + n;
                cx.spare.lend_output(&mut self.out);
                let keep = respond(
                    &self.buf,
                    &mut self.out,
                    cx,
                    f,
                    &head,
                    &headers,
                    body_start..next,
                    self.arrival,
                );
                return self.responded(cx, next, keep);
            }
            Framing::Length(n) => Body {
                head_len,
                kind: BodyKind::Length(n),
            },
            Framing::Chunked => Body {
                head_len,
                kind: BodyKind::Chunked {
                    decoder: Chunked::new(),
                    data_end: body_start,
                },
            },
        };
        self.set_state(State::Body(body), cx);
        if self.serve_body(body, cx, f) {
            return true;
        }
        if expect {
            cx.spare.lend_output(&mut self.out);
            self.out.interim_continue();
            return true;
        }
        false
    }

    /// Serves the request whose body is arriving, if it is complete now.
    fn serve_body<F: Function>(&mut self, body: Body, cx: &mut Cx<'_>, f: &mut F) -> bool {
        let body_start = self.start + body.head_len;
        let (data_end, next) = match body.kind {
            BodyKind::Length(n) if self.end - body_start >= n => (body_start + n, body_start + n),
            BodyKind::Length(_) => return false,
            BodyKind::Chunked {
                mut decoder,
                data_end,
            } => {
                let c = cx.config;
                let r = decoder.decode(
                    &mut self.buf,
                    data_end,
                    self.end,
                    c.max_body_bytes,
                    c.max_chunk_meta_bytes,
                );
                match r {
                    Ok((d, e, done)) => {
                        self.end = e;
                        self.state = State::Body(Body {
                            head_len: body.head_len,
                            kind: BodyKind::Chunked {
                                decoder,
                                data_end: d,
                            },
                        });
                        if !done {
                            return false;
                        }
                        (d, d)
                    }
                    Err(r) => {
                        self.reject(cx, r);
                        return true;
                    }
                }
            }
        };
        // The head is parsed again: it borrows the buffer, which reads may have moved.
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let max = cx.config.max_headers.min(MAX_HEADERS);
        let input = &self.buf[self.start..body_start];
        let Ok(Some(head)) = parse_head(input, &mut headers[..max], cx.config, self.arrival) else {
            self.reject(cx, Reject::BadRequest("request head changed"));
            return true;
        };
        cx.spare.lend_output(&mut self.out);
        let keep = respond(
            &self.buf,
            &mut self.out,
            cx,
            f,
            &head,
            &headers,
            body_start..data_end,
            self.arrival,
        );
        self.responded(cx, next, keep)
    }

    /// A response to the request at `start` is under way; the next request starts at `next`.
    fn responded(&mut self, cx: &mut Cx<'_>, next: usize, keep: bool) -> bool {
        self.start = next;
        self.set_state(State::Send { close: !keep }, cx);
        true
    }

    /// Still incomplete: 431 or 414 if it can no longer fit.
    fn check_partial(&mut self, cx: &mut Cx<'_>, avail: usize) -> bool {
        let c = cx.config;
        let r = if avail > c.max_head_bytes {
            Reject::HeadTooLarge
        } else if !self.scan.line_done() && avail > c.max_target_bytes.saturating_add(LINE_SLACK) {
            Reject::UriTooLong
        } else {
            return false;
        };
        self.reject(cx, r);
        true
    }

    /// Answers with the server's own error and closes after it.
    fn reject(&mut self, cx: &mut Cx<'_>, r: Reject) {
        cx.spare.lend_output(&mut self.out);
        let out = &mut self.out;
        out.headers.clear();
        out.headers
            .extend_from_slice(b"Content-Type: application/json\r\n");
        out.body.clear();
        crate::error::write_json(&mut out.body, i64::from(r.status()), r.message());
        out.src = Src::Owned;
        let len = out.body.len();
        out.start(r.status(), cx.date.as_bytes(), len, true, Persist::Close);
        cx.log.line(Level::Debug, None, r.message());
        let wire = out.wire_len(&self.buf);
        cx.log.access(&Access {
            request_id: None,
            method: "-",
            path: "-",
            status: r.status(),
            bytes: wire,
            elapsed: cx.now.saturating_duration_since(self.arrival),
        });
        self.set_state(State::Send { close: true }, cx);
    }
}

/// Calls the function for one complete request and prepares its response in `out`. Returns
/// whether the connection stays open.
#[allow(clippy::too_many_arguments)]
fn respond<F: Function>(
    buf: &[u8],
    out: &mut Output,
    cx: &mut Cx<'_>,
    f: &mut F,
    head: &Head<'_>,
    headers: &[httparse::Header<'_>],
    body: Range<usize>,
    arrival: Instant,
) -> bool {
    let req = Request::from_head(head, &headers[..head.fields], &buf[body]);
    let ctx = req.context();
    let is_event = head.method == "POST" && req.path() == "/event-invoke";
    let mut resp = Response::with_buffers(
        std::mem::take(&mut out.headers),
        std::mem::take(&mut out.body),
    );
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        panic_hook::guard(|| {
            if is_event {
                f.event(req.body(), ctx, &mut resp)
            } else {
                f.http(&req, &mut resp)
            }
        })
    }));
    let failure = match result {
        Ok(Ok(())) => resp
            .invalid()
            .map(|why| (Error::new(why), "invalid response: ")),
        Ok(Err(e)) => Some((e, "function error: ")),
        Err(payload) => {
            let msg = panic_hook::message(&*payload);
            let mut line = String::from("function panicked: ");
            line.push_str(&msg);
            cx.log.line(Level::Error, ctx.request_id, &line);
            resp.set_error(&Error::new("the function panicked"));
            None
        }
    };
    if let Some((e, what)) = failure {
        let mut line = String::from(what);
        line.push_str(&e.to_string());
        cx.log.line(Level::Error, ctx.request_id, &line);
        resp.set_error(&e);
    }
    let (status, headers, owned, borrowed) = resp.into_parts();
    out.headers = headers;
    out.body = owned;
    out.src = match borrowed {
        None => Src::Owned,
        Some(BodyRef::Static(s)) => Src::Static(s),
        Some(BodyRef::Ref(r)) => match range_in(buf, r) {
            Some((a, b)) => Src::Input(a, b),
            None => {
                out.body.extend_from_slice(r);
                Src::Owned
            }
        },
    };
    let len = match out.src {
        Src::Owned => out.body.len(),
        Src::Static(s) => s.len(),
        Src::Input(a, b) => b - a,
        Src::None => 0,
    };
    let keep = head.keep_alive && !cx.closing;
    let persist = match (keep, head.minor) {
        (false, _) => Persist::Close,
        (true, 0) => Persist::KeepAlive,
        (true, _) => Persist::Default,
    };
    out.start(status, cx.date.as_bytes(), len, !req.is_head(), persist);
    // The function may have taken a while: deadlines set from here on start now.
    cx.now = Instant::now();
    if cx.log.enabled(Level::Info) {
        cx.log.access(&Access {
            request_id: ctx.request_id,
            method: head.method,
            path: req.path(),
            status,
            bytes: out.wire_len(buf),
            elapsed: cx.now.saturating_duration_since(arrival),
        });
    }
    keep
}

/// Where `part` lies within `buf`, if it does.
fn range_in(buf: &[u8], part: &[u8]) -> Option<(usize, usize)> {
    let base = buf.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    let a = p.checked_sub(base)?;
    (a + part.len() <= buf.len()).then_some((a, a + part.len()))
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// `now + d`, or far in the future if that does not fit.
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365)))
        .unwrap_or(now)
}

/// A socket in memory, for the unit tests and the fuzz harness.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod mem {
    use std::io::{self, IoSlice, Read, Write};

    use super::Stream;

    /// A socket in memory: the input handed out up to cut points, the output taken in pieces.
    pub(crate) struct Mem<'d> {
        pub input: &'d [u8],
        /// Bytes of input read so far.
        pub pos: usize,
        /// Bytes of input that have "arrived": reads past it would block.
        pub arrived: usize,
        /// Bytes the peer's window takes before a write would block.
        pub room: usize,
        pub out: Vec<u8>,
        /// The write side was shut.
        pub shut: bool,
        /// Reads made, `EAGAIN` and EOF included.
        pub reads: usize,
    }

    impl<'d> Mem<'d> {
        /// `input[..arrived]` has arrived; the peer's window takes `room` bytes.
        pub fn new(input: &'d [u8], arrived: usize, room: usize) -> Mem<'d> {
            Mem {
                input,
                pos: 0,
                arrived,
                room,
                out: Vec::new(),
                shut: false,
                reads: 0,
            }
        }
    }

    impl Read for Mem<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            if self.pos == self.input.len() {
                return Ok(0);
            }
            if self.pos == self.arrived {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.arrived - self.pos);
            buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    impl Write for Mem<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            assert!(!self.shut, "write after the write side was shut");
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for b in bufs {
                let k = b.len().min(self.room - n);
                self.out.extend_from_slice(&b[..k]);
                n += k;
                if n == self.room {
                    break;
                }
            }
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Stream for Mem<'_> {
        fn shutdown_write(&self) {}
    }
}

#[cfg(test)]
mod tests {
    use super::mem::Mem;
    use super::*;
    use crate::log::Format;
    use crate::{Context, Error, Response};

    struct Echo;

    impl Function for Echo {
        fn event<'a>(
            &mut self,
            event: &'a [u8],
            _: &Context<'a>,
            out: &mut Response<'a>,
        ) -> Result<(), Error> {
            out.body_mut().extend_from_slice(event);
            Ok(())
        }
    }

    const REQ: &[u8] =
        b"POST /event-invoke HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n{\"a\":1}";

    struct World {
        config: Config,
        log: Log,
        date: HttpDate,
        spare: Spare,
    }

    impl World {
        fn new() -> World {
            World {
                config: Config::default(),
                log: Log::new(Level::Off, Format::Text),
                date: HttpDate::new(),
                spare: Spare::new(),
            }
        }

        fn conn<'d>(&self, input: &'d [u8], arrived: usize) -> Conn<Mem<'d>> {
            let sock = Mem::new(input, arrived, usize::MAX);
            Conn::new(sock, Instant::now(), &self.config)
        }

        /// One readiness event for `c`.
        fn event(&mut self, c: &mut Conn<Mem<'_>>, read_closed: bool) {
            let mut cx = Cx {
                config: &self.config,
                log: &mut self.log,
                date: &self.date,
                spare: &mut self.spare,
                now: Instant::now(),
                closing: false,
            };
            c.drive(&mut cx, &mut Echo, read_closed);
        }
    }

    fn responses(c: &mut Conn<Mem<'_>>) -> usize {
        let out = &c.stream().out;
        out.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count()
    }

    #[test]
    fn test_idle_connections_lend_their_buffers_to_the_next() {
        let mut w = World::new();
        let mut a = w.conn(REQ, REQ.len());
        w.event(&mut a, false);
        assert_eq!(responses(&mut a), 1);
        assert!(a.is_idle());
        assert!(
            a.scan.is_fresh(),
            "a whole head goes straight to the parser, unscanned"
        );
        assert!(
            a.buf.is_empty() && !a.out.has_buffers(),
            "idle: holds nothing"
        );
        assert_eq!(w.spare.len(), (1, 1));
        let lent = w.spare.reads[0].as_ptr();

        // The next connection reads into the very same buffer and answers from the same set.
        let mut b = w.conn(REQ, REQ.len());
        w.event(&mut b, false);
        assert_eq!(responses(&mut b), 1);
        assert_eq!(w.spare.len(), (1, 1));
        assert_eq!(w.spare.reads[0].as_ptr(), lent);
    }

    #[test]
    fn test_a_partial_request_keeps_its_buffer_and_loses_nothing() {
        let mut w = World::new();
        let mut a = w.conn(REQ, 20);
        w.event(&mut a, false);
        assert_eq!(responses(&mut a), 0);
        assert!(
            !a.scan.is_fresh(),
            "a head in pieces is scanned, not parsed again and again"
        );
        assert_eq!(
            a.buf.len(),
            INITIAL_BUF,
            "a request in flight keeps its buffer"
        );
        assert_eq!(w.spare.len(), (0, 0));
        // Another connection meanwhile gets a buffer of its own.
        let mut b = w.conn(REQ, REQ.len());
        w.event(&mut b, false);
        assert_eq!(responses(&mut b), 1);
        // The rest arrives: the first request is answered whole.
        a.stream().arrived = REQ.len();
        w.event(&mut a, false);
        assert_eq!(responses(&mut a), 1);
        assert!(a.stream().out.ends_with(b"{\"a\":1}"));
        // Two read buffers were needed at once; one response set served both answers.
        assert_eq!(w.spare.len(), (2, 1));
    }

    #[test]
    fn test_spare_sets_are_bounded_and_grown_buffers_are_freed() {
        let mut w = World::new();
        let mut conns: Vec<_> = (0..SPARE_SETS + 2).map(|_| w.conn(REQ, 20)).collect();
        for c in &mut conns {
            w.event(c, false);
        }
        for c in &mut conns {
            c.stream().arrived = REQ.len();
            w.event(c, false);
            assert_eq!(responses(c), 1);
        }
        // Six read buffers were in use at once; the spare keeps four. One response set did.
        assert_eq!(w.spare.len(), (SPARE_SETS, 1));

        let mut spare = Spare::new();
        spare.keep_read(vec![0; SHRINK_ABOVE + 1]);
        spare.keep_read(vec![0; INITIAL_BUF]);
        assert_eq!(spare.len(), (1, 0));
        assert_eq!(spare.read_buf().len(), INITIAL_BUF);
    }

    #[test]
    fn test_a_short_read_ends_reading_until_the_next_event() {
        let mut w = World::new();
        // Two requests, one event each: one read per event, no read that would only block.
        let two = [REQ, REQ].concat();
        let mut a = w.conn(&two, REQ.len());
        w.event(&mut a, false);
        assert_eq!((responses(&mut a), a.stream().reads), (1, 1));
        a.stream().arrived = two.len();
        w.event(&mut a, false);
        assert_eq!((responses(&mut a), a.stream().reads), (2, 2));
        assert!(!a.is_closed());
    }

    #[test]
    fn test_a_fin_queued_behind_the_data_is_read_in_the_same_event() {
        let mut w = World::new();
        // Data and FIN arrived together: the event says so, and the connection closes now
        // instead of waiting for an event that will never come.
        let mut a = w.conn(REQ, REQ.len());
        w.event(&mut a, true);
        assert_eq!(responses(&mut a), 1);
        assert!(a.is_closed());
        assert_eq!(a.stream().reads, 2);
        assert_eq!(
            w.spare.len(),
            (1, 1),
            "a closed connection hands its buffers back"
        );
    }
}
