//! Response writing: the [`Response`] a function fills, and the [`Output`] a connection sends.
//!
//! A response goes out as one vectored write of three parts: the head the server writes (status
//! line, `Date`, `Content-Length`, `Connection`), the header lines the function added, and the
//! body. The body is never copied into an output buffer: it is the function's own reused buffer,
//! a `&'static` slice, or a slice of the request it answers (kept as a range of the read buffer,
//! which is not touched until the response is out); [`BodyAt`] says which. Every buffer lives as
//! long as the connection, so a steady stream of requests allocates nothing here.
//!
//! The server's own error answers (400, 408, 413…) take the same path as a function's: a
//! [`Response`] on the connection's buffers, [`Response::set_error`] (the one place an error
//! body is built), then [`Output::prepare`].

use std::fmt;
use std::io::{self, IoSlice, Write};

use crate::error::Error;
use crate::redact::{DebugMap, Value};
use crate::stream::{BodyStream, Producer, Sse};

/// A body buffer larger than this is freed when an error answer replaces what it held.
const ERROR_BUF: usize = 64 * 1024;

/// Bytes reserved for a function's header lines and body on a connection's first answer.
const FIRST_HEADERS: usize = 128;
const FIRST_BODY: usize = 1024;

/// Bytes reserved for the head the server writes: status line, `Date`, `Content-Length` and
/// `Connection` take 78 for a usual answer, at most 145 (the longest reason phrase, a 20-digit
/// length, `keep-alive`).
const HEAD_ROOM: usize = 160;

/// Header names the server owns: a function that sets one gets a 500 instead.
const RESERVED: [&str; 4] = ["content-length", "transfer-encoding", "connection", "date"];

/// What a function answers: status, header lines and body.
///
/// ```
/// use scf_lean::Response;
/// let mut out = Response::new();
/// out.set_status(201).header("X-Id", "7");
/// out.json(&serde_json::json!({"ok": true})).unwrap();
/// assert_eq!(out.status(), 201);
/// assert_eq!(out.body(), br#"{"ok":true}"#);
/// assert_eq!(out.header_value("content-type"), Some("application/json"));
/// ```
///
/// `Debug` shows the status, the header lines (a credential header's value as `<redacted>`)
/// and the body's length.
#[derive(Default)]
pub struct Response<'a> {
    status: u16,
    /// `Name: value\r\n` lines.
    headers: Vec<u8>,
    /// The body buffer, reused from request to request.
    body: Vec<u8>,
    /// Where the body is: `body`, a static slice, or borrowed from the request.
    at: BodyAt<&'a [u8]>,
    /// The first invalid header or status the function set.
    invalid: Option<&'static str>,
    /// The producer of a streamed body ([`Response::stream`]).
    producer: Option<Producer>,
}

/// Where a response body lives. `In` is how a slice of the request is held: a borrowed slice
/// while the function fills its [`Response`], a range of the read buffer once the connection
/// sends it ([`Output`]), which outlives the borrow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum BodyAt<In> {
    /// No body on the wire (HEAD, 204, 304, 100 Continue).
    Empty,
    /// The response's own body buffer.
    #[default]
    Owned,
    /// A static slice.
    Static(&'static [u8]),
    /// A slice of the request it answers.
    Input(In),
}

/// A [`Response`] taken apart, for the connection to send.
pub(crate) struct Parts<'a> {
    pub status: u16,
    /// `Name: value\r\n` lines.
    pub headers: Vec<u8>,
    /// The body buffer.
    pub body: Vec<u8>,
    pub at: BodyAt<&'a [u8]>,
}

impl<'a> Response<'a> {
    /// An empty `200` response, for unit tests of a function.
    pub fn new() -> Response<'a> {
        Response::with_buffers(Vec::new(), Vec::new())
    }

    /// A `200` response that writes into these (cleared) buffers.
    pub(crate) fn with_buffers(mut headers: Vec<u8>, mut body: Vec<u8>) -> Response<'a> {
        headers.clear();
        body.clear();
        Response {
            status: 200,
            headers,
            body,
            at: BodyAt::Owned,
            invalid: None,
            producer: None,
        }
    }

    /// Sets the status (200 to 999; anything else turns the response into a 500).
    pub fn set_status(&mut self, status: u16) -> &mut Self {
        if (200..=999).contains(&status) {
            self.status = status;
        } else {
            self.invalid.get_or_insert("status outside 200..=999");
        }
        self
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Adds a header line. A name that is not a token, a value with CR, LF or NUL, or a header
    /// the server writes itself (`Content-Length`, `Transfer-Encoding`, `Connection`, `Date`)
    /// turns the response into a 500 (and is logged): no function can split a response.
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        if name.is_empty() || !name.bytes().all(is_token) {
            self.invalid.get_or_insert("invalid response header name");
        } else if RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            self.invalid
                .get_or_insert("the server writes this response header itself");
        } else {
            self.line(name, value);
        }
        self
    }

    /// Sets `Content-Type` (as [`Response::header`], without checking a name it knows).
    pub fn content_type(&mut self, value: &str) -> &mut Self {
        self.line("Content-Type", value);
        self
    }

    /// Adds `name: value` if the value is valid (the name is).
    #[inline]
    fn line(&mut self, name: &str, value: &str) {
        if !value
            .bytes()
            .all(|b| b == b'\t' || (b >= b' ' && b != 0x7f))
        {
            self.invalid.get_or_insert("invalid response header value");
            return;
        }
        self.headers.extend_from_slice(name.as_bytes());
        self.headers.extend_from_slice(b": ");
        self.headers.extend_from_slice(value.as_bytes());
        self.headers.extend_from_slice(b"\r\n");
    }

    /// The value of the first header line named `name` (any case) added so far.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        let text = std::str::from_utf8(&self.headers).ok()?;
        text.split("\r\n").find_map(|line| {
            let (n, v) = line.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then_some(v)
        })
    }

    /// The body buffer, to write into: reused from request to request on a connection, so it
    /// usually needs no allocation. Writing to it drops a borrowed body.
    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        self.at = BodyAt::Owned;
        &mut self.body
    }

    /// Answers with a static body: no copy.
    pub fn set_body_static(&mut self, body: &'static [u8]) -> &mut Self {
        self.body.clear();
        self.at = BodyAt::Static(body);
        self
    }

    /// Answers with a slice of the request (its body, a header value…): no copy. Anything else
    /// borrowed for `'a` is copied into the body buffer when the response is sent.
    pub fn set_body_ref(&mut self, body: &'a [u8]) -> &mut Self {
        self.body.clear();
        self.at = BodyAt::Input(body);
        self
    }

    /// The body as it stands.
    pub fn body(&self) -> &[u8] {
        match self.at {
            BodyAt::Empty => &[],
            BodyAt::Owned => &self.body,
            BodyAt::Static(b) => b,
            BodyAt::Input(b) => b,
        }
    }

    /// Serializes `value` as the JSON body and sets `Content-Type: application/json` unless a
    /// content type was set.
    ///
    /// # Errors
    /// A 500 if `value` cannot be serialized (a map with non-string keys, say).
    pub fn json<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let body = self.body_mut();
        body.clear();
        serde_json::to_writer(&mut *body, value)?;
        if self.header_value("content-type").is_none() {
            self.content_type("application/json");
        }
        Ok(())
    }

    /// Its size in bytes: header lines and body.
    pub(crate) fn size(&self) -> usize {
        self.headers.len() + self.body().len()
    }

    /// The memory it holds of its own, as the server's tally of the budget counts it: header
    /// lines, and the body unless it is borrowed or static — by capacity, since a body built by
    /// growing holds more than its length.
    pub(crate) fn held(&self) -> usize {
        let body = match self.at {
            BodyAt::Owned => self.body.capacity(),
            _ => 0,
        };
        self.headers.len() + body
    }

    /// Answers with a body sent in pieces: the status and the header lines set so far go out
    /// when the function returns, and `producer` runs on a stream thread of its own, sending
    /// the body with [`BodyStream::send`] (chunked on HTTP/1.1) while the server goes on
    /// serving others. See `stream.rs` for the model.
    ///
    /// The producer owns what it needs (`move`): it runs after the function has returned and
    /// the request's bytes are gone, so it borrows nothing from the request — copy what it
    /// uses (`let n: u64 = req.query_param("n")…parse()…;`, `req.header("x").map(str::to_owned)`).
    /// It may log (`scf_lean::info!`, with the request id). Returning `Ok` ends the body;
    /// an `Err` or a panic cuts it off (logged at ERROR) and closes the connection.
    ///
    /// ```
    /// # use scf_lean::{Error, Request, Response};
    /// fn export<'a>(req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
    ///     let rows: u32 = req.query_param("rows").and_then(|n| n.parse().ok()).unwrap_or(1000);
    ///     out.content_type("text/csv");
    ///     out.stream(move |body| {
    ///         for row in 0..rows {
    ///             body.send(format!("{row},{}\n", row * row).as_bytes())?;
    ///         }
    ///         Ok(())
    ///     })
    /// }
    /// # let mut out = Response::new();
    /// # export(&Request::new("GET", "/?rows=3", &[], b""), &mut out).unwrap();
    /// # assert_eq!(out.collect_stream().unwrap().unwrap(), b"0,0\n1,1\n2,4\n");
    /// ```
    ///
    /// For a `HEAD` request the head is the whole answer: the producer does not run.
    ///
    /// # Errors
    /// For a 204 or 304 (no body), a second stream, or an invalid header set before. Answering
    /// an event (`POST /event-invoke`) with a stream is an error the server reports (a 500).
    pub fn stream<P>(&mut self, producer: P) -> Result<(), Error>
    where
        P: FnOnce(&mut BodyStream) -> Result<(), Error> + Send + 'static,
    {
        if self.producer.is_some() {
            return Err(Error::new("the response is already streaming"));
        }
        if let Some(why) = self.invalid {
            return Err(Error::new(why));
        }
        if matches!(self.status, 204 | 304) {
            return Err(Error::new("a 204 or 304 response has no body to stream"));
        }
        self.producer = Some(Box::new(producer));
        Ok(())
    }

    /// Answers with a stream of Server-Sent Events: `Content-Type: text/event-stream`,
    /// `Cache-Control: no-cache` and `X-Accel-Buffering: no` (so that an nginx in front does not
    /// buffer it), each unless the function set it already, then [`Response::stream`] with a
    /// producer that writes events ([`Sse::event`]).
    ///
    /// # Errors
    /// As [`Response::stream`].
    pub fn sse<P>(&mut self, producer: P) -> Result<(), Error>
    where
        P: FnOnce(&mut Sse) -> Result<(), Error> + Send + 'static,
    {
        for (name, value) in [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
        ] {
            if self.header_value(name).is_none() {
                self.header(name, value);
            }
        }
        self.stream(move |body| {
            let mut events = Sse::new(std::mem::replace(body, BodyStream::in_memory()));
            let r = producer(&mut events);
            *body = events.into_stream();
            r
        })
    }

    /// For unit tests: runs the stream's producer here, on this thread, and returns the body it
    /// sent (without chunked framing); `None` if the response does not stream.
    ///
    /// # Errors
    /// The producer's own error.
    pub fn collect_stream(&mut self) -> Option<Result<Vec<u8>, Error>> {
        let producer = self.producer.take()?;
        let mut body = BodyStream::in_memory();
        Some(producer(&mut body).map(|()| body.into_collected()))
    }

    /// Whether the answer is streamed.
    pub(crate) fn streams(&self) -> bool {
        self.producer.is_some()
    }

    /// The stream's producer, taken.
    pub(crate) fn take_producer(&mut self) -> Option<Producer> {
        self.producer.take()
    }

    /// Why the response is invalid, if it is.
    pub(crate) fn invalid(&self) -> Option<&'static str> {
        self.invalid
    }

    /// Turns the response into the error answer (keeping its buffers): the one place an error
    /// body is built, for a function's errors and the server's own. Header lines the function
    /// added before failing are dropped; the error's own ([`Error::with_header`]) are kept, and
    /// an invalid one makes the answer invalid ([`Response::invalid`]), for the caller to
    /// replace with a plain 500.
    pub(crate) fn set_error(&mut self, e: &Error) {
        self.status = e.status();
        self.headers.clear();
        self.at = BodyAt::Owned;
        self.invalid = None;
        if self.body.capacity() > ERROR_BUF {
            // The answer it replaces was large (too large, perhaps): let its memory go now.
            self.body = Vec::new();
        }
        self.body.clear();
        crate::error::write_json(&mut self.body, e.code(), e.message());
        self.headers
            .extend_from_slice(b"Content-Type: application/json\r\n");
        for (name, value) in e.headers() {
            if name.eq_ignore_ascii_case("content-type") {
                self.invalid
                    .get_or_insert("an error's body is JSON: it cannot set Content-Type");
            } else {
                self.header(name, value);
            }
        }
    }

    /// Its parts, for the connection to send.
    #[inline]
    pub(crate) fn into_parts(self) -> Parts<'a> {
        Parts {
            status: self.status,
            headers: self.headers,
            body: self.body,
            at: self.at,
        }
    }
}

impl fmt::Debug for Response<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = String::from_utf8_lossy(&self.headers);
        let headers = text.split("\r\n").filter_map(|line| line.split_once(": "));
        f.debug_struct("Response")
            .field("status", &self.status)
            .field(
                "headers",
                &DebugMap(headers.map(|(n, v)| (n, Value::of(n, v.as_bytes())))),
            )
            .field("body_bytes", &self.body().len())
            .field("invalid", &self.invalid)
            .finish()
    }
}

impl Write for Response<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.body_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// tchar (RFC 9110 §5.6.2).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The response a connection is sending, and how far it has got.
#[derive(Debug)]
pub(crate) struct Output {
    /// Status line and the headers the server writes.
    pub head: Vec<u8>,
    /// The function's header lines and the empty line.
    pub headers: Vec<u8>,
    /// The function's body buffer.
    pub body: Vec<u8>,
    /// Where the body is; `Input(start, end)` is `read_buf[start..end]`.
    pub at: BodyAt<(usize, usize)>,
    /// Bytes of head + headers + body already written.
    pub sent: usize,
    /// Whether anything is waiting to be written.
    pub pending: bool,
}

/// How an answer's body ends: the one body encoder's three framings (RFC 9112 §6.3). The
/// chunks of a streamed body are framed by its producer's `send` (`stream.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// `Content-Length`: a whole answer.
    Length(usize),
    /// `Transfer-Encoding: chunked`: a stream on HTTP/1.1.
    Chunked,
    /// The connection's end: a stream on HTTP/1.0.
    UntilClose,
}

/// How the head describes persistence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Persist {
    /// HTTP/1.1 keep-alive: nothing to say.
    Default,
    /// HTTP/1.0 that asked for keep-alive.
    KeepAlive,
    /// The connection closes after this response.
    Close,
}

impl Output {
    pub fn new() -> Output {
        Output {
            head: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
            at: BodyAt::Empty,
            sent: 0,
            pending: false,
        }
    }

    /// A `200` [`Response`] that writes into this output's buffers (emptied).
    #[inline]
    pub fn response<'a>(&mut self) -> Response<'a> {
        let (mut headers, mut body) = (
            std::mem::take(&mut self.headers),
            std::mem::take(&mut self.body),
        );
        // A connection's first answer: room for a usual one at once, not a chain of reallocs
        // (each a copy, and on musl maybe a page mapped and unmapped). Reused afterwards.
        headers.reserve(FIRST_HEADERS);
        body.reserve(FIRST_BODY);
        Response::with_buffers(headers, body)
    }

    /// Takes `resp` (its buffers back, its body where it lies) and prepares it to be sent:
    /// a slice of `input` is kept as a range, any other borrowed slice is copied into the body
    /// buffer. `send_body` is false for HEAD. Returns the status.
    #[inline(always)]
    pub fn prepare(
        &mut self,
        resp: Response<'_>,
        input: &[u8],
        date: &[u8],
        send_body: bool,
        persist: Persist,
    ) -> u16 {
        let Parts {
            status,
            headers,
            body,
            at,
        } = resp.into_parts();
        self.headers = headers;
        self.body = body;
        self.at = match at {
            BodyAt::Empty => BodyAt::Empty,
            BodyAt::Owned => BodyAt::Owned,
            BodyAt::Static(s) => BodyAt::Static(s),
            BodyAt::Input(r) => match range_in(input, r) {
                Some(range) => BodyAt::Input(range),
                None => {
                    self.body.extend_from_slice(r);
                    BodyAt::Owned
                }
            },
        };
        let len = match self.at {
            BodyAt::Empty => 0,
            BodyAt::Owned => self.body.len(),
            BodyAt::Static(s) => s.len(),
            BodyAt::Input((a, b)) => b - a,
        };
        self.start(status, date, Framing::Length(len), send_body, persist);
        status
    }

    /// Takes a streamed `resp` and prepares its head: chunked on HTTP/1.1, else delimited by
    /// the connection's end (which then closes). Its body comes later, in batches
    /// ([`Output::batch`]). Returns the status.
    #[cold]
    #[inline(never)]
    pub fn prepare_stream(
        &mut self,
        resp: Response<'_>,
        date: &[u8],
        chunked: bool,
        persist: Persist,
    ) -> u16 {
        let Parts {
            status,
            headers,
            body,
            ..
        } = resp.into_parts();
        self.headers = headers;
        self.body = body;
        self.body.clear();
        let (framing, persist) = if chunked {
            (Framing::Chunked, persist)
        } else {
            (Framing::UntilClose, Persist::Close)
        };
        self.start(status, date, framing, false, persist);
        status
    }

    /// Sends what the body buffer holds (a stream's batch, already framed), as it is.
    pub fn batch(&mut self) {
        self.head.clear();
        self.headers.clear();
        self.at = BodyAt::Owned;
        self.sent = 0;
        self.pending = !self.body.is_empty();
    }

    /// Writes the head of a response: `headers` ends with the function's lines, `at` says where
    /// the body is, `framing` how its end is told; `send_body` is false for HEAD.
    fn start(
        &mut self,
        status: u16,
        date: &[u8],
        framing: Framing,
        send_body: bool,
        persist: Persist,
    ) {
        let no_body = status == 204 || status == 304;
        let head = &mut self.head;
        head.clear();
        // Room for a whole head at once: grown 8, 16, 32, 64, 128 on a connection's first
        // response, each step a realloc (and on musl, a page mapped or unmapped).
        head.reserve(HEAD_ROOM);
        status_line(head, status);
        head.extend_from_slice(b"Date: ");
        head.extend_from_slice(date);
        match framing {
            _ if no_body => {}
            Framing::Length(n) => {
                head.extend_from_slice(b"\r\nContent-Length: ");
                head.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            }
            Framing::Chunked => head.extend_from_slice(b"\r\nTransfer-Encoding: chunked"),
            Framing::UntilClose => {}
        }
        head.extend_from_slice(match persist {
            Persist::Default => &b"\r\n"[..],
            Persist::KeepAlive => b"\r\nConnection: keep-alive\r\n",
            Persist::Close => b"\r\nConnection: close\r\n",
        });
        self.headers.extend_from_slice(b"\r\n");
        if no_body || !send_body {
            self.at = BodyAt::Empty;
        }
        self.sent = 0;
        self.pending = true;
    }

    /// Prepares `100 Continue`.
    pub fn interim_continue(&mut self) {
        self.head.clear();
        self.head
            .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        self.headers.clear();
        self.at = BodyAt::Empty;
        self.sent = 0;
        self.pending = true;
    }

    fn body_slice<'b>(&'b self, input: &'b [u8]) -> &'b [u8] {
        match self.at {
            BodyAt::Empty => &[],
            BodyAt::Owned => &self.body,
            BodyAt::Static(s) => s,
            BodyAt::Input((a, b)) => &input[a..b],
        }
    }

    /// Total bytes of this response on the wire.
    pub fn wire_len(&self, input: &[u8]) -> usize {
        self.head.len() + self.headers.len() + self.body_slice(input).len()
    }

    /// Writes as much as the socket takes. `Ok(true)` once everything is out; `WouldBlock`
    /// and other errors are returned as they come. Always inlined: the request path's copy
    /// stays in the connection's loop (src/hot-text.ld), the rare callers get their own.
    #[inline(always)]
    pub fn write_to<W: Write>(&mut self, w: &mut W, input: &[u8]) -> io::Result<bool> {
        loop {
            let parts = [&self.head[..], &self.headers[..], self.body_slice(input)];
            let mut skip = self.sent;
            let mut iov = [IoSlice::new(&[]), IoSlice::new(&[]), IoSlice::new(&[])];
            let mut n = 0;
            for p in parts {
                if skip >= p.len() {
                    skip -= p.len();
                    continue;
                }
                iov[n] = IoSlice::new(&p[skip..]);
                skip = 0;
                n += 1;
            }
            if n == 0 {
                self.finish();
                return Ok(true);
            }
            match w.write_vectored(&iov[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => self.sent += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The bytes its buffers hold.
    pub fn capacity(&self) -> usize {
        self.head.capacity() + self.headers.capacity() + self.body.capacity()
    }

    /// Whether it holds buffers (a new `Output` holds none and allocates nothing).
    pub fn has_buffers(&self) -> bool {
        self.head.capacity() > 0 || self.body.capacity() > 0
    }

    /// Empties it for another response, and frees any buffer that has grown past `limit` bytes.
    pub fn recycle(&mut self, limit: usize) {
        self.finish();
        for b in [&mut self.head, &mut self.headers, &mut self.body] {
            if b.capacity() > limit {
                *b = Vec::new();
            }
        }
    }

    /// Empties it for another response, its buffers kept.
    pub fn finish(&mut self) {
        self.pending = false;
        self.sent = 0;
        self.at = BodyAt::Empty;
        self.headers.clear();
        self.body.clear();
    }
}

/// Where `part` lies within `buf`, if it does.
fn range_in(buf: &[u8], part: &[u8]) -> Option<(usize, usize)> {
    let base = buf.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    let a = p.checked_sub(base)?;
    (a + part.len() <= buf.len()).then_some((a, a + part.len()))
}

/// The reason phrase of common statuses (RFC 9110 §15); empty for others, which is allowed.
/// `HTTP/1.1 <status> <reason>\r\n`: the first line of every answer, whole or streamed.
#[inline]
pub(crate) fn status_line(v: &mut Vec<u8>, status: u16) {
    v.extend_from_slice(b"HTTP/1.1 ");
    v.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    v.push(b' ');
    v.extend_from_slice(reason(status).as_bytes());
    v.extend_from_slice(b"\r\n");
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    /// A writer that takes at most `step` bytes a call and says WouldBlock every other call.
    struct Trickle {
        out: Vec<u8>,
        step: usize,
        block: bool,
    }

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.block = !self.block;
            if self.block {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = b.len().min(self.step);
            self.out.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn send(o: &mut Output, input: &[u8], step: usize) -> Vec<u8> {
        let mut w = Trickle {
            out: Vec::new(),
            step,
            block: false,
        };
        loop {
            match o.write_to(&mut w, input) {
                Ok(true) => return w.out,
                Ok(false) => unreachable!(),
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            }
        }
    }

    #[test]
    fn test_head_headers_body_in_order_across_partial_writes() {
        for step in [1, 3, 7, 1000] {
            let mut o = Output::new();
            o.headers.extend_from_slice(b"X-A: 1\r\n");
            o.body.extend_from_slice(b"hello");
            o.at = BodyAt::Owned;
            o.start(200, DATE, Framing::Length(5), true, Persist::Default);
            assert_eq!(
                send(&mut o, b"", step),
                b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"
            );
            assert!(!o.pending);
        }
    }

    #[test]
    fn test_head_and_persistence() {
        let mut o = Output::new();
        o.at = BodyAt::Input((2, 4));
        o.start(299, DATE, Framing::Length(2), false, Persist::Close);
        assert_eq!(
            send(&mut o, b"abcdef", 100),
            b"HTTP/1.1 299 \r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
        o.at = BodyAt::Input((2, 4));
        o.start(200, DATE, Framing::Length(2), true, Persist::KeepAlive);
        let out = send(&mut o, b"abcdef", 100);
        assert!(
            out.ends_with(b"Connection: keep-alive\r\n\r\ncd"),
            "{out:?}"
        );
        o.at = BodyAt::Static(b"zz");
        o.start(204, DATE, Framing::Length(2), true, Persist::Default);
        let out = send(&mut o, b"", 100);
        assert_eq!(
            out,
            b"HTTP/1.1 204 No Content\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
        );
        o.interim_continue();
        assert_eq!(send(&mut o, b"", 2), b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn test_invalid_headers_and_status_are_caught() {
        let cases: &[(&str, &str)] = &[
            ("X-A", "a\r\nInjected: 1"),
            ("X-A", "a\nb"),
            ("X A", "b"),
            ("", "b"),
            ("Content-Length", "5"),
            ("transfer-encoding", "chunked"),
            ("X-A", "nul\0"),
        ];
        for (n, v) in cases {
            let mut r = Response::new();
            r.header(n, v);
            assert!(r.invalid().is_some(), "{n:?}: {v:?}");
            assert!(r.headers.is_empty());
        }
        let mut r = Response::new();
        r.set_status(101);
        assert!(r.invalid().is_some());
        let mut r = Response::new();
        r.header("X-Ok", "tab\tand obs-text é");
        assert!(r.invalid().is_none());
        assert_eq!(r.header_value("x-ok"), Some("tab\tand obs-text é"));
    }

    #[test]
    fn test_bodies() {
        let mut r = Response::new();
        r.set_body_static(b"static");
        assert_eq!(r.body(), b"static");
        write!(r, "n={}", 5).unwrap();
        assert_eq!(r.body(), b"n=5");
        let owned = b"borrowed".to_vec();
        let mut r = Response::new();
        r.set_body_ref(&owned);
        assert_eq!(r.body(), b"borrowed");
        r.set_error(&Error::new("boom"));
        assert_eq!(r.status(), 500);
        assert_eq!(r.body(), br#"{"errorCode":500,"errorMessage":"boom"}"#);
        assert_eq!(r.header_value("Content-Type"), Some("application/json"));
    }
}
