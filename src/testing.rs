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
//! In-process rather than the built binary: a server starts in microseconds, needs no release or
//! musl build and no port agreed in advance, serves the very function value the test built
//! (with its fakes), and a panic in it shows in the test's own output with its location. It is
//! the same server as in production — the same loop, framing and limits — only not started from
//! `main`. What only the binary shows (the entry, the start-up line, the image as SCF runs it)
//! is the job of an image test.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{Config, Function, Level, Server, StopHandle};

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
}

impl TestServer {
    /// Serves `f` with the default settings, logging off, after running its
    /// [`Function::init`] on the test's thread.
    ///
    /// # Panics
    /// If the function's `init` fails (with its message) or panics, or no loopback port can be
    /// bound (the machine is out of ports or descriptors).
    pub fn start<F: Function + Send + 'static>(f: F) -> TestServer {
        TestServer::with_config(
            Config {
                log_level: Level::Off,
                ..Config::default()
            },
            f,
        )
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
    pub fn with_config<F: Function + Send + 'static>(config: Config, mut f: F) -> TestServer {
        // The function's init runs here, on the test's thread: a failure fails the test with
        // its reason (a panic shows as the test's own).
        if let Err(e) = f.init() {
            panic!("the function's init failed: {}", e.message());
        }
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
        }
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
