//! What passes between a connection and the dispatcher that answers it: the complete request
//! ([`Call`]), what the loop lends for one turn ([`Cx`]), and what comes back ([`Answer`]).
//!
//! ```text
//!   conn.rs ── Call ──▶ Service (dispatch.rs) ── invoke.rs: the function ──▶ Answer
//!      ▲                    │ off the loop: the request's buffer moves to a worker and back
//!      └──── Output ◀───────┘
//! ```
//!
//! The connection knows the [`Service`] trait and nothing of the function, its threads or its
//! streams; the dispatcher knows no socket.

use std::ops::Range;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use crate::buf::Spare;
use crate::config::Config;
use crate::date::HttpDate;
use crate::log::Log;
use crate::request::Head;
use crate::response::Output;
use crate::stream::Start;

/// One complete request, borrowed from the connection's read buffer.
pub(crate) struct Call<'b> {
    /// The whole read buffer: the request borrows from it, and so may the response.
    pub input: &'b [u8],
    pub head: &'b Head<'b>,
    /// The parsed header array (its first `head.fields` entries are the fields).
    pub headers: &'b [httparse::Header<'b>],
    /// Where the body lies in `input` (chunked coding already removed).
    pub body: Range<usize>,
    /// When the head began to arrive.
    pub arrival: Instant,
}

/// What the dispatcher answers a call with. The response itself is in the connection's
/// [`Output`], ready to write.
pub(crate) enum Answer {
    /// A whole answer; whether the connection stays open after it.
    Whole { keep: bool },
    /// The head of a streamed answer; its body comes from a producer the dispatcher starts on a
    /// thread (`Start`), piece by piece through the connection.
    Stream(Box<Start>),
}

/// Who answers a connection's requests: the dispatcher (`dispatch.rs`), or a test's.
pub(crate) trait Service {
    /// Whether [`Service::call`] answers on this thread. If not, the connection parks the
    /// request (`State::Away`) and the server hands its buffer to a worker.
    fn inline(&self) -> bool;

    /// Calls the function on `call` and prepares the answer in `out` (which holds buffers to
    /// reuse).
    fn call(&mut self, call: Call<'_>, out: &mut Output, cx: &mut Cx<'_>) -> Answer;
}

/// What every connection shares with the loop: the settings, the log, the date cache and the
/// spare buffers. The server owns one, and so does every worker thread; the unit tests and the
/// fuzz harness make their own.
pub(crate) struct Shared {
    pub config: Config,
    pub log: Log,
    pub date: HttpDate,
    pub spare: Spare,
    /// Requests the function has answered.
    pub served: u64,
}

impl Shared {
    pub fn new(config: Config) -> Shared {
        Shared {
            log: Log::new(config.log_level, config.log_format),
            date: HttpDate::new(),
            spare: Spare::new(),
            served: 0,
            config,
        }
    }

    /// What a connection gets for one turn of the loop: the one place a [`Cx`] is made.
    pub fn cx(&mut self, now: Instant, closing: bool) -> Cx<'_> {
        Cx {
            config: &self.config,
            log: &mut self.log,
            date: &self.date,
            spare: &mut self.spare,
            served: &mut self.served,
            now,
            closing,
            room: usize::MAX,
            room_max: usize::MAX,
            grow: 0,
            worker: None,
            claimed: 0,
        }
    }
}

/// What a connection works with for one turn of the loop.
pub(crate) struct Cx<'s> {
    pub config: &'s Config,
    pub log: &'s mut Log,
    pub date: &'s HttpDate,
    pub spare: &'s mut Spare,
    /// Requests the function has answered.
    pub served: &'s mut u64,
    /// The time as last read: at the start of the turn, and again after each function call
    /// ([`Cx::tick`]), since a function may take a while. Deadlines count from it.
    pub now: Instant,
    /// The server is shutting down: every response closes its connection.
    pub closing: bool,
    /// The bytes this connection may hold (read buffer and response together): the memory
    /// budget less what the other connections hold.
    pub room: usize,
    /// What it may hold once the server has made the partial requests it can evict give way
    /// (`server.rs`, `free_memory_for`): more than `room` when memory is under pressure.
    pub room_max: usize,
    /// Set by the connection when it needs this many bytes in all, past `room` but within
    /// `room_max`: it stopped before taking a read buffer that large (the server makes room
    /// and drives it again), or holds a request and its answer that large (the server makes
    /// room for what is still unsent).
    pub grow: usize,
    /// On a worker: how the budget stands beyond the room measured when the call left the loop
    /// (`dispatch.rs`); the call adds its answer's bytes to the claims (`claimed`).
    pub worker: Option<Budget<'s>>,
    pub claimed: usize,
}

/// The budget as a call on a worker sees it.
#[derive(Clone, Copy)]
pub(crate) struct Budget<'s> {
    /// Bytes the answers of calls on workers hold that the server has not counted yet.
    pub claims: &'s AtomicUsize,
    /// What all connections hold, as the server last counted.
    pub used: &'s AtomicUsize,
    /// `used` when the call's room was measured.
    pub used_then: usize,
}

impl Cx<'_> {
    /// Reads the clock again.
    pub fn tick(&mut self) {
        self.now = Instant::now();
    }
}

/// A complete request sent off the loop to a worker (`SCF_LEAN_CONCURRENCY` > 1): the
/// connection's read buffer and output buffers, moved — not copied — and back with the answer.
pub(crate) struct Parcel {
    /// The connection's read buffer; the request is `input[start..]`, its head `head_len`
    /// bytes, its body `input[body]`.
    pub input: Vec<u8>,
    pub start: usize,
    pub head_len: usize,
    pub body: Range<usize>,
    pub arrival: Instant,
    /// Where the answer is prepared.
    pub out: Output,
    /// The room the budget left the connection when it was sent (see [`Cx`]).
    pub room: usize,
    pub room_max: usize,
    /// What all connections held then (`Budget::used_then`).
    pub used: usize,
    pub closing: bool,
    /// Set by the worker: the answer, the room it needs past `room`, and the bytes it claimed
    /// (`Cx::claims`), given back once the server has counted them.
    pub answer: Option<Answer>,
    pub grow: usize,
    pub claimed: usize,
    /// The log lines of the call (stdout's, stderr's), for the loop to write.
    pub lines: (Vec<u8>, Vec<u8>),
}
