//! scf-lean's reference function, built as this package's binary (`scf-lean`): an echo. It
//! answers an event with the event and the context it came with, and an HTTP request with its
//! method, path, query, headers (not the credential headers) and body: what SCF sends, shown
//! back. scf-lean's tests (`tests/`) and benchmarks (`bench/`, and their short forms in `.ci/`)
//! run against it; `tests/echo.rs` pins its answers.
//!
//! A function of your own starts from `template/` instead (the README, "Start a new function").

use scf_lean::{Context, Error, Function, Request, Response};

/// The echo: it keeps nothing between invocations.
pub struct Echo;

impl Function for Echo {
    /// Answers `{"event": <the event as received>, "context": {...}}` (`"eventLength"` for an
    /// event over `ECHO_MAX`).
    fn event<'a>(
        &mut self,
        event: &'a [u8],
        ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        // Check that the event is JSON (a 400 if not), without copying it (serde_json keeps a
        // small stack of the open brackets: one 8-byte allocation for a nested event).
        scf_lean::from_json::<serde::de::IgnoredAny>(event)?;
        out.content_type("application/json");
        let body = out.body_mut();
        if event.len() <= ECHO_MAX {
            body.extend_from_slice(b"{\"event\":");
            body.extend_from_slice(event);
        } else {
            body.extend_from_slice(b"{\"eventLength\":");
            serde_json::to_writer(&mut *body, &event.len())?;
        }
        body.extend_from_slice(b",\"context\":");
        // The context under SCF's own key names; the credentials are never serialized.
        serde_json::to_writer(&mut *body, ctx)?;
        body.push(b'}');
        Ok(())
    }

    /// Answers `{"method", "path", "query", "headers", "body", "isBase64Encoded"}`.
    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        out.content_type("application/json");
        let b = out.body_mut();
        b.extend_from_slice(b"{\"method\":");
        serde_json::to_writer(&mut *b, req.method())?;
        b.extend_from_slice(b",\"path\":");
        serde_json::to_writer(&mut *b, req.path())?;
        b.extend_from_slice(b",\"query\":");
        serde_json::to_writer(&mut *b, req.query())?;
        b.extend_from_slice(b",\"headers\":{");
        write_headers(req, b)?;
        b.extend_from_slice(b"},");
        write_body(req.body(), b)?;
        b.push(b'}');
        Ok(())
    }
}

/// The largest event or body the echo answers whole: the answer stays within SCF's 6 MB
/// response limit (the server answers a larger one with a 500).
const ECHO_MAX: usize = 6_000_000;

/// `"body":…,"isBase64Encoded":…`: the body as text when it is UTF-8 without control
/// characters, else in Base64; `"bodyLength"` instead when that would pass `ECHO_MAX`.
fn write_body(body: &[u8], b: &mut Vec<u8>) -> Result<(), Error> {
    let text = std::str::from_utf8(body).ok().filter(|t| {
        !t.bytes()
            .any(|c| c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r'))
    });
    // JSON escapes `"`, `\\`, tab, LF and CR with a backslash: one byte more each.
    let escaped = |t: &str| t.len() + t.bytes().filter(|c| b"\"\\\t\n\r".contains(c)).count();
    match text {
        Some(t) if escaped(t) <= ECHO_MAX => {
            b.extend_from_slice(b"\"body\":");
            serde_json::to_writer(&mut *b, t)?;
            b.extend_from_slice(b",\"isBase64Encoded\":false");
        }
        _ if body.len().div_ceil(3) * 4 <= ECHO_MAX => {
            b.extend_from_slice(b"\"body\":\"");
            scf_lean::base64::encode_into(body, b);
            b.extend_from_slice(b"\",\"isBase64Encoded\":true");
        }
        _ => {
            b.extend_from_slice(b"\"body\":null,\"bodyLength\":");
            serde_json::to_writer(&mut *b, &body.len())?;
        }
    }
    Ok(())
}

/// The request headers as a JSON object: names in lower case, repeated fields joined with
/// ", ", the credential headers left out; a value that is not UTF-8 with U+FFFD in place of its
/// bad bytes.
fn write_headers(req: &Request<'_>, b: &mut Vec<u8>) -> Result<(), Error> {
    let headers = req.headers();
    let mut first = true;
    for (i, (name, _)) in headers.iter().enumerate() {
        let seen = headers
            .iter()
            .take(i)
            .any(|(n, _)| n.eq_ignore_ascii_case(name));
        if seen || scf_lean::is_secret_header(name) {
            continue;
        }
        if !first {
            b.push(b',');
        }
        first = false;
        // A header name is a token: no quote or backslash to escape.
        b.push(b'"');
        b.extend(name.bytes().map(|c| c.to_ascii_lowercase()));
        b.extend_from_slice(b"\":");
        // The values of every field of this name, joined with ", " into one JSON string, written
        // in place (no allocation): each value as a JSON string, the quotes between them taken out.
        let mut joined = false;
        for (_, v) in headers
            .iter()
            .skip(i)
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            let at = if joined {
                b.pop(); // the closing quote of the values so far
                b.extend_from_slice(b", ");
                Some(b.len())
            } else {
                None
            };
            match std::str::from_utf8(v) {
                Ok(text) => serde_json::to_writer(&mut *b, text)?,
                Err(_) => serde_json::to_writer(&mut *b, &String::from_utf8_lossy(v))?,
            }
            if let Some(at) = at {
                b.remove(at); // this value's opening quote
            }
            joined = true;
        }
    }
    Ok(())
}

/// The echo as the server starts it; `tests/echo.rs` builds it the same way.
pub fn function() -> Echo {
    Echo
}

scf_lean::main!(function());
