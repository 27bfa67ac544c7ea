//! Errors a function returns, and the JSON shape every error response has.
//!
//! Every error response, from a function or from the server itself, is
//! `{"errorCode": <integer>, "errorMessage": "<text>"}` with `Content-Type: application/json`
//! and a `Content-Length`. The code is the HTTP status unless the function sets another.
//!
//! [`Error`] converts from any `std::error::Error` (so `?` works in a function) into a 500. It
//! deliberately does not implement `std::error::Error` itself: that is what makes the blanket
//! conversion possible, as with `anyhow::Error`.

use std::borrow::Cow;
use std::fmt;

/// An error a function returns: an HTTP status, an integer code, a message and any header
/// lines the error response needs (`WWW-Authenticate` on a 401, `Retry-After` on a 429 or 503).
///
/// ```
/// use scf_lean::Error;
/// let e = Error::new("slow down").with_status(429).with_header("Retry-After", "2");
/// assert_eq!((e.status(), e.code(), e.message()), (429, 429, "slow down"));
/// assert_eq!(e.headers().next(), Some(("Retry-After", "2")));
/// ```
///
/// `Debug` shows a credential header's value (`Set-Cookie`, `Authorization`…) as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    status: u16,
    code: Option<i64>,
    message: Cow<'static, str>,
    /// Header lines for the error response (no allocation while there are none).
    headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
}

impl Error {
    /// A 500 with this message.
    pub fn new(message: impl Into<Cow<'static, str>>) -> Error {
        Error {
            status: 500,
            code: None,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// A 400 with this message: the caller sent something the function cannot use.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(message).with_status(400)
    }

    /// A 404 with this message.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(message).with_status(404)
    }

    /// The same error with another HTTP status (an error status, 400 to 599; others become 500).
    pub fn with_status(mut self, status: u16) -> Error {
        self.status = if (400..=599).contains(&status) {
            status
        } else {
            500
        };
        self
    }

    /// The same error with an `errorCode` other than the status.
    pub fn with_code(mut self, code: i64) -> Error {
        self.code = Some(code);
        self
    }

    /// The same error with a header line on its response. The body stays the JSON error, so
    /// `Content-Type` cannot be set here; a header the server owns (`Content-Length`,
    /// `Transfer-Encoding`, `Connection`, `Date`), an invalid name or value turns the answer
    /// into a plain 500, as on [`Response::header`](crate::Response::header).
    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Error {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The header lines added with [`Error::with_header`], in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (&**n, &**v))
    }

    /// The HTTP status of the response.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The `errorCode` of the body.
    pub fn code(&self) -> i64 {
        self.code.unwrap_or(i64::from(self.status))
    }

    /// The `errorMessage` of the body.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers = self
            .headers
            .iter()
            .map(|(n, v)| (&**n, crate::redact::Value::of(n, v.as_bytes())));
        f.debug_struct("Error")
            .field("status", &self.status)
            .field("code", &self.code)
            .field("message", &self.message)
            .field("headers", &crate::redact::DebugMap(headers))
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "{} (code {code}): {}", self.status, self.message),
            None => write!(f, "{}: {}", self.status, self.message),
        }
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Error {
        Error::new(e.to_string())
    }
}

/// Why the server itself answers a request with an error and closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reject {
    /// 400: the request is malformed; the reason is a static string.
    BadRequest(&'static str),
    /// 400: a context header of the platform came twice (a client's forgery): its name after
    /// `X-Scf-` (or the platform's prefix), which the reason gives. Logged at WARN.
    ForgedContext(&'static str),
    /// 408: the head or the body did not arrive in time.
    Timeout,
    /// 413: the body is larger than `MAX_BODY_BYTES`.
    PayloadTooLarge,
    /// 414: the request target is longer than `MAX_TARGET_BYTES`.
    UriTooLong,
    /// 417: an `Expect` other than `100-continue`.
    ExpectationFailed,
    /// 431: the head is larger than `MAX_HEAD_BYTES` or has more than `MAX_HEADERS` fields.
    HeadTooLarge,
    /// 501: a transfer coding other than chunked.
    NotImplemented(&'static str),
    /// 505: an HTTP version other than 1.0 and 1.1.
    VersionNotSupported,
    /// 503: the request needs more memory than the budget has left.
    OverBudget,
}

impl Reject {
    /// The status of the response.
    pub fn status(self) -> u16 {
        match self {
            Reject::BadRequest(_) | Reject::ForgedContext(_) => 400,
            Reject::Timeout => 408,
            Reject::PayloadTooLarge => 413,
            Reject::UriTooLong => 414,
            Reject::ExpectationFailed => 417,
            Reject::HeadTooLarge => 431,
            Reject::NotImplemented(_) => 501,
            Reject::VersionNotSupported => 505,
            Reject::OverBudget => 503,
        }
    }

    /// The level its reason is logged at: a forgery is worth a warning; the rest is the usual
    /// noise of the internet, for debugging.
    pub fn level(self) -> crate::log::Level {
        match self {
            Reject::ForgedContext(_) => crate::log::Level::Warn,
            _ => crate::log::Level::Debug,
        }
    }

    /// The error answer: this status and message (no allocation: the message is static).
    pub fn to_error(self) -> Error {
        Error::new(self.reason()).with_status(self.status())
    }

    /// What the answer and the log line say: [`Reject::message`], but a forged context header
    /// is named (`more than one X-Scf-Secret-Key header`; never its values).
    pub fn reason(self) -> Cow<'static, str> {
        match self {
            Reject::ForgedContext(name) => forged(name).into(),
            _ => self.message().into(),
        }
    }

    /// The `errorMessage` of the response.
    pub fn message(self) -> &'static str {
        match self {
            Reject::BadRequest(m) | Reject::NotImplemented(m) => m,
            Reject::ForgedContext(_) => "a context header sent more than once",
            Reject::Timeout => "the request did not arrive in time",
            Reject::PayloadTooLarge => "the request body is larger than SCF_LEAN_MAX_BODY_BYTES",
            Reject::UriTooLong => "the request target is longer than SCF_LEAN_MAX_TARGET_BYTES",
            Reject::ExpectationFailed => "only Expect: 100-continue is supported",
            Reject::HeadTooLarge => {
                "the request head is larger than SCF_LEAN_MAX_HEAD_BYTES or has more fields than SCF_LEAN_MAX_HEADERS"
            }
            Reject::VersionNotSupported => "only HTTP/1.0 and HTTP/1.1 are supported",
            Reject::OverBudget => "the server's memory is taken by other requests: try again",
        }
    }
}

#[cold]
#[inline(never)]
fn forged(name: &str) -> String {
    let mut m = String::from("more than one ");
    m.push_str(crate::platform::CONTEXT_PREFIX);
    m.push_str(name);
    m.push_str(" header");
    m
}

/// Parses a JSON event into `T`; an event that is not valid JSON, or does not fit `T`, is a 400
/// that says why (`the event is not valid JSON: …` or `the event does not fit T: …`).
///
/// # Errors
/// A 400 [`Error`] whose message carries serde_json's reason, line and column.
///
/// ```
/// let v: serde_json::Value = scf_lean::from_json(br#"{"a":1}"#).unwrap();
/// assert_eq!(v["a"], 1);
/// assert_eq!(scf_lean::from_json::<serde_json::Value>(b"{").unwrap_err().status(), 400);
/// ```
pub fn from_json<'a, T: serde::Deserialize<'a>>(event: &'a [u8]) -> Result<T, Error> {
    parse_json("the event", event)
}

/// [`from_json`] for `what` (`the event`, `the body`), as the error messages name it.
pub(crate) fn parse_json<'a, T: serde::Deserialize<'a>>(
    what: &'static str,
    bytes: &'a [u8],
) -> Result<T, Error> {
    // JSON is UTF-8 (RFC 8259 §8.1), also inside the strings that a type skips.
    let text = std::str::from_utf8(bytes).map_err(|e| not_utf8(what, e.valid_up_to()))?;
    serde_json::from_str(text).map_err(|e| not_json(what, &e, std::any::type_name::<T>()))
}

// The errors of `from_json`, out of line: the request's code stays small (src/hot-text.ld).

#[cold]
#[inline(never)]
fn not_utf8(what: &str, at: usize) -> Error {
    Error::bad_request(format!(
        "{what} is not valid JSON: invalid UTF-8 at byte {at}"
    ))
}

#[cold]
#[inline(never)]
fn not_json(what: &str, e: &serde_json::Error, type_name: &str) -> Error {
    let msg = if e.classify() == serde_json::error::Category::Data {
        // Valid JSON of another shape: say which type it does not fit.
        let short = type_name.split('<').next().unwrap_or(type_name);
        format!(
            "{what} does not fit {}: {e}",
            short.rsplit("::").next().unwrap_or(short)
        )
    } else {
        format!("{what} is not valid JSON: {e}")
    };
    Error::bad_request(msg)
}

/// Appends `{"errorCode":code,"errorMessage":"message"}` to `out`, escaping the message.
pub(crate) fn write_json(out: &mut Vec<u8>, code: i64, message: &str) {
    out.extend_from_slice(b"{\"errorCode\":");
    out.extend_from_slice(itoa::Buffer::new().format(code).as_bytes());
    out.extend_from_slice(b",\"errorMessage\":");
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, message);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_error_shape_and_escaping() {
        let mut v = Vec::new();
        write_json(&mut v, 500, "bad \"thing\"\n");
        assert_eq!(
            v,
            br#"{"errorCode":500,"errorMessage":"bad \"thing\"\n"}"#.to_vec()
        );
        let e: serde_json::Value = serde_json::from_slice(&v).unwrap();
        assert_eq!(e["errorMessage"], "bad \"thing\"\n");
    }

    #[test]
    fn test_status_and_code() {
        assert_eq!(Error::new("x").status(), 500);
        assert_eq!(Error::new("x").code(), 500);
        assert_eq!(Error::bad_request("x").code(), 400);
        assert_eq!(Error::new("x").with_status(503).status(), 503);
        assert_eq!(Error::new("x").with_status(200).status(), 500);
        assert_eq!(Error::new("x").with_code(-1).code(), -1);
        assert_eq!(Error::new("x").with_code(-1).status(), 500);
    }

    #[test]
    fn test_an_errors_headers_are_kept_on_its_answer_and_redacted_in_debug() {
        let e = Error::new("sign in")
            .with_status(401)
            .with_header("WWW-Authenticate", "Bearer")
            .with_header("Set-Cookie", "session=SECRET-1");
        let mut out = crate::Response::new();
        out.header("X-Before", "dropped");
        out.set_error(&e);
        assert_eq!(out.status(), 401);
        assert_eq!(out.header_value("www-authenticate"), Some("Bearer"));
        assert_eq!(out.header_value("content-type"), Some("application/json"));
        assert_eq!(out.header_value("x-before"), None);
        assert_eq!(out.invalid(), None);
        let printed = format!("{e:?}");
        assert!(
            printed.contains("\"WWW-Authenticate\": \"Bearer\""),
            "{printed}"
        );
        assert!(!printed.contains("SECRET"), "{printed}");
        // What the body owns, the error cannot set: the answer is invalid (a plain 500 then).
        for (name, value) in [
            ("Content-Type", "text/plain"),
            ("Date", "x"),
            ("X-A", "a\nb"),
        ] {
            let mut out = crate::Response::new();
            out.set_error(&Error::bad_request("x").with_header(name, value));
            assert!(out.invalid().is_some(), "{name}");
        }
    }

    #[test]
    fn test_question_mark_converts_std_errors() {
        fn f() -> Result<u8, Error> {
            Ok("300".parse::<u8>()?)
        }
        let e = f().unwrap_err();
        assert_eq!(e.status(), 500);
        assert!(e.message().contains("number too large"));
    }

    #[test]
    fn test_from_json_is_400_with_reason() {
        let e = from_json::<serde_json::Value>(b"{\"a\":").unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(
            e.message().starts_with("the event is not valid JSON"),
            "{e}"
        );
        let n: u32 = from_json(b"7").unwrap();
        // The body of an HTTP request is named as such.
        let e = parse_json::<serde_json::Value>("the body", b"[").unwrap_err();
        assert!(
            e.message().starts_with("the body is not valid JSON: EOF"),
            "{e}"
        );
        assert_eq!(n, 7);
        // Valid JSON of another shape says so, and names the type.
        let e = from_json::<u32>(b"\"seven\"").unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.message(),
            "the event does not fit u32: invalid type: string \"seven\", expected u32 at line 1 column 7"
        );
        // Invalid UTF-8 inside a string a type skips is still invalid JSON.
        let e = from_json::<serde::de::IgnoredAny>(b"{\"a\":\"\xff\xfe\"}").unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.message(),
            "the event is not valid JSON: invalid UTF-8 at byte 6"
        );
    }
}
