//! The server's log: its [`Level`]s and [`Format`]s, and — with the `log` or `tracing`
//! feature — the records of those facades written through it.
//!
//! Lines go to stdout and stderr only (SCF collects both and reads nothing else), in the shape
//! `SCF_LEAN_LOG_FORMAT` names (`text` or `json`), at the level `SCF_LEAN_LOG_LEVEL` keeps
//! (`off`, `error`, `warn`, `info`, `debug`), like the AWS Lambda runtime's
//! `AWS_LAMBDA_LOG_FORMAT`/`AWS_LAMBDA_LOG_LEVEL`. A function writes its own lines with
//! [`info!`](crate::info!) and its siblings; the README's Logging section has the whole table.
//!
//! How it is written: one writer for the whole server, in this one module. Lines are built by
//! hand into a reused buffer with `itoa` (no `std::fmt` on the request path) and written once
//! per turn of the event loop, so a burst of requests costs one `write` of their access lines.
//! Error lines go to stderr at once.
//!
//! Writing never blocks the loop: each descriptor's lines wait in a buffer of at most 64 KiB
//! and go out only as far as the pipe takes them at once (through a description of the pipe
//! of our own, non-blocking: `sys::log_write`). When the reader stalls, the
//! buffer fills, further lines are dropped and counted, and once the pipe drains a line says
//! how many were lost. SIGTERM and every request are served meanwhile.
//!
//! Only the request id, method, path (never the query), status, sizes and times of a request
//! are ever written: header values other than the request id, and so the credentials, never are.
//!
//! ## The `log` and `tracing` facades (features `log` and `tracing`, off by default)
//! With the feature on, records of the [`log`](https://docs.rs/log) facade and events of
//! [`tracing`](https://docs.rs/tracing), from the function and from every crate it uses, are
//! lines of this log: the same level filter, format and never-blocking buffer as
//! `scf_lean::info!`, with the request id of the call they happened in — on the loop's thread,
//! on a worker ([`concurrent`](crate::concurrent)) or in a stream's producer — and their target
//! (the module they came from). Nothing to call: the server installs the logger (and the
//! subscriber) when it starts, before [`Function::init`](crate::Function::init) runs.
//! `scf_lean::log::init()` installs them earlier, for records made before the server starts.
//!
//! ```text
//! INFO [8c6f-41] shop::pay: charged user=7 cents=1250
//! {"level":"INFO","time":"2026-12-02T10:00:00.000Z","requestId":"8c6f-41","msg":"charged","target":"shop::pay","user":7,"cents":1250}
//! ```
//!
//! A `tracing` event's fields follow its message as `key=value` (a string quoted) in text, and as
//! members of the line in JSON, where a field named like one of the line's own members (`level`,
//! `time`, `requestId`, `msg`, `target`) is written as `field.<name>`. Spans are not recorded: an
//! event inside one has its own fields, not the span's. `trace` records and events are never
//! written (`SCF_LEAN_LOG_LEVEL` stops at `debug`), nor formatted. A record outside any call (while
//! the function is built, in its `init`, on a thread of its own) has no request id.

use std::ffi::c_int;
use std::time::{Duration, SystemTime};

use crate::date;
use crate::version::{COMMIT, Identity, VERSION};

/// How much is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing at all.
    Off,
    /// 5xx answers and panics of the function, start-up failures.
    Error,
    /// Also the 4xx answers of the function (the caller's mistake, not the function's).
    Warn,
    /// Also the start-up line and one access line per request (the default).
    Info,
    /// Also the reason of each protocol error and connection events.
    Debug,
}

impl Level {
    /// `off`, `error`, `warn`, `info` or `debug`, in any case.
    pub fn parse(s: &str) -> Option<Level> {
        [
            ("off", Level::Off),
            ("error", Level::Error),
            ("warn", Level::Warn),
            ("info", Level::Info),
            ("debug", Level::Debug),
        ]
        .into_iter()
        .find(|(n, _)| s.trim_ascii().eq_ignore_ascii_case(n))
        .map(|(_, l)| l)
    }

    fn name(self) -> &'static str {
        match self {
            Level::Off => "OFF",
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

/// The shape of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `INFO [request-id] POST /event-invoke 200 1234B 56us`
    Text,
    /// One JSON object per line: `{"level":"INFO","time":…,"requestId":…,"msg":…}`.
    Json,
}

impl Format {
    /// `text` or `json`, in any case.
    pub fn parse(s: &str) -> Option<Format> {
        match s.trim_ascii() {
            t if t.eq_ignore_ascii_case("text") => Some(Format::Text),
            t if t.eq_ignore_ascii_case("json") => Some(Format::Json),
            _ => None,
        }
    }
}

/// Installs scf-lean's logger for the `log` facade and its subscriber for `tracing` (each with
/// its feature) now, so that records made before the server starts — while the function is
/// built — are written too; the server installs them when it starts anyway (before
/// [`Function::init`](crate::Function::init)), so most functions never call it. Until a server
/// starts, lines follow `SCF_LEAN_LOG_LEVEL` and `SCF_LEAN_LOG_FORMAT` as set in the
/// environment, and have no request id.
///
/// Called again, or after the program installed a logger or subscriber of its own, it does
/// nothing: the first one installed stays (and a program that wants its own installs it before
/// the server starts).
///
/// ```
/// scf_lean::log::init();
/// // INFO [-] my_function: loading the price list
/// # #[cfg(feature = "log")]
/// log::info!("loading the price list");
/// // INFO [-] my_function: price list loaded items=120
/// # #[cfg(feature = "tracing")]
/// tracing::info!(items = 120, "price list loaded");
/// ```
#[cfg(any(feature = "log", feature = "tracing"))]
pub fn init() {
    crate::bridge::init();
}

/// One request, as its access line tells it.
pub(crate) struct Access<'a> {
    /// `Info`; for a streamed answer cut off, `Warn` or `Error` as its cause deserves.
    pub level: Level,
    pub request_id: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub bytes: usize,
    pub elapsed: Duration,
    /// Why a streamed body was cut off (the client left, the function failed…); `None` when
    /// the answer went out whole.
    pub cut: Option<&'static str>,
}

/// The most bytes of log lines waiting for one descriptor; later lines are dropped (and counted)
/// until it drains.
pub(crate) const LOG_BUFFER: usize = 64 * 1024;

thread_local! {
    /// Whether this thread runs a server's loop, which a log line must never hold up.
    static ON_LOOP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Lines written outside the loop's buffers ([`write_at_once`]) that the loop's thread dropped
/// rather than wait: the next [`Log::flush`] with room counts them in its note.
static DROPPED_AT_ONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// This thread runs a server's loop from now on.
pub(crate) fn serving_on_this_thread() {
    ON_LOOP.with(|on| on.set(true));
}

/// One line outside an invocation (outside the loop's buffers: a record while the function is
/// built, on a thread of its own, or dropped by the loop between calls), written whole as far as
/// the descriptor lets it: on the loop's thread never waiting (what does not go at once is
/// dropped and counted), on any other thread waiting for the pipe as a blocking write would.
#[cold]
pub(crate) fn write_at_once(fd: c_int, mut line: &[u8]) {
    use std::io::ErrorKind;
    while !line.is_empty() {
        match crate::sys::log_write(fd, line) {
            Ok(0) => return,
            Ok(n) => line = &line[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if ON_LOOP.with(std::cell::Cell::get) {
                    DROPPED_AT_ONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
                crate::sys::wait_writable(fd);
            }
            Err(_) => return,
        }
    }
}

/// The note that says how many lines were lost, before their number.
pub(crate) const DROPPED_NOTE: &str =
    "log lines dropped while the log pipe was full (or longer than 64 KiB): ";

/// Lines waiting for one descriptor (stdout or stderr).
struct Pipe {
    fd: c_int,
    buf: Vec<u8>,
    /// Lines dropped since the buffer was last empty.
    dropped: u64,
}

impl Pipe {
    fn new(fd: c_int) -> Pipe {
        Pipe {
            fd,
            buf: Vec::new(),
            dropped: 0,
        }
    }

    /// Keeps the line appended from `from` if the buffer still holds it within `LOG_BUFFER`;
    /// otherwise takes it back off and counts it.
    fn keep_or_drop(&mut self, from: usize) {
        if self.buf.len() > LOG_BUFFER {
            self.buf.truncate(from);
            self.dropped += 1;
            // A huge line leaves no huge buffer behind.
            self.buf.shrink_to(LOG_BUFFER);
        }
    }

    /// Says how many lines were dropped, in a line of `level` (out of line: a log pipe that
    /// keeps up never runs it).
    #[cold]
    #[inline(never)]
    fn note_dropped(&mut self, format: Format, level: Level) {
        let n = std::mem::take(&mut self.dropped);
        let mut msg = String::from(DROPPED_NOTE);
        msg.push_str(itoa::Buffer::new().format(n));
        begin_into(&mut self.buf, format, level, None);
        match format {
            Format::Text => self.buf.extend_from_slice(msg.as_bytes()),
            Format::Json => {
                self.buf.extend_from_slice(b"\"msg\":");
                push_str(&mut self.buf, &msg);
                self.buf.push(b'}');
            }
        }
        self.buf.push(b'\n');
        self.flush();
    }

    /// Writes as much as the descriptor takes without blocking ([`crate::sys::log_write`]). A
    /// descriptor that fails (closed, a broken pipe) takes everything: a log that cannot be
    /// written must not stop the server.
    fn flush(&mut self) {
        let mut sent = 0;
        while sent < self.buf.len() {
            let mut end = self.buf.len().min(sent + crate::sys::PIPE_BUF);
            if end < self.buf.len() {
                // Whole lines per write (each under PIPE_BUF is atomic): a line a function logs
                // from another thread never lands inside one of these.
                if let Some(nl) = self.buf[sent..end].iter().rposition(|&b| b == b'\n') {
                    end = sent + nl + 1;
                }
            }
            match crate::sys::log_write(self.fd, &self.buf[sent..end]) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => sent = self.buf.len(),
            }
        }
        self.buf.drain(..sent);
    }
}

/// The server's log writer.
pub(crate) struct Log {
    level: Level,
    format: Format,
    /// Lines for stdout, written by [`Log::flush`] once per loop turn.
    out: Pipe,
    /// Error lines, for stderr.
    err: Pipe,
}

impl Log {
    pub fn new(level: Level, format: Format) -> Log {
        Log {
            level,
            format,
            out: Pipe::new(1),
            err: Pipe::new(2),
        }
    }

    /// A log whose lines, of every level, go to `fd` (a file a test reads back), where a server
    /// log's go to stdout and stderr: only for `testing.rs`, whose capture lends one to a call.
    /// With one descriptor for both, a line keeps its place among the others: error lines are
    /// written at once, after the lines waiting before them.
    pub(crate) fn writing_to(level: Level, format: Format, fd: c_int) -> Log {
        Log {
            level,
            format,
            out: Pipe::new(fd),
            err: Pipe::new(fd),
        }
    }

    pub fn enabled(&self, level: Level) -> bool {
        level != Level::Off && level <= self.level
    }

    /// A record of the `log` or `tracing` facade at `level` about one request, like
    /// [`Log::line`]: with its target and fields.
    #[cfg(any(feature = "log", feature = "tracing"))]
    pub fn record(&mut self, level: Level, request_id: Option<&str>, record: &Record<'_>) {
        self.emit(level, |buf, format| {
            render_record(buf, format, level, request_id, record)
        });
    }

    /// The start-up line: who is running (the function and scf-lean: version, commit), the
    /// address, µs from the start of `main` to listening and the process's CPU µs since it
    /// started (fork, exec, page faults and all).
    pub fn startup(
        &mut self,
        me: Option<&Identity>,
        port: u16,
        ready: Duration,
        cpu: Option<Duration>,
    ) {
        if !self.enabled(Level::Info) {
            return;
        }
        let us = ready.as_micros().min(u128::from(u64::MAX)) as u64;
        let cpu_us = cpu.map(|c| c.as_micros().min(u128::from(u64::MAX)) as u64);
        let mut line = begin(self.format, Level::Info, None);
        match self.format {
            Format::Text => {
                Identity::describe_into(me, &mut line);
                line.extend_from_slice(b" listening on 0.0.0.0:");
                push_num(&mut line, port);
                line.extend_from_slice(b" in ");
                push_num(&mut line, us);
                line.extend_from_slice(b" us");
                if let Some(cpu) = cpu_us {
                    line.extend_from_slice(b" (process CPU since start: ");
                    push_num(&mut line, cpu);
                    line.extend_from_slice(b" us)");
                }
            }
            Format::Json => {
                // The port first, where the text form names it: right after "listening".
                line.extend_from_slice(b"\"msg\":\"listening\",\"port\":");
                push_num(&mut line, port);
                line.push(b',');
                if let Some(me) = me.filter(|me| me.name != "scf-lean") {
                    for (key, value) in [
                        ("function", me.name),
                        ("functionVersion", me.version),
                        ("functionCommit", me.commit),
                    ] {
                        push_str(&mut line, key);
                        line.push(b':');
                        push_str(&mut line, value);
                        line.push(b',');
                    }
                }
                line.extend_from_slice(b"\"version\":");
                push_str(&mut line, VERSION);
                line.extend_from_slice(b",\"commit\":");
                push_str(&mut line, COMMIT);
                line.extend_from_slice(b",\"startupUs\":");
                push_num(&mut line, us);
                if let Some(cpu) = cpu_us {
                    line.extend_from_slice(b",\"processCpuUs\":");
                    push_num(&mut line, cpu);
                }
                line.push(b'}');
            }
        }
        line.push(b'\n');
        let from = self.out.buf.len();
        // Room for the access lines that follow (see `access`): no realloc on a request.
        self.out.buf.reserve(line.len().max(256));
        self.out.buf.extend_from_slice(&line);
        self.out.keep_or_drop(from);
        self.flush();
    }

    /// One access line per request, at its level (`info` unless a stream was cut off); to
    /// stderr at `error`.
    pub fn access(&mut self, a: &Access<'_>) {
        if a.level == Level::Info {
            self.write_access(a, Level::Info, None);
        } else {
            self.access_cut(a);
        }
    }

    /// The access line of a stream cut off, at WARN or ERROR: out of line, off the request's code.
    #[cold]
    #[inline(never)]
    fn access_cut(&mut self, a: &Access<'_>) {
        self.write_access(a, a.level, a.cut);
        if a.level == Level::Error {
            self.flush();
        }
    }

    /// The access line at `level`, with why the answer was `cut` off (if it was).
    #[inline(always)]
    fn write_access(&mut self, a: &Access<'_>, level: Level, cut: Option<&str>) {
        if !self.enabled(level) {
            return;
        }
        let us = a.elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        let pipe = if level == Level::Error {
            &mut self.err
        } else {
            &mut self.out
        };
        // The start-up line made room for it (`startup`).
        let mut line = std::mem::take(&mut pipe.buf);
        let from = line.len();
        begin_into(&mut line, self.format, level, a.request_id);
        match self.format {
            Format::Text => {
                push_clean(&mut line, a.method);
                line.push(b' ');
                push_clean(&mut line, a.path);
                line.push(b' ');
                push_num(&mut line, a.status);
                line.push(b' ');
                push_num(&mut line, a.bytes as u64);
                line.extend_from_slice(b"B ");
                push_num(&mut line, us);
                line.extend_from_slice(b"us");
                if let Some(why) = cut {
                    cut_text(&mut line, why);
                }
            }
            Format::Json => access_json(&mut line, a, us),
        }
        line.push(b'\n');
        pipe.buf = line;
        pipe.keep_or_drop(from);
    }

    /// A line at `level` about one request (`None` where the request id is not known), to stderr
    /// for errors (at once) and to stdout otherwise (at the end of the loop's turn).
    pub fn line(&mut self, level: Level, request_id: Option<&str>, msg: &str) {
        self.emit(level, |buf, format| {
            render(buf, format, level, request_id, msg)
        });
    }

    /// One line at `level`, rendered by `write` at the end of its pipe's buffer (stderr's for
    /// errors, written at once; stdout's for the others), kept or dropped whole.
    #[inline]
    fn emit(&mut self, level: Level, write: impl FnOnce(&mut Vec<u8>, Format)) {
        if !self.enabled(level) {
            return;
        }
        let format = self.format;
        let pipe = if level == Level::Error {
            &mut self.err
        } else {
            &mut self.out
        };
        let from = pipe.buf.len();
        write(&mut pipe.buf, format);
        pipe.keep_or_drop(from);
        if level == Level::Error {
            self.flush();
        }
    }

    /// Writes the waiting lines as far as stdout and stderr take them without blocking; once a
    /// buffer is empty again, says how many lines it dropped. Called once per loop turn: with
    /// nothing waiting (the usual case), four comparisons.
    #[inline]
    pub fn flush(&mut self) {
        let idle = |p: &Pipe| p.buf.is_empty() && p.dropped == 0;
        if idle(&self.out)
            && idle(&self.err)
            && DROPPED_AT_ONCE.load(std::sync::atomic::Ordering::Relaxed) == 0
        {
            return;
        }
        self.flush_waiting();
    }

    fn flush_waiting(&mut self) {
        self.out.dropped += DROPPED_AT_ONCE.swap(0, std::sync::atomic::Ordering::Relaxed);
        let format = self.format;
        for (pipe, level) in [(&mut self.out, Level::Info), (&mut self.err, Level::Error)] {
            pipe.flush();
            if pipe.buf.is_empty() && pipe.dropped > 0 {
                pipe.note_dropped(format, level);
            }
        }
    }

    /// The lines waiting for stdout and for stderr.
    #[cfg(test)]
    pub fn waiting(&self) -> (&[u8], &[u8]) {
        (&self.out.buf, &self.err.buf)
    }

    /// Writes what waits, giving slow readers up to `within`: for a process about to exit (a
    /// job, a failed init), which has no loop to come back to.
    pub fn drain(&mut self, within: std::time::Duration) {
        let until = std::time::Instant::now() + within;
        self.flush();
        while self.pending() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(1));
            self.flush();
        }
    }

    /// Moves the waiting lines (stdout's, stderr's) out into `into`'s buffers (empty): a call
    /// on a worker hands its lines to the loop, which writes them ([`Log::append`]).
    pub fn take_lines(&mut self, into: &mut (Vec<u8>, Vec<u8>)) {
        std::mem::swap(&mut self.out.buf, &mut into.0);
        std::mem::swap(&mut self.err.buf, &mut into.1);
    }

    /// Takes in lines another log made ([`Log::take_lines`]) behind its own, within
    /// [`LOG_BUFFER`] (past it they are dropped and counted); `lines` is left empty.
    pub fn append(&mut self, lines: &mut (Vec<u8>, Vec<u8>)) {
        for (pipe, more) in [(&mut self.out, &mut lines.0), (&mut self.err, &mut lines.1)] {
            if more.is_empty() {
                continue;
            }
            if pipe.buf.is_empty() {
                std::mem::swap(&mut pipe.buf, more);
            } else if pipe.buf.len() + more.len() <= LOG_BUFFER {
                pipe.buf.extend_from_slice(more);
            } else {
                pipe.dropped += more.iter().filter(|&&b| b == b'\n').count() as u64;
            }
            more.clear();
        }
    }

    /// Whether lines are waiting for a descriptor that did not take them yet.
    pub fn pending(&self) -> bool {
        !self.out.buf.is_empty() || !self.err.buf.is_empty()
    }
}

/// The fields of a JSON access line after the common ones.
#[cold]
#[inline(never)]
fn access_json(line: &mut Vec<u8>, a: &Access<'_>, us: u64) {
    line.extend_from_slice(b"\"msg\":\"request\",\"method\":");
    push_str(line, a.method);
    line.extend_from_slice(b",\"path\":");
    push_str(line, a.path);
    line.extend_from_slice(b",\"status\":");
    push_num(line, a.status);
    line.extend_from_slice(b",\"bytes\":");
    push_num(line, a.bytes as u64);
    line.extend_from_slice(b",\"us\":");
    push_num(line, us);
    if let Some(why) = a.cut {
        line.extend_from_slice(b",\"cut\":");
        push_str(line, why);
    }
    line.push(b'}');
}

/// How a streamed body was cut off, after the text access line's figures.
#[cold]
#[inline(never)]
fn cut_text(line: &mut Vec<u8>, why: &str) {
    line.extend_from_slice(b" cut off: ");
    line.extend_from_slice(why.as_bytes());
}

/// Appends one line: `msg` at `level` about the request `request_id`, in `format`.
pub(crate) fn render(
    v: &mut Vec<u8>,
    format: Format,
    level: Level,
    request_id: Option<&str>,
    msg: &str,
) {
    begin_into(v, format, level, request_id);
    match format {
        Format::Text => push_clean(v, msg),
        Format::Json => {
            v.extend_from_slice(b"\"msg\":");
            push_str(v, msg);
            v.push(b'}');
        }
    }
    v.push(b'\n');
}

/// A record of the `log` or `tracing` facade: where it came from, its message and, for a
/// `tracing` event, its fields.
#[cfg(any(feature = "log", feature = "tracing"))]
pub(crate) struct Record<'a> {
    /// The module path, or the target the record named.
    pub target: &'a str,
    pub msg: &'a str,
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub fields: &'a [Field],
}

/// One field of a `tracing` event.
#[cfg(any(feature = "log", feature = "tracing"))]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) struct Field {
    pub name: &'static str,
    pub value: Value,
}

/// A field's value, as the event recorded it (only `tracing` events have fields).
#[cfg(any(feature = "log", feature = "tracing"))]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) enum Value {
    /// A string: quoted in text, a JSON string.
    Str(String),
    /// What `Debug` or `Display` wrote: as it is in text, a JSON string.
    Text(String),
    Int(i128),
    Uint(u128),
    Float(f64),
    Bool(bool),
}

/// The members of a JSON line that a field cannot take: one named so is written `field.<name>`.
#[cfg(feature = "tracing")]
const OWN_MEMBERS: [&str; 5] = ["level", "time", "requestId", "msg", "target"];

/// Appends one line: `record` at `level` about the request `request_id`, in `format`. Text:
/// `INFO [id] target: message key=value`; JSON: `"msg"`, `"target"`, then a member per field.
#[cfg(any(feature = "log", feature = "tracing"))]
pub(crate) fn render_record(
    v: &mut Vec<u8>,
    format: Format,
    level: Level,
    request_id: Option<&str>,
    record: &Record<'_>,
) {
    begin_into(v, format, level, request_id);
    match format {
        Format::Text => {
            let start = v.len();
            if !record.target.is_empty() {
                push_clean(v, record.target);
                v.push(b':');
            }
            if !record.msg.is_empty() {
                if v.len() > start {
                    v.push(b' ');
                }
                push_clean(v, record.msg);
            }
            // Only `tracing` events have fields: a build without it carries none of this.
            #[cfg(feature = "tracing")]
            for field in record.fields {
                if v.len() > start {
                    v.push(b' ');
                }
                push_clean(v, field.name);
                v.push(b'=');
                match &field.value {
                    Value::Str(s) => push_str(v, s),
                    Value::Text(s) => push_clean(v, s),
                    value => push_scalar(v, value),
                }
            }
        }
        Format::Json => {
            v.extend_from_slice(b"\"msg\":");
            push_str(v, record.msg);
            v.extend_from_slice(b",\"target\":");
            push_str(v, record.target);
            #[cfg(feature = "tracing")]
            for field in record.fields {
                v.push(b',');
                if OWN_MEMBERS.contains(&field.name) {
                    let mut name = String::from("field.");
                    name.push_str(field.name);
                    push_str(v, &name);
                } else {
                    push_str(v, field.name);
                }
                v.push(b':');
                match &field.value {
                    Value::Str(s) | Value::Text(s) => push_str(v, s),
                    Value::Float(x) if !x.is_finite() => {
                        v.push(b'"');
                        push_scalar(v, &field.value);
                        v.push(b'"');
                    }
                    value => push_scalar(v, value),
                }
            }
            v.push(b'}');
        }
    }
    v.push(b'\n');
}

/// A number or a boolean, as text and JSON both write it: a float in the shortest form that
/// reads back the same (`0.5`, `1e300`), by `serde_json`'s own float writer (`std::fmt`'s would
/// add 14 KB to the binary); `NaN`, `inf` and `-inf` as words (JSON has no number for them:
/// the JSON line quotes them).
#[cfg(feature = "tracing")]
fn push_scalar(v: &mut Vec<u8>, value: &Value) {
    match *value {
        Value::Int(n) => push_num(v, n),
        Value::Uint(n) => push_num(v, n),
        Value::Float(x) if x.is_nan() => v.extend_from_slice(b"NaN"),
        Value::Float(x) if x.is_infinite() => {
            v.extend_from_slice(if x > 0.0 { b"inf" } else { b"-inf" });
        }
        Value::Float(x) => {
            let _ = serde_json::to_writer(&mut *v, &x);
        }
        Value::Bool(b) => v.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::Str(ref s) | Value::Text(ref s) => push_clean(v, s),
    }
}

fn begin(format: Format, level: Level, request_id: Option<&str>) -> Vec<u8> {
    let mut v = Vec::with_capacity(128);
    begin_into(&mut v, format, level, request_id);
    v
}

fn begin_into(v: &mut Vec<u8>, format: Format, level: Level, request_id: Option<&str>) {
    match format {
        Format::Text => {
            v.extend_from_slice(level.name().as_bytes());
            v.extend_from_slice(b" [");
            // Nor a space or a bracket: the id cannot end its field and forge the rest.
            let id = request_id.unwrap_or("-");
            if id.bytes().all(|b| b > b' ' && b < 0x7f && b != b']') {
                v.extend_from_slice(id.as_bytes());
            } else {
                push_cleaned(v, id, |c| c == ' ' || c == ']');
            }
            v.extend_from_slice(b"] ");
        }
        Format::Json => begin_json(v, level, request_id),
    }
}

// The JSON shape out of line: the text one (the default) keeps the request path's code within
// one 64 KiB window (src/hot-text.ld).

#[cold]
#[inline(never)]
fn begin_json(v: &mut Vec<u8>, level: Level, request_id: Option<&str>) {
    v.extend_from_slice(b"{\"level\":\"");
    v.extend_from_slice(level.name().as_bytes());
    v.extend_from_slice(b"\",\"time\":\"");
    date::rfc3339_millis(SystemTime::now(), v);
    v.extend_from_slice(b"\",\"requestId\":");
    match request_id {
        Some(id) => push_str(v, id),
        None => v.extend_from_slice(b"null"),
    }
    v.push(b',');
}

fn push_num(v: &mut Vec<u8>, n: impl itoa::Integer) {
    v.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Whether a character may not appear in a log line as it is: it ends a line or moves a
/// terminal's cursor — the C0 and C1 controls and DEL (NEL, U+0085, is a line break to many
/// log parsers, CSI, U+009B, starts a terminal escape), the line and paragraph separators
/// (U+2028, U+2029) — or reorders what follows on the screen (the bidirectional marks,
/// embeddings, overrides and isolates: U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069).
fn unsafe_in_log(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        )
}

/// A JSON string, escaped: besides what JSON requires (`"`, `\\`, C0 controls), every
/// [`unsafe_in_log`] character as `\uXXXX`, so that a line stays one line to any reader.
fn push_str(v: &mut Vec<u8>, s: &str) {
    v.push(b'"');
    let mut plain = 0;
    for (i, c) in s.char_indices() {
        let short: &[u8] = match c {
            '"' => b"\\\"",
            '\\' => b"\\\\",
            '\n' => b"\\n",
            '\r' => b"\\r",
            '\t' => b"\\t",
            c if unsafe_in_log(c) => b"",
            _ => continue,
        };
        v.extend_from_slice(&s.as_bytes()[plain..i]);
        plain = i + c.len_utf8();
        if short.is_empty() {
            let n = c as u32;
            v.extend_from_slice(b"\\u");
            v.extend(
                (0..4)
                    .rev()
                    .map(|k| b"0123456789abcdef"[(n >> (4 * k)) as usize & 15]),
            );
        } else {
            v.extend_from_slice(short);
        }
    }
    v.extend_from_slice(&s.as_bytes()[plain..]);
    v.push(b'"');
}

/// Text as is, but every [`unsafe_in_log`] character as `?`, so that no client byte can end the
/// line, forge another or drive the terminal that shows it.
fn push_clean(v: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| (b' '..0x7f).contains(&b)) {
        v.extend_from_slice(s.as_bytes());
    } else {
        push_cleaned(v, s, |_| false);
    }
}

/// [`push_clean`] for text that is not plain printable ASCII, and `?` for what `also` names too.
#[cold]
#[inline(never)]
fn push_cleaned(v: &mut Vec<u8>, s: &str, also: fn(char) -> bool) {
    let mut utf8 = [0u8; 4];
    for c in s.chars() {
        if unsafe_in_log(c) || also(c) {
            v.push(b'?');
        } else {
            v.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
    }
}

/// One start-up error line on stderr, `what: error`, in a single write, named after the
/// function; returns `code`.
#[cold]
#[inline(never)]
pub(crate) fn fail(
    identity: Option<&Identity>,
    what: &str,
    error: &dyn std::fmt::Display,
    code: u8,
) -> u8 {
    let name = identity.map_or("scf-lean", |me| me.name);
    let line = format!("{name}: {what}: {error}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(feature = "log", feature = "tracing"))]
    fn text(b: &[u8]) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    fn access() -> Access<'static> {
        Access {
            level: Level::Info,
            cut: None,
            request_id: Some("rid-1"),
            method: "POST",
            path: "/event-invoke",
            status: 200,
            bytes: 42,
            elapsed: Duration::from_micros(17),
        }
    }

    #[test]
    fn test_text_access_line() {
        let mut log = Log::new(Level::Info, Format::Text);
        log.access(&access());
        assert_eq!(
            log.out.buf,
            b"INFO [rid-1] POST /event-invoke 200 42B 17us\n"
        );
    }

    #[test]
    fn test_a_request_id_cannot_forge_the_text_line() {
        let mut log = Log::new(Level::Info, Format::Text);
        log.access(&Access {
            request_id: Some("r1] GET /admin 200 1B 1us\n[x"),
            ..access()
        });
        assert_eq!(
            log.out.buf,
            b"INFO [r1?\x3fGET?/admin?200?1B?1us?[x] POST /event-invoke 200 42B 17us\n"
        );
    }

    /// The characters that end a line or move a cursor, beyond ASCII's.
    const UNSAFE: &str = "\u{85}\u{9b}\u{80}\u{9f}\u{2028}\u{2029}\u{202e}\u{2066}\u{1b}\u{7f}\u{200e}\u{200f}\u{61c}";

    #[test]
    fn test_no_control_character_reaches_a_text_line() {
        let mut log = Log::new(Level::Debug, Format::Text);
        let id = "r\u{85}1\u{9b}31m é";
        log.access(&Access {
            request_id: Some(id),
            path: "/a\u{2028}b\u{202e}c",
            ..access()
        });
        log.line(Level::Debug, Some(id), &format!("m{UNSAFE}ü\u{a0}"));
        let text = String::from_utf8(log.out.buf.clone()).unwrap();
        assert_eq!(
            text,
            "INFO [r?1?31m?é] POST /a?b?c 200 42B 17us\nDEBUG [r?1?31m?é] m?????????????ü\u{a0}\n"
        );
        for line in text.lines() {
            assert!(line.chars().all(|c| !unsafe_in_log(c)), "{line:?}");
        }
    }

    #[test]
    fn test_json_lines_escape_what_ends_a_line_and_stay_json() {
        let mut log = Log::new(Level::Debug, Format::Json);
        let id = "r\u{85}1\"\\\u{9b}";
        let msg = format!("m{UNSAFE}\n\t\u{1}ü");
        log.access(&Access {
            request_id: Some(id),
            path: "/a\u{2028}b",
            ..access()
        });
        log.line(Level::Debug, Some(id), &msg);
        let text = String::from_utf8(log.out.buf.clone()).unwrap();
        let lines: Vec<&str> = text.trim_end().split('\n').collect();
        assert_eq!(lines.len(), 2, "{text:?}");
        for line in &lines {
            assert!(line.chars().all(|c| !unsafe_in_log(c)), "{line:?}");
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["requestId"], id);
        }
        assert!(
            lines[0].contains(r#""requestId":"r\u00851\"\\\u009b""#),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains(r#""path":"/a\u2028b""#), "{}", lines[0]);
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["msg"], msg);
        // Agrees with serde_json wherever serde_json's output is safe.
        for s in ["", "plain", "q\"b\\s/", "\u{0}\u{1f}\u{8}\u{c}", "日本語"] {
            let mut mine = Vec::new();
            push_str(&mut mine, s);
            let theirs: String = serde_json::from_slice(&mine).unwrap();
            assert_eq!(theirs, s);
        }
    }

    #[test]
    fn test_a_stream_cut_off_says_why_at_its_level_and_errors_go_to_stderr() {
        let cut = |level| Access {
            level,
            cut: Some("the client left"),
            ..access()
        };
        let mut log = Log::new(Level::Warn, Format::Text);
        log.access(&access());
        log.access(&cut(Level::Warn));
        assert_eq!(
            log.out.buf,
            b"WARN [rid-1] POST /event-invoke 200 42B 17us cut off: the client left\n"
        );
        let mut log = Log::new(Level::Info, Format::Json);
        log.err.fd = -1; // an error line is flushed at once: kept here, where it can be read
        log.access(&cut(Level::Error));
        assert!(log.out.buf.is_empty());
        let v: serde_json::Value = serde_json::from_slice(&log.err.buf).unwrap();
        assert_eq!(
            (v["level"].as_str(), v["cut"].as_str()),
            (Some("ERROR"), Some("the client left"))
        );
    }

    #[test]
    fn test_json_access_line_parses() {
        let mut log = Log::new(Level::Info, Format::Json);
        log.access(&access());
        let v: serde_json::Value = serde_json::from_slice(&log.out.buf).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["requestId"], "rid-1");
        assert_eq!(v["status"], 200);
        assert_eq!(v["us"], 17);
        assert_eq!(v["time"].as_str().unwrap().len(), 24);
    }

    #[test]
    fn test_levels_filter() {
        let mut log = Log::new(Level::Error, Format::Text);
        log.access(&access());
        log.line(Level::Debug, None, "x");
        assert!(log.out.buf.is_empty());
        let mut log = Log::new(Level::Off, Format::Text);
        assert!(!log.enabled(Level::Error));
        log.line(Level::Info, None, "x");
        assert!(log.out.buf.is_empty());
        let mut log = Log::new(Level::Debug, Format::Text);
        log.line(Level::Debug, Some("r"), "bad\nline");
        assert_eq!(log.out.buf, b"DEBUG [r] bad?line\n");
    }

    #[cfg(any(feature = "log", feature = "tracing"))]
    #[test]
    fn test_a_facades_record_has_its_target_in_text_and_json() {
        let record = Record {
            target: "shop::pay",
            msg: "charged\nTWICE",
            fields: &[],
        };
        let mut log = Log::new(Level::Info, Format::Text);
        log.record(Level::Info, Some("r-1"), &record);
        log.record(Level::Debug, Some("r-1"), &record);
        log.record(
            Level::Warn,
            None,
            &Record {
                target: "",
                msg: "no target",
                fields: &[],
            },
        );
        assert_eq!(
            text(&log.out.buf),
            "INFO [r-1] shop::pay: charged?TWICE\nWARN [-] no target\n"
        );
        let mut log = Log::new(Level::Info, Format::Json);
        log.record(Level::Info, Some("r-1"), &record);
        let line = text(&log.out.buf);
        assert!(
            line.ends_with(
                "\"requestId\":\"r-1\",\"msg\":\"charged\\nTWICE\",\"target\":\"shop::pay\"}\n"
            ),
            "{line}"
        );
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["level"], "INFO");
        // Errors to stderr, at once.
        let mut log = Log::new(Level::Info, Format::Text);
        log.err.fd = -1;
        log.record(Level::Error, Some("r-2"), &record);
        assert_eq!(text(&log.err.buf), "ERROR [r-2] shop::pay: charged?TWICE\n");
    }

    #[cfg(feature = "tracing")]
    #[test]
    fn test_an_events_fields_follow_its_message_as_key_value_and_json_members() {
        let fields = [
            Field {
                name: "user",
                value: Value::Str("ada \"l\"\n".into()),
            },
            Field {
                name: "cents",
                value: Value::Int(-1250),
            },
            Field {
                name: "big",
                value: Value::Uint(u128::MAX),
            },
            Field {
                name: "ratio",
                value: Value::Float(0.25),
            },
            Field {
                name: "odd",
                value: Value::Float(f64::NAN),
            },
            Field {
                name: "ok",
                value: Value::Bool(true),
            },
            Field {
                name: "card",
                value: Value::Text("Some(Visa)\u{202e}".into()),
            },
            Field {
                name: "msg",
                value: Value::Int(1),
            },
        ];
        let record = Record {
            target: "shop::pay",
            msg: "charged",
            fields: &fields,
        };
        let mut log = Log::new(Level::Info, Format::Text);
        log.record(Level::Info, Some("r-1"), &record);
        assert_eq!(
            text(&log.out.buf),
            "INFO [r-1] shop::pay: charged user=\"ada \\\"l\\\"\\n\" cents=-1250 \
             big=340282366920938463463374607431768211455 ratio=0.25 odd=NaN ok=true \
             card=Some(Visa)? msg=1\n"
        );
        // Without a message: the fields after the target.
        let mut log = Log::new(Level::Info, Format::Text);
        let bare = Record {
            msg: "",
            fields: &fields[5..6],
            ..record
        };
        log.record(Level::Info, None, &bare);
        assert_eq!(text(&log.out.buf), "INFO [-] shop::pay: ok=true\n");

        let mut log = Log::new(Level::Info, Format::Json);
        log.record(Level::Info, Some("r-1"), &record);
        let line = text(&log.out.buf);
        // The members in the event's order, after the line's own.
        let tail = r#""msg":"charged","target":"shop::pay","user":"ada \"l\"\n","cents":-1250,"big":340282366920938463463374607431768211455,"ratio":0.25,"odd":"NaN","ok":true,"card":"Some(Visa)\u202e","field.msg":1}"#;
        assert!(line.ends_with(&format!("{tail}\n")), "{line}");
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            (v["user"].as_str(), v["cents"].as_i64()),
            (Some("ada \"l\"\n"), Some(-1250))
        );
        assert_eq!(
            (v["msg"].as_str(), v["field.msg"].as_i64()),
            (Some("charged"), Some(1))
        );
    }

    #[test]
    fn test_a_line_past_the_buffer_is_dropped_and_leaves_no_huge_buffer_behind() {
        let mut log = Log::new(Level::Info, Format::Text);
        log.line(Level::Info, Some("r"), "kept");
        log.line(Level::Info, Some("r"), &"x".repeat(50 * LOG_BUFFER));
        assert_eq!(log.waiting().0, b"INFO [r] kept\n");
        assert_eq!(log.out.dropped, 1);
        assert!(
            log.out.buf.capacity() <= LOG_BUFFER,
            "{}",
            log.out.buf.capacity()
        );
    }

    #[test]
    fn test_parse_names() {
        assert_eq!(Level::parse("Info"), Some(Level::Info));
        assert_eq!(Level::parse("OFF"), Some(Level::Off));
        assert_eq!(Level::parse("trace"), None);
        assert_eq!(Format::parse("JSON"), Some(Format::Json));
        assert_eq!(Format::parse("yaml"), None);
    }
}
