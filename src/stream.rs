//! Streamed responses and Server-Sent Events: a body written in pieces while the function runs.
//!
//! The model: the function holds the loop while it streams. [`Response::stream`] writes the
//! head at once; each [`BodyStream::send`] writes its piece to the socket before it returns
//! (chunked on HTTP/1.1, the raw bytes on HTTP/1.0, where the connection's end ends the body;
//! nothing after the head for `HEAD`). Other connections wait meanwhile, as they wait for any
//! function call: SCF gives each SSE connection an invocation of its own, on an instance that
//! serves one invocation at a time by default. Nothing is buffered past the piece being written,
//! so a stream holds no memory of its own beyond its largest piece; a client that stops reading
//! for `SCF_LEAN_BODY_TIMEOUT_MS` fails the write (`TimedOut`), and one that disconnects fails it
//! at once: the function sees the error and returns, and the connection is closed.
//!
//! When the function returns, an open chunked stream gets its last chunk and the connection
//! stays open for the next request; after an error or a panic the body is cut off (no last
//! chunk) and the connection closed, so that the client sees the answer incomplete.

use std::io;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::response::Response;
use crate::scope;

/// Where and how the call's answer may be streamed: set in the call's scope for an HTTP request
/// on a socket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target {
    /// The connection's socket (owned by the connection; valid for the call).
    pub fd: i32,
    /// HTTP/1.1: chunked. HTTP/1.0: the body ends with the connection.
    pub chunked: bool,
    /// A `HEAD` request: the head only.
    pub head: bool,
    /// The connection closes after the answer (the request asked, or the server is stopping):
    /// the head says `Connection: close`.
    pub close: bool,
    /// How long a write may wait for the client to read.
    pub timeout: Duration,
    /// The server's signal descriptor: a SIGTERM or SIGINT waiting there means it is shutting
    /// down, and the stream ends within `grace`.
    pub signals: Option<i32>,
    pub grace: Duration,
}

/// How a streamed answer went, for the connection after the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Streamed {
    /// The head and maybe pieces are out; no last chunk yet.
    Open,
    /// The body is complete.
    Ended,
    /// A write failed: the body is cut off and the connection must close.
    Cut(Cut),
}

/// Why a write of a stream failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// The client disconnected (or the socket failed).
    ClientGone,
    /// The client did not read for the body timeout.
    TooSlow,
    /// The server was shutting down and its grace period ended.
    ShutDown,
}

impl Cut {
    fn of(e: &io::Error) -> Cut {
        match e.kind() {
            io::ErrorKind::TimedOut => Cut::TooSlow,
            io::ErrorKind::Interrupted => Cut::ShutDown,
            _ => Cut::ClientGone,
        }
    }

    /// How the stream ended, for its access line.
    pub fn reason(self) -> &'static str {
        match self {
            Cut::ClientGone => "the client left",
            Cut::TooSlow => "the client did not read for SCF_LEAN_BODY_TIMEOUT_MS",
            Cut::ShutDown => "the server shut down",
        }
    }
}

/// A response body being streamed: see [`Response::stream`].
#[derive(Debug)]
pub struct BodyStream<'r, 'a> {
    resp: &'r mut Response<'a>,
    target: Target,
    /// When a shutdown seen meanwhile ends the stream.
    stop_at: Option<Instant>,
    /// When the signal descriptor was last looked at.
    checked: Instant,
}

impl<'a> Response<'a> {
    /// Starts a streamed answer to an HTTP request: the status and the header lines set so far
    /// go out at once, and the body follows piece by piece ([`BodyStream::send`]), chunked on
    /// HTTP/1.1, until the stream is finished or the function returns.
    ///
    /// ```no_run
    /// # use scf_lean::{Error, Request, Response};
    /// fn export<'a>(_req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
    ///     out.content_type("text/csv");
    ///     let mut body = out.stream()?;
    ///     for row in 0..1000 {
    ///         body.send(format!("{row},{}\n", row * row).as_bytes())?; // on the wire now
    ///     }
    ///     Ok(body.finish()?)
    /// }
    /// ```
    ///
    /// # Errors
    /// Outside an HTTP invocation on a socket (an event, a job, a unit test), for a 204 or 304,
    /// a second stream or an invalid header; an I/O error when the head cannot be written.
    pub fn stream(&mut self) -> Result<BodyStream<'_, 'a>, Error> {
        let target = scope::current()
            .and_then(|s| s.try_borrow().ok()?.target)
            .ok_or_else(|| {
                Error::new("a response can only be streamed to an HTTP request on a socket")
            })?;
        if self.streamed().is_some() {
            return Err(Error::new("the response is already streaming"));
        }
        if let Some(why) = self.invalid() {
            return Err(Error::new(why));
        }
        if matches!(self.status(), 204 | 304) {
            return Err(Error::new("a 204 or 304 response has no body to stream"));
        }
        let mut head = Vec::with_capacity(160 + self.header_lines().len());
        crate::response::status_line(&mut head, self.status());
        head.extend_from_slice(b"Date: ");
        head.extend_from_slice(crate::date::HttpDate::new().as_bytes());
        head.extend_from_slice(b"\r\n");
        if target.chunked {
            head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        if target.close || !target.chunked {
            head.extend_from_slice(b"Connection: close\r\n");
        }
        head.extend_from_slice(self.header_lines());
        head.extend_from_slice(b"\r\n");
        self.set_streamed(Streamed::Open);
        let now = Instant::now();
        let mut s = BodyStream {
            resp: self,
            target,
            stop_at: None,
            checked: now,
        };
        s.write(&[&head])?;
        if target.head {
            s.resp.set_streamed(Streamed::Ended);
        }
        Ok(s)
    }

    /// Starts a stream of Server-Sent Events: `Content-Type: text/event-stream`,
    /// `Cache-Control: no-cache` and `X-Accel-Buffering: no` (so that an nginx in front does not
    /// buffer it), each unless the function set it already, then [`Response::stream`].
    ///
    /// # Errors
    /// As [`Response::stream`].
    pub fn sse(&mut self) -> Result<Sse<'_, 'a>, Error> {
        for (name, value) in [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
        ] {
            if self.header_value(name).is_none() {
                self.header(name, value);
            }
        }
        let stream = self.stream()?;
        Ok(Sse {
            stream,
            last: Instant::now(),
        })
    }
}

impl BodyStream<'_, '_> {
    /// Hands `piece` to the client's connection before it returns: into the socket's send
    /// buffer, from where the kernel sends it at once (an empty piece writes nothing). The piece
    /// is not copied: one `writev` of the chunk's size line, the piece and its CRLF.
    ///
    /// # Errors
    /// - The client disconnected (`BrokenPipe`, `ConnectionReset`; a clean close is noticed at
    ///   the first or second write after it).
    /// - It did not read for `SCF_LEAN_BODY_TIMEOUT_MS` while the send buffer was full
    ///   (`TimedOut`).
    /// - The server is shutting down and its grace period (`SCF_LEAN_SHUTDOWN_GRACE_MS`) has
    ///   passed (`Interrupted`).
    /// - The request was `HEAD`: there is no body to send (`Unsupported`).
    ///
    /// In each case stop streaming and return.
    pub fn send(&mut self, piece: &[u8]) -> io::Result<()> {
        match self.resp.streamed() {
            Some(Streamed::Open) => {}
            Some(Streamed::Cut(_)) => return Err(io::ErrorKind::BrokenPipe.into()),
            _ if self.target.head => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "a HEAD request takes no body: stop streaming",
                ));
            }
            _ => return Err(io::Error::other("the stream is finished")),
        }
        if piece.is_empty() {
            return Ok(());
        }
        if !self.target.chunked {
            return self.write(&[piece]);
        }
        let mut hex = [0u8; 16];
        let size = hex_len(piece.len(), &mut hex);
        let mut line = [0u8; 18];
        line[..size.len()].copy_from_slice(size);
        line[size.len()..size.len() + 2].copy_from_slice(b"\r\n");
        self.write(&[&line[..size.len() + 2], piece, b"\r\n"])
    }

    /// Ends the body: the last chunk on HTTP/1.1 (the connection stays open for the next
    /// request), nothing on HTTP/1.0 (the connection closes). Returning from the function ends
    /// an unfinished stream the same way.
    ///
    /// # Errors
    /// As [`BodyStream::send`].
    pub fn finish(mut self) -> io::Result<()> {
        end(&mut self)
    }

    /// Writes all of `parts`, waiting up to the timeout for the client to read; fails once the
    /// server has been shutting down for its grace period.
    fn write(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let r = self.stopping().and_then(|()| {
            let total: usize = parts.iter().map(|p| p.len()).sum();
            write_all(&self.target, parts, self.stop_at).map(|()| total)
        });
        match r {
            Ok(n) => {
                self.resp.add_streamed_bytes(n);
                Ok(())
            }
            Err(e) => {
                self.resp.set_streamed(Streamed::Cut(Cut::of(&e)));
                Err(e)
            }
        }
    }

    /// Looks for a shutdown at most every [`SIGNAL_CHECK`]: an error once its grace is over.
    fn stopping(&mut self) -> io::Result<()> {
        let now = Instant::now();
        if self.stop_at.is_none()
            && now.duration_since(self.checked) >= SIGNAL_CHECK
            && let Some(fd) = self.target.signals
        {
            self.checked = now;
            if crate::sys::readable(fd) {
                self.stop_at = Some(now + self.target.grace);
            }
        }
        match self.stop_at {
            Some(t) if now >= t => Err(shutting_down()),
            _ => Ok(()),
        }
    }
}

/// How often a stream looks for a shutdown signal: a `poll` of the signal descriptor.
const SIGNAL_CHECK: Duration = Duration::from_millis(10);

fn shutting_down() -> io::Error {
    io::Error::new(
        io::ErrorKind::Interrupted,
        "the server is shutting down: the stream ends",
    )
}

/// Ends an open stream (the last chunk on HTTP/1.1).
fn end(s: &mut BodyStream<'_, '_>) -> io::Result<()> {
    match s.resp.streamed() {
        Some(Streamed::Open) => {
            if s.target.chunked {
                s.write(&[b"0\r\n\r\n"])?;
            }
            s.resp.set_streamed(Streamed::Ended);
            Ok(())
        }
        Some(Streamed::Cut(_)) => Err(io::ErrorKind::BrokenPipe.into()),
        _ => Ok(()),
    }
}

/// Ends the stream of a function that returned without finishing it (if it is open).
pub(crate) fn end_open(resp: &mut Response<'_>, target: Target) {
    let now = Instant::now();
    let _ = end(&mut BodyStream {
        resp,
        target,
        stop_at: None,
        checked: now,
    });
}

/// `n` in lower-case hex, without leading zeros.
fn hex_len(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Writes all of `parts` to the non-blocking socket: waits for it to drain up to the target's
/// timeout in all, in slices of at most [`SIGNAL_CHECK`] × 10 so that a shutdown is seen, and
/// fails once `stop_at` (a shutdown's end of grace) has passed.
fn write_all(target: &Target, parts: &[&[u8]], mut stop_at: Option<Instant>) -> io::Result<()> {
    let until = Instant::now() + target.timeout;
    // A chunk is three parts at most: size line, data, CRLF.
    let mut slices = [io::IoSlice::new(&[]); 3];
    for (slot, p) in slices.iter_mut().zip(parts) {
        *slot = io::IoSlice::new(p);
    }
    let mut bufs: &mut [io::IoSlice<'_>] = &mut slices[..parts.len().min(3)];
    while !bufs.is_empty() {
        match crate::sys::writev(target.fd, bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(k) => io::IoSlice::advance_slices(&mut bufs, k),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let now = Instant::now();
                if stop_at.is_none()
                    && let Some(fd) = target.signals
                    && crate::sys::readable(fd)
                {
                    stop_at = Some(now + target.grace);
                }
                if stop_at.is_some_and(|t| now >= t) {
                    return Err(shutting_down());
                }
                let left = until.saturating_duration_since(now);
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client did not read the stream in time",
                    ));
                }
                crate::sys::wait_writable(target.fd, left.min(SIGNAL_CHECK * 10));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A stream of Server-Sent Events (`text/event-stream`): see [`Response::sse`].
///
/// ```no_run
/// # use scf_lean::{Error, Request, Response};
/// # use std::time::Duration;
/// fn tokens<'a>(_req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
///     let mut events = out.sse()?;
///     events.retry(2000)?;
///     for (i, token) in ["Hel", "lo"].iter().enumerate() {
///         events.event(Some("token"), Some(&i.to_string()), token)?;
///     }
///     events.event(Some("done"), None, "")?;
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct Sse<'r, 'a> {
    stream: BodyStream<'r, 'a>,
    /// When the last bytes went out.
    last: Instant,
}

impl Sse<'_, '_> {
    /// Sends one event: `event:` (its type, if any), `id:` (if any), then `data` as one `data:`
    /// line per line of it (split at `\n`, `\r\n` or `\r`), and the blank line that ends it.
    /// CR and LF in `event` or `id` would end their field early, and a NUL makes a browser ignore
    /// the id: they are dropped.
    ///
    /// # Errors
    /// As [`BodyStream::send`].
    pub fn event(&mut self, event: Option<&str>, id: Option<&str>, data: &str) -> io::Result<()> {
        let mut b = String::with_capacity(data.len() + 32);
        let field = |b: &mut String, name: &str, value: &str| {
            b.push_str(name);
            b.push_str(": ");
            b.extend(value.chars().filter(|c| !matches!(c, '\r' | '\n' | '\0')));
            b.push('\n');
        };
        if let Some(event) = event {
            field(&mut b, "event", event);
        }
        if let Some(id) = id {
            field(&mut b, "id", id);
        }
        for line in data.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            for part in line.split('\r') {
                b.push_str("data: ");
                b.push_str(part);
                b.push('\n');
            }
        }
        b.push('\n');
        self.send(b.as_bytes())
    }

    /// Sends `data` as an unnamed event: [`Sse::event`] without type or id.
    ///
    /// # Errors
    /// As [`BodyStream::send`].
    pub fn data(&mut self, data: &str) -> io::Result<()> {
        self.event(None, None, data)
    }

    /// Tells the client how long to wait before reconnecting (`retry:`, in milliseconds).
    ///
    /// # Errors
    /// As [`BodyStream::send`].
    pub fn retry(&mut self, ms: u64) -> io::Result<()> {
        let mut b = String::from("retry: ");
        b.push_str(itoa::Buffer::new().format(ms));
        b.push_str("\n\n");
        self.send(b.as_bytes())
    }

    /// A comment line (`: text`), which clients ignore: a heartbeat that keeps proxies from
    /// closing an idle stream.
    ///
    /// # Errors
    /// As [`BodyStream::send`].
    pub fn comment(&mut self, text: &str) -> io::Result<()> {
        let mut b = String::from(": ");
        b.extend(text.chars().filter(|c| !matches!(c, '\r' | '\n')));
        b.push_str("\n\n");
        self.send(b.as_bytes())
    }

    /// Sends a heartbeat comment if nothing went out for `interval`; call it from the loop that
    /// waits for the next event. Returns whether it sent one.
    ///
    /// # Errors
    /// As [`BodyStream::send`].
    pub fn heartbeat(&mut self, interval: Duration) -> io::Result<bool> {
        if self.last.elapsed() < interval {
            return Ok(false);
        }
        self.comment("heartbeat")?;
        Ok(true)
    }

    /// Ends the stream: see [`BodyStream::finish`].
    ///
    /// # Errors
    /// As [`BodyStream::send`].
    pub fn finish(self) -> io::Result<()> {
        self.stream.finish()
    }

    fn send(&mut self, b: &[u8]) -> io::Result<()> {
        self.stream.send(b)?;
        self.last = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_hex_len() {
        let mut b = [0; 16];
        assert_eq!(hex_len(0, &mut b), b"0");
        assert_eq!(hex_len(255, &mut b), b"ff");
        assert_eq!(hex_len(4096, &mut b), b"1000");
        assert_eq!(hex_len(usize::MAX, &mut b), b"ffffffffffffffff");
    }

    #[test]
    fn test_no_stream_outside_an_http_call_on_a_socket() {
        let mut out = Response::new();
        let e = out.stream().unwrap_err();
        assert!(e.message().contains("only be streamed"), "{e}");
        assert_eq!(out.streamed(), None);
    }
}
