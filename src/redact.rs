//! Redaction in one place: how `Debug` shows a header value (a credential's never) and a
//! list of pairs. `Headers`, `Response`, `Error` and `Context` print through it.

use std::fmt;

/// A header value as `Debug` shows it: the credentials' never — SCF's three, and those a
/// caller's own credentials travel in.
pub(crate) enum Value<'a> {
    Text(std::borrow::Cow<'a, str>),
    Redacted,
}

/// Headers that carry a caller's credentials: `Debug` hides them too (an echo may send them
/// back to the caller, who sent them; a log line must not keep them).
const CALLER_CREDENTIALS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-amz-security-token",
];

impl<'a> Value<'a> {
    pub(crate) fn of(name: &str, value: &'a [u8]) -> Value<'a> {
        let caller = || {
            CALLER_CREDENTIALS
                .iter()
                .any(|c| name.eq_ignore_ascii_case(c))
        };
        if crate::platform::is_secret_header(name) || caller() {
            Value::Redacted
        } else {
            Value::Text(String::from_utf8_lossy(value))
        }
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(t) => fmt::Debug::fmt(t, f),
            Value::Redacted => f.write_str("<redacted>"),
        }
    }
}

/// An iterator of pairs shown as a map.
pub(crate) struct DebugMap<I>(pub I);

impl<K: fmt::Debug, V: fmt::Debug, I: Iterator<Item = (K, V)> + Clone> fmt::Debug for DebugMap<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.clone()).finish()
    }
}
