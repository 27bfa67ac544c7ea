//! The function API: one trait, two methods, and three closure adapters.
//!
//! SCF sends event invocations as `POST /event-invoke` and passes HTTP-triggered requests
//! through as they are. [`Function::event`] answers the first, [`Function::http`] every other
//! request; a function that leaves one out answers it with a JSON 404.
//!
//! Both methods get borrowed input (no copy) and a [`Response`] whose buffers are reused; both
//! can be called in a unit test without a socket:
//!
//! ```
//! use scf_lean::{Context, Error, Function, Response};
//!
//! struct Hello;
//! impl Function for Hello {
//!     fn event<'a>(&mut self, event: &'a [u8], ctx: &Context<'a>, out: &mut Response<'a>) -> Result<(), Error> {
//!         let who: String = scf_lean::from_json(event)?;
//!         out.json(&format!("hello {who} from {}", ctx.request_id.unwrap_or("-")))
//!     }
//! }
//!
//! let mut out = Response::new();
//! let ctx = Context { request_id: Some("r1"), ..Context::default() };
//! Hello.event(br#""ada""#, &ctx, &mut out).unwrap();
//! assert_eq!(out.body(), br#""hello ada from r1""#);
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Context, Error, Request, Response};

/// A function SCF invokes.
///
/// The `'a` lifetime is the request's: a response may borrow from the event or request it
/// answers ([`Response::set_body_ref`]) and is then sent without a copy.
pub trait Function {
    /// Runs once, before the first invocation: open a connection, load a model, read a file.
    /// The server is already listening (SCF's first request waits in the queue meanwhile, so
    /// start-up and initialization overlap); a job runs it before its event. Lines logged
    /// here (`scf_lean::info!`) have no request id.
    ///
    /// # Errors
    /// An error (or a panic) is logged at ERROR with its message and the process exits with
    /// code 1, before any invocation: SCF reports the instance failed and starts another,
    /// rather than keep an instance that can only fail.
    fn init(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// `POST /event-invoke`: `event` is the request body, the event JSON as SCF sent it.
    ///
    /// # Errors
    /// An [`Error`] becomes an error response with its status and the JSON error body.
    fn event<'a>(
        &mut self,
        event: &'a [u8],
        ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        let _ = (event, ctx, out);
        Err(Error::not_found(crate::platform::NO_EVENT_HANDLER))
    }

    /// Any other method and path: an HTTP-triggered function.
    ///
    /// # Errors
    /// As [`Function::event`].
    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        let _ = (req, out);
        Err(Error::not_found(crate::platform::NO_HTTP_HANDLER))
    }

    /// Another instance of this function, for a worker thread: with `SCF_LEAN_CONCURRENCY=N`
    /// above 1 the server asks for one per worker, up to N, after [`Function::init`] ran on this
    /// one (so what `init` built — a pool, a client, a loaded model behind an `Arc` — is shared
    /// by the instances made from it). `None` (the default): calls run one at a time on the
    /// server's own thread, whatever the setting. [`concurrent`] answers it with a clone.
    fn worker(&self) -> Option<Box<dyn Function + Send>> {
        None
    }
}

/// A function whose calls may run at once, up to `SCF_LEAN_CONCURRENCY`, each on a worker
/// thread with a clone of `f` of its own: for a web function with multi-concurrency whose calls
/// wait (on a database, an HTTP call), so that one call's wait does not hold the others.
///
/// Each worker's clone is its own: `&mut self` state (a buffer, a counter, a cache) is per
/// worker, with no lock. State that all calls share goes behind an `Arc` (with a `Mutex`, an
/// atomic, or a pool that is `Sync` already), cloned with the function. [`Function::init`]
/// runs once, on the original, before any clone is made: the clones share what it built.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use scf_lean::{Error, Function, Request, Response};
///
/// #[derive(Clone, Default)]
/// struct Counter {
///     all: Arc<AtomicU64>, // shared by every worker
///     mine: u64,           // this worker's own
/// }
///
/// impl Function for Counter {
///     fn http<'a>(&mut self, _req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
///         self.mine += 1;
///         let all = self.all.fetch_add(1, Ordering::Relaxed) + 1;
///         out.json(&serde_json::json!({ "all": all, "this_worker": self.mine }))
///     }
/// }
///
/// let f = scf_lean::concurrent(Counter::default()); // then scf_lean::main!(f)
/// assert!(f.worker().is_some());
/// ```
pub fn concurrent<F: Function + Clone + Send + 'static>(f: F) -> Concurrent<F> {
    Concurrent(f)
}

/// See [`concurrent`].
#[derive(Clone, Debug)]
pub struct Concurrent<F>(pub F);

impl<F: Function + Clone + Send + 'static> Function for Concurrent<F> {
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
        Some(Box::new(self.0.clone()))
    }
}

/// An event function over raw bytes: `|event, ctx, out| …`.
pub fn event_fn<F>(f: F) -> EventFn<F>
where
    F: for<'a> FnMut(&'a [u8], &Context<'a>, &mut Response<'a>) -> Result<(), Error>,
{
    EventFn(f)
}

/// An event function over JSON: the event is parsed into `E` (a 400 naming the error if it
/// does not parse) and the returned `R` is serialized as the JSON answer.
///
/// ```
/// use scf_lean::{Context, Function, Response};
/// let mut f = scf_lean::json_fn(|n: u64, _ctx: &Context| Ok(n * 2));
/// let mut out = Response::new();
/// f.event(b"21", &Context::default(), &mut out).unwrap();
/// assert_eq!(out.body(), b"42");
/// assert_eq!(f.event(b"x", &Context::default(), &mut out).unwrap_err().status(), 400);
/// ```
pub fn json_fn<E, R, F>(f: F) -> JsonFn<F, E>
where
    E: DeserializeOwned,
    R: Serialize,
    F: FnMut(E, &Context<'_>) -> Result<R, Error>,
{
    JsonFn(f, std::marker::PhantomData)
}

/// An HTTP function: `|req, out| …`.
pub fn http_fn<F>(f: F) -> HttpFn<F>
where
    F: for<'a> FnMut(&Request<'a>, &mut Response<'a>) -> Result<(), Error>,
{
    HttpFn(f)
}

/// See [`event_fn`].
#[derive(Clone)]
pub struct EventFn<F>(F);

/// See [`json_fn`].
pub struct JsonFn<F, E>(F, std::marker::PhantomData<fn(E)>);

impl<F: Clone, E> Clone for JsonFn<F, E> {
    fn clone(&self) -> Self {
        JsonFn(self.0.clone(), std::marker::PhantomData)
    }
}

/// See [`http_fn`].
#[derive(Clone)]
pub struct HttpFn<F>(F);

impl<F> Function for EventFn<F>
where
    F: for<'a> FnMut(&'a [u8], &Context<'a>, &mut Response<'a>) -> Result<(), Error>,
{
    fn event<'a>(
        &mut self,
        event: &'a [u8],
        ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        (self.0)(event, ctx, out)
    }
}

impl<E, R, F> Function for JsonFn<F, E>
where
    E: DeserializeOwned,
    R: Serialize,
    F: FnMut(E, &Context<'_>) -> Result<R, Error>,
{
    fn event<'a>(
        &mut self,
        event: &'a [u8],
        ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        let event: E = crate::from_json(event)?;
        out.json(&(self.0)(event, ctx)?)
    }
}

impl<F> Function for HttpFn<F>
where
    F: for<'a> FnMut(&Request<'a>, &mut Response<'a>) -> Result<(), Error>,
{
    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        (self.0)(req, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_missing_half_is_a_clear_404() {
        let mut f = event_fn(|_, _, out| {
            out.set_body_static(b"ok");
            Ok(())
        });
        let mut out = Response::new();
        let req = Request::new("GET", "/", &[], b"");
        let e = f.http(&req, &mut out).unwrap_err();
        assert_eq!(e.status(), 404);
        assert!(e.message().contains("no HTTP handler"));
        let mut h = http_fn(|_, _| Ok(()));
        let e = h.event(b"{}", &Context::default(), &mut out).unwrap_err();
        assert_eq!(e.status(), 404);
        assert!(e.message().contains("no event handler"));
    }

    #[test]
    fn test_json_fn_round_trip_and_errors() {
        let mut f = json_fn(|v: serde_json::Value, ctx: &Context| {
            if v["fail"] == true {
                return Err(Error::new("asked to fail").with_code(-1));
            }
            Ok(serde_json::json!({"got": v, "id": ctx.request_id}))
        });
        let ctx = Context {
            request_id: Some("r"),
            ..Context::default()
        };
        let mut out = Response::new();
        f.event(br#"{"a":[1,2]}"#, &ctx, &mut out).unwrap();
        assert_eq!(out.body(), br#"{"got":{"a":[1,2]},"id":"r"}"#);
        assert_eq!(out.header_value("content-type"), Some("application/json"));
        let e = f.event(br#"{"fail":true}"#, &ctx, &mut out).unwrap_err();
        assert_eq!((e.status(), e.code()), (500, -1));
        let e = f.event(b"{not json", &ctx, &mut out).unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn test_closures_answer_with_a_slice_of_their_input() {
        let mut h = http_fn(|req, out| {
            out.set_body_ref(req.body());
            Ok(())
        });
        let req = Request::new("POST", "/", &[], b"as sent");
        let mut out = Response::new();
        h.http(&req, &mut out).unwrap();
        assert_eq!(out.body(), b"as sent");
        let mut e = event_fn(|event, ctx, out| {
            out.set_body_ref(&event[1..event.len() - 1]);
            out.header("X-Id", ctx.request_id.unwrap_or("-"));
            Ok(())
        });
        let mut out = Response::new();
        e.event(b"[1]", &Context::default(), &mut out).unwrap();
        assert_eq!(
            (out.body(), out.header_value("x-id")),
            (&b"1"[..], Some("-"))
        );
    }

    #[test]
    fn test_http_fn_sees_the_request() {
        let mut f = http_fn(|req, out| {
            out.set_status(201).header("X-Path", req.path());
            out.body_mut().extend_from_slice(req.body());
            Ok(())
        });
        let h = [("Host", &b"a"[..])];
        let req = Request::new("PUT", "/p?q", &h, b"data");
        let mut out = Response::new();
        f.http(&req, &mut out).unwrap();
        assert_eq!(out.status(), 201);
        assert_eq!(out.header_value("x-path"), Some("/p"));
        assert_eq!(out.body(), b"data");
    }
}
