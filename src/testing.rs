//! Testing a function the way SCF calls it: a [`TestServer`] serves it on an ephemeral loopback
//! port in a thread of the test process, sends it events with a realistic SCF context or plain
//! HTTP requests, and gives back each answer whole ([`TestResponse`]). It stops when dropped,
//! also when the test panics.
//!
//! ```
//! use scf_lean::testing::TestServer;
//!
//! let server = TestServer::start(scf_lean::json_fn(|n: u64, _ctx| Ok(n + 1)));
//! let r = server.event("41");
//! assert_eq!((r.status, r.text().as_str()), (200, "42"));
//! assert_eq!(server.event("no").status, 400);
//! ```
//!
//! What the function logs can be kept for the test to read ([`TestServer::builder`] with
//! [`capture_logs`](TestServerBuilder::capture_logs)), each line with its level and request id:
//!
//! ```
//! use scf_lean::{Level, testing::TestServer};
//!
//! let f = scf_lean::json_fn(|cents: u64, _ctx| {
//!     scf_lean::info!("charged {cents} cents");
//!     Ok(cents)
//! });
//! let server = TestServer::builder(f).capture_logs(Level::Info).start();
//! server.event_with("1250", &[("X-Scf-Request-Id", "r-1")]);
//! assert!(server.logged(Level::Info, "r-1", "charged 1250 cents"), "{:?}", server.logs());
//! ```
//!
//! In-process rather than the built binary: a server starts in microseconds, needs no release or
//! musl build and no port agreed in advance, serves the very function value the test built
//! (with its fakes), and a panic in it shows in the test's own output with its location. It is
//! the same server as in production — the same loop, framing and limits — only not started from
//! `main`. What only the binary shows (the entry, the start-up line, the image as SCF runs it)
//! is the job of an image test.

use std::cell::RefCell;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use crate::log::Log;
use crate::scope::{self, Scope};
use crate::{
    Config, Context, Error, Format, Function, Level, Request, Response, Server, StopHandle,
    panic_hook,
};

pub mod image;

/// How long one request may take before the test fails (it never hangs).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The fake temporary credentials every event carries ([`SCF_CONTEXT`]): a function must never
/// echo or log them ([`TestResponse::assert_no_secrets`]).
pub const SECRETS: [&str; 3] = [
    "AKIDtestSecretId0000000000000000",
    "testSecretKey000000000000000000",
    "testSessionToken0000000000000000000000000000",
];

/// The `X-Scf-*` headers SCF sends with every invocation of an image function, with test
/// values (the request id, `X-Scf-Request-Id`, is added per request: `test-request-<n>`).
pub const SCF_CONTEXT: &[(&str, &str)] = &[
    ("X-Scf-Memory", "128"),
    ("X-Scf-Timeout", "3000"),
    ("X-Scf-Version", "$LATEST"),
    ("X-Scf-Name", "test-function"),
    ("X-Scf-Namespace", "default"),
    ("X-Scf-Region", "ap-guangzhou"),
    ("X-Scf-Appid", "1250000000"),
    ("X-Scf-Uin", "100000000001"),
    ("X-Scf-Secret-Id", SECRETS[0]),
    ("X-Scf-Secret-Key", SECRETS[1]),
    ("X-Scf-Session-Token", SECRETS[2]),
];

/// A function served on `127.0.0.1:<ephemeral port>` for the life of the value.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    stop: StopHandle,
    thread: Option<JoinHandle<()>>,
    requests: AtomicU64,
    /// Where the function's lines go, with [`TestServerBuilder::capture_logs`].
    capture: Option<Arc<Capture>>,
}

/// A [`TestServer`] to start: its function, its settings, and whether what the function logs is
/// kept for the test. Made by [`TestServer::builder`].
#[must_use = "a builder serves nothing until it is started"]
pub struct TestServerBuilder<F> {
    f: F,
    config: Config,
    capture: Option<Level>,
}

impl<F: Function + Send + 'static> TestServerBuilder<F> {
    /// Serves with these settings (the port is ignored: an ephemeral one is taken), as
    /// [`TestServer::with_config`]. Their log level and format are those of what the server
    /// writes to stdout and stderr: its own lines (access lines, an `Err`'s or a panic's line)
    /// and, unless [`capture_logs`](TestServerBuilder::capture_logs) keeps them, the
    /// function's. The builder's default settings are [`TestServer::start`]'s, logging off.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Keeps what the function logs at `level` and above for [`TestServer::logs`], instead of
    /// writing it: `scf_lean::info!` and its siblings, and with the `log` and `tracing`
    /// features those facades' records — in its `init` (no request id), in every call with the
    /// call's request id (on the server's thread, on a worker, in a stream's producer), in
    /// order. A line is there by the time the answer of its call has arrived. The server's own
    /// lines are not kept (the answer tells what they would), nor are lines from a thread of
    /// the function's own, outside any call (those are written to stdout as usual).
    ///
    /// The lines go to a temporary file of the test process's own (unlinked when made), a
    /// call's at its end and its error lines at once, so that lines from calls running at once
    /// never mix. As in production, a call that logs more than 64 KiB before its lines are
    /// written loses the rest, and a line says how many.
    pub fn capture_logs(mut self, level: Level) -> Self {
        self.capture = Some(level);
        self
    }

    /// Runs the function's [`Function::init`] on the test's thread and serves it on
    /// `127.0.0.1:<ephemeral port>` from a thread of its own.
    ///
    /// # Panics
    /// If the function's `init` fails (with its message) or panics, no loopback port can be
    /// bound (the machine is out of ports or descriptors), or, when capturing, no temporary
    /// file can be made.
    pub fn start(self) -> TestServer {
        let TestServerBuilder {
            mut f,
            config,
            capture,
        } = self;
        #[cfg(any(feature = "log", feature = "tracing"))]
        crate::bridge::started(capture.map_or(config.log_level, |c| c.max(config.log_level)));
        let capture = capture.map(|level| {
            let capture = Capture::new(level)
                .unwrap_or_else(|e| panic!("a temporary file for the captured log lines: {e}"));
            Arc::new(capture)
        });
        match &capture {
            // The function's init runs here, on the test's thread: a failure fails the test
            // with its reason (a panic shows as the test's own).
            None => {
                if let Err(e) = f.init() {
                    panic!("the function's init failed: {}", e.message());
                }
                serve(config, f, None)
            }
            Some(c) => {
                c.init(&mut f);
                let f = Captured {
                    f,
                    capture: c.clone(),
                };
                serve(config, f, capture)
            }
        }
    }
}

/// Binds a loopback port and serves `f` (whose init has run) from a thread of its own.
fn serve<F: Function + Send + 'static>(
    config: Config,
    f: F,
    capture: Option<Arc<Capture>>,
) -> TestServer {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut server = Server::bind_to(config, any).expect("bind a loopback port");
    server.initialized = true;
    let addr = server.local_addr();
    let stop = server
        .stop_handle()
        .expect("a stop handle for the test server");
    let thread = std::thread::Builder::new()
        .name("scf-lean test server".into())
        .spawn(move || {
            server.serve(f);
        })
        .expect("spawn the test server's thread");
    TestServer {
        addr,
        stop,
        thread: Some(thread),
        requests: AtomicU64::new(0),
        capture,
    }
}

impl TestServer {
    /// Serves `f` with the default settings, logging off, after running its
    /// [`Function::init`] on the test's thread.
    ///
    /// # Panics
    /// If the function's `init` fails (with its message) or panics, or no loopback port can be
    /// bound (the machine is out of ports or descriptors).
    pub fn start<F: Function + Send + 'static>(f: F) -> TestServer {
        TestServer::builder(f).start()
    }

    /// Serves `f` with these settings (the port is ignored: an ephemeral one is taken). A
    /// function made with [`concurrent`](crate::concurrent) runs its calls on workers with
    /// `concurrency` above 1, as in production (`SCF_LEAN_CONCURRENCY`):
    ///
    /// ```
    /// use scf_lean::{Config, Level, testing::TestServer};
    /// let f = scf_lean::concurrent(scf_lean::http_fn(|_req, out| {
    ///     out.set_body_static(b"ok");
    ///     Ok(())
    /// }));
    /// let config = Config { concurrency: 8, log_level: Level::Off, ..Config::default() };
    /// let s = std::sync::Arc::new(TestServer::with_config(config, f));
    /// let calls: Vec<_> = (0..8)
    ///     .map(|_| {
    ///         let s = s.clone();
    ///         std::thread::spawn(move || s.get("/").text())
    ///     })
    ///     .collect();
    /// for c in calls {
    ///     assert_eq!(c.join().unwrap(), "ok");
    /// }
    /// ```
    ///
    /// # Panics
    /// As [`TestServer::start`].
    pub fn with_config<F: Function + Send + 'static>(config: Config, f: F) -> TestServer {
        TestServer::builder(f).config(config).start()
    }

    /// A server for `f` to set up before it starts: its settings
    /// ([`config`](TestServerBuilder::config)), and whether what the function logs is kept for
    /// the test ([`capture_logs`](TestServerBuilder::capture_logs)), then
    /// [`start`](TestServerBuilder::start). Without either it is [`TestServer::start`].
    ///
    /// ```
    /// use scf_lean::{Config, Level, testing::TestServer};
    ///
    /// let f = scf_lean::concurrent(scf_lean::http_fn(|req, out| {
    ///     scf_lean::warn!("no stock for {}", req.path());
    ///     out.set_status(404);
    ///     Ok(())
    /// }));
    /// let config = Config { concurrency: 4, log_level: Level::Off, ..Config::default() };
    /// let server = TestServer::builder(f)
    ///     .config(config)
    ///     .capture_logs(Level::Warn)
    ///     .start();
    /// let r = server.request("GET", "/pears", &[("X-Scf-Request-Id", "r-7")], b"");
    /// assert_eq!(r.status, 404);
    /// let line = &server.logs()[0];
    /// assert_eq!((line.level, line.request_id.as_deref()), (Level::Warn, Some("r-7")));
    /// assert_eq!(line.message, "no stock for /pears");
    /// ```
    pub fn builder<F: Function + Send + 'static>(f: F) -> TestServerBuilder<F> {
        TestServerBuilder {
            f,
            config: Config {
                log_level: Level::Off,
                ..Config::default()
            },
            capture: None,
        }
    }

    /// The lines the function logged so far, in order, as
    /// [`capture_logs`](TestServerBuilder::capture_logs) kept them.
    ///
    /// # Panics
    /// If the server does not capture its function's lines: start it with
    /// `TestServer::builder(f).capture_logs(level)`.
    pub fn logs(&self) -> Vec<LogLine> {
        let capture = self.capture.as_ref().expect(
            "TestServer::logs needs the lines captured: \
             TestServer::builder(f).capture_logs(level).start()",
        );
        let bytes = capture.read();
        bytes
            .split_inclusive(|&b| b == b'\n')
            .filter(|l| l.ends_with(b"\n"))
            .map(LogLine::parse)
            .collect()
    }

    /// Whether the function logged a line at `level`, with this request id (`None`: outside
    /// any call), whose message contains `text`.
    ///
    /// ```
    /// # use scf_lean::{Level, testing::TestServer};
    /// # let f = scf_lean::json_fn(|n: u64, _ctx| { scf_lean::info!("got {n}"); Ok(n) });
    /// let server = TestServer::builder(f).capture_logs(Level::Debug).start();
    /// server.event("7"); // request id test-request-1
    /// assert!(server.logged(Level::Info, "test-request-1", "got 7"), "{:?}", server.logs());
    /// assert!(!server.logged(Level::Info, None, "got 7"));
    /// ```
    ///
    /// # Panics
    /// As [`TestServer::logs`].
    pub fn logged<'i>(
        &self,
        level: Level,
        request_id: impl Into<Option<&'i str>>,
        text: &str,
    ) -> bool {
        let id = request_id.into();
        self.logs()
            .iter()
            .any(|l| l.level == level && l.request_id.as_deref() == id && l.message.contains(text))
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Invokes the event handler as SCF does: `POST /event-invoke` with `event` as the body and
    /// the [`SCF_CONTEXT`] headers, with a request id of its own.
    ///
    /// # Panics
    /// If the server does not answer within [`TIMEOUT`], or answers with something that is
    /// not an HTTP/1.1 response.
    pub fn event(&self, event: impl AsRef<[u8]>) -> TestResponse {
        self.event_with(event, &[])
    }

    /// [`TestServer::event`] with these headers as well; one named like a context header
    /// replaces it (`("X-Scf-Trigger-Src", "timer")`, `("X-Scf-Request-Id", "r-1")`).
    ///
    /// # Panics
    /// As [`TestServer::event`].
    pub fn event_with(&self, event: impl AsRef<[u8]>, headers: &[(&str, &str)]) -> TestResponse {
        let id = format!("test-request-{}", self.requests.load(Ordering::Relaxed) + 1);
        self.request("POST", "/event-invoke", &event_headers(&id, headers), event)
    }

    /// `GET target` (path and query).
    ///
    /// # Panics
    /// As [`TestServer::event`].
    pub fn get(&self, target: &str) -> TestResponse {
        self.request("GET", target, &[], b"")
    }

    /// Any request, as API Gateway passes an HTTP-triggered one through: `method target`, these
    /// header fields (`Host` and `Content-Length` are added), and `body`.
    ///
    /// # Panics
    /// As [`TestServer::event`].
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: impl AsRef<[u8]>,
    ) -> TestResponse {
        self.requests.fetch_add(1, Ordering::Relaxed);
        send(self.addr, method, target, headers, body.as_ref())
            .unwrap_or_else(|e| panic!("{method} {target} to the test server: {e}"))
    }
}

impl Drop for TestServer {
    /// Stops the server and waits for its thread, also while a test panics.
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One line the function logged, as [`TestServer::logs`] gives it back.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogLine {
    /// Its level.
    pub level: Level,
    /// The request id of the call it was logged in; `None` outside any call (in `init`).
    pub request_id: Option<String>,
    /// The message, as formatted.
    pub message: String,
    /// Where a `log` record or a `tracing` event came from (its module path, or the target it
    /// named); `None` for a line of `scf_lean::info!` and its siblings.
    pub target: Option<String>,
    /// A `tracing` event's fields, in order: a string as it is, any other value as JSON writes
    /// it (`7`, `true`). A field named like a member of the line (`level`, `time`, `requestId`,
    /// `msg`, `target`) is named `field.<name>`, as in the JSON log.
    pub fields: Vec<(String, String)>,
}

impl LogLine {
    /// The value of the field `name`, if the line has it.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A line as the capture wrote it: JSON, the members in order.
    fn parse(line: &[u8]) -> LogLine {
        let members: Members = serde_json::from_slice(line).unwrap_or_else(|e| {
            panic!(
                "a captured log line is not JSON ({e}): {}",
                String::from_utf8_lossy(line)
            )
        });
        let mut parsed = LogLine {
            level: Level::Off,
            request_id: None,
            message: String::new(),
            target: None,
            fields: Vec::new(),
        };
        for (name, value) in members.0 {
            let text = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => continue,
                other => other.to_string(),
            };
            match name.as_str() {
                "level" => parsed.level = Level::parse(&text).unwrap_or(Level::Off),
                "time" => {}
                "requestId" => parsed.request_id = Some(text),
                "msg" => parsed.message = text,
                "target" => parsed.target = Some(text),
                _ => parsed.fields.push((name, text)),
            }
        }
        parsed
    }
}

/// A JSON object's members in the order they came (`serde_json`'s map sorts them).
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Members, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(InOrder)
    }
}

/// Where a capturing server's function lines go: a file of the test process's own, unlinked
/// when made, that every call's lines are appended to in whole writes (`O_APPEND`: the lines of
/// calls at once never mix), and that [`TestServer::logs`] reads back. JSON, whatever the
/// server's format: it parses back exactly.
#[derive(Debug)]
struct Capture {
    level: Level,
    file: File,
}

impl Capture {
    fn new(level: Level) -> io::Result<Capture> {
        static MADE: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir();
        let mut tries = 0;
        loop {
            let n = MADE.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("scf-lean-test-log-{}-{n}", std::process::id()));
            let made = OpenOptions::new()
                .read(true)
                .append(true)
                .create_new(true)
                .open(&path);
            match made {
                Ok(file) => {
                    let _ = std::fs::remove_file(&path);
                    return Ok(Capture { level, file });
                }
                // Left by an earlier process of the same id.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 100 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// A log for one call: the capture's level, every line to the file.
    fn log(&self) -> Log {
        Log::writing_to(self.level, Format::Json, self.file.as_raw_fd())
    }

    /// Runs the function's `init` with the capture lent to its lines (no request id). A failure
    /// or a panic fails the test with its message.
    fn init<F: Function>(&self, f: &mut F) {
        let mut log = self.log();
        let result = scope::call(&mut log, None, || {
            panic::catch_unwind(AssertUnwindSafe(|| f.init()))
        });
        log.flush();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the function's init failed: {}", e.message()),
            Err(payload) => panic!(
                "the function's init panicked: {}",
                panic_hook::message(&*payload)
            ),
        }
    }

    /// Runs `call` — the function, inside the scope the server opened for one call — with the
    /// capture lent to its lines in place of the server's log, which is back after, also if
    /// `call` unwinds. Outside a call it only runs `call`.
    fn around<R>(&self, call: impl FnOnce() -> R) -> R {
        let Some(scope) = scope::current() else {
            return call();
        };
        let own = match scope.try_borrow_mut() {
            Ok(mut s) if s.in_function && s.log.is_some() => s.log.replace(self.log()),
            _ => return call(),
        };
        let _back = Back { scope, own };
        call()
    }

    /// Every byte written so far.
    fn read(&self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut chunk = vec![0; 64 * 1024];
        loop {
            match self.file.read_at(&mut chunk, all.len() as u64) {
                Ok(0) => return all,
                Ok(n) => all.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("reading the captured log lines: {e}"),
            }
        }
    }
}

/// Gives the server's log back to the call's scope, and writes what the capture holds.
struct Back {
    scope: &'static RefCell<Scope>,
    own: Option<Log>,
}

impl Drop for Back {
    fn drop(&mut self) {
        let Ok(mut s) = self.scope.try_borrow_mut() else {
            return;
        };
        let capture = std::mem::replace(&mut s.log, self.own.take());
        drop(s);
        if let Some(mut capture) = capture {
            capture.flush();
        }
    }
}

/// The function of a capturing server: each call (and each stream's producer) runs with the
/// capture lent to its lines.
struct Captured<F> {
    f: F,
    capture: Arc<Capture>,
}

impl<F: Function> Function for Captured<F> {
    fn init(&mut self) -> Result<(), Error> {
        self.f.init()
    }

    fn event<'a>(
        &mut self,
        event: &'a [u8],
        ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        self.capture.around(|| self.f.event(event, ctx, out))
    }

    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        let result = self.capture.around(|| self.f.http(req, out));
        // A stream the server will run: its producer's lines are captured too, on its thread.
        let runs = result.is_ok() && out.invalid().is_none() && !matches!(out.status(), 204 | 304);
        if runs && let Some(producer) = out.take_producer() {
            let capture = self.capture.clone();
            out.stream(move |body| capture.around(|| producer(body)))?;
        }
        result
    }

    fn worker(&self) -> Option<Box<dyn Function + Send>> {
        let f = self.f.worker()?;
        Some(Box::new(Captured {
            f: Boxed(f),
            capture: self.capture.clone(),
        }))
    }
}

/// A worker's instance, as a [`Function`] of its own.
struct Boxed(Box<dyn Function + Send>);

impl Function for Boxed {
    fn init(&mut self) -> Result<(), Error> {
        self.0.init()
    }

    fn event<'a>(
        &mut self,
        event: &'a [u8],
        ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        self.0.event(event, ctx, out)
    }

    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        self.0.http(req, out)
    }

    fn worker(&self) -> Option<Box<dyn Function + Send>> {
        self.0.worker()
    }
}

/// The headers of an event: the request id, [`SCF_CONTEXT`] and the content type, less any
/// that `extra` names, then `extra`.
fn event_headers<'h>(id: &'h str, extra: &[(&'h str, &'h str)]) -> Vec<(&'h str, &'h str)> {
    let mut all: Vec<(&str, &str)> = vec![("X-Scf-Request-Id", id)];
    all.extend_from_slice(SCF_CONTEXT);
    all.push(("Content-Type", "application/json"));
    all.retain(|(n, _)| !extra.iter().any(|(h, _)| h.eq_ignore_ascii_case(n)));
    all.extend_from_slice(extra);
    all
}

/// One request to `addr`, on a connection of its own.
fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<TestResponse> {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    exchange(addr, &raw, method == "HEAD")
}

/// One request on a connection of its own, and its whole response.
fn exchange(addr: SocketAddr, raw: &[u8], head: bool) -> io::Result<TestResponse> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    s.write_all(raw)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut fields);
        if let httparse::Status::Complete(n) = r.parse(&buf).map_err(bad)? {
            let headers: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|h| {
                    let v = String::from_utf8_lossy(h.value).into_owned();
                    (h.name.to_owned(), v)
                })
                .collect();
            let status = r.code.unwrap_or(0);
            let field = |name: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str())
            };
            if !head && field("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                // A streamed answer: the chunks to the last one, as they come.
                let body = read_chunked(&mut s, buf.split_off(n))?;
                return Ok(TestResponse {
                    status,
                    headers,
                    body,
                });
            }
            let length = field("content-length").and_then(|v| v.parse::<usize>().ok());
            if !head && length.is_none() && field("connection") == Some("close") {
                // Close-delimited (a stream to HTTP/1.0): to the end.
                s.read_to_end(&mut buf)?;
                let body = buf.split_off(n);
                return Ok(TestResponse {
                    status,
                    headers,
                    body,
                });
            }
            let length = if head { 0 } else { length.unwrap_or(0) };
            while buf.len() < n + length {
                let k = s.read(&mut chunk)?;
                if k == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..k]);
            }
            return Ok(TestResponse {
                status,
                headers,
                body: buf[n..n + length].to_vec(),
            });
        }
        let k = s.read(&mut chunk)?;
        if k == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..k]);
    }
}

/// A chunked body from `s`, `buf` holding what was read past the head: the data of every chunk
/// to the last one.
fn read_chunked(s: &mut TcpStream, mut buf: Vec<u8>) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = std::str::from_utf8(&buf[..i]).map_err(|_| bad_chunk())?;
            let hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(hex, 16).map_err(|_| bad_chunk())?;
            if size == 0 {
                return Ok(data);
            }
            if buf.len() >= i + 2 + size + 2 {
                data.extend_from_slice(&buf[i + 2..i + 2 + size]);
                buf.drain(..i + 4 + size);
                continue;
            }
        }
        let k = s.read(&mut chunk)?;
        if k == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..k]);
    }
}

fn bad_chunk() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "a malformed chunk")
}

fn bad(e: httparse::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// A whole response. `Debug` shows a credential header's value as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct TestResponse {
    /// The status code.
    pub status: u16,
    /// The header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (empty for HEAD).
    pub body: Vec<u8>,
}

impl std::fmt::Debug for TestResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<_> = self
            .headers
            .iter()
            .map(|(n, v)| (n, crate::redact::Value::of(n, v.as_bytes())))
            .collect();
        f.debug_struct("TestResponse")
            .field("status", &self.status)
            .field("headers", &headers)
            .field("body", &self.text())
            .finish()
    }
}

impl TestResponse {
    /// The value of the first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    /// If it is not JSON of that type; the message shows the body.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the body is not the JSON expected ({e}): {}", self.text()))
    }

    /// Checks that none of the fake credentials ([`SECRETS`]) is in the headers or the body.
    ///
    /// # Panics
    /// Naming the one found.
    pub fn assert_no_secrets(&self) {
        for secret in SECRETS {
            let found = self.headers.iter().any(|(_, v)| v.contains(secret))
                || self
                    .body
                    .windows(secret.len())
                    .any(|w| w == secret.as_bytes());
            assert!(!found, "a credential ({secret}) is in the response");
        }
    }
}
