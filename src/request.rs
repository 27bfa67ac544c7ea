//! Request framing: the request head (RFC 9112 §2–3, §6), and the [`Request`] a function sees.
//!
//! ```text
//! HTTP-message   = start-line CRLF *( field-line CRLF ) CRLF [ message-body ]
//! request-line   = method SP request-target SP HTTP-version
//! ```
//!
//! `httparse` finds the fields without copying; [`parse_head`] then walks them **once**, and in
//! that one pass settles the body framing (`Content-Length` / `Transfer-Encoding`), persistence
//! (`Connection`), `Expect`, `Host`, and offers every field to the platform's header taker,
//! which picks the context fields into the [`Context`]. Every rule that rejects a request is
//! here, with the status it earns; the body itself is framed by the connection (`conn.rs`) and,
//! when chunked, decoded by `chunked.rs`.

use std::borrow::Cow;
use std::fmt;
use std::time::Instant;

use crate::config::Config;
use crate::context::Context;
use crate::error::{Error, Reject};
use crate::platform;
use crate::redact::Value;
use crate::uri::{self, QueryParams, Segments};

/// How the body of a request is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length: n`, or no body (`n` = 0).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the single pass over a complete head found.
#[derive(Debug)]
pub(crate) struct Head<'a> {
    /// Length of the head in bytes, up to and including the empty line.
    pub len: usize,
    /// The method as sent.
    pub method: &'a str,
    pub target: &'a str,
    /// HTTP/1.`minor`.
    pub minor: u8,
    /// How many entries of the header array hold fields.
    pub fields: usize,
    pub framing: Framing,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1.
    pub expect_continue: bool,
    pub ctx: Context<'a>,
}

/// Watches a partial head as bytes arrive, so that a head trickled in one byte at a time costs
/// linear work: the full parse runs only once an empty line may have arrived.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HeadScan {
    /// Bytes of the head already looked at.
    scanned: usize,
    /// Whether the request line has begun.
    started: bool,
    /// Whether the request line has ended.
    line_done: bool,
}

impl HeadScan {
    /// Looks at the bytes that arrived since the last call. Returns whether the head may now be
    /// complete (an empty line ends it: `\n\r\n` or `\n\n`).
    pub fn feed(&mut self, buf: &[u8]) -> bool {
        let from = self.scanned.min(buf.len());
        if !self.line_done {
            for &b in &buf[from..] {
                if !self.started {
                    // Empty lines before the request line are skipped (RFC 9112 §2.2).
                    self.started = b != b'\r' && b != b'\n';
                } else if b == b'\n' {
                    self.line_done = true;
                    break;
                }
            }
        }
        let new = &buf[from.saturating_sub(2)..];
        self.scanned = buf.len();
        new.windows(2).enumerate().any(|(i, w)| {
            w[0] == b'\n' && (w[1] == b'\n' || (w[1] == b'\r' && new.get(i + 2) == Some(&b'\n')))
        })
    }

    /// Whether nothing has been looked at yet.
    pub fn is_fresh(&self) -> bool {
        self.scanned == 0
    }

    /// Whether the request line is complete.
    pub fn line_done(&self) -> bool {
        self.line_done
    }
}

/// Parses the head at the start of `buf` into `headers`.
///
/// Returns `Ok(None)` while the head is incomplete and within its limits.
///
/// # Errors
/// The [`Reject`] that answers the request: 400, 413, 414, 417, 431, 501 or 505.
pub(crate) fn parse_head<'a>(
    buf: &'a [u8],
    headers: &mut [httparse::Header<'a>],
    config: &Config,
    arrival: Instant,
) -> Result<Option<Head<'a>>, Reject> {
    let mut req = httparse::Request::new(headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > config.max_head_bytes {
                return Err(Reject::HeadTooLarge);
            }
            return Ok(None);
        }
        Err(e) => return Err(reject_parse(e, buf)),
    };
    if len > config.max_head_bytes {
        return Err(Reject::HeadTooLarge);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Reject::BadRequest("incomplete request line"));
    };
    if target.len() > config.max_target_bytes {
        return Err(Reject::UriTooLong);
    }
    check_target(method, target)?;

    let mut ctx = Context::default();
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut expect_continue = false;
    let mut hosts = 0u32;
    let mut seen = platform::Seen::default();
    let fields = req.headers.len();
    // The one pass over the fields.
    for h in req.headers.iter() {
        let (name, value) = (h.name, h.value);
        match platform::take_header(&mut ctx, &mut seen, name, value, arrival) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(why) => return Err(Reject::ForgedContext(why)),
        }
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(value)?;
            if length.is_some_and(|l| l != n) {
                return Err(Reject::BadRequest("conflicting Content-Length"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            for coding in list(value) {
                let is_chunked = coding.eq_ignore_ascii_case(b"chunked");
                if chunked {
                    // RFC 9112 §6.3: a coding after chunked leaves the length unknown: 400.
                    return Err(Reject::BadRequest(if is_chunked {
                        "chunked applied twice"
                    } else {
                        "chunked is not the final transfer coding"
                    }));
                }
                if !is_chunked {
                    return Err(Reject::NotImplemented(
                        "only the chunked transfer coding is implemented",
                    ));
                }
                chunked = true;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for option in list(value) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if minor == 1 {
                if !trim(value).eq_ignore_ascii_case(b"100-continue") {
                    return Err(Reject::ExpectationFailed);
                }
                expect_continue = true;
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if !valid_host(value) {
                return Err(Reject::BadRequest("invalid Host header"));
            }
        }
    }

    if transfer_encoding {
        if length.is_some() {
            // RFC 9112 §6.1: both are a smuggling attempt; reject and close.
            return Err(Reject::BadRequest(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        if minor == 0 {
            return Err(Reject::BadRequest("Transfer-Encoding on HTTP/1.0"));
        }
        if !chunked {
            return Err(Reject::BadRequest("empty Transfer-Encoding"));
        }
    }
    if minor == 1 && hosts == 0 {
        return Err(Reject::BadRequest("missing Host header"));
    }
    if hosts > 1 {
        return Err(Reject::BadRequest("more than one Host header"));
    }
    let framing = if chunked {
        Framing::Chunked
    } else {
        Framing::Length(length.unwrap_or(0))
    };
    if let Framing::Length(n) = framing {
        if n > config.max_body_bytes {
            return Err(Reject::PayloadTooLarge);
        }
    }
    Ok(Some(Head {
        len,
        method,
        target,
        minor,
        fields,
        framing,
        keep_alive: if minor == 1 {
            !close
        } else {
            keep_alive && !close
        },
        expect_continue,
        ctx,
    }))
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6): no sign, no spaces inside, no list, no overflow.
fn parse_length(value: &[u8]) -> Result<usize, Reject> {
    let v = trim(value);
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(Reject::BadRequest("invalid Content-Length"));
    }
    v.iter()
        .try_fold(0usize, |n, d| {
            n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        })
        .ok_or(Reject::BadRequest("Content-Length overflows"))
}

/// The elements of a `#rule` list (RFC 9110 §5.6.1), trimmed, empty ones skipped.
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|s| !s.is_empty())
}

/// Without leading and trailing OWS (SP / HTAB).
fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// RFC 9112 §3.2: origin-form, absolute-form, or asterisk-form for OPTIONS; no fragment
/// (`#` is in none of the forms). CONNECT (authority-form, §3.2.3) is well-formed but not
/// something this origin server does: 501 (RFC 9110 §9.3.6, §15.6.2).
fn check_target(method: &str, target: &str) -> Result<(), Reject> {
    if method == "CONNECT" {
        return Err(Reject::NotImplemented(
            "the CONNECT method is not supported",
        ));
    }
    let ok = (target.starts_with('/')
        || (target == "*" && method == "OPTIONS")
        || strip_scheme(target).is_some())
        && !target.contains('#');
    if ok {
        Ok(())
    } else {
        Err(Reject::BadRequest("invalid request target"))
    }
}

/// The path and the query of a request target (RFC 9112 §3.2): in absolute-form the authority
/// ends at the first `/`, `?` or `#` (RFC 3986 §3.2), and a target with no path has `/`.
pub(crate) fn split_target(target: &str) -> (&str, &str) {
    let rest = match strip_scheme(target) {
        Some(rest) => &rest[rest.find(['/', '?', '#']).unwrap_or(rest.len())..],
        None => target,
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    (if path.is_empty() { "/" } else { path }, query)
}

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2): a reg-name, an IPv4 address or a bracketed
/// IP literal, and a port. No space, no userinfo (`@`), and no list (`,`: two hosts).
fn valid_host(value: &[u8]) -> bool {
    trim(value)
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+;=:[]".contains(&b))
}

/// The authority and path of an absolute-form target, without `http://` or `https://`.
fn strip_scheme(target: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|s| {
        let head = target.get(..s.len())?;
        head.eq_ignore_ascii_case(s).then(|| &target[s.len()..])
    })
}

/// Maps an httparse error to the answer. A version that is well-formed but not 1.0/1.1 gets 505.
fn reject_parse(e: httparse::Error, buf: &[u8]) -> Reject {
    match e {
        httparse::Error::TooManyHeaders => Reject::HeadTooLarge,
        httparse::Error::Version if well_formed_version(buf) => Reject::VersionNotSupported,
        httparse::Error::Version => Reject::BadRequest("invalid HTTP version"),
        httparse::Error::HeaderName => Reject::BadRequest("invalid header name"),
        httparse::Error::HeaderValue => Reject::BadRequest("invalid header value"),
        httparse::Error::NewLine => Reject::BadRequest("invalid line ending"),
        httparse::Error::Token | httparse::Error::Status => {
            Reject::BadRequest("invalid request line")
        }
    }
}

/// Whether the request line ends in `HTTP/d.d` (RFC 9112 §2.3).
fn well_formed_version(buf: &[u8]) -> bool {
    let line = buf.split(|&b| b == b'\n').find(|l| !trim_cr(l).is_empty());
    let line = line.map(trim_cr).unwrap_or_default();
    let v = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    matches!(v, [b'H', b'T', b'T', b'P', b'/', a, b'.', b] if a.is_ascii_digit() && b.is_ascii_digit())
}

fn trim_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// The header fields of a request. `Debug` prints the credential headers' values as
/// `<redacted>`.
#[derive(Clone, Copy)]
pub struct Headers<'a>(HeadersInner<'a>);

#[derive(Clone, Copy)]
enum HeadersInner<'a> {
    Parsed(&'a [httparse::Header<'a>]),
    Pairs(&'a [(&'a str, &'a [u8])]),
}

impl<'a> Headers<'a> {
    /// The number of fields.
    pub fn len(&self) -> usize {
        match self.0 {
            HeadersInner::Parsed(h) => h.len(),
            HeadersInner::Pairs(p) => p.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th field as (name as sent, value).
    pub fn get_index(&self, i: usize) -> Option<(&'a str, &'a [u8])> {
        match self.0 {
            HeadersInner::Parsed(h) => h.get(i).map(|h| (h.name, h.value)),
            HeadersInner::Pairs(p) => p.get(i).copied(),
        }
    }

    /// Every field in order, names as sent.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let h = *self;
        (0..h.len()).filter_map(move |i| h.get_index(i))
    }

    /// The value of the first field named `name` (any case) as text; `None` when there is none
    /// or its value is not UTF-8 ([`Headers::get_bytes`] has it then).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.get_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The value of the first field named `name` (any case), as sent.
    pub fn get_bytes(&self, name: &str) -> Option<&'a [u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, v)| (n, Value::of(n, v))))
            .finish()
    }
}

/// A request as the function sees it: everything borrowed from the connection's read buffer.
///
/// `HEAD` requests are served by the function as `GET`: [`Request::method`] says `GET` and
/// [`Request::is_head`] says it was `HEAD`; the server sends the headers of the answer, with its
/// `Content-Length`, and no body. `Debug` never prints a credential (see [`Headers`] and
/// [`Context`]).
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    method: &'a str,
    head: bool,
    target: &'a str,
    minor: u8,
    headers: Headers<'a>,
    body: &'a [u8],
    ctx: Context<'a>,
}

impl<'a> Request<'a> {
    /// A request for a unit test, without a socket. `headers` are name and value pairs,
    /// `&[(&str, &[u8])]` (values are bytes, as on the wire). The platform's context fields
    /// among them (`X-Scf-*`) fill the context as the server would fill it.
    ///
    /// ```
    /// use scf_lean::Request;
    /// let headers: [(&str, &[u8]); 2] = [("Host", b"x"), ("X-Scf-Request-Id", b"r1")];
    /// let req = Request::new("GET", "/a?b=1", &headers, b"");
    /// assert_eq!((req.path(), req.query()), ("/a", "b=1"));
    /// assert_eq!(req.context().request_id, Some("r1"));
    /// ```
    pub fn new(
        method: &'a str,
        target: &'a str,
        headers: &'a [(&'a str, &'a [u8])],
        body: &'a [u8],
    ) -> Request<'a> {
        let mut ctx = Context::default();
        let mut seen = platform::Seen::default();
        let now = Instant::now();
        for (n, v) in headers {
            // A context header given twice: the first counts (the server would refuse it).
            let _ = platform::take_header(&mut ctx, &mut seen, n, v, now);
        }
        let head = method == "HEAD";
        Request {
            method: if head { "GET" } else { method },
            head,
            target,
            minor: 1,
            headers: Headers(HeadersInner::Pairs(headers)),
            body,
            ctx,
        }
    }

    pub(crate) fn from_head(
        head: &Head<'a>,
        headers: &'a [httparse::Header<'a>],
        body: &'a [u8],
    ) -> Request<'a> {
        let is_head = head.method == "HEAD";
        Request {
            method: if is_head { "GET" } else { head.method },
            head: is_head,
            target: head.target,
            minor: head.minor,
            headers: Headers(HeadersInner::Parsed(headers)),
            body,
            ctx: head.ctx,
        }
    }

    /// The method; `GET` for a `HEAD` request.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// Whether the request was `HEAD` (the body the function writes is not sent).
    pub fn is_head(&self) -> bool {
        self.head
    }

    /// The request target as sent: path and query.
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The path as sent (percent-encoded), without the query; for an absolute-form target,
    /// without scheme and authority.
    pub fn path(&self) -> &'a str {
        split_target(self.target).0
    }

    /// The path percent-decoded: `/users/%37` is `/users/7`. Borrowed (no allocation) when
    /// nothing is encoded. Route on [`Request::segments`] rather than on this: a decoded `%2F`
    /// is a `/` that was not a separator.
    pub fn path_decoded(&self) -> Cow<'a, str> {
        uri::decode(self.path(), false)
    }

    /// The path's segments, each percent-decoded, empty ones (a trailing `/`, `//`) skipped:
    /// `/users/42/` gives `users`, `42`. What a `match` routes on:
    ///
    /// ```
    /// # use scf_lean::Request;
    /// let req = Request::new("GET", "/users/%37", &[], b"");
    /// let mut s = req.segments();
    /// let answer = match (req.method(), s.next().as_deref(), s.next(), s.next()) {
    ///     ("GET", Some("users"), Some(id), None) => format!("user {id}"),
    ///     _ => "no such route".to_string(),
    /// };
    /// assert_eq!(answer, "user 7");
    /// ```
    pub fn segments(&self) -> Segments<'a> {
        Segments::new(self.path())
    }

    /// The raw query, without `?`; `""` when there is none.
    pub fn query(&self) -> &'a str {
        split_target(self.target).1
    }

    /// The first query parameter named `name`, percent-decoded (`+` is a space): for
    /// `?name=Ada%20Lovelace`, `Ada Lovelace`; `""` for `?flag` or `?flag=`. Borrowed (no
    /// allocation) when nothing is encoded.
    ///
    /// ```
    /// # use scf_lean::Request;
    /// let req = Request::new("GET", "/?name=Ada%20Lovelace&n=3", &[], b"");
    /// assert_eq!(req.query_param("name").as_deref(), Some("Ada Lovelace"));
    /// assert_eq!(req.query_param("n").and_then(|n| n.parse::<u32>().ok()), Some(3));
    /// assert_eq!(req.query_param("missing"), None);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.query_params().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Every query parameter in order, names and values percent-decoded (`+` is a space);
    /// repeated names come once each.
    pub fn query_params(&self) -> QueryParams<'a> {
        QueryParams::new(self.query())
    }

    /// The minor HTTP version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub fn version_minor(&self) -> u8 {
        self.minor
    }

    /// The header fields.
    pub fn headers(&self) -> Headers<'a> {
        self.headers
    }

    /// The value of the first header named `name` (any case) as text: `None` when there is none
    /// or its value is not UTF-8 ([`Request::header_bytes`] has it then).
    ///
    /// ```
    /// # use scf_lean::Request;
    /// let headers = [("User-Agent", &b"curl/8"[..])];
    /// let req = Request::new("GET", "/", &headers, b"");
    /// assert_eq!(req.header("user-agent").unwrap_or("-"), "curl/8");
    /// assert_eq!(req.header("x-missing").unwrap_or("-"), "-");
    /// ```
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name)
    }

    /// The value of the first header named `name` (any case), as sent.
    pub fn header_bytes(&self, name: &str) -> Option<&'a [u8]> {
        self.headers.get_bytes(name)
    }

    /// The body, chunked coding already removed.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The SCF context of this request.
    pub fn context(&self) -> &Context<'a> {
        &self.ctx
    }

    /// The body parsed as JSON into `T`.
    ///
    /// # Errors
    /// A 400 [`Error`] that says what is wrong: `the body is not valid JSON: …` or ``the body does
    /// not fit Order: missing field `qty` at line 1 column 30``.
    pub fn json<T: serde::Deserialize<'a>>(&self) -> Result<T, Error> {
        crate::error::parse_json("the body", self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<(usize, Framing, bool, bool)>, Reject> {
        parse_with(raw, &Config::default())
    }

    fn parse_with(raw: &str, c: &Config) -> Result<Option<(usize, Framing, bool, bool)>, Reject> {
        let mut h = [httparse::EMPTY_HEADER; crate::config::MAX_HEADERS];
        let n = c.max_headers;
        parse_head(raw.as_bytes(), &mut h[..n], c, Instant::now())
            .map(|o| o.map(|h| (h.len, h.framing, h.keep_alive, h.expect_continue)))
    }

    /// One line a case: request, then the framing / error it must give.
    macro_rules! cases {
        ($($raw:expr => $want:expr;)*) => {$(
            assert_eq!(parse($raw).map(|o| o.map(|t| (t.1, t.2))), $want, "{:?}", $raw);
        )*};
    }

    const L0: Framing = Framing::Length(0);

    #[test]
    fn test_framing_and_persistence_table() {
        use Reject::*;
        cases! {
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n" => Ok(Some((L0, true)));
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" => Ok(Some((L0, false)));
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n" => Ok(Some((L0, false)));
            "GET / HTTP/1.0\r\n\r\n" => Ok(Some((L0, false)));
            "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n" => Ok(Some((L0, true)));
            "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n" => Ok(Some((L0, false)));
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n" => Ok(Some((Framing::Length(5), true)));
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n" => Ok(Some((Framing::Length(5), true)));
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" => Ok(Some((Framing::Chunked, true)));
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n" => Ok(Some((Framing::Chunked, true)));
            "POST / HTTP/1.1\r\nHost: a\r\n" => Ok(None);
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n" => Err(BadRequest("conflicting Content-Length"));
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n" => Err(BadRequest("invalid Content-Length"));
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n" => Err(BadRequest("invalid Content-Length"));
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n" => Err(BadRequest("invalid Content-Length"));
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5\r\n\r\n" => Err(BadRequest("invalid Content-Length"));
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n" => Err(BadRequest("invalid Content-Length"));
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n" => Err(BadRequest("invalid Content-Length"));
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n" => Err(BadRequest("Content-Length overflows"));
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6291457\r\n\r\n" => Err(PayloadTooLarge);
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" => Err(BadRequest("both Content-Length and Transfer-Encoding"));
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\ncontent-length: 3\r\n\r\n" => Err(BadRequest("both Content-Length and Transfer-Encoding"));
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" => Err(NotImplemented("only the chunked transfer coding is implemented"));
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n" => Err(BadRequest("chunked is not the final transfer coding"));
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n" => Err(BadRequest("chunked is not the final transfer coding"));
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n" => Err(NotImplemented("only the chunked transfer coding is implemented"));
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" => Err(BadRequest("chunked applied twice"));
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n" => Err(BadRequest("empty Transfer-Encoding"));
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" => Err(BadRequest("Transfer-Encoding on HTTP/1.0"));
            "GET / HTTP/1.1\r\n\r\n" => Err(BadRequest("missing Host header"));
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" => Err(BadRequest("more than one Host header"));
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n" => Err(BadRequest("invalid header name"));
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n" => Err(BadRequest("invalid header name"));
            "GET / HTTP/1.1\r\nHo\0st: a\r\n\r\n" => Err(BadRequest("invalid header name"));
            "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n" => Err(BadRequest("invalid header value"));
            "GET / HTTP/1.1\r\nHost: a\x0bb\r\n\r\n" => Err(BadRequest("invalid header value"));
            "GET / HTTP/2.0\r\nHost: a\r\n\r\n" => Err(VersionNotSupported);
            "GET / HTTP/1.2\r\nHost: a\r\n\r\n" => Err(VersionNotSupported);
            "GET / FOO/1.1\r\nHost: a\r\n\r\n" => Err(BadRequest("invalid HTTP version"));
            "GET  / HTTP/1.1\r\nHost: a\r\n\r\n" => Err(BadRequest("invalid request line"));
            "GET foo HTTP/1.1\r\nHost: a\r\n\r\n" => Err(BadRequest("invalid request target"));
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n" => Err(BadRequest("invalid request target"));
            "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n" => Ok(Some((L0, true)));
            "GET http://a/b?c HTTP/1.1\r\nHost: a\r\n\r\n" => Ok(Some((L0, true)));
            "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n" => Ok(Some((L0, true)));
            "POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n" => Err(ExpectationFailed);
        }
    }

    #[test]
    fn test_expect_continue_only_on_http11() {
        let r = parse(
            "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
        );
        assert!(r.unwrap().unwrap().3);
        let r = parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        assert!(!r.unwrap().unwrap().3);
    }

    #[test]
    fn test_head_limits_at_and_past_the_value() {
        let c = Config::default();
        let mk = |total: usize| {
            let base = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: \r\n\r\n";
            let pad = "p".repeat(total - base.len());
            format!("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {pad}\r\n\r\n")
        };
        let at = mk(c.max_head_bytes);
        assert_eq!(at.len(), c.max_head_bytes);
        assert!(parse(&at).unwrap().is_some());
        assert_eq!(parse(&mk(c.max_head_bytes + 1)), Err(Reject::HeadTooLarge));
        // Incomplete and already past the limit: no need to wait for the rest.
        let partial = &mk(c.max_head_bytes + 10)[..c.max_head_bytes + 1];
        assert_eq!(parse(partial), Err(Reject::HeadTooLarge));
        assert_eq!(
            parse(&mk(c.max_head_bytes)[..c.max_head_bytes - 1]),
            Ok(None)
        );
    }

    #[test]
    fn test_header_count_at_and_past_the_limit() {
        let c = Config {
            max_headers: 10,
            ..Config::default()
        };
        let mk = |n: usize| {
            let mut s = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
            for i in 1..n {
                s.push_str(&format!("X-{i}: v\r\n"));
            }
            s + "\r\n"
        };
        assert!(parse_with(&mk(10), &c).unwrap().is_some());
        assert_eq!(parse_with(&mk(11), &c), Err(Reject::HeadTooLarge));
        assert!(parse(&mk(100)).unwrap().is_some());
        assert_eq!(parse(&mk(101)), Err(Reject::HeadTooLarge));
    }

    #[test]
    fn test_target_at_and_past_the_limit() {
        let c = Config::default();
        let mk = |n: usize| format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(n - 1));
        assert!(parse(&mk(c.max_target_bytes)).unwrap().is_some());
        assert_eq!(parse(&mk(c.max_target_bytes + 1)), Err(Reject::UriTooLong));
    }

    #[test]
    fn test_body_limit_at_and_past_the_value() {
        let c = Config {
            max_body_bytes: 10,
            ..Config::default()
        };
        let mk = |n: usize| format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {n}\r\n\r\n");
        assert!(parse_with(&mk(10), &c).unwrap().is_some());
        assert_eq!(parse_with(&mk(11), &c), Err(Reject::PayloadTooLarge));
    }

    #[test]
    fn test_scf_context_in_the_same_pass() {
        let raw = "POST /event-invoke HTTP/1.1\r\nHost: a\r\nX-Scf-Request-Id: r-9\r\nX-Scf-Memory: 512\r\nContent-Length: 0\r\n\r\n";
        let mut h = [httparse::EMPTY_HEADER; 8];
        let head = parse_head(raw.as_bytes(), &mut h, &Config::default(), Instant::now())
            .unwrap()
            .unwrap();
        assert_eq!(head.ctx.request_id, Some("r-9"));
        assert_eq!(head.ctx.memory_mb, Some(512));
        assert_eq!(head.len, raw.len());
        assert_eq!(head.fields, 4);
    }

    #[test]
    fn test_head_scan_wakes_only_for_an_empty_line() {
        let raw = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        // Oracle: fed one byte at a time, the scan says "maybe complete" no later than a full
        // parse would succeed.
        let mut s = HeadScan::default();
        let mut first = None;
        for i in 1..=raw.len() {
            if s.feed(&raw[..i]) && first.is_none() {
                first = Some(i);
            }
        }
        assert_eq!(first, Some(raw.len()));
        assert!(s.line_done());
        let mut s = HeadScan::default();
        assert!(!s.feed(b"GET / HTTP/1.1"));
        assert!(!s.line_done());
        assert!(s.feed(b"GET / HTTP/1.1\n\n"));
    }

    #[test]
    fn test_request_accessors() {
        let h = [("Host", &b"h"[..]), ("X-A", &b"1"[..]), ("x-a", &b"2"[..])];
        let r = Request::new("HEAD", "http://h/p/q?x=1&y", &h, b"body");
        assert_eq!(r.method(), "GET");
        assert!(r.is_head());
        assert_eq!(r.path(), "/p/q");
        assert_eq!(r.query(), "x=1&y");
        assert_eq!(r.header("x-A"), Some("1"));
        assert_eq!(r.header_bytes("x-A"), Some(&b"1"[..]));
        assert_eq!(r.headers().len(), 3);
        assert_eq!(r.body(), b"body");
        // A value that is not UTF-8 (obs-text) is there as bytes only.
        let h2 = [("X-Latin", &b"caf\xe9"[..])];
        let r2 = Request::new("GET", "/caf%C3%A9/x?q=%E9", &h2, b"");
        assert_eq!(r2.header("x-latin"), None);
        assert_eq!(r2.header_bytes("x-latin"), Some(&b"caf\xe9"[..]));
        assert_eq!(r2.path_decoded(), "/café/x");
        assert!(matches!(
            Request::new("GET", "/plain", &[], b"").path_decoded(),
            Cow::Borrowed("/plain")
        ));
        assert_eq!(r2.query_param("q").as_deref(), Some("\u{FFFD}"));
        assert_eq!(r2.query_params().count(), 1);
        let r = Request::new("GET", "http://h", &h, b"");
        assert_eq!((r.path(), r.query()), ("/", ""));
        // The authority ends at the first `/`, `?` or `#` (RFC 3986 §3.2).
        let r = Request::new("POST", "http://h?/event-invoke", &h, b"");
        assert_eq!((r.path(), r.query()), ("/", "/event-invoke"));
        let r = Request::new("GET", "HTTPS://h:8?a/b", &h, b"");
        assert_eq!((r.path(), r.query()), ("/", "a/b"));
        let r = Request::new("GET", "http://h/x?y=/z", &h, b"");
        assert_eq!((r.path(), r.query()), ("/x", "y=/z"));
        let r = Request::new("GET", "/", &h, b"");
        assert_eq!((r.path(), r.query()), ("/", ""));
    }
}
