//! Panics in a function: caught per request, reported with the request id.
//!
//! The server calls each function inside `catch_unwind`. The hook installed here keeps the
//! panic's message and location for the server to log on the request's own error line (which
//! carries the request id), instead of the default hook's anonymous line on stderr. A panic
//! outside a function call still prints as usual. With `panic = "abort"` (the tiny build) there
//! is nothing to catch: the hook is left alone and the process ends.

use std::any::Any;
use std::cell::{Cell, RefCell};

thread_local! {
    /// Set while a function runs on this thread.
    static IN_FUNCTION: Cell<bool> = const { Cell::new(false) };
    /// The last caught panic, as the hook described it.
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the hook (once per process; later calls do nothing).
pub(crate) fn install() {
    #[cfg(panic = "unwind")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if IN_FUNCTION.with(Cell::get) {
                    let text = info.to_string().replace('\n', " ");
                    LAST.with(|l| *l.borrow_mut() = Some(text));
                } else {
                    default(info);
                }
            }));
        });
    }
}

/// Runs `f` marked as function code, so that the hook keeps its panic for the request's log line.
pub(crate) fn guard<R>(f: impl FnOnce() -> R) -> R {
    IN_FUNCTION.with(|c| c.set(true));
    let r = f();
    IN_FUNCTION.with(|c| c.set(false));
    r
}

/// What a caught panic said: the hook's text (message and location) if it ran, else the payload.
pub(crate) fn message(payload: &(dyn Any + Send)) -> String {
    IN_FUNCTION.with(|c| c.set(false));
    if let Some(text) = LAST.with(|l| l.borrow_mut().take()) {
        return text;
    }
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}
