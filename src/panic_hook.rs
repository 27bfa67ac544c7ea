//! Panics in a function: caught per request, reported with the request id.
//!
//! The server calls each function inside `catch_unwind`. The hook installed here keeps the
//! panic's message and location for the server to log on the request's own error line (which
//! carries the request id), instead of the default hook's anonymous line on stderr. A panic
//! outside a function call still prints as usual. With `panic = "abort"` (the tiny build) there
//! is nothing to catch: the hook is left alone and the process ends.

use std::any::Any;

use crate::scope;

/// Installs the hook (once per process; later calls do nothing).
pub(crate) fn install() {
    #[cfg(panic = "unwind")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                // A function's panic (its scope free to take the text), else the default's line.
                let mut scope = scope::current().and_then(|s| s.try_borrow_mut().ok());
                match scope.as_mut().filter(|s| s.in_function) {
                    Some(s) => s.last_panic = Some(info.to_string().replace('\n', " ")),
                    None => default(info),
                }
            }));
        });
    }
}

/// What a caught panic said: the hook's text (message and location) if it ran, else the payload.
pub(crate) fn message(payload: &(dyn Any + Send)) -> String {
    let last = scope::current().and_then(|s| s.try_borrow_mut().ok()?.last_panic.take());
    if let Some(text) = last {
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
