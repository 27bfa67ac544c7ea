//! Invoking the function for one complete request: the [`Request`] it sees, the handler the
//! platform routes it to, its panic caught, its failure logged with the request id, its
//! response handed to the wire, and the access line.
//!
//! A function's failure never closes the connection: an `Err`, a panic or an invalid response
//! (a header the server owns, a status out of range) becomes the JSON error answer, and the
//! next request is served as usual.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::call::{Answer, Budget, Call, Cx};
use crate::error::{Error, Reject};
use crate::log::{Access, Level, Log};
use crate::platform::{self, Route};
use crate::request::Request;
use crate::response::{Output, Persist, Response};
use crate::stream::{BodyStream, Cut, Pipe, Producer, Start};
use crate::{Function, panic_hook, scope};

/// Calls `f` on `call` and prepares its answer in `out` (which holds buffers to reuse). Not
/// inlined: the connection calls it from two places (a request answered from its first parse,
/// and one whose body came later), and one copy keeps the request's code small
/// (src/hot-text.ld).
#[inline(never)]
pub(crate) fn run<F: Function>(
    f: &mut F,
    call: Call<'_>,
    out: &mut Output,
    cx: &mut Cx<'_>,
) -> Answer {
    answer(f, call, out, cx)
}

/// [`run`] on a worker, for a function instance behind a `dyn`: a function of its own name, so
/// that the hot-text layout, which matches `run` by name, never pulls this copy in.
#[cold]
#[inline(never)]
pub(crate) fn run_on_worker(
    f: &mut (dyn Function + Send),
    call: Call<'_>,
    out: &mut Output,
    cx: &mut Cx<'_>,
) -> Answer {
    answer(f, call, out, cx)
}

#[inline(always)]
fn answer<F: Function + ?Sized>(
    f: &mut F,
    call: Call<'_>,
    out: &mut Output,
    cx: &mut Cx<'_>,
) -> Answer {
    let head = call.head;
    let req = Request::from_head(
        head,
        &call.headers[..head.fields],
        &call.input[call.body.clone()],
    );
    let ctx = req.context();
    let route = platform::route(head.method, req.path());
    let mut resp = out.response();
    // In the call's scope: the panic hook keeps a panic's text, the log is lent to the
    // function's own lines with the request id.
    let result = scope::call(cx.log, ctx.request_id, || {
        panic::catch_unwind(AssertUnwindSafe(|| match route {
            Route::Event => f.event(req.body(), ctx, &mut resp),
            Route::Http => f.http(&req, &mut resp),
        }))
    });
    *cx.served += 1;
    let failure = match result {
        Ok(Ok(())) if resp.invalid().is_none() && !resp.streams() => None,
        other => failure(other, &resp, route),
    }
    .or_else(|| too_large(&resp, cx.config.max_response_bytes))
    .or_else(|| {
        // The request and the answer must fit what the budget leaves this connection,
        // once the partial requests that can give way have: past the room, the server
        // makes them (`Cx::grow`); past that too, a 503 instead.
        let mut size = call.input.len() + resp.held();
        if let Some(w) = cx.worker {
            size += claim(w, resp.held());
            cx.claimed = resp.held();
        }
        if size > cx.room_max {
            return Some(Failure::Error(
                Reject::OverBudget.to_error(),
                "over the memory budget: ",
            ));
        }
        if size > cx.room {
            cx.grow = cx.grow.max(size);
        }
        None
    });
    if let Some(failure) = failure {
        answer_failure(failure, cx.log, ctx.request_id, &mut resp);
    }
    let keep = head.keep_alive && !cx.closing;
    let persist = match (keep, head.minor) {
        (false, _) => Persist::Close,
        (true, 0) => Persist::KeepAlive,
        (true, _) => Persist::Default,
    };
    if resp.streams() {
        return stream(&req, head.minor, call.arrival, resp, out, cx, persist);
    }
    let status = out.prepare(
        resp,
        call.input,
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
            bytes: out.wire_len(call.input),
            elapsed: cx.now.saturating_duration_since(call.arrival),
            cut: None,
        });
    }
    Answer::Whole { keep }
}

/// On a worker: claims `held` bytes for the answer (given back once the loop has counted it),
/// and returns what the budget holds beyond the room the call left the loop with — the answers
/// of the other calls in flight, and what the others took since.
#[cold]
#[inline(never)]
fn claim(w: Budget<'_>, held: usize) -> usize {
    w.claims.fetch_add(held, Ordering::AcqRel)
        + w.used.load(Ordering::Acquire).saturating_sub(w.used_then)
}

/// Why a call's answer is replaced by an error answer.
enum Failure {
    /// An error, logged after `what`.
    Error(Error, &'static str),
    /// A panic, with what it said.
    Panic(String),
}

/// The one mapping of a call's outcome: `Ok` with a valid answer, or why not. The same for an
/// invocation and a job. Out of line: a good answer is told apart before.
#[cold]
#[inline(never)]
fn failure(
    result: std::thread::Result<Result<(), Error>>,
    resp: &Response<'_>,
    route: Route,
) -> Option<Failure> {
    match result {
        Ok(Ok(())) => resp
            .invalid()
            .or_else(|| (route == Route::Event && resp.streams()).then_some(EVENT_STREAM))
            .map(|why| Failure::Error(Error::new(why), "invalid response: ")),
        Ok(Err(e)) => Some(Failure::Error(e, "function error: ")),
        Err(payload) => Some(Failure::Panic(panic_hook::message(&*payload))),
    }
}

/// A job's outcome (`job.rs`): its log line if it failed, by the same mapping.
#[cold]
#[inline(never)]
pub(crate) fn job_failure(
    result: std::thread::Result<Result<(), Error>>,
    resp: &Response<'_>,
) -> Option<String> {
    failure(result, resp, Route::Event).map(|f| failure_line(&f).1)
}

const EVENT_STREAM: &str = "an event's answer cannot be streamed: only an HTTP request's can";

/// A call's failure as its log line: the text after the level and request id.
#[cold]
#[inline(never)]
fn failure_line(failure: &Failure) -> (Level, String) {
    match failure {
        Failure::Error(e, what) => {
            let level = if e.status() < 500 {
                Level::Warn
            } else {
                Level::Error
            };
            let mut line = String::from(*what);
            line.push_str(&e.to_string());
            (level, line)
        }
        Failure::Panic(msg) => {
            let mut line = String::from("function panicked: ");
            line.push_str(msg);
            (Level::Error, line)
        }
    }
}

/// An error answer in place of the function's, logged: at `warn` for a 4xx (the caller's
/// mistake), at `error` for a 5xx and a panic. A panic's text goes to the log, not the answer.
/// An error whose own headers are invalid becomes a plain 500 that says so.
#[cold]
#[inline(never)]
fn answer_failure(failure: Failure, log: &mut Log, id: Option<&str>, resp: &mut Response<'_>) {
    let (level, line) = failure_line(&failure);
    log.line(level, id, &line);
    let e = match failure {
        Failure::Error(e, _) => e,
        Failure::Panic(_) => Error::new("the function panicked"),
    };
    resp.take_producer();
    resp.set_error(&e);
    if let Some(why) = resp.invalid() {
        let mut line = String::from("invalid error response: ");
        line.push_str(why);
        log.line(Level::Error, id, &line);
        resp.set_error(&Error::new(why));
    }
}

/// A streamed answer: its head prepared, and what starting its producer takes.
#[cold]
#[inline(never)]
fn stream(
    req: &Request<'_>,
    minor: u8,
    arrival: Instant,
    mut resp: Response<'_>,
    out: &mut Output,
    cx: &mut Cx<'_>,
    persist: Persist,
) -> Answer {
    let producer = resp.take_producer().filter(|_| !req.is_head());
    let chunked = minor == 1;
    let status = out.prepare_stream(resp, cx.date.as_bytes(), chunked, persist);
    cx.tick();
    let ctx = req.context();
    let limit = ctx.timeout.unwrap_or(cx.config.time_limit);
    Answer::Stream(Box::new(Start {
        producer,
        chunked,
        close: persist == Persist::Close || !chunked,
        ends_at: crate::date::later(arrival, limit),
        arrival,
        request_id: ctx.request_id.map(Box::from),
        // The access line names HEAD as the request did (the function saw GET).
        method: Box::from(if req.is_head() { "HEAD" } else { req.method() }),
        path: Box::from(req.path()),
        status,
    }))
}

/// Runs a stream's producer (on a stream thread) with the stream's log lines under its request
/// id, its panic caught; tells the pipe how it ended.
pub(crate) fn produce(
    producer: Producer,
    pipe: Arc<Pipe>,
    request_id: Option<&str>,
    log: &mut Log,
) {
    let mut body = BodyStream::through(pipe.clone());
    let result = scope::call(log, request_id, || {
        panic::catch_unwind(AssertUnwindSafe(|| producer(&mut body)))
    });
    let how = match result {
        Ok(Ok(())) => Ok(()),
        // The stream was cut under it (client gone, too slow, time limit, stopping): the
        // producer stopped as it should.
        Ok(Err(e)) if pipe.is_cut() => {
            let mut line = String::from("stream ended: ");
            line.push_str(e.message());
            log.line(Level::Debug, request_id, &line);
            Err(Cut::Failed)
        }
        Ok(Err(e)) => {
            let mut line = String::from("function error after streaming began: ");
            line.push_str(&e.to_string());
            log.line(Level::Error, request_id, &line);
            Err(Cut::Failed)
        }
        Err(payload) => {
            let (level, line) = failure_line(&Failure::Panic(panic_hook::message(&*payload)));
            log.line(level, request_id, &line);
            Err(Cut::Panicked)
        }
    };
    let ended = how.is_ok();
    if ended {
        let _ = body.finish();
    } else {
        pipe.end(how);
    }
    log.flush();
}

/// Runs the function's [`Function::init`] in a call scope (its lines logged, a panic caught):
/// the reason it failed, if it did.
pub(crate) fn init<F: Function>(f: &mut F, log: &mut Log) -> Result<(), String> {
    let started = Instant::now();
    let result = scope::call(log, None, || {
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

/// The error that replaces a response past `limit` bytes (header lines and body): it is never
/// sent in part, and SCF itself would refuse it (407 for more than 6 MB).
#[inline]
fn too_large(resp: &Response<'_>, limit: usize) -> Option<Failure> {
    let size = resp.size();
    (size > limit).then(|| too_large_error(size, limit))
}

#[cold]
#[inline(never)]
fn too_large_error(size: usize, limit: usize) -> Failure {
    let mut msg = String::from("the response (");
    msg.push_str(itoa::Buffer::new().format(size));
    msg.push_str(" bytes) is larger than SCF_LEAN_MAX_RESPONSE_BYTES (");
    msg.push_str(itoa::Buffer::new().format(limit));
    msg.push(')');
    Failure::Error(Error::new(msg), "response too large: ")
}
