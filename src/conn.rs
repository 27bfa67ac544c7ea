//! One connection: its state machine.
//!
//! ```text
//!   New ─┐   first byte              head complete,              whole request in
//!   Idle ┴───────────────▶ Head ───── body incomplete ──▶ Body ──────────────────────┐
//!    ▲                      │ whole request in                                        ▼
//!    │                      └────────────────────────────────────────────────────▶ Send
//!    │                   response written, connection kept                         │ │
//!    └─────────────────────────────────────────────────────────────────────────────┘ │
//!                        response written, connection closing                         ▼
//!   Closed ◀──── EOF, linger time over ──── Linger (write side shut, input drained) ◀─┘
//! ```
//!
//! Every transition goes through [`Conn::set_state`], the only writer of the state; every
//! deadline through [`Conn::restart_clock`], which gives the state its own timeout ([`State::timeout`]:
//! idle, head, body/send stall, linger) from now. [`Conn::drive`] is called on every readiness
//! event and on expiry; it loops — write what is pending, serve what is buffered, read more —
//! until the socket would block, so it works with edge-triggered readiness and with spurious
//! events alike.
//!
//! The bytes read live in a [`ReadBuf`] (`buf.rs`); a complete request is handed to the function
//! by a [`Call`] (`invoke.rs`); the answer goes out through an [`Output`] (`response.rs`). An
//! idle connection with nothing buffered lends its buffers to the loop's [`Spare`] set.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use crate::buf::{Discard, Fill, INITIAL_BUF, ReadBuf, Spare};
use crate::call::{Answer, Call, Cx, Parcel, Service};
use crate::chunked::Chunked;
use crate::config::{Config, MAX_HEADERS};
use crate::date::later;
use crate::error::Reject;
use crate::log::{Access, Level, Log};
use crate::request::{Framing, HeadScan, parse_head};
use crate::response::{Output, Persist};
use crate::stream::{Cut, Pipe, Producer, Start};

/// Room for the method and version around a request target of `MAX_TARGET_BYTES`.
const LINE_SLACK: usize = 32;

/// Where a connection is in the life of a request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum State {
    /// Just accepted, not a byte received yet. Deadline: the first-byte timeout.
    New,
    /// No byte of the next request yet. Deadline: the idle timeout.
    Idle,
    /// Part of a head has arrived. Deadline: the head timeout, from its first byte.
    Head,
    /// The head (`head_len` bytes) is in, the body is arriving. Deadline: the body timeout, from
    /// the last byte, and the body deadline, from the end of the head (`began`), whichever
    /// comes first.
    Body {
        head_len: usize,
        framing: Framing,
        began: Instant,
    },
    /// A response is being written. Deadline: the body timeout, from the last progress.
    Send { close: bool },
    /// The request is with a worker (`SCF_LEAN_CONCURRENCY`), its read buffer with it; the
    /// connection neither reads nor writes until the answer comes back. No deadline: the
    /// function has its time.
    Away { next: usize },
    /// A streamed answer: the head, then the batches its producer queues ([`Pipe`]).
    /// Deadline: the body timeout from the last progress while bytes wait for the client, and
    /// the invocation's time limit.
    Stream { close: bool },
    /// The last response is out and the write side shut; input is read and dropped until EOF,
    /// so that closing does not reset the response away. Deadline: the linger time.
    Linger,
    /// The socket is done with; the slot is free.
    Closed,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::New => "New",
            State::Idle => "Idle",
            State::Head => "Head",
            State::Body { .. } => "Body",
            State::Send { .. } => "Send",
            State::Away { .. } => "Away",
            State::Stream { .. } => "Stream",
            State::Linger => "Linger",
            State::Closed => "Closed",
        }
    }

    /// How long the state may last without progress.
    #[inline]
    fn timeout(self, c: &Config) -> Duration {
        match self {
            State::New => c.first_byte_timeout,
            State::Idle => c.idle_timeout,
            State::Head => c.head_timeout,
            State::Body { .. } | State::Send { .. } | State::Stream { .. } => c.body_timeout,
            State::Away { .. } => Duration::from_secs(86_400 * 365),
            State::Linger => c.linger,
            State::Closed => Duration::ZERO,
        }
    }
}

/// What a connection needs of its socket: bytes in, bytes out, and an end to the output.
/// `mio`'s `TcpStream` in the server; an in-memory stream (`mem.rs`) in tests and fuzzing.
pub(crate) trait Stream: Read + Write {
    /// Shuts the write side (a FIN after the last response); errors do not matter here.
    fn shutdown_write(&self);
}

impl Stream for TcpStream {
    fn shutdown_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

/// A request parked for a worker: its head's length, its body, and the room, room at most and
/// closing of the turn it was parked in.
struct Away {
    head_len: usize,
    body: std::ops::Range<usize>,
    room: usize,
    room_max: usize,
    closing: bool,
}

/// A streamed answer under way: its producer's queue and what its access line says.
struct Flowing {
    start: Box<Start>,
    /// Set once the dispatcher has started the producer.
    pipe: Option<Arc<Pipe>>,
    /// How the producer ended, once the connection has taken its last bytes.
    ended: Option<Result<(), Cut>>,
    /// Bytes on the wire, head included.
    bytes: usize,
}

impl Drop for Flowing {
    /// A connection dropped with its stream open (the server stopped): the producer's next
    /// `send` fails.
    fn drop(&mut self) {
        if let Some(p) = &self.pipe {
            p.cut(Cut::ShutDown);
        }
    }
}

/// A client connection.
pub(crate) struct Conn<S = TcpStream> {
    stream: S,
    state: State,
    input: ReadBuf,
    scan: HeadScan,
    /// The decoder of a chunked body being received; its decoded bytes end at `input.mark`.
    chunked: Chunked,
    out: Output,
    /// When the current request's head began to arrive.
    arrival: Instant,
    deadline: Instant,
    /// The peer has shut its write side.
    eof: bool,
    /// Whether WRITABLE interest is registered.
    pub writable: bool,
    /// The memory it held when the server last counted (`held`).
    pub counted: usize,
    /// Of that, what it held as a request still arriving that may be made to give way
    /// (`server.rs`, `free_memory_for`); 0 otherwise.
    pub counted_partial: usize,
    /// When bytes last arrived from it, or it was accepted, or its last answer went out: the
    /// stalest partial request gives way first when memory is short, the quietest connection
    /// when slots or descriptors are.
    active_at: Instant,
    /// The last drive stopped at its share of the turn ([`PER_TURN`]) with work left: the
    /// server drives it again next turn (no readiness event will come for what is buffered).
    pub yielded: bool,
    /// It is on the server's list to drive again (at most once).
    pub queued: bool,
    /// Which connection this is, in mail about it (`wake.rs`): the server numbers them.
    pub id: u64,
    /// It has something for the dispatcher: a request to send to a worker, or a stream's
    /// producer to start. The server hands it over after the turn (`Conn::parcel`,
    /// `Conn::producer`).
    pub handoff: bool,
    /// The client left while its call was away.
    left: bool,
    /// The memory it holds apart from its buffers: its request's while away on a worker, its
    /// stream's queue (counted at its bound).
    away: usize,
    /// The request parked for a worker.
    away_request: Option<Box<Away>>,
    flow: Option<Box<Flowing>>,
}

/// Requests served, reads made or reads discarded for one connection in one turn of the loop,
/// before the others get theirs: a client that pipelines or uploads without pause cannot hold
/// the loop.
pub(crate) const PER_TURN: usize = 16;

impl<S: Stream> Conn<S> {
    pub fn new(stream: S, now: Instant, config: &Config) -> Conn<S> {
        let mut c = Conn {
            stream,
            state: State::New,
            input: ReadBuf::new(),
            scan: HeadScan::default(),
            chunked: Chunked::new(),
            out: Output::new(),
            arrival: now,
            deadline: now,
            eof: false,
            writable: false,
            counted: 0,
            counted_partial: 0,
            active_at: now,
            yielded: false,
            queued: false,
            id: 0,
            handoff: false,
            left: false,
            away: 0,
            away_request: None,
            flow: None,
        };
        c.restart_clock(now, config);
        c
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
            self.out.wire_len(self.input.bytes())
        } else {
            0
        };
        (
            self.input.start,
            self.input.end,
            self.input.capacity(),
            pending,
        )
    }

    /// Whether nothing of a request is under way: closing it loses nothing.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle | State::New) && self.input.is_empty() && !self.out.pending
    }

    /// Since when it has been quiet, if closing it cuts off no answer, and how much closing it
    /// costs: 0, it never spoke; 1, an idle keep-alive connection (it loses nothing either,
    /// but it is how a proxy in front keeps its pool); 2, a request stalled mid-way (its
    /// client is told to send it again). `None` while an answer is under way or it lingers.
    pub fn quiet_since(&self) -> Option<(u8, Instant)> {
        match self.state {
            State::New => Some((0, self.active_at)),
            State::Idle if self.is_idle() => Some((1, self.active_at)),
            _ if self.is_partial() => Some((2, self.active_at)),
            _ => None,
        }
    }

    /// The memory it holds: its read buffer and its response buffers (away on a worker or
    /// not), and its stream's queue (counted at its bound).
    pub fn held(&self) -> usize {
        self.input.capacity() + self.out.capacity() + self.away
    }

    /// Whether a request is arriving and nothing of it has been accepted yet: a head or a body
    /// on its way, no answer under way. Such a request may be made to give way to others
    /// (`evict`) and loses nothing: its client is told to try again.
    pub fn is_partial(&self) -> bool {
        match self.state {
            State::Head | State::Body { .. } => !self.out.pending,
            // A stream with bytes waiting for its client: it holds memory without progress
            // while the client does not read, and gives way like a request still arriving.
            State::Stream { .. } => self.out.pending,
            _ => false,
        }
    }

    /// Whether it stopped before taking the read buffer it needs (`Cx::grow`), rather than
    /// holding an answer.
    pub fn wants_read(&self) -> bool {
        self.yielded && !self.out.pending
    }

    /// When bytes last arrived from it, or it was accepted, or its last answer went out.
    pub fn active_at(&self) -> Instant {
        self.active_at
    }

    /// The one place where the state changes; the new state's clock starts.
    fn set_state(&mut self, state: State, cx: &mut Cx<'_>) {
        if cx.log.enabled(Level::Debug) {
            log_transition(cx.log, &self.state, &state);
        }
        self.state = state;
        self.restart_clock(cx.now, cx.config);
    }

    /// The one place where the deadline moves: the current state's timeout, from `now`, and for
    /// a body no later than its deadline. Called on every transition, and on progress while a
    /// body arrives or a response goes out.
    #[inline]
    fn restart_clock(&mut self, now: Instant, config: &Config) {
        self.deadline = later(now, self.state.timeout(config));
        match self.state {
            State::Body { began, .. } => {
                self.deadline = self.deadline.min(later(began, config.body_deadline));
            }
            State::Stream { .. } => self.deadline = self.stream_deadline(),
            _ => {}
        }
    }

    /// A stream's deadline: the body timeout from now while bytes wait for the client (set
    /// already), never past the invocation's time limit; only the limit when nothing waits.
    #[cold]
    #[inline(never)]
    fn stream_deadline(&self) -> Instant {
        match &self.flow {
            Some(f) if self.out.pending => self.deadline.min(f.start.ends_at),
            Some(f) => f.start.ends_at,
            None => self.deadline,
        }
    }

    /// A readiness event: makes all the progress the socket allows — write, serve, read —
    /// until it would block, then lends its buffers to `cx.spare` if it is left idle.
    ///
    /// `read_closed` is the event's `EPOLLRDHUP`/`EPOLLHUP`: the peer's FIN may already be
    /// queued behind the data, so reads go on until they return it. Otherwise a short read
    /// ends the reading until the next event.
    pub fn drive<D: Service>(&mut self, cx: &mut Cx<'_>, f: &mut D, read_closed: bool) {
        if read_closed && matches!(self.state, State::Stream { .. } | State::Away { .. }) {
            self.peer_left(cx);
        }
        self.turn(cx, f, !read_closed);
        // The FIN came with the request, which this turn handed to a worker: the client has
        // left all the same (no later event says so again).
        if read_closed && !self.left && matches!(self.state, State::Away { .. }) {
            self.peer_left(cx);
        }
    }

    /// Driven again after it stopped at its share of a turn (`yielded`): no readiness event
    /// came, so reads go on until they would block.
    pub fn drive_again<D: Service>(&mut self, cx: &mut Cx<'_>, f: &mut D) {
        self.turn(cx, f, false);
    }

    /// One turn's progress, then its buffers lent if it is left idle; `trust_short` lets a
    /// short read end the reading.
    #[inline(always)]
    fn turn<D: Service>(&mut self, cx: &mut Cx<'_>, f: &mut D, trust_short: bool) {
        self.input.short = false;
        self.yielded = false;
        self.progress(cx, f, trust_short);
        self.park(cx.spare);
    }

    /// The client shut its side while a stream or a call on a worker was under way (nothing is
    /// read then, so its end shows only as the event's hang-up): it has left, as a proxy in
    /// front treats it. A stream is cut off now, its producer told; a call still waiting for a
    /// worker is dropped (`Conn::left`, the server asks the dispatcher), one running goes on and
    /// its answer finds the connection gone.
    #[cold]
    #[inline(never)]
    fn peer_left(&mut self, cx: &mut Cx<'_>) {
        match self.state {
            State::Stream { .. } => self.end_stream(cx, Err(Cut::ClientGone)),
            _ => {
                self.left = true;
                self.handoff = true;
            }
        }
    }

    /// Whether the client left while its call was away (`Conn::peer_left`).
    pub fn left(&self) -> bool {
        self.left && matches!(self.state, State::Away { .. })
    }

    /// Hands the buffers to `spare` if nothing is in flight: idle with nothing buffered, or
    /// closed.
    fn park(&mut self, spare: &mut Spare) {
        if !(self.is_idle() || self.is_closed() || matches!(self.state, State::Linger)) {
            return;
        }
        self.input.lend(spare);
        if self.out.has_buffers() {
            spare.keep_output(std::mem::replace(&mut self.out, Output::new()));
        }
    }

    /// The loop of [`Conn::drive`]; `trust_short` lets a short read end the reading.
    fn progress<D: Service>(&mut self, cx: &mut Cx<'_>, f: &mut D, trust_short: bool) {
        let (mut served, mut reads) = (0, 0);
        loop {
            if self.out.pending {
                let before = self.out.sent;
                match self.out.write_to(&mut self.stream, self.input.bytes()) {
                    Ok(_) => self.response_written(cx),
                    Err(e) if would_block(&e) => {
                        if self.out.sent != before {
                            self.restart_clock(cx.now, cx.config);
                        }
                        return;
                    }
                    Err(_) if self.flow.is_some() => {
                        return self.end_stream(cx, Err(Cut::ClientGone));
                    }
                    Err(_) => return self.close(cx),
                }
                continue;
            }
            match self.state {
                State::Closed | State::Away { .. } => return,
                State::Linger => return self.discard(cx),
                State::Stream { .. } => {
                    if !self.stream_turn(cx, &mut served) {
                        return;
                    }
                    continue;
                }
                _ => {}
            }
            if served == PER_TURN {
                self.yielded = true;
                return;
            }
            if self.serve(cx, f) {
                served += 1;
                continue;
            }
            if self.eof {
                // Nothing complete is left to answer.
                return self.close(cx);
            }
            if self.input.short && trust_short {
                return;
            }
            let (need, limit) = self.room(cx.config);
            let room = cx.room.saturating_sub(self.out.capacity());
            match self
                .input
                .fill(&mut self.stream, cx.spare, need, limit, room)
            {
                Fill::Data => {
                    self.active_at = cx.now;
                    if let State::Body { .. } = self.state {
                        self.restart_clock(cx.now, cx.config);
                    }
                    reads += 1;
                    if reads == PER_TURN {
                        // A body that keeps coming (in 1-byte chunks, say) takes its share too.
                        self.yielded = true;
                        return;
                    }
                }
                Fill::Eof => self.eof = true,
                Fill::Blocked => return,
                Fill::Full => {
                    let r = match self.state {
                        State::Body { .. } => Reject::PayloadTooLarge,
                        _ => Reject::HeadTooLarge,
                    };
                    self.reject(cx, r);
                }
                Fill::OverBudget(size) => {
                    if self.over_budget(cx, size) {
                        return;
                    }
                }
                Fill::Failed => return self.close(cx),
            }
        }
    }

    /// A read buffer of `size` bytes would take it past its room: if others can make room, it
    /// asks the server to (`Cx::grow`) and stops until driven again (true); else a 503.
    #[cold]
    #[inline(never)]
    fn over_budget(&mut self, cx: &mut Cx<'_>, size: usize) -> bool {
        let wanted = size + self.out.capacity();
        if wanted <= cx.room_max {
            cx.grow = wanted;
            self.yielded = true;
            return true;
        }
        self.reject(cx, Reject::OverBudget);
        false
    }

    /// How large the read buffer should grow for the request under way (bytes from its start to
    /// the end of a `Content-Length` body; 0 when unknown), and the most it may ever hold.
    fn room(&self, c: &Config) -> (usize, usize) {
        let limit = c
            .max_head_bytes
            .saturating_add(c.max_body_bytes)
            .saturating_add(c.max_chunk_meta_bytes)
            .saturating_add(INITIAL_BUF);
        let need = match self.state {
            State::Body {
                head_len,
                framing: Framing::Length(n),
                ..
            } => self.input.start + head_len + n,
            _ => 0,
        };
        (need, limit)
    }

    /// The deadline of the current state has passed.
    pub fn expire<D: Service>(&mut self, cx: &mut Cx<'_>, f: &mut D) {
        match self.state {
            State::Head | State::Body { .. } if !self.out.pending => {
                self.reject(cx, Reject::Timeout);
                self.input.short = false;
                self.progress(cx, f, false);
            }
            State::Stream { .. } => {
                let limit = self
                    .flow
                    .as_ref()
                    .is_some_and(|f| cx.now >= f.start.ends_at);
                let why = if limit { Cut::TimeLimit } else { Cut::TooSlow };
                self.end_stream(cx, Err(why));
            }
            State::Closed | State::Away { .. } => {}
            _ => self.close(cx),
        }
        self.park(cx.spare);
    }

    /// Made to give way to others under memory pressure: a request still arriving is answered
    /// 503 (try again) and closed after it, and its memory is back at once: the answer goes out
    /// now if the socket takes it (nearly always: the client has read nothing), else it is
    /// closed without waiting for a client that does not read.
    #[cold]
    #[inline(never)]
    pub fn evict(&mut self, cx: &mut Cx<'_>) {
        if let State::Stream { .. } = self.state {
            // A stream whose client is not reading what waits for it.
            self.end_stream(cx, Err(Cut::GaveWay));
            return self.park(cx.spare);
        }
        self.reject(cx, Reject::OverBudget);
        match self.out.write_to(&mut self.stream, self.input.bytes()) {
            Ok(_) => self.response_written(cx),
            Err(_) => self.close(cx),
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

    /// The server stops now: a stream under way is cut off (its producer told, its access line
    /// written).
    pub fn stop(&mut self, cx: &mut Cx<'_>) {
        if let State::Stream { .. } = self.state {
            self.end_stream(cx, Err(Cut::ShutDown));
        }
    }

    fn close(&mut self, cx: &mut Cx<'_>) {
        self.set_state(State::Closed, cx);
    }

    /// The pending output is fully written. (Always inlined, as `Output::write_to` is.)
    #[inline(always)]
    fn response_written(&mut self, cx: &mut Cx<'_>) {
        match self.state {
            State::Stream { .. } => self.batch_written(cx),
            // The server is stopping: a kept connection closes after its answer too (one sent
            // on a worker, or begun, before the signal said nothing of it).
            State::Send { close } if close || cx.closing => {
                self.stream.shutdown_write();
                if cx.config.linger.is_zero() {
                    self.close(cx);
                } else {
                    self.set_state(State::Linger, cx);
                    // What is left to read is thrown away through a small buffer: the request's
                    // and the answer's memory goes back now, not after the linger time.
                    self.park(cx.spare);
                }
            }
            // An emptied buffer that grew past its reuse size is dropped by `park`.
            State::Send { .. } => {
                self.active_at = cx.now;
                self.set_state(State::Idle, cx);
            }
            // `100 Continue` went out: the body may come.
            _ => {}
        }
    }

    /// Reads and drops input after the final response, until EOF.
    fn discard(&mut self, cx: &mut Cx<'_>) {
        match self.input.discard(&mut self.stream, cx.spare, PER_TURN) {
            Discard::Ended => self.close(cx),
            Discard::Blocked => {}
            Discard::More => self.yielded = true,
        }
    }

    /// Serves the request at `input.start` if it is complete; true once a response is under way.
    fn serve<D: Service>(&mut self, cx: &mut Cx<'_>, f: &mut D) -> bool {
        match self.state {
            State::New | State::Idle | State::Head => self.serve_head(cx, f),
            State::Body {
                head_len, framing, ..
            } => self.serve_body(head_len, framing, cx, f),
            State::Send { .. }
            | State::Away { .. }
            | State::Stream { .. }
            | State::Linger
            | State::Closed => false,
        }
    }

    fn serve_head<D: Service>(&mut self, cx: &mut Cx<'_>, f: &mut D) -> bool {
        if self.input.is_empty() {
            return false;
        }
        if let State::Idle | State::New = self.state {
            self.arrival = cx.now;
            self.scan = HeadScan::default();
            self.set_state(State::Head, cx);
        }
        let avail = self.input.pending().len();
        // The first look at a request goes straight to the parser: a head nearly always arrives
        // whole. The scan guards only the retries of a head that comes in pieces, so that the
        // parser runs again only once an empty line has arrived.
        let first = self.scan.is_fresh();
        if !first && !self.scan.feed(self.input.pending()) {
            return self.check_partial(cx, avail);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let max = cx.config.max_headers.min(MAX_HEADERS);
        let head = match parse_head(
            self.input.pending(),
            &mut headers[..max],
            cx.config,
            self.arrival,
        ) {
            Ok(Some(head)) => head,
            Ok(None) => {
                if first {
                    self.scan.feed(self.input.pending());
                }
                return self.check_partial(cx, avail);
            }
            Err(r) => {
                self.reject(cx, r);
                return true;
            }
        };
        let body_start = self.input.start + head.len;
        let (head_len, expect, framing) = (head.len, head.expect_continue, head.framing);
        if let Framing::Length(n) = framing {
            if self.input.end - body_start >= n {
                // The whole request is in: answered from this parse.
                let next = body_start + n;
                cx.spare.lend_output(&mut self.out);
                if !f.inline() {
                    return self.send_away(cx, head_len, body_start..next);
                }
                let answer = f.call(
                    Call {
                        input: self.input.bytes(),
                        head: &head,
                        headers: &headers,
                        body: body_start..next,
                        arrival: self.arrival,
                    },
                    &mut self.out,
                    cx,
                );
                return self.answering(cx, next, answer);
            }
        }
        if let Framing::Chunked = framing {
            self.chunked = Chunked::new();
            self.input.mark = body_start;
        }
        let began = cx.now;
        self.set_state(
            State::Body {
                head_len,
                framing,
                began,
            },
            cx,
        );
        if self.serve_body(head_len, framing, cx, f) {
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
    fn serve_body<D: Service>(
        &mut self,
        head_len: usize,
        framing: Framing,
        cx: &mut Cx<'_>,
        f: &mut D,
    ) -> bool {
        let body_start = self.input.start + head_len;
        let body_end = match framing {
            Framing::Length(n) if self.input.end - body_start >= n => body_start + n,
            Framing::Length(_) => return false,
            Framing::Chunked => {
                let c = cx.config;
                let (mark, end) = (self.input.mark, self.input.end);
                let decoded = self.chunked.decode(
                    self.input.bytes_mut(),
                    mark,
                    end,
                    c.max_body_bytes,
                    c.max_chunk_meta_bytes,
                );
                match decoded {
                    Ok(d) => {
                        (self.input.mark, self.input.end) = (d.data_end, d.end);
                        if !d.done {
                            return false;
                        }
                        d.data_end
                    }
                    Err(r) => {
                        self.reject(cx, r);
                        return true;
                    }
                }
            }
        };
        if !f.inline() {
            cx.spare.lend_output(&mut self.out);
            return self.send_away(cx, head_len, body_start..body_end);
        }
        // The head is parsed again: it borrows the buffer, which reads may have moved.
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let max = cx.config.max_headers.min(MAX_HEADERS);
        let head = &self.input.bytes()[self.input.start..body_start];
        let Ok(Some(head)) = parse_head(head, &mut headers[..max], cx.config, self.arrival) else {
            self.reject(cx, Reject::BadRequest("request head changed"));
            return true;
        };
        cx.spare.lend_output(&mut self.out);
        let answer = f.call(
            Call {
                input: self.input.bytes(),
                head: &head,
                headers: &headers,
                body: body_start..body_end,
                arrival: self.arrival,
            },
            &mut self.out,
            cx,
        );
        // The raw bytes after a chunked body were moved right behind its decoded data.
        self.answering(cx, body_end, answer)
    }

    /// A response to the request at `input.start` is under way; the next request starts at
    /// `next`.
    #[inline(always)]
    fn answering(&mut self, cx: &mut Cx<'_>, next: usize, answer: Answer) -> bool {
        self.input.start = next;
        match answer {
            Answer::Whole { keep } => self.set_state(State::Send { close: !keep }, cx),
            Answer::Stream(start) => self.start_stream(cx, start),
        }
        true
    }

    /// The request at `input.start` (its body `body`) goes to a worker: the server takes it
    /// (`Conn::parcel`) after this turn.
    #[cold]
    #[inline(never)]
    fn send_away(
        &mut self,
        cx: &mut Cx<'_>,
        head_len: usize,
        body: std::ops::Range<usize>,
    ) -> bool {
        let next = body.end;
        self.away_request = Some(Box::new(Away {
            head_len,
            body,
            room: cx.room,
            room_max: cx.room_max,
            closing: cx.closing,
        }));
        self.handoff = true;
        self.set_state(State::Away { next }, cx);
        true
    }

    /// The request parked by `send_away`, with the buffers, for a worker.
    #[cold]
    #[inline(never)]
    pub fn parcel(&mut self) -> Option<Box<Parcel>> {
        let Away {
            head_len,
            body,
            room,
            room_max,
            closing,
        } = *self.away_request.take()?;
        self.away = self.input.capacity() + self.out.capacity();
        let out = std::mem::replace(&mut self.out, Output::new());
        Some(Box::new(Parcel {
            start: self.input.start,
            input: self.input.take(),
            head_len,
            body,
            arrival: self.arrival,
            out,
            room,
            room_max,
            used: 0,
            closing,
            answer: None,
            grow: 0,
            claimed: 0,
            lines: (Vec::new(), Vec::new()),
        }))
    }

    /// A worker's answer: the buffers back, and on as with an answer made here.
    #[cold]
    #[inline(never)]
    pub fn answered<D: Service>(&mut self, cx: &mut Cx<'_>, f: &mut D, mut parcel: Box<Parcel>) {
        let State::Away { next } = self.state else {
            return;
        };
        self.input.restore(std::mem::take(&mut parcel.input));
        self.out = std::mem::replace(&mut parcel.out, Output::new());
        self.away = 0;
        cx.grow = cx.grow.max(parcel.grow);
        cx.tick();
        let answer = parcel
            .answer
            .take()
            .unwrap_or(Answer::Whole { keep: false });
        self.answering(cx, next, answer);
        // Input that arrived meanwhile raised its event while the connection could not read.
        self.input.short = false;
        self.yielded = false;
        self.progress(cx, f, false);
        self.park(cx.spare);
    }

    /// Its call was lost with a worker that could not start, or dropped before it started
    /// because its client left: closed.
    #[cold]
    #[inline(never)]
    pub fn abandon(&mut self, cx: &mut Cx<'_>) {
        self.away = 0;
        self.away_request = None;
        self.close(cx);
    }

    /// A streamed answer begins: its head is in the output; its producer waits for the server
    /// to start it (`Conn::producer`).
    #[cold]
    #[inline(never)]
    fn start_stream(&mut self, cx: &mut Cx<'_>, start: Box<Start>) {
        let close = start.close || cx.closing;
        let waits = start.producer.is_some();
        let head = self.out.wire_len(self.input.bytes());
        self.flow = Some(Box::new(Flowing {
            start,
            pipe: None,
            ended: if waits { None } else { Some(Ok(())) },
            bytes: head,
        }));
        self.handoff |= waits;
        self.set_state(State::Stream { close }, cx);
    }

    /// The producer of the stream, for the server to start; the stream's limit and framing with
    /// it.
    #[cold]
    #[inline(never)]
    pub fn producer(&mut self) -> Option<(Producer, Option<Box<str>>, bool)> {
        let f = self.flow.as_mut()?;
        if f.pipe.is_some() {
            return None;
        }
        let p = f.start.producer.take()?;
        Some((p, f.start.request_id.clone(), f.start.chunked))
    }

    /// The producer runs, sending through `pipe` (or, `None`, could not be started).
    #[cold]
    #[inline(never)]
    pub fn stream_started(&mut self, cx: &mut Cx<'_>, pipe: Option<Arc<Pipe>>) {
        let Some(f) = self.flow.as_mut() else {
            return;
        };
        match pipe {
            Some(p) => f.pipe = Some(p),
            None => self.end_stream(cx, Err(Cut::NoThread)),
        }
    }

    /// One step of a stream in the connection's loop: its next batch, within the turn's share;
    /// false when the loop is to stop here. Out of line: a whole answer does not carry it.
    #[cold]
    #[inline(never)]
    fn stream_turn(&mut self, cx: &mut Cx<'_>, served: &mut usize) -> bool {
        if *served == PER_TURN {
            self.yielded = true;
            return false;
        }
        *served += 1;
        self.pull(cx)
    }

    /// Takes the stream's next batch into the output; false when there is none yet (the
    /// producer's mail will drive the connection again).
    fn pull(&mut self, cx: &mut Cx<'_>) -> bool {
        let Some(f) = self.flow.as_mut() else {
            return false;
        };
        if let Some(how) = f.ended {
            self.end_stream(cx, how);
            return true;
        }
        let Some(pipe) = &f.pipe else {
            return false;
        };
        self.out.body.clear();
        // The pipe's queue takes this buffer: counted as held at its size (the twin of the
        // batch taken), not at the queue's bound, so an idle stream costs the budget little.
        let twin = self.out.body.capacity();
        let taken = pipe.take(&mut self.out.body);
        self.away = twin;
        // Past its room, the server makes the stalest of the others give way (`Cx::grow`),
        // streams stalled on their clients among them: the budget holds for streams too.
        let held = self.input.capacity() + self.out.capacity() + twin;
        if held > cx.room {
            cx.grow = cx.grow.max(held);
        }
        f.ended = taken.ended;
        self.out.batch();
        f.bytes += self.out.body.len();
        if self.out.pending {
            self.restart_clock(cx.now, cx.config);
            return true;
        }
        match f.ended {
            Some(how) => {
                self.end_stream(cx, how);
                true
            }
            None => false,
        }
    }

    /// A batch (or the head) of the stream is out.
    #[cold]
    #[inline(never)]
    fn batch_written(&mut self, cx: &mut Cx<'_>) {
        self.active_at = cx.now;
        self.restart_clock(cx.now, cx.config);
    }

    /// The stream is over: its access line, then the connection kept (a whole chunked body),
    /// closed after the body (HTTP/1.0, or the request said so), or closed at once (cut off).
    #[cold]
    #[inline(never)]
    fn end_stream(&mut self, cx: &mut Cx<'_>, how: Result<(), Cut>) {
        let Some(f) = self.flow.take() else {
            return self.close(cx);
        };
        self.away = 0;
        if let (Err(why), Some(p)) = (how, &f.pipe) {
            p.cut(why);
        }
        let (level, cut) = match how {
            Ok(()) => (Level::Info, None),
            Err(c @ (Cut::Failed | Cut::Panicked | Cut::NoThread)) => {
                (Level::Error, Some(c.reason()))
            }
            Err(c) => (Level::Warn, Some(c.reason())),
        };
        if cx.log.enabled(level) {
            let s = &f.start;
            cx.log.access(&Access {
                level,
                request_id: s.request_id.as_deref(),
                method: &s.method,
                path: &s.path,
                status: s.status,
                bytes: f.bytes,
                elapsed: cx.now.saturating_duration_since(s.arrival),
                cut,
            });
        }
        let close = matches!(self.state, State::Stream { close: true });
        self.out.finish();
        match how {
            Ok(()) if !close && !cx.closing => {
                self.active_at = cx.now;
                self.set_state(State::Idle, cx);
            }
            Ok(()) => {
                self.set_state(State::Send { close: true }, cx);
                self.response_written(cx);
            }
            Err(_) => self.close(cx),
        }
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
        let mut resp = self.out.response();
        resp.set_error(&r.to_error());
        let input = self.input.bytes();
        let status = self
            .out
            .prepare(resp, input, cx.date.as_bytes(), true, Persist::Close);
        let input = self.input.pending();
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let (method, path, request_id) = head_of(input, &mut fields).unwrap_or(("-", "-", None));
        cx.log.line(r.level(), request_id, &r.reason());
        let input = self.input.bytes();
        cx.log.access(&Access {
            level: Level::Info,
            request_id,
            method,
            path,
            status,
            bytes: self.out.wire_len(input),
            elapsed: cx.now.saturating_duration_since(self.arrival),
            cut: None,
        });
        self.set_state(State::Send { close: true }, cx);
    }
}

/// The method, path and request id of a refused request, for its log lines, when its head is
/// whole and well-formed (a body too large, a budget passed, a body that timed out).
#[cold]
fn head_of<'i>(
    input: &'i [u8],
    fields: &'i mut [httparse::Header<'i>],
) -> Option<(&'i str, &'i str, Option<&'i str>)> {
    let mut req = httparse::Request::new(fields);
    if !req.parse(input).ok()?.is_complete() {
        return None;
    }
    let target = req.path?;
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Some((req.method?, path, crate::platform::request_id(req.headers)))
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// The debug line of a state transition: out of line, off the request's code.
#[cold]
#[inline(never)]
fn log_transition(log: &mut Log, from: &State, to: &State) {
    let mut msg = String::from("connection ");
    msg.push_str(from.name());
    msg.push_str(" -> ");
    msg.push_str(to.name());
    log.line(Level::Debug, None, &msg);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::call::Shared;
    use crate::log::Format;
    use crate::mem::Mem;

    /// A service that answers with the request's body, inline.
    struct Echo;

    impl Service for Echo {
        fn inline(&self) -> bool {
            true
        }

        fn call(&mut self, call: Call<'_>, out: &mut Output, cx: &mut Cx<'_>) -> Answer {
            let mut resp = out.response();
            resp.body_mut()
                .extend_from_slice(&call.input[call.body.clone()]);
            out.prepare(resp, call.input, cx.date.as_bytes(), true, Persist::Default);
            Answer::Whole { keep: true }
        }
    }

    const REQ: &[u8] =
        b"POST /event-invoke HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n{\"a\":1}";

    struct World {
        shared: Shared,
    }

    impl World {
        fn new() -> World {
            let mut shared = Shared::new(Config {
                log_level: Level::Off,
                ..Config::default()
            });
            shared.log = Log::new(Level::Off, Format::Text);
            World { shared }
        }

        fn conn<'d>(&self, input: &'d [u8], arrived: usize) -> Conn<Mem<'d>> {
            let sock = Mem::new(input, arrived, usize::MAX);
            Conn::new(sock, Instant::now(), &self.shared.config)
        }

        fn spare(&self) -> &Spare {
            &self.shared.spare
        }

        /// One readiness event for `c`.
        fn event(&mut self, c: &mut Conn<Mem<'_>>, read_closed: bool) {
            let mut cx = self.shared.cx(Instant::now(), false);
            c.drive(&mut cx, &mut Echo, read_closed);
        }
    }

    fn responses(c: &mut Conn<Mem<'_>>) -> usize {
        let out = &c.stream().out;
        out.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count()
    }

    #[test]
    fn test_a_pipelining_client_gets_its_share_of_a_turn_then_yields() {
        let mut w = World::new();
        let input = REQ.repeat(40);
        let mut a = w.conn(&input, input.len());
        // All 40 have arrived: one turn answers PER_TURN of them and says there is more.
        w.event(&mut a, false);
        assert_eq!(responses(&mut a), PER_TURN);
        assert!(a.yielded, "work left");
        // Driven again (as the server does, with no new event), it goes on where it stopped.
        w.event(&mut a, true);
        assert_eq!(responses(&mut a), 2 * PER_TURN);
        w.event(&mut a, true);
        assert_eq!(responses(&mut a), 40);
        assert!(!a.yielded, "all answered");
    }

    #[test]
    fn test_a_body_that_keeps_coming_gets_its_share_of_a_turn_then_yields() {
        let mut w = World::new();
        let mut input =
            b"POST /event-invoke HTTP/1.1\r\nHost: a\r\nContent-Length: 3000\r\n\r\n".to_vec();
        input.extend(std::iter::repeat_n(b' ', 2998));
        input.extend(b"{}");
        let mut a = w.conn(&input, input.len());
        // It has all arrived, but comes 100 bytes a read (and a short read is not trusted to
        // have emptied the socket): one turn takes PER_TURN reads.
        a.stream().piece = 100;
        w.event(&mut a, true);
        assert!(a.yielded);
        assert_eq!(a.stream().reads, PER_TURN);
        assert_eq!(responses(&mut a), 0);
        while a.yielded {
            w.event(&mut a, true);
        }
        assert_eq!(responses(&mut a), 1);
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
            a.input.capacity() == 0 && !a.out.has_buffers(),
            "idle: holds nothing"
        );
        assert_eq!(w.spare().len(), (1, 1));
        let lent = w.spare().first_read();

        // The next connection reads into the very same buffer and answers from the same set.
        let mut b = w.conn(REQ, REQ.len());
        w.event(&mut b, false);
        assert_eq!(responses(&mut b), 1);
        assert_eq!(w.spare().len(), (1, 1));
        assert_eq!(w.spare().first_read(), lent);
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
            a.input.capacity(),
            INITIAL_BUF,
            "a request in flight keeps its buffer"
        );
        assert_eq!(w.spare().len(), (0, 0));
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
        assert_eq!(w.spare().len(), (2, 1));
    }

    #[test]
    fn test_spare_sets_are_bounded_and_grown_buffers_are_freed() {
        let mut w = World::new();
        let mut conns: Vec<_> = (0..crate::buf::SPARE_SETS + 2)
            .map(|_| w.conn(REQ, 20))
            .collect();
        for c in &mut conns {
            w.event(c, false);
        }
        for c in &mut conns {
            c.stream().arrived = REQ.len();
            w.event(c, false);
            assert_eq!(responses(c), 1);
        }
        // Six read buffers were in use at once; the spare keeps four. One response set did.
        assert_eq!(w.spare().len(), (crate::buf::SPARE_SETS, 1));
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
            w.spare().len(),
            (1, 1),
            "a closed connection hands its buffers back"
        );
    }
}
