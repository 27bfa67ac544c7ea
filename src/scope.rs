//! What the thread that runs a function knows during one call: that a function runs (for the
//! panic hook), the panic it caught, and the server's log lent to the function's log lines with
//! the request id. `invoke.rs` opens the scope around the call ([`call`]); `panic_hook.rs` and
//! `logger.rs` read it.
//!
//! One thread-local cell, a reference to a slot made on the thread's first call and never
//! freed. A `thread_local` that needs no destructor registers none (on musl, registering one
//! costs two `rt_sigprocmask` on the first request), and a small one keeps the static TLS block
//! inside musl's built-in space (a larger one is an `mmap` at exec, before anything else).

use std::cell::{Cell, RefCell};

use crate::log::{Format, Level, Log};

/// One thread's call scope.
pub(crate) struct Scope {
    /// Set while a function runs on this thread.
    pub in_function: bool,
    /// The last caught panic, as the hook described it.
    pub last_panic: Option<String>,
    /// The server's log while the function runs.
    pub log: Option<Log>,
    /// The request id, copied (the slot outlives the request's borrow) into a buffer kept from
    /// call to call.
    id: String,
    has_id: bool,
}

impl Scope {
    /// Writes a line into the lent log, with the call's request id; `false` when no log is
    /// lent.
    pub fn line(&mut self, level: Level, msg: &str) -> bool {
        let id = self.has_id.then_some(self.id.as_str());
        match self.log.as_mut() {
            Some(log) => {
                log.line(level, id, msg);
                true
            }
            None => false,
        }
    }

    /// Writes a record of the `log` or `tracing` facade into the lent log, with the call's
    /// request id; `false` when no log is lent.
    #[cfg(any(feature = "log", feature = "tracing"))]
    pub fn record(&mut self, level: Level, record: &crate::log::Record<'_>) -> bool {
        let id = self.has_id.then_some(self.id.as_str());
        match self.log.as_mut() {
            Some(log) => {
                log.record(level, id, record);
                true
            }
            None => false,
        }
    }
}

thread_local! {
    static SCOPE: Cell<Option<&'static RefCell<Scope>>> = const { Cell::new(None) };
}

/// This thread's scope if it has called a function (`None` while the thread ends).
pub(crate) fn current() -> Option<&'static RefCell<Scope>> {
    SCOPE.try_with(Cell::get).ok().flatten()
}

/// This thread's scope, made on first use.
fn get() -> Option<&'static RefCell<Scope>> {
    SCOPE
        .try_with(|cell| {
            *cell.get().get_or_insert_with(|| {
                let scope = Scope {
                    in_function: false,
                    last_panic: None,
                    log: None,
                    id: String::with_capacity(64),
                    has_id: false,
                };
                let scope: &'static RefCell<Scope> = Box::leak(Box::new(RefCell::new(scope)));
                cell.set(Some(scope));
                scope
            })
        })
        .ok()
}

/// Runs `f` (one call of the function) marked as function code, with `log` lent to the
/// function's log lines under `request_id`; the log comes back also if `f` unwinds.
#[inline]
pub(crate) fn call<R>(log: &mut Log, request_id: Option<&str>, f: impl FnOnce() -> R) -> R {
    /// Closes the scope: the log back, the mark off.
    struct Close<'l>(&'l mut Log, &'static RefCell<Scope>);
    impl Drop for Close<'_> {
        fn drop(&mut self) {
            if let Ok(mut s) = self.1.try_borrow_mut() {
                s.in_function = false;
                if let Some(own) = s.log.take() {
                    *self.0 = own;
                }
            }
        }
    }
    let Some(scope) = get() else {
        return f();
    };
    {
        let Ok(mut s) = scope.try_borrow_mut() else {
            return f();
        };
        if s.in_function {
            // A server run inside a call on this same thread: it lends nothing.
            return f();
        }
        s.in_function = true;
        s.id.clear();
        s.id.push_str(request_id.unwrap_or(""));
        s.has_id = request_id.is_some();
        s.log = Some(std::mem::replace(log, Log::new(Level::Off, Format::Text)));
    }
    let _close = Close(log, scope);
    f()
}

/// Writes the lines waiting in the log lent to this thread's call, as far as the descriptors
/// take them without blocking: for a stream's producer, whose call lasts as long as it sends.
pub(crate) fn flush_lent() {
    if let Some(scope) = current()
        && let Ok(mut s) = scope.try_borrow_mut()
        && let Some(log) = s.log.as_mut()
    {
        log.flush();
    }
}
