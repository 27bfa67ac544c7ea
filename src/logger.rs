//! The function's own log: [`error!`](crate::error!), [`warn!`](crate::warn!),
//! [`info!`](crate::info!) and [`debug!`](crate::debug!), written through the server's log.
//!
//! ```
//! scf_lean::info!("order {} stored in {} ms", 42, 3);
//! ```
//!
//! A line has the server's shape (text or JSON, `SCF_LEAN_LOG_FORMAT`), passes its level filter
//! (`SCF_LEAN_LOG_LEVEL`) and, inside an invocation, carries the request id:
//!
//! ```text
//! INFO [8c6f-41] order 42 stored in 3 ms
//! {"level":"INFO","time":"2026-12-02T10:00:00.000Z","requestId":"8c6f-41","msg":"order 42 stored in 3 ms"}
//! ```
//!
//! How: while the server calls the function, it lends the function its log through the call's
//! scope (`scope.rs`), with the request id. A line logged then goes into the log's buffer like
//! the server's own lines: it never blocks the loop (a pipe nobody reads loses lines, counted,
//! never the server), `error` lines go to stderr, the others to stdout, in order with the
//! access line. Outside an invocation — while the function is built, in a test, on a thread of
//! its own — there is no request id: the line is written at once, whole, at the level and
//! format of the last server started in the process, or of the environment before one starts;
//! on a thread of its own it waits for the pipe as a blocking write would, and on the loop's
//! thread (something the loop drops between calls that logs) it never does: a line that does
//! not go at once is dropped and counted.
//!
//! The macros format with `std::fmt` only when the level is enabled. They need no `log` or
//! `tracing` dependency: a facade would cost a crate, a global registration and its bytes for
//! what this module does in a few lines. With the `log` or `tracing` feature, the records of
//! those facades take the same way (`record`, from `bridge.rs`), with their target and fields.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::config::Config;
use crate::log::{self, Format, Level};
use crate::scope;

/// Logs at `error` (stderr): the function failed at something it must report.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::__log($crate::Level::Error, ::core::format_args!($($arg)+)) };
}

/// Logs at `warn`: something is wrong, but the function coped.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::__log($crate::Level::Warn, ::core::format_args!($($arg)+)) };
}

/// Logs at `info` (the default level).
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::__log($crate::Level::Info, ::core::format_args!($($arg)+)) };
}

/// Logs at `debug` (shown with `SCF_LEAN_LOG_LEVEL=debug`).
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::__log($crate::Level::Debug, ::core::format_args!($($arg)+)) };
}

/// Level and format outside an invocation: `UNSET`, or `level | format << 4`.
static SETTINGS: AtomicU8 = AtomicU8::new(UNSET);
const UNSET: u8 = u8::MAX;

/// The longest message, `SCF_LEAN_LOG_MESSAGE_BYTES`; 0 until a server starts or the
/// environment is read.
static MAX_MESSAGE: AtomicUsize = AtomicUsize::new(0);

/// Sets the level and format of lines logged outside an invocation, and the longest message of
/// every line (a server starting); with the `log` or `tracing` feature, installs the facades'
/// way here (once) and lets through what this level keeps.
pub(crate) fn set_settings(config: &Config) {
    store(config.log_level, config.log_format);
    MAX_MESSAGE.store(config.log_message_bytes, Ordering::Relaxed);
    #[cfg(any(feature = "log", feature = "tracing"))]
    crate::bridge::started(config.log_level);
}

fn store(level: Level, format: Format) {
    SETTINGS.store(level as u8 | (format as u8) << 4, Ordering::Relaxed);
}

fn max_message() -> usize {
    match MAX_MESSAGE.load(Ordering::Relaxed) {
        0 => {
            settings();
            MAX_MESSAGE.load(Ordering::Relaxed)
        }
        n => n,
    }
}

/// The level and format of lines outside an invocation.
pub(crate) fn settings() -> (Level, Format) {
    let mut s = SETTINGS.load(Ordering::Relaxed);
    if s == UNSET {
        // No server yet: the settings as one would read them from the environment (their
        // defaults if one is malformed: the server would refuse to start then).
        let config = Config::from_env().unwrap_or_default();
        store(config.log_level, config.log_format);
        let max = config.log_message_bytes;
        let _ = MAX_MESSAGE.compare_exchange(0, max, Ordering::Relaxed, Ordering::Relaxed);
        s = SETTINGS.load(Ordering::Relaxed);
    }
    let level = [
        Level::Off,
        Level::Error,
        Level::Warn,
        Level::Info,
        Level::Debug,
    ]
    .into_iter()
    .find(|l| *l as u8 == s & 0xf)
    .unwrap_or(Level::Info);
    let format = if s >> 4 == Format::Json as u8 {
        Format::Json
    } else {
        Format::Text
    };
    (level, format)
}

/// The macros' entry: not part of the API. Out of line, so that a log call costs its site a
/// call; the writing is out of line again, off the path of a line that is filtered out.
#[doc(hidden)]
#[inline(never)]
pub fn __log(level: Level, args: fmt::Arguments<'_>) {
    // Inside an invocation: the lent log's level; else the process's.
    let scope = scope::current();
    let lent = scope.and_then(|s| s.try_borrow().ok()?.log.as_ref().map(|l| l.enabled(level)));
    match (scope, lent) {
        (_, Some(false)) => {}
        (Some(scope), Some(true)) => write_lent(scope, level, args),
        _ => write_at_once(level, args),
    }
}

/// A line into the lent log.
#[cold]
#[inline(never)]
fn write_lent(scope: &RefCell<scope::Scope>, level: Level, args: fmt::Arguments<'_>) {
    // Formatted before the scope is borrowed: a `Display` that logs only finds it free.
    let msg = message(args);
    let written = scope
        .try_borrow_mut()
        .is_ok_and(|mut s| s.line(level, &msg));
    if !written {
        at_once(level, settings().1, &msg);
    }
}

/// A line outside an invocation, if its level is enabled.
#[cold]
#[inline(never)]
fn write_at_once(level: Level, args: fmt::Arguments<'_>) {
    let (min, format) = settings();
    if level != Level::Off && level <= min {
        at_once(level, format, &message(args));
    }
}

/// Whether a record at `level` is written where it is made: inside an invocation, at the level
/// of the log lent to it; elsewhere, at the process's.
#[cfg(any(feature = "log", feature = "tracing"))]
pub(crate) fn enabled(level: Level) -> bool {
    let lent =
        scope::current().and_then(|s| s.try_borrow().ok()?.log.as_ref().map(|l| l.enabled(level)));
    lent.unwrap_or_else(|| {
        let (min, _) = settings();
        level != Level::Off && level <= min
    })
}

/// A record of the `log` or `tracing` facade at `level` (enabled: see [`enabled`]), taking the
/// way of the macros' lines: inside an invocation into the lent log with the request id, else
/// written at once without one. Its message and fields together are cut past
/// `SCF_LEAN_LOG_MESSAGE_BYTES`, and its target on its own, each piece saying how much it lost.
#[cfg(any(feature = "log", feature = "tracing"))]
pub(crate) fn record(level: Level, target: &str, msg: Cow<'_, str>, fields: &mut [log::Field]) {
    let max = max_message();
    let msg = if msg.len() > max {
        Cow::Owned(cut(&msg, max))
    } else {
        msg
    };
    // A target is a module path, but any string may be one: it has the same bound of its own.
    let target = if target.len() > max {
        Cow::Owned(cut(target, max))
    } else {
        Cow::Borrowed(target)
    };
    #[cfg(feature = "tracing")]
    let mut room = max.saturating_sub(msg.len());
    #[cfg(feature = "tracing")]
    for field in fields.iter_mut() {
        if let log::Value::Str(s) | log::Value::Text(s) = &mut field.value {
            if s.len() > room {
                *s = cut(s, room);
                room = 0;
            } else {
                room -= s.len();
            }
        }
    }
    let record = log::Record {
        target: &target,
        msg: &msg,
        fields,
    };
    let written = scope::current().is_some_and(|scope| {
        scope
            .try_borrow_mut()
            .is_ok_and(|mut s| s.record(level, &record))
    });
    if !written {
        let (min, format) = settings();
        if level != Level::Off && level <= min {
            let mut line = Vec::with_capacity(128 + msg.len());
            log::render_record(&mut line, format, level, None, &record);
            let fd = if level == Level::Error { 2 } else { 1 };
            log::write_at_once(fd, &line);
        }
    }
}

/// The message of a line, cut past `SCF_LEAN_LOG_MESSAGE_BYTES` (the line then says how much
/// was cut): a bound per line keeps the log's buffers within theirs (`LOG_BUFFER`), whatever a
/// function logs.
pub(crate) fn message(args: fmt::Arguments<'_>) -> Cow<'static, str> {
    let mut msg = match args.as_str() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(args.to_string()),
    };
    let max = max_message();
    if msg.len() > max {
        msg = Cow::Owned(cut(&msg, max));
    }
    msg
}

#[cold]
#[inline(never)]
fn cut(msg: &str, max: usize) -> String {
    let mut end = max;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    let mut s = String::with_capacity(end + 40);
    s.push_str(&msg[..end]);
    s.push_str("… (");
    s.push_str(itoa::Buffer::new().format(msg.len() - end));
    s.push_str(" more bytes cut)");
    s
}

/// A line outside an invocation, written whole at once ([`log::write_at_once`]: never waiting
/// on the loop's thread).
#[cold]
fn at_once(level: Level, format: Format, msg: &str) {
    let mut line = Vec::with_capacity(64 + msg.len());
    log::render(&mut line, format, level, None, msg);
    let fd = if level == Level::Error { 2 } else { 1 };
    log::write_at_once(fd, &line);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::log::Log;

    fn lend<R>(log: &mut Log, id: Option<&str>, f: impl FnOnce() -> R) -> R {
        crate::scope::call(log, id, f)
    }

    fn text(b: &[u8]) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn test_lines_in_an_invocation_carry_its_id_and_go_into_the_servers_log() {
        let mut log = Log::new(Level::Info, Format::Text);
        let r = lend(&mut log, Some("req-7"), || {
            crate::info!("stored {} of {}", 2, 3);
            crate::debug!("not at info");
            crate::warn!("odd input");
            5
        });
        assert_eq!(r, 5);
        let (out, err) = log.waiting();
        assert_eq!(
            text(out),
            "INFO [req-7] stored 2 of 3\nWARN [req-7] odd input\n"
        );
        assert!(err.is_empty());
        // Given back: the next invocation lends it again, with its own id (or none).
        lend(&mut log, None, || crate::info!("no id"));
        assert!(text(log.waiting().0).ends_with("INFO [-] no id\n"));
    }

    #[test]
    fn test_json_lines_escape_the_message() {
        let mut log = Log::new(Level::Debug, Format::Json);
        lend(&mut log, Some("r\"1"), || {
            crate::debug!("a \"quoted\"\nline")
        });
        let line = text(log.waiting().0);
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "DEBUG");
        assert_eq!(v["requestId"], "r\"1");
        assert_eq!(v["msg"], "a \"quoted\"\nline");
    }

    #[test]
    fn test_a_display_that_logs_and_a_panic_inside_leave_the_log_whole() {
        struct Chatty;
        impl fmt::Display for Chatty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                crate::info!("from inside Display");
                f.write_str("chatty")
            }
        }
        let mut log = Log::new(Level::Info, Format::Text);
        lend(&mut log, Some("r"), || crate::info!("{}", Chatty));
        let out = text(log.waiting().0).to_string();
        assert!(out.contains("INFO [r] from inside Display\n"), "{out}");
        assert!(out.ends_with("INFO [r] chatty\n"), "{out}");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lend(&mut log, Some("r"), || {
                crate::info!("before the panic");
                panic!("boom")
            })
        }));
        assert!(caught.is_err());
        // The log came back with the line, and the slot is free for the next invocation.
        assert!(text(log.waiting().0).ends_with("INFO [r] before the panic\n"));
        lend(&mut log, Some("s"), || crate::info!("after"));
        assert!(text(log.waiting().0).ends_with("INFO [s] after\n"));
    }

    #[test]
    fn test_a_huge_message_is_cut_and_says_so() {
        let mut log = Log::new(Level::Info, Format::Text);
        let max = config::LOG_MESSAGE_BYTES;
        assert_eq!(max_message(), max);
        let big = "é".repeat(max); // two bytes a char: cut inside one
        lend(&mut log, Some("r"), || crate::info!("{big}"));
        let out = text(log.waiting().0).to_string();
        let want = format!(
            "INFO [r] {}… ({} more bytes cut)\n",
            "é".repeat(max / 2),
            max
        );
        assert_eq!(out, want);
        // At the limit exactly: whole; one byte past it: cut.
        let mut log = Log::new(Level::Info, Format::Text);
        lend(&mut log, None, || crate::info!("{}", "a".repeat(max)));
        assert_eq!(
            text(log.waiting().0),
            format!("INFO [-] {}\n", "a".repeat(max))
        );
        let mut log = Log::new(Level::Info, Format::Text);
        lend(&mut log, None, || crate::info!("{}", "a".repeat(max + 1)));
        let want = format!("INFO [-] {}… (1 more bytes cut)\n", "a".repeat(max));
        assert_eq!(text(log.waiting().0), want);
        // Many of them: the buffer keeps its bound, and a count of what it dropped.
        for _ in 0..100 {
            lend(&mut log, Some("r"), || crate::info!("{big}"));
        }
        assert!(log.waiting().0.len() <= crate::log::LOG_BUFFER);
    }

    #[cfg(feature = "tracing")]
    #[test]
    fn test_a_facades_record_in_an_invocation_carries_its_id_and_keeps_the_bound() {
        use crate::log::{Field, Value};
        let max = config::LOG_MESSAGE_BYTES;
        let mut log = Log::new(Level::Info, Format::Text);
        lend(&mut log, Some("req-9"), || {
            assert!(enabled(Level::Info) && !enabled(Level::Debug));
            let mut fields = vec![Field {
                name: "n",
                value: Value::Int(7),
            }];
            record(Level::Info, "shop", Cow::Borrowed("charged"), &mut fields);
            // Message and fields share the bound: the field gets what the message left.
            let mut fields = vec![
                Field {
                    name: "a",
                    value: Value::Str("b".repeat(10)),
                },
                Field {
                    name: "c",
                    value: Value::Text("d".repeat(10)),
                },
            ];
            let msg = "m".repeat(max - 12);
            record(Level::Warn, "shop", Cow::Owned(msg), &mut fields);
        });
        let out = text(log.waiting().0).to_string();
        let want = format!(
            "INFO [req-9] shop: charged n=7\nWARN [req-9] shop: {} a=\"bbbbbbbbbb\" \
             c=dd… (8 more bytes cut)\n",
            "m".repeat(max - 12)
        );
        assert_eq!(out, want);
    }

    #[cfg(any(feature = "log", feature = "tracing"))]
    #[test]
    fn test_a_huge_target_is_cut_like_a_message() {
        let max = config::LOG_MESSAGE_BYTES;
        let mut log = Log::new(Level::Info, Format::Text);
        let target = "t".repeat(max + 5);
        lend(&mut log, Some("r"), || {
            record(Level::Info, &target, Cow::Borrowed("m"), &mut []);
        });
        let want = format!("INFO [r] {}… (5 more bytes cut): m\n", "t".repeat(max));
        assert_eq!(text(log.waiting().0), want);
    }

    #[test]
    fn test_the_level_of_the_lent_log_filters() {
        let mut log = Log::new(Level::Error, Format::Text);
        lend(&mut log, Some("r"), || {
            crate::warn!("filtered");
            crate::info!("filtered");
        });
        assert!(log.waiting().0.is_empty());
    }
}
