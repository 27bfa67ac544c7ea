//! The `log` facade's records and `tracing`'s events through the server's log (features `log`
//! and `tracing`, off by default): a `log::Log` and a `tracing_core::Subscriber` that hand each
//! record to `logger.rs`, the way the macros' lines go — into the log lent to the call it is
//! made in, with the request id, else at once without one. The `log` module's documentation says
//! what a line looks like.
//!
//! Installed once per process: when the first server starts (`logger::set_settings`), or
//! earlier by `scf_lean::log::init()`. Each facade filters before anything is formatted, on the
//! most verbose level any log in the process keeps (a server's, a test's capture): `log`'s
//! maximum level, `tracing`'s level hint. A record that passes is checked again where it is made
//! (`logger::enabled`): inside a call at the level of the log lent to it, elsewhere at the
//! process's. `trace` never passes: the server's levels stop at `debug`.
//!
//! Not on the default build's path: nothing here is compiled without the features.

#[cfg(feature = "log")]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, Once, PoisonError};

use crate::log::Level;

/// The most verbose level a log in the process keeps, as the facades were told.
static MOST: Mutex<Level> = Mutex::new(Level::Off);

/// Whether the logger installed for `log` is this one (a program may have installed its own).
#[cfg(feature = "log")]
static LOG_OURS: AtomicBool = AtomicBool::new(false);

/// `scf_lean::log::init()`: installs the facades' way now, at the level the environment sets
/// (the server's, once one has started).
pub(crate) fn init() {
    started(crate::logger::settings().0);
}

/// A log keeps `level` from now on (a server starting, a test capturing): installs the facades'
/// way if it is not yet, and lets through what `level` keeps.
pub(crate) fn started(level: Level) {
    install();
    raise(level);
}

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(feature = "log")]
        LOG_OURS.store(
            ::log::set_logger(&facade_log::LOGGER).is_ok(),
            Ordering::Relaxed,
        );
        #[cfg(feature = "tracing")]
        {
            let events = tracing_core::Dispatch::new(facade_tracing::Events);
            let _ = tracing_core::dispatcher::set_global_default(events);
        }
    });
}

/// Lets the facades through down to `level`, if no log in the process went as far yet. Never
/// lowered: a server that keeps less filters its records itself (`logger::enabled`), and a
/// server that keeps more must not lose its own.
fn raise(level: Level) {
    let mut most = MOST.lock().unwrap_or_else(PoisonError::into_inner);
    if level <= *most {
        return;
    }
    *most = level;
    #[cfg(feature = "log")]
    if LOG_OURS.load(Ordering::Relaxed) {
        ::log::set_max_level(match level {
            Level::Off => ::log::LevelFilter::Off,
            Level::Error => ::log::LevelFilter::Error,
            Level::Warn => ::log::LevelFilter::Warn,
            Level::Info => ::log::LevelFilter::Info,
            Level::Debug => ::log::LevelFilter::Debug,
        });
    }
    #[cfg(feature = "tracing")]
    {
        facade_tracing::MOST.store(level as u8, Ordering::Relaxed);
        // The callsites' interest and the maximum level the macros check come from the hint.
        tracing_core::callsite::rebuild_interest_cache();
    }
}

/// The `log` facade: a record is written with its target (`record.target()`, the module path
/// unless the call named one) and its formatted message.
#[cfg(feature = "log")]
mod facade_log {
    use crate::log::Level;
    use crate::logger;

    pub(super) struct Logger;

    pub(super) static LOGGER: Logger = Logger;

    impl ::log::Log for Logger {
        fn enabled(&self, metadata: &::log::Metadata<'_>) -> bool {
            level(metadata.level()).is_some_and(logger::enabled)
        }

        fn log(&self, record: &::log::Record<'_>) {
            let Some(level) = level(record.level()).filter(|l| logger::enabled(*l)) else {
                return;
            };
            let msg = logger::message(*record.args());
            logger::record(level, record.target(), msg, &mut []);
        }

        fn flush(&self) {}
    }

    fn level(level: ::log::Level) -> Option<Level> {
        match level {
            ::log::Level::Error => Some(Level::Error),
            ::log::Level::Warn => Some(Level::Warn),
            ::log::Level::Info => Some(Level::Info),
            ::log::Level::Debug => Some(Level::Debug),
            ::log::Level::Trace => None,
        }
    }
}

/// `tracing`: a subscriber of events only. Spans are not recorded (their callsites are never
/// enabled, so `#[instrument]` and `info_span!` cost next to nothing); an event's `message` is
/// the line's message and its other fields follow it.
#[cfg(feature = "tracing")]
mod facade_tracing {
    use std::borrow::Cow;
    use std::fmt;
    use std::sync::atomic::{AtomicU8, Ordering};

    use tracing_core::field::{Field, Visit};
    use tracing_core::span::{Attributes, Id, Record};
    use tracing_core::subscriber::{Interest, Subscriber};
    use tracing_core::{Event, LevelFilter, Metadata};

    use crate::log::{self, Level, Value};
    use crate::logger;

    /// The most verbose level let through (`bridge::raise`), as `Level as u8`.
    pub(super) static MOST: AtomicU8 = AtomicU8::new(Level::Off as u8);

    pub(super) struct Events;

    impl Subscriber for Events {
        fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
            if metadata.is_event() && level(metadata.level()).is_some() {
                // Asked at every event: whether it is written depends on the call it is in.
                Interest::sometimes()
            } else {
                Interest::never()
            }
        }

        fn max_level_hint(&self) -> Option<LevelFilter> {
            let most = MOST.load(Ordering::Relaxed);
            Some(match most {
                m if m == Level::Error as u8 => LevelFilter::ERROR,
                m if m == Level::Warn as u8 => LevelFilter::WARN,
                m if m == Level::Info as u8 => LevelFilter::INFO,
                m if m == Level::Debug as u8 => LevelFilter::DEBUG,
                _ => LevelFilter::OFF,
            })
        }

        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            metadata.is_event() && level(metadata.level()).is_some_and(logger::enabled)
        }

        fn new_span(&self, _: &Attributes<'_>) -> Id {
            // Never asked for: no span's callsite is enabled.
            Id::from_u64(1)
        }

        fn record(&self, _: &Id, _: &Record<'_>) {}

        fn record_follows_from(&self, _: &Id, _: &Id) {}

        fn event(&self, event: &Event<'_>) {
            let metadata = event.metadata();
            let Some(level) = level(metadata.level()) else {
                return;
            };
            let mut visit = Fields::default();
            event.record(&mut visit);
            let msg = Cow::Owned(visit.msg);
            logger::record(level, metadata.target(), msg, &mut visit.fields);
        }

        fn enter(&self, _: &Id) {}

        fn exit(&self, _: &Id) {}
    }

    fn level(level: &tracing_core::Level) -> Option<Level> {
        match *level {
            tracing_core::Level::ERROR => Some(Level::Error),
            tracing_core::Level::WARN => Some(Level::Warn),
            tracing_core::Level::INFO => Some(Level::Info),
            tracing_core::Level::DEBUG => Some(Level::Debug),
            _ => None,
        }
    }

    /// An event's message and fields, in the order they were given.
    #[derive(Default)]
    struct Fields {
        msg: String,
        fields: Vec<log::Field>,
    }

    impl Fields {
        fn push(&mut self, field: &Field, value: Value) {
            if field.name() == "message" {
                if let Value::Str(s) | Value::Text(s) = value {
                    self.msg = s;
                    return;
                }
            }
            self.fields.push(log::Field {
                name: field.name(),
                value,
            });
        }
    }

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.push(field, Value::Text(format!("{value:?}")));
        }

        fn record_str(&mut self, field: &Field, value: &str) {
            self.push(field, Value::Str(value.to_owned()));
        }

        fn record_i64(&mut self, field: &Field, value: i64) {
            self.push(field, Value::Int(value.into()));
        }

        fn record_u64(&mut self, field: &Field, value: u64) {
            self.push(field, Value::Uint(value.into()));
        }

        fn record_i128(&mut self, field: &Field, value: i128) {
            self.push(field, Value::Int(value));
        }

        fn record_u128(&mut self, field: &Field, value: u128) {
            self.push(field, Value::Uint(value));
        }

        fn record_f64(&mut self, field: &Field, value: f64) {
            self.push(field, Value::Float(value));
        }

        fn record_bool(&mut self, field: &Field, value: bool) {
            self.push(field, Value::Bool(value));
        }

        fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
            self.push(field, Value::Text(value.to_string()));
        }

        fn record_bytes(&mut self, field: &Field, value: &[u8]) {
            // Hex, as tracing's own default writes them, without its `Debug` machinery.
            let hex = value
                .iter()
                .flat_map(|b| [b >> 4, b & 15])
                .map(|n| char::from(b"0123456789abcdef"[usize::from(n)]))
                .collect();
            self.push(field, Value::Text(hex));
        }
    }
}
