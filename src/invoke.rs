//! Invoking the function for one complete request: the [`Request`] it sees, the handler the
//! platform routes it to, its panic caught, its failure logged with the request id, its
//! response handed to the wire, and the access line.
//!
//! A function's failure never closes the connection: an `Err`, a panic or an invalid response
//! (a header the server owns, a status out of range) becomes the JSON error answer, and the
//! next request is served as usual.

use std::any::Any;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use crate::conn::Cx;
use crate::error::{Error, Reject};
use crate::log::{Access, Level, Log};
use crate::platform::{self, Route};
use crate::request::{Head, Request};
use crate::response::{Output, Persist, Response};
use crate::{Function, panic_hook, scope, stream};

/// One complete request, borrowed from the connection's read buffer.
pub(crate) struct Call<'b> {
    /// The whole read buffer: the request borrows from it, and so may the response.
    pub input: &'b [u8],
    pub head: &'b Head<'b>,
    /// The parsed header array (its first `head.fields` entries are the fields).
    pub headers: &'b [httparse::Header<'b>],
    /// Where the body lies in `input` (chunked coding already removed).
    pub body: Range<usize>,
    /// When the head began to arrive.
    pub arrival: Instant,
    /// The socket, for an answer the function streams.
    pub fd: Option<i32>,
}

impl Call<'_> {
    /// Calls `f` and prepares its response in `out` (which holds buffers to reuse). Returns
    /// whether the connection stays open after it.
    pub fn run<F: Function>(self, f: &mut F, out: &mut Output, cx: &mut Cx<'_>) -> bool {
        let head = self.head;
        let req = Request::from_head(
            head,
            &self.headers[..head.fields],
            &self.input[self.body.clone()],
        );
        let ctx = req.context();
        let route = platform::route(head.method, req.path());
        let mut resp = out.response();
        // In the call's scope: the panic hook keeps a panic's text, the log is lent to the
        // function's own lines with the request id.
        let target = match (route, self.fd) {
            (Route::Http, Some(fd)) => Some(stream::Target {
                fd,
                chunked: head.minor == 1,
                head: req.is_head(),
                close: !head.keep_alive || cx.closing,
                timeout: cx.config.body_timeout,
                signals: cx.signals,
                grace: cx.config.shutdown_grace,
            }),
            _ => None,
        };
        let result = scope::call(cx.log, ctx.request_id, target, || {
            panic::catch_unwind(AssertUnwindSafe(|| match route {
                Route::Event => f.event(req.body(), ctx, &mut resp),
                Route::Http => f.http(&req, &mut resp),
            }))
        });
        if resp.streamed().is_some() {
            return streamed(head, self.arrival, resp, result, out, cx, target);
        }
        let failure = match result {
            Ok(Ok(())) => resp
                .invalid()
                .map(|why| (Error::new(why), "invalid response: ")),
            Ok(Err(e)) => Some((e, "function error: ")),
            Err(payload) => {
                answer_panic(&*payload, cx.log, ctx.request_id, &mut resp);
                None
            }
        };
        *cx.served += 1;
        let failure = failure
            .or_else(|| too_large(&resp, cx.config.max_response_bytes))
            .or_else(|| {
                // The request and the answer must fit what the budget leaves this connection,
                // once the partial requests that can give way have: past the room, the server
                // makes them (`Cx::grow`); past that too, a 503 instead.
                let size = self.input.len() + resp.held();
                if size > cx.room_max {
                    return Some((Reject::OverBudget.to_error(), "over the memory budget: "));
                }
                if size > cx.room {
                    cx.grow = cx.grow.max(size);
                }
                None
            });
        if let Some((e, what)) = failure {
            answer_error(&e, what, cx.log, ctx.request_id, &mut resp);
        }
        let keep = head.keep_alive && !cx.closing;
        let persist = match (keep, head.minor) {
            (false, _) => Persist::Close,
            (true, 0) => Persist::KeepAlive,
            (true, _) => Persist::Default,
        };
        let status = out.prepare(
            resp,
            self.input,
            cx.date.as_bytes(),
            !req.is_head(),
            persist,
        );
        // The function may have taken a while: deadlines set from here on start now.
        cx.tick();
        if cx.log.enabled(Level::Info) {
            cx.log.access(&Access {
                level: Level::Info,
                request_id: ctx.request_id,
                method: head.method,
                path: req.path(),
                status,
                bytes: out.wire_len(self.input),
                elapsed: cx.now.saturating_duration_since(self.arrival),
                cut: None,
            });
        }
        keep
    }
}

/// Runs the function's [`Function::init`] in a call scope (its lines logged, a panic caught):
/// the reason it failed, if it did.
pub(crate) fn init<F: Function>(f: &mut F, log: &mut Log) -> Result<(), String> {
    let started = Instant::now();
    let result = scope::call(log, None, None, || {
        panic::catch_unwind(AssertUnwindSafe(|| f.init()))
    });
    match result {
        Ok(Ok(())) => {
            if log.enabled(Level::Debug) {
                init_took(log, started);
            }
            Ok(())
        }
        failed => Err(init_failure(failed)),
    }
}

#[cold]
#[inline(never)]
fn init_took(log: &mut Log, started: Instant) {
    let mut line = String::from("init took ");
    line.push_str(itoa::Buffer::new().format(started.elapsed().as_micros()));
    line.push_str(" us");
    log.line(Level::Debug, None, &line);
}

#[cold]
#[inline(never)]
fn init_failure(failed: std::thread::Result<Result<(), Error>>) -> String {
    match failed {
        Ok(Err(e)) => format!("init failed: {}", e.message()),
        Err(payload) => format!("init panicked: {}", panic_hook::message(&*payload)),
        Ok(Ok(())) => String::new(),
    }
}

/// After a function that streamed its answer: an open stream ended (or, after an error or a
/// panic, cut off), nothing left to send, the access line; whether the connection stays open.
#[cold]
#[inline(never)]
fn streamed(
    head: &Head<'_>,
    arrival: Instant,
    mut resp: Response<'_>,
    result: std::thread::Result<Result<(), Error>>,
    out: &mut Output,
    cx: &mut Cx<'_>,
    target: Option<stream::Target>,
) -> bool {
    let id = head.ctx.request_id;
    *cx.served += 1;
    // Why the function stopped short, if it did: its error or panic with the stream open.
    let failed = match result {
        Ok(Ok(())) => None,
        // The stream failed under the function (client gone, too slow, the server stopping) or
        // had no body to take (HEAD): the function stopped as it should.
        Ok(Err(e)) if resp.streamed() != Some(stream::Streamed::Open) => {
            let mut line = String::from("stream ended: ");
            line.push_str(e.message());
            cx.log.line(Level::Debug, id, &line);
            None
        }
        Ok(Err(e)) => {
            let mut line = String::from("function error after streaming began: ");
            line.push_str(&e.to_string());
            cx.log.line(Level::Error, id, &line);
            Some("the function returned an error")
        }
        Err(payload) => {
            let mut line = String::from("function panicked: ");
            line.push_str(&panic_hook::message(&*payload));
            cx.log.line(Level::Error, id, &line);
            Some("the function panicked")
        }
    };
    if failed.is_none()
        && let Some(target) = target
    {
        stream::end_open(&mut resp, target);
    }
    // How the body ended: whole, or cut off (and why), which the access line says.
    let (level, cut) = match (resp.streamed(), failed) {
        (Some(stream::Streamed::Ended), _) => (Level::Info, None),
        (Some(stream::Streamed::Cut(c)), _) => (Level::Warn, Some(c.reason())),
        (_, why) => (
            Level::Error,
            Some(why.unwrap_or("the function returned an error")),
        ),
    };
    let chunked = target.is_some_and(|t| t.chunked);
    let keep = cut.is_none() && chunked && head.keep_alive && !cx.closing;
    let bytes = resp.streamed_bytes();
    let status = resp.streamed_status();
    out.prepare_streamed(resp);
    cx.tick();
    if cx.log.enabled(level) {
        let path = crate::request::split_target(head.target).0;
        cx.log.access(&Access {
            level,
            request_id: id,
            method: head.method,
            path,
            status,
            bytes,
            elapsed: cx.now.saturating_duration_since(arrival),
            cut,
        });
    }
    keep
}

// The paths that are not taken on a good request are functions of their own, out of line: the
// code of every request stays small and together (see src/hot-text.ld).

/// A panic: the log line says what the panic said; the answer does not.
#[cold]
#[inline(never)]
fn answer_panic(
    payload: &(dyn Any + Send),
    log: &mut Log,
    id: Option<&str>,
    resp: &mut Response<'_>,
) {
    let mut line = String::from("function panicked: ");
    line.push_str(&panic_hook::message(payload));
    log.line(Level::Error, id, &line);
    resp.set_error(&Error::new("the function panicked"));
}

/// An error in place of the function's answer, logged with `what` before it: at `warn` for a
/// 4xx (the caller's mistake), at `error` for a 5xx. An error whose own headers are invalid
/// becomes a plain 500 that says so.
#[cold]
#[inline(never)]
fn answer_error(e: &Error, what: &str, log: &mut Log, id: Option<&str>, resp: &mut Response<'_>) {
    let level = if e.status() < 500 {
        Level::Warn
    } else {
        Level::Error
    };
    let mut line = String::from(what);
    line.push_str(&e.to_string());
    log.line(level, id, &line);
    resp.set_error(e);
    if let Some(why) = resp.invalid() {
        let mut line = String::from("invalid error response: ");
        line.push_str(why);
        log.line(Level::Error, id, &line);
        resp.set_error(&Error::new(why));
    }
}

/// The error that replaces a response past `limit` bytes (header lines and body): it is never
/// sent in part, and SCF itself would refuse it (407 for more than 6 MB).
fn too_large(resp: &Response<'_>, limit: usize) -> Option<(Error, &'static str)> {
    let size = resp.size();
    (size > limit).then(|| too_large_error(size, limit))
}

#[cold]
#[inline(never)]
fn too_large_error(size: usize, limit: usize) -> (Error, &'static str) {
    let mut msg = String::from("the response (");
    msg.push_str(itoa::Buffer::new().format(size));
    msg.push_str(" bytes) is larger than SCF_LEAN_MAX_RESPONSE_BYTES (");
    msg.push_str(itoa::Buffer::new().format(limit));
    msg.push(')');
    (Error::new(msg), "response too large: ")
}
