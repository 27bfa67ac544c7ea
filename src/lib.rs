//! # scf-lean
//!
//! The fastest-starting, smallest way to run a function on Tencent Cloud SCF as a container
//! image: an HTTP/1.1 server on one `epoll` loop through `mio`, requests parsed in place by
//! `httparse`, and your function called with borrowed bytes — on the loop's thread by default,
//! on worker threads where you opt in.
//!
//! ## The contract it serves
//! SCF starts the image and sends every invocation to port 9000 (`PORT` overrides it):
//! events as `POST /event-invoke` with the event JSON as the body, HTTP-triggered requests as
//! API Gateway passes them through, and the invocation context in `X-Scf-*` headers. Cold start
//! pays for image size and start-up work, so both are kept to the bone: nothing slow happens
//! before `listen`, and a static musl build fits in a `FROM scratch` image far under 1 MB.
//!
//! ## Writing a function
//! Implement [`Function`] (one or both of `event` and `http`) or wrap a closure with
//! [`event_fn`], [`json_fn`] or [`http_fn`], and hand it to [`main!`] — which serves it from a
//! constructor, before std's runtime set-up, with no crate attribute — or to [`run`] /
//! [`run_as`] from your own `fn main`:
//!
//! ```ignore
//! scf_lean::main!(scf_lean::json_fn(|event: serde_json::Value, ctx: &scf_lean::Context| {
//!     Ok(serde_json::json!({ "got": event, "request": ctx.request_id }))
//! }));
//! ```
//!
//! What a function reads and answers with, in one HTTP function (all of it borrowed from the
//! request unless something had to be decoded):
//!
//! ```
//! use scf_lean::{Error, Request, Response};
//!
//! fn users<'a>(req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
//!     let mut path = req.segments(); // percent-decoded, empty ones skipped
//!     match (req.method(), path.next().as_deref(), path.next(), path.next()) {
//!         ("GET", Some("users"), Some(id), None) => {
//!             let lang = req.query_param("lang").unwrap_or("en".into()); // ?lang=zh%2DCN
//!             let agent = req.header("user-agent").unwrap_or("-");
//!             scf_lean::info!("user {id} in {lang} for {agent}"); // with the request id
//!             out.json(&serde_json::json!({ "id": id, "lang": lang }))
//!         }
//!         ("POST", Some("echo"), None, None) => {
//!             out.set_body_ref(req.body()); // answered without a copy
//!             Ok(())
//!         }
//!         (_, Some("admin"), ..) => Err(Error::new("sign in first")
//!             .with_status(401) // logged at WARN: the caller's mistake
//!             .with_header("WWW-Authenticate", "Bearer")),
//!         _ => Err(Error::not_found("no such route")),
//!     }
//! }
//!
//! let mut f = scf_lean::http_fn(users);
//! # use scf_lean::Function;
//! let mut out = Response::new();
//! f.http(&Request::new("GET", "/users/%37?lang=zh%2DCN", &[], b""), &mut out).unwrap();
//! assert_eq!(out.body(), br#"{"id":"7","lang":"zh-CN"}"#);
//! let e = f.http(&Request::new("GET", "/admin", &[], b""), &mut out).unwrap_err();
//! assert_eq!(e.headers().next(), Some(("WWW-Authenticate", "Bearer")));
//! ```
//!
//! [`info!`] and its siblings [`error!`], [`warn!`], [`debug!`] write through the server's log
//! (text or JSON, its level, the request id) and never block it; a function's `Err` is logged
//! at WARN for a 4xx and at ERROR for a 5xx, a panic at ERROR (the README's Logging section
//! has the table). `req.json()` answers a 400 that says `the body is not valid JSON` or
//! ``the body does not fit Order: missing field `qty` at line 1 column 30``; [`from_json`] says
//! `the event …`. With the `log` or `tracing` feature (off by default), the records of those
//! facades — the function's and those of every crate it uses — are lines of the same log, with
//! the request id of their call, their target and (`tracing`) their fields ([`mod@log`]).
//!
//! ## The execution model
//! - **Inline, by default.** The loop does the I/O; a complete request is handed to the
//!   function on the loop's own thread, borrowing the request where it lies, and the answer goes
//!   out from the same turn. No thread, no lock, no copy: what SCF sends an instance by default
//!   (one invocation at a time) costs nothing more. A call holds the loop while it runs.
//! - **Streams on a thread of their own.** [`Response::stream`] and [`Response::sse`] take a
//!   *producer* — a `move` closure that owns what it needs — and the function returns at once.
//!   The producer runs on a stream thread (started when the first stream needs one, then kept)
//!   and its [`BodyStream::send`] queues framed pieces, bounded per stream
//!   (`SCF_LEAN_STREAM_BUFFER_BYTES`) and counted in the memory budget; the loop writes them
//!   when the socket takes them, several in one write when the client is behind. A slow or
//!   stalled reader slows its own stream (`send` waits, then fails), never anyone else.
//! - **Concurrent calls, opted in.** A function made with [`concurrent`] (`Clone + Send`) and
//!   `SCF_LEAN_CONCURRENCY=N` runs up to N calls at once, each on a worker thread with its own
//!   clone of the function (made after [`Function::init`], so what `init` built behind an `Arc`
//!   is shared): for web functions with multi-concurrency whose calls wait. The request's buffer
//!   moves to the worker and back, uncopied; log lines keep their request ids; panics are caught
//!   per call; N answers in flight stay within the memory budget together.
//!
//! ```text
//!   server.rs ── readiness ──▶ conn.rs ── Call ──▶ dispatch.rs ──┬─ inline: invoke.rs ─▶ Answer
//!       ▲                         ▲                              ├─ worker (pool.rs): Parcel, back
//!       └── mail (wake.rs) ◀──────┴── stream pieces (stream.rs) ◀┴─ producer on a stream thread
//! ```
//!
//! One binary, three modes: `POST /event-invoke` goes to [`Function::event`], every other
//! request to [`Function::http`], and with `SCF_CUSTOM_CONTAINER_EVENT` set (an SCF job
//! function) no port is bound: `event` runs once on that event, its answer goes to stdout and
//! the exit code is the result (`job.rs`). [`Function::init`] runs once after `listen` and
//! before the first invocation; its failure ends the process (exit 1) with the reason logged.
//!
//! The template (`template/` in the repository) is a function's project: its `src/main.rs` (a
//! tutorial), tests, `Dockerfile` and README. This crate's own binary, the reference echo, is
//! `src/main.rs` of the repository.
//!
//! With the `events` feature, `scf_lean::events` has a type per SCF trigger (Timer, COS, CKafka, CMQ,
//! CLS, CLB, API Gateway), the API Gateway integration response, and a closure adapter over
//! them that answers an event that does not fit with a 400 naming the bad field
//! (docs/EVENTS.md).
//!
//! A function is tested over HTTP with [`testing::TestServer`] (served on a loopback port in
//! the test process, events sent with SCF's context headers, stopped on drop; what the function
//! logs kept for the test to check, each line with its request id:
//! [`testing::TestServerBuilder::capture_logs`]), its image with
//! [`testing::image`], and without a socket through [`Context::default`], [`Request::new`] and
//! [`Response::new`].
//!
//! ## Layers (one file per job)
//! - `entry.rs`: the process — [`main!`] (a constructor), [`run`] and [`run_as`], `--help`,
//!   `--version`, the one-line start-up failures.
//! - `server.rs`: the loop — accept, dispatch readiness, deadlines, signals, shutdown.
//! - `conn.rs`: the connection state machine (`Idle → Head → Body → Send | Away | Stream →
//!   Linger → Closed`): the only writer of a connection's state and deadline. It reports a
//!   complete request through the `call.rs` interface and takes the answer; it knows no
//!   function, thread or producer.
//! - `call.rs`: what passes between a connection and the dispatcher: the request (`Call`), the
//!   turn's context (`Cx`), the answer (`Answer`), a request sent off the loop (`Parcel`).
//! - `dispatch.rs`: where a call runs — inline, or on a worker — and where a stream's producer
//!   starts; `pool.rs`: the threads, started when first needed; `wake.rs`: their mail back to
//!   the loop (an `eventfd`).
//! - `buf.rs`: the read buffer (fill, compact, grow, discard) and the spare buffers idle
//!   connections lend to busy ones.
//! - `request.rs`: request framing, the single pass over the headers, and the [`Request`] a
//!   function sees; `chunked.rs`: the chunked body decoder, in place; `uri.rs`: the target's
//!   percent-decoding, query parameters and path segments.
//! - `invoke.rs`: calling the function — its init, the request, the route, the caught panic,
//!   the one mapping of an outcome to its answer and log line, a stream's producer run;
//!   `job.rs`: a job function's one run; `stream.rs`: streamed answers and Server-Sent Events
//!   (the producer's queue, `Pipe`).
//! - `response.rs`: the [`Response`] a function fills, the error body (function's and server's
//!   alike), and the vectored write that sends it.
//! - `scf.rs`: the platform contract — port, routing (`POST /event-invoke` → event), the
//!   `X-Scf-*` context headers, the credential headers, SCF's environment, the `--help` text.
//!   The rest of the crate reaches it as `platform` and never names SCF's headers or paths.
//! - `context.rs`: the [`Context`] a function sees; `function.rs`: the [`Function`] trait and
//!   the closure adapters; `error.rs`: errors and their JSON shape.
//! - `config.rs`: the settings, one row each in `build.rs`; `log.rs`: log lines; `logger.rs`:
//!   the function's own log lines (the macros); `bridge.rs`: the `log` facade's records and
//!   `tracing`'s events, the same way (features `log`, `tracing`); `scope.rs`: what the thread
//!   knows during a call (the log lent to the function, the panic caught); `redact.rs`: how
//!   `Debug` shows header values (a credential's never); `date.rs`: the `Date` header;
//!   `version.rs`: scf-lean's version and commit, the function's [`Identity`];
//!   `panic_hook.rs`: panic messages for the log; `base64.rs`; `sys.rs`: the signal handler and
//!   `eventfd`, the process CPU clock, the environment read in place, the arguments of a process started by a
//!   constructor (the only `unsafe`).
//! - `image.rs`: what a function's image is (target, platform, entrypoint, user, port, labels):
//!   the one description the template's `Dockerfile`, `testing/image.rs` and `cargo scf image`
//!   (the tool in `cargo-scf/`, a workspace member with dependencies of its own) follow.
//! - `testing.rs`: the harness function authors test with ([`testing::TestServer`], its log
//!   lines captured by lending each call a log of its own), and `testing/image.rs`, their image
//!   built and run as SCF runs it; `mem.rs`: an in-memory socket for the connection's tests and
//!   `fuzzing.rs`, the fuzz entry points (feature `fuzzing`); `events/`: typed trigger events
//!   (feature `events`).
//!
//! ## Where a change lands
//! - **A new limit:** one row in `build.rs` (field, variable, kind, default, range, meaning),
//!   which makes the `Config` field, its default, its override and its `--help` line; the code
//!   that enforces it; the settings tables here and in the README (a test compares them with
//!   the rows).
//! - **Another platform** (Alibaba FC's `POST /invoke` and `x-fc-*` headers, Huawei
//!   FunctionGraph's `X-CFF-*`): a sibling of `scf.rs` with the same items, and the one
//!   `use … as platform` line below. A trait only once two platforms exist side by side.
//! - **Another way to run calls** (a per-call thread, a different pool): `dispatch.rs` only —
//!   the connection sees the `call.rs` interface, the function sees `invoke.rs`.
//! - **A new kind of answer** (WebSocket after an upgrade, a body read in pieces): a state in
//!   `conn.rs` beside `Stream`, an `Answer` variant in `call.rs`, and its producer started by
//!   `dispatch.rs` like a stream's.
//! - **Another platform's lifecycle** (FC's `/initialize`, a pre-stop hook): `scf.rs`'s sibling
//!   routes it, `invoke.rs` calls it.
//!
//! ## Settings (build-time defaults, overridden at start)
//! Set when building (`SCF_LEAN_MAX_BODY_BYTES=1048576 cargo build`), a variable bakes a new
//! default into the binary; set at start, it overrides the default for that run.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `PORT` | 9000 | TCP port on 0.0.0.0 (0: a free port, named in the start-up line; Cloud Run and Knative set it too) |
//! | `SCF_LEAN_MAX_HEAD_BYTES` | 32768 | request line + headers, in bytes; past it 431, close |
//! | `SCF_LEAN_MAX_HEADERS` | 100 | header fields per request; past it 431, close (at start only lowered: the build-time value sizes a stack array) |
//! | `SCF_LEAN_MAX_TARGET_BYTES` | 8192 | request target (path + query), in bytes; past it 414, close |
//! | `SCF_LEAN_MAX_BODY_BYTES` | 6291456 | body after chunked decoding, in bytes (SCF's 6 MB synchronous limit); past it 413 without reading the body, close |
//! | `SCF_LEAN_MAX_RESPONSE_BYTES` | 6291456 | a function's response (header lines and body), in bytes (SCF refuses more than 6 MB); past it a JSON 500 instead, logged |
//! | `SCF_LEAN_MAX_CHUNK_META_BYTES` | 16384 | chunk extensions + trailers of one chunked body, in bytes; past it 400, close |
//! | `SCF_LEAN_MAX_CONNECTIONS` | 1024 | open connections (SCF's descriptor limit); past it accepting pauses until one closes |
//! | `SCF_LEAN_MEMORY_BUDGET_BYTES` | 0 | bytes all connections may hold in request buffers and responses together (0: half the instance's memory limit, read from its cgroup when the server is first idle, and 32 MiB until then or without one; past 256 KiB a connection may use only three quarters of it; when it is full, partial requests of at most 256 KiB give way, the stalest first); past it 503, close |
//! | `SCF_LEAN_FIRST_BYTE_TIMEOUT_MS` | 10000 | a new connection must send its first byte within it, else it is closed; with every slot or descriptor taken, the connection quiet longest (200 ms at least; a silent one, else an idle keep-alive one, else a request stalled mid-way: 408) makes room for a new one |
//! | `SCF_LEAN_HEAD_TIMEOUT_MS` | 10000 | a request head that has started must be complete within it; else 408, close |
//! | `SCF_LEAN_BODY_TIMEOUT_MS` | 30000 | a body may stall this long, and a client may stop reading a response this long; else 408 (or a plain close), close |
//! | `SCF_LEAN_BODY_DEADLINE_MS` | 60000 | a body must be complete within it from the end of its head, however steadily it arrives; else 408, close |
//! | `SCF_LEAN_IDLE_TIMEOUT_MS` | 900000 | an idle keep-alive connection is closed after it (long: the proxy in front reuses connections, and closing first races with its next request) |
//! | `SCF_LEAN_LINGER_MS` | 2000 | after a response that closes the connection, unread input is drained this long, so that the close does not reset the response away |
//! | `SCF_LEAN_SHUTDOWN_GRACE_MS` | 2000 | after SIGTERM or SIGINT, requests in flight may finish within it; then the process exits |
//! | `SCF_LEAN_CONCURRENCY` | 1 | invocations run at once, on worker threads, for a function made with scf_lean::concurrent (set it to the function's MaxConcurrency); 1: each call runs on the loop's thread, one at a time, no thread started |
//! | `SCF_LEAN_MAX_STREAMS` | 256 | streams whose producers run at once, each on a thread (SCF allows an instance 1,024); past it a stream's head goes out and its producer waits for a thread |
//! | `SCF_LEAN_STREAM_BUFFER_BYTES` | 65536 | bytes a streamed answer may queue for a client that reads slower than the function sends; past it send waits |
//! | `SCF_LEAN_TIME_LIMIT_MS` | 900000 | an invocation's time limit where X-Scf-Timeout does not give one (SCF's longest); a stream still open at its limit is cut off |
//! | `SCF_LEAN_LOG_LEVEL` | info | log level: off, error, warn, info or debug |
//! | `SCF_LEAN_LOG_MESSAGE_BYTES` | 16384 | a message a function logs (scf_lean::info! and the others), in bytes; past it the rest is cut and the line says how much |
//! | `SCF_LEAN_LOG_FORMAT` | text | log line format: text or json |
//!
//! ## Memory: every buffer has a bound, and so has their sum
//! - A read buffer starts at 4 KiB and grows with the bytes that arrived (doubling, up to the
//!   request's known size), never to an announced `Content-Length` up front; it stays within
//!   head + body + chunk metadata limits. An idle connection holds no buffer.
//! - A function's answer is at most `SCF_LEAN_MAX_RESPONSE_BYTES` (SCF's 6 MB); a larger one is
//!   replaced by a JSON 500.
//! - **The budget** (`SCF_LEAN_MEMORY_BUDGET_BYTES`): all read buffers and held answers
//!   together, a connection's first read buffer included. Each connection gets the room the
//!   others leave. Past 256 KiB a connection grows only while all together stay within three
//!   quarters of the budget, so that a few large uploads held open leave the last quarter to
//!   small requests. The default is half the instance's memory limit — its cgroup's, read when
//!   the loop is first idle, off the cold start — and 32 MiB until then or without one: half of
//!   SCF's smallest instance, the other half left to the function.
//! - **Who gives way when it is full.** A connection that needs more than the room left — a
//!   read buffer to take or grow, or room for the answer to a complete request — makes the
//!   partial requests of others give way: those still arriving that hold at most 256 KiB
//!   (heads, small bodies, uploads that stopped early), the one whose bytes last arrived longest
//!   ago first. Each is answered 503 (try again) and closed, and its memory is back (on glibc
//!   the heap trimmed) before the other takes any, so the budget holds at every moment. Only if
//!   nothing can give way is the request itself refused: a read that would grow past the room
//!   gets 503 and the connection closes; an answer that would not fit becomes a 503 (the
//!   connection kept). Why: with the budget shared first come, first served, whoever holds
//!   memory refuses everyone else — 600 connections holding 40 KB each of an announced 5 MB
//!   body (24 MB sent) took the 32 MiB, and every `GET` was answered 503 for as long as they
//!   held, up to the body deadline; the quarter kept for small requests guarded only against
//!   holders past 256 KiB. Holding memory without progress is the attack, and a request still
//!   arriving has been accepted by no one: answering it 503 loses nothing, while a request that
//!   arrives whole is served in the same turn and gives its memory back at once. The stalest
//!   gives way first, so a client that is sending keeps its place and one that stopped (or
//!   trickles a byte now and then) loses it to whoever needs the room. Large uploads do not
//!   give way — they keep to their three quarters, end at their body deadline, and never push
//!   each other out — and answers under way never do: their function has run. (So clients that
//!   take no answer they asked for, with their windows kept small, can still hold the budget
//!   until the body timeout: docs/HOSTILE.md has that attack and the others left.)
//! - Refusing, rather than pausing the reads until memory frees (backpressure): a paused upload
//!   still holds its buffer, its descriptor and its place until its deadline, while the 503
//!   frees them at once and tells the caller now. SCF sends one event at a time per instance by
//!   default, so the budget is met only under abuse or by bursts of large requests on a
//!   concurrent web function, where an immediate, retryable answer is the useful one. A
//!   connection closing after an error answer gives its memory back at once, not after its
//!   linger time. What the allocator adds to each buffer (musl rounds 64 KiB up to 73 KiB) and
//!   the kernel's socket buffers are outside the budget.
//! - Log lines wait in at most 64 KiB per descriptor; past it they are dropped and counted.
//! - Time bounds memory too: a connection that never speaks is closed after
//!   `SCF_LEAN_FIRST_BYTE_TIMEOUT_MS`, a head must arrive within `SCF_LEAN_HEAD_TIMEOUT_MS`, a
//!   body within `SCF_LEAN_BODY_DEADLINE_MS` (and never stall for `SCF_LEAN_BODY_TIMEOUT_MS`).
//!
//! ## Guarantees
//! - A steady stream of keep-alive requests through the raw-bytes API allocates nothing: buffers
//!   are reused. A connection holds them only while a request or response is in flight; idle,
//!   it lends them to the next connection, so memory follows requests in flight, not
//!   connections open.
//! - No input from a client or the platform panics the server; every error response is
//!   complete JSON with a `Content-Length`; after a framing error the connection closes.
//! - The credentials in `X-Scf-Secret-Id`, `X-Scf-Secret-Key` and `X-Scf-Session-Token` are
//!   never logged, echoed by the server, or printed by `Debug`.
//! - A context header sent twice never reaches the function: the request is answered 400
//!   naming the header (never its values) and logged at WARN. On a web function API Gateway
//!   passes the client's headers through, so a client could put its own request id or
//!   credentials in front of SCF's or behind them; SCF sets each once, so a second is a
//!   forgery. What SCF sets on every request is then SCF's; a header SCF leaves out, a client
//!   can still send once: `X-Scf-Trigger-Src` (SCF sets it for timers only, so `is_timer()` on
//!   a web function may be the caller's word) and the credential headers of a function SCF
//!   gives none (no execution role). A web function authenticates its callers itself and never
//!   takes a context field as proof of who called.
//! - No client byte can end a log line, forge another or drive a terminal: text lines show the
//!   C0 and C1 controls, DEL, U+2028/U+2029 and the bidirectional marks and overrides as `?`, JSON lines
//!   escape them.
//! - A panic in a function is answered with a 500 and logged with the request id, on whatever
//!   thread the call runs; the server goes on serving (the function's own state is whatever the
//!   panic left). A stack overflow ends the process (SIGSEGV), after a line on stderr.
//! - SIGTERM gives one grace period (`SCF_LEAN_SHUTDOWN_GRACE_MS`) in total to whatever is in
//!   flight — calls on workers, streams, a call or `init` holding the loop — then the process
//!   exits (a timer armed by the signal handler ends it 100 ms after the grace period if a call
//!   holds the loop). A second SIGTERM or SIGINT exits at once with 128 + the signal.
//! - Logging never blocks serving: lines go out only as far as the pipe takes them without
//!   blocking, so a log reader that stalls costs lines (counted), never requests or SIGTERM.
//! - One client cannot hold the loop: a connection gets at most 16 requests served, 16 reads,
//!   16 discarding reads or 16 stream batches per turn, then the others get theirs, and it goes
//!   on next turn. (An inline call holds the loop while it runs: that is the default's bargain,
//!   and why waiting calls belong on workers.) A stream never holds it: its reader's pace
//!   reaches only its own producer.
//! - A stream holds at most `SCF_LEAN_STREAM_BUFFER_BYTES` queued (and its largest piece), inside
//!   the memory budget, where one whose client reads nothing gives way to others like a partial
//!   request; at most `SCF_LEAN_MAX_STREAMS` producers run at once. It is cut off when its
//!   client leaves (its hang-up, at once), stops reading for
//!   `SCF_LEAN_BODY_TIMEOUT_MS` with bytes waiting, at the invocation's time limit
//!   (`X-Scf-Timeout`, else `SCF_LEAN_TIME_LIMIT_MS`) and at the end of a shutdown's grace; an
//!   error after it began cuts the body off, so a client never takes a partial answer for a
//!   whole one.
//!
//! ## Non-goals
//! HTTP/2, TLS (API Gateway terminates it), an async runtime (a blocking call is a plain call,
//! on a worker if it must not hold the others), I/O on worker threads (the loop alone reads and
//! writes sockets), threads before they are needed (the default path starts none), a stream
//! borrowing its request (a producer owns what it uses: it runs after the function returned).

#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod base64;
#[cfg(any(feature = "log", feature = "tracing"))]
mod bridge;
mod buf;
mod call;
mod chunked;
pub mod config;
mod conn;
mod context;
mod date;
mod dispatch;
mod entry;
mod error;
#[cfg(feature = "events")]
pub mod events;
mod function;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
mod invoke;
mod job;
pub mod log;
mod logger;
#[cfg(any(test, feature = "fuzzing"))]
mod mem;
mod panic_hook;
mod pool;
mod redact;
mod request;
mod response;
mod scf;
mod scope;
mod server;
mod stream;
mod sys;
pub mod testing;
mod uri;
mod version;
mod wake;

/// The platform served: Tencent Cloud SCF. Another platform is a sibling of `scf.rs` with the
/// same items, named here instead.
use scf as platform;

pub use crate::log::{Format, Level};
pub use config::{Config, ConfigError};
pub use context::{Context, Credentials};
pub use entry::{run, run_as, start};
pub use error::{Error, from_json};
pub use function::{
    Concurrent, EventFn, Function, HttpFn, JsonFn, concurrent, event_fn, http_fn, json_fn,
};
#[doc(hidden)]
pub use logger::__log;
pub use platform::{Env, env, is_secret_header};
pub use request::{Headers, Request};
pub use response::Response;
pub use server::{ACCEPT_RETRY, Server, StopHandle};
pub use stream::{BodyStream, Sse};
pub use sys::{Args, exit};
pub use uri::{QueryParams, Segments};
pub use version::Identity;
