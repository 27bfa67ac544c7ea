//! Shared by the integration tests: the one test function ([`Echo`]), an in-process server on
//! loopback, and a raw HTTP/1.1 client that reads responses one at a time (so pipelined answers
//! can be taken apart); the start-up line of a binary run as a child process ([`child`]); the
//! kernel's view of the sockets, to wait for what must have happened ([`sockets`]).
//!
//! Every socket has read and write timeouts, so no test can hang: a read that waits too long
//! fails the test with what was expected.

// Each test file uses a different part of this module.
#![allow(dead_code)]

pub mod child;
pub mod sockets;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::sleep;
use std::time::Duration;

use scf_lean::testing::TestServer;
use scf_lean::{Config, Context, Error, Function, Level, Request, Response};

/// How long any read or write may wait before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// A response head larger than this is a bug, not a slow server.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// The default configuration, without log output.
pub fn quiet() -> Config {
    Config {
        log_level: Level::Off,
        ..Config::default()
    }
}

/// Starts a server for `f` on `127.0.0.1:<any port>` with the library's test harness; returns
/// it (it stops when dropped: keep it alive for the test) and its address.
pub fn start<F: Function + Send + 'static>(config: Config, f: F) -> (TestServer, SocketAddr) {
    let server = TestServer::with_config(config, f);
    let addr = server.addr();
    (server, addr)
}

/// The test function of every suite. It allocates nothing once its buffers have grown (the
/// allocation test counts on it). `event` answers `event n=<len> id=<request id>\n<event>`;
/// `http` answers by path:
/// - `/panic` panics, `/error` returns an error,
/// - `/ref` answers the request body itself, borrowed (no copy), and the query in `X-Query`,
/// - `/bad-header` sets a header the server owns (an invalid response),
/// - `/204` answers 204 (with a body, which must not be sent),
/// - `/big?<n>` answers `n` bytes of [`pattern`] from its own buffer,
/// - anything else echoes: `<method> <path> ?<query> n=<body len>\n<body>` ([`echo`]).
pub struct Echo;

impl Function for Echo {
    fn event<'a>(
        &mut self,
        event: &'a [u8],
        ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        out.content_type("text/plain");
        let b = out.body_mut();
        b.extend_from_slice(b"event n=");
        b.extend_from_slice(itoa::Buffer::new().format(event.len()).as_bytes());
        b.extend_from_slice(b" id=");
        b.extend_from_slice(ctx.request_id.unwrap_or("-").as_bytes());
        b.push(b'\n');
        b.extend_from_slice(event);
        Ok(())
    }

    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        match req.path() {
            "/panic" => panic!("boom"),
            "/error" => Err(Error::new("it went \"wrong\"")),
            "/ref" => {
                // A header with a value from the request, and the body itself: no copy of it.
                out.content_type("application/octet-stream");
                out.header("X-Query", req.query());
                out.set_body_ref(req.body());
                Ok(())
            }
            "/bad-header" => {
                out.header("Content-Length", "5");
                out.set_body_static(b"hello");
                Ok(())
            }
            "/204" => {
                // A body on a 204 is not sent.
                out.set_status(204).set_body_static(b"not sent");
                Ok(())
            }
            "/big" => {
                let n: usize = req.query().parse()?;
                out.body_mut().extend((0..n).map(|i| (i % 251) as u8));
                Ok(())
            }
            _ => {
                out.content_type("text/plain");
                let b = out.body_mut();
                for part in [req.method(), " ", req.path(), " ?", req.query(), " n="] {
                    b.extend_from_slice(part.as_bytes());
                }
                b.extend_from_slice(itoa::Buffer::new().format(req.body().len()).as_bytes());
                b.push(b'\n');
                b.extend_from_slice(req.body());
                Ok(())
            }
        }
    }
}

/// What [`Echo`] answers to an HTTP request on any other path.
pub fn echo(method: &str, path: &str, query: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!("{method} {path} ?{query} n={}\n", body.len()).into_bytes();
    v.extend_from_slice(body);
    v
}

/// What [`Echo`] answers to an event.
pub fn event_echo(request_id: &str, event: &[u8]) -> Vec<u8> {
    let mut v = format!("event n={} id={request_id}\n", event.len()).into_bytes();
    v.extend_from_slice(event);
    v
}

/// `n` bytes that repeat only every 251 (a prime), so a lost, doubled or moved block shows.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Asserts a 200 answer of [`Echo`]'s echo for this request, with a matching Content-Length.
pub fn assert_echo(r: &Resp, method: &str, path: &str, query: &str, body: &[u8]) {
    assert_eq!(r.status, 200, "{r:?} {:?}", r.text());
    assert_eq!(r.reason, "OK");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert_eq!(
        r.text(),
        String::from_utf8_lossy(&echo(method, path, query, body))
    );
}

/// Starts [`Echo`] with `config`; returns the server (keep it alive) and its address.
pub fn server(config: Config) -> (TestServer, SocketAddr) {
    start(config, Echo)
}

/// Short timeouts, for the tests that wait for them.
pub fn short_timeouts() -> Config {
    Config {
        head_timeout: Duration::from_millis(200),
        body_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(300),
        first_byte_timeout: Duration::from_millis(300),
        ..quiet()
    }
}

/// A chunked POST with the given raw chunked body.
pub fn chunked(path: &str, raw_body: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{raw_body}")
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub reason: String,
    /// (name as sent, value), in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The value of the only header named `name` (any case); panics if it appears twice.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let first = found.next().map(|(_, v)| v.as_str());
        assert!(found.next().is_none(), "header {name} sent twice: {self:?}");
        first
    }

    /// The headers without `Date`, to compare two responses sent at different times.
    pub fn headers_without_date(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
            .cloned()
            .collect()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw client connection with its own read buffer.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects with `TCP_NODELAY` and the I/O timeouts set.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).expect("write");
        self.stream.flush().unwrap();
    }

    /// Sends `raw` and reads one response.
    pub fn request(&mut self, raw: impl AsRef<[u8]>) -> Resp {
        self.send(raw);
        self.read_response()
    }

    /// Reads once more into the buffer; the number of bytes (0 at EOF).
    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 16 * 1024];
        let n = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Reads until the buffer holds at least `n` bytes; panics at EOF or on a timeout.
    fn fill_to(&mut self, n: usize, what: &str) {
        while self.buf.len() < n {
            match self.fill() {
                Ok(0) => panic!(
                    "EOF while reading {what}: have {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(_) => {}
                Err(e) => panic!(
                    "{e} while reading {what}: have {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    /// Takes exactly `n` bytes off the stream.
    pub fn read_exact_bytes(&mut self, n: usize) -> Vec<u8> {
        self.fill_to(n, "exact bytes");
        self.buf.drain(..n).collect()
    }

    /// Reads a response head: status line and headers, up to the empty line.
    fn read_head(&mut self) -> Resp {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                self.buf.len() < MAX_RESPONSE_HEAD,
                "response head too large"
            );
            let need = self.buf.len() + 1;
            self.fill_to(need, "a response head");
        };
        let head: Vec<u8> = self.buf.drain(..end).collect();
        let head = String::from_utf8(head).expect("response head is UTF-8");
        let mut lines = head[..head.len() - 4].split("\r\n");
        let line = lines.next().unwrap();
        let rest = line
            .strip_prefix("HTTP/1.1 ")
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        assert_eq!(code.len(), 3, "status line {line:?}");
        let status = code.parse().unwrap_or_else(|_| panic!("status {line:?}"));
        let headers = lines
            .map(|l| {
                let (n, v) = l
                    .split_once(": ")
                    .unwrap_or_else(|| panic!("bad header line {l:?}"));
                (n.to_string(), v.to_string())
            })
            .collect();
        Resp {
            status,
            reason: reason.to_string(),
            headers,
            body: Vec::new(),
        }
    }

    /// Reads one complete response: the head, then exactly `Content-Length` body bytes.
    /// Checks what every final response has: one `Date`, and a `Content-Length` unless the
    /// status has no body (204, 304).
    pub fn read_response(&mut self) -> Resp {
        let mut r = self.read_head();
        assert!(r.header("date").is_some(), "no Date: {r:?}");
        match r.header("content-length") {
            Some(v) => {
                assert!(
                    r.status != 204 && r.status != 304,
                    "Content-Length on {}",
                    r.status
                );
                let n: usize = v.parse().unwrap_or_else(|_| panic!("Content-Length {v:?}"));
                self.fill_to(n, "a response body");
                r.body = self.buf.drain(..n).collect();
            }
            None => assert!(
                r.status == 204 || r.status == 304,
                "no Content-Length: {r:?}"
            ),
        }
        r
    }

    /// Reads the response to a HEAD request: the head only, no body bytes.
    pub fn read_head_response(&mut self) -> Resp {
        let r = self.read_head();
        assert!(r.header("date").is_some(), "no Date: {r:?}");
        r
    }

    /// Takes the bytes read from the socket but not yet consumed.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Asserts that the server closed the connection: nothing buffered, and the next read is
    /// EOF (0 bytes).
    pub fn expect_eof(&mut self) {
        assert!(
            self.buf.is_empty(),
            "unread bytes before EOF: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        match self.fill() {
            Ok(0) => {}
            Ok(_) => panic!(
                "bytes instead of EOF: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
            Err(e) => panic!("{e} instead of EOF"),
        }
    }

    /// Asserts that no byte arrives (and the connection stays open) for `d`.
    pub fn expect_nothing_for(&mut self, d: Duration) {
        assert!(
            self.buf.is_empty(),
            "unexpected bytes: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.stream.set_read_timeout(Some(d)).unwrap();
        let r = self.fill();
        self.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        match r {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Ok(0) => panic!("connection closed while waiting"),
            Ok(_) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&self.buf)),
            Err(e) => panic!("{e} while waiting"),
        }
    }
}

/// `GET path` on HTTP/1.1 with a Host.
pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

/// `POST path` on HTTP/1.1 with a Content-Length body.
pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

/// The JSON error body every error response has.
pub fn error_body(code: i64, message: &str) -> String {
    format!(
        "{{\"errorCode\":{code},\"errorMessage\":{}}}",
        serde_json::to_string(message).unwrap()
    )
}

/// Asserts an error response: the status, `Content-Type: application/json`, and exactly
/// `{"errorCode":status,"errorMessage":message}` (which parses as that two-field object).
pub fn assert_json_error(r: &Resp, status: u16, message: &str) {
    assert_eq!(r.status, status, "{r:?} / {:?}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    assert_eq!(r.text(), error_body(i64::from(status), message));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("error body is JSON");
    let obj = v.as_object().expect("error body is an object");
    assert_eq!(obj.len(), 2, "{v}");
    assert!(obj["errorCode"].is_i64(), "{v}");
    assert!(obj["errorMessage"].is_string(), "{v}");
}

/// Reads the server's own error answer, and checks that it closes the connection after it.
pub fn expect_rejected(c: &mut Client, status: u16, message: &str) {
    let r = c.read_response();
    assert_json_error(&r, status, message);
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    c.expect_eof();
}

/// Reads `n` body bytes slowly: `step` at a time with a pause between reads, calling `between`
/// after every 256 KiB or so.
pub fn read_slowly(
    c: &mut Client,
    n: usize,
    step: usize,
    mut between: impl FnMut(usize),
) -> Vec<u8> {
    let mut got = Vec::with_capacity(n);
    let mut mark = 0;
    while got.len() < n {
        let k = step.min(n - got.len());
        got.extend(c.read_exact_bytes(k));
        sleep(Duration::from_millis(1));
        if got.len() - mark >= 256 * 1024 {
            mark = got.len();
            between(got.len());
        }
    }
    got
}

/// Reads a response head byte by byte (so that no body byte is taken with it).
pub fn read_head_bytes(c: &mut Client) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.extend(c.read_exact_bytes(1));
        assert!(head.len() < 1000, "{:?}", String::from_utf8_lossy(&head));
    }
    String::from_utf8(head).unwrap()
}

/// `setsockopt(SOL_SOCKET, name, value)` on a test socket.
pub fn set_socket_option<T>(s: &TcpStream, name: libc::c_int, value: T) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is an open socket, and `value` lives across the call with the
    // size given.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&raw const value).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

/// Pins the receive buffer of a client socket (which also stops its autotuning).
pub fn set_rcvbuf(s: &TcpStream, bytes: libc::c_int) {
    set_socket_option(s, libc::SO_RCVBUF, bytes);
}

/// Closes `s` with a reset (RST) instead of a FIN.
pub fn reset(s: TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    set_socket_option(&s, libc::SO_LINGER, l);
    drop(s);
}
