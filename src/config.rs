//! Settings: one row each in `build.rs`, which generates the constants of their build-time
//! defaults, the [`Config`] struct, its `Default`, the [`SETTINGS`] table and the override code.
//!
//! Each setting has one name (`MAX_BODY_BYTES`), one environment variable
//! (`SCF_LEAN_MAX_BODY_BYTES`) and a default. The variable set at **build** time changes the
//! default compiled into the binary; set at **start** it overrides that default for one run.
//! [`Config::from_env`] reads them all once, before the listener is bound; a bad value is a
//! start-up error naming the variable, never a silent fallback.

use std::time::Duration;

use crate::log::{Format, Level};

include!(concat!(env!("OUT_DIR"), "/settings.rs"));

/// One setting as `--help` and the docs show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable.
    pub var: &'static str,
    /// The build-time default.
    pub default: Shown,
    /// What it bounds or sets, and what happens past it.
    pub doc: &'static str,
}

/// A default as it is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// A whole number (bytes, a count, milliseconds, a port).
    Number(u64),
    /// A word (`info`, `text`).
    Word(&'static str),
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shown::Number(n) => write!(f, "{n}"),
            Shown::Word(w) => f.write_str(w),
        }
    }
}

/// A setting that could not be used: the variable, its value and what it takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// The value it held.
    pub value: String,
    /// What it takes.
    pub expected: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}={:?}: expected {}",
            self.var, self.value, self.expected
        )
    }
}

const _: () = assert!(SETTINGS.len() <= 64, "one bit per setting in a u64");

/// What a setting's value should have been: said in words only when a value is bad
/// (`bad_value`), so that `Config::set` stays a small table of calls.
#[derive(Clone, Copy, Debug)]
enum Expected {
    Number { min: u64, max: u64 },
    Words(&'static str),
}

/// A whole number from `min` to `max`.
#[inline(always)]
fn number<T: TryFrom<u64>>(text: &str, min: u64, max: u64) -> Result<T, Expected> {
    whole(text, min, max)
        .and_then(|n| T::try_from(n).ok())
        .ok_or(Expected::Number { min, max })
}

/// `text` as a whole number within `min..=max` (decimal digits, an optional `+`, as
/// `u64::from_str` reads it).
#[inline(never)]
fn whole(text: &str, min: u64, max: u64) -> Option<u64> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for b in digits.bytes() {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    (min..=max).contains(&n).then_some(n)
}

/// One of the words `parse` knows.
fn word<T>(text: &str, parse: fn(&str) -> Option<T>, words: &'static str) -> Result<T, Expected> {
    parse(text).ok_or(Expected::Words(words))
}

impl Config {
    /// The defaults overridden by the process environment (`PORT`, `SCF_LEAN_*`).
    ///
    /// One pass over the environment, reading the values in place; when a name appears twice,
    /// the first entry counts, as with `getenv`.
    ///
    /// # Errors
    /// The first variable (in the environment's order) whose value is not a whole number within
    /// its range, or not one of the listed words.
    pub fn from_env() -> Result<Config, ConfigError> {
        let wanted = |name: &[u8]| name == b"PORT" || name.starts_with(b"SCF_LEAN_");
        Config::from_entries(|f| crate::sys::for_each_env(wanted, f))
    }

    /// The defaults overridden by the `(name, value)` entries `each` gives, in order: the core
    /// of [`Config::from_env`]. Unknown names are ignored; of a name given twice, the first counts.
    fn from_entries(
        each: impl FnOnce(&mut dyn FnMut(&[u8], &[u8])),
    ) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let mut seen = 0u64;
        let mut result = Ok(());
        each(&mut |name, value| {
            if result.is_err() {
                return;
            }
            let Some(i) = SETTINGS.iter().position(|s| s.var.as_bytes() == name) else {
                return;
            };
            if seen & (1 << i) == 0 {
                seen |= 1 << i;
                result = c.apply(i, value);
            }
        });
        result.map(|()| c)
    }

    /// The defaults overridden by `lookup(variable)`: the testable core of [`Config::from_env`].
    ///
    /// # Errors
    /// The first variable (in the order of [`SETTINGS`]) whose value is not a whole number
    /// within its range, or not one of the listed words.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        for (i, s) in SETTINGS.iter().enumerate() {
            if let Some(value) = lookup(s.var) {
                c.apply(i, value.as_bytes())?;
            }
        }
        Ok(c)
    }

    /// Sets `SETTINGS[i]` from `value` (ASCII whitespace trimmed), or says what it takes. Out of line: SCF sets
    /// none of these variables unless the function's author does.
    #[inline(never)]
    fn apply(&mut self, i: usize, value: &[u8]) -> Result<(), ConfigError> {
        let text = std::str::from_utf8(value)
            .map(str::trim_ascii)
            .unwrap_or("\u{fffd}");
        self.set(i, text)
            .map_err(|expected| bad_value(i, value, expected))
    }
}

/// The error of `SETTINGS[i]`: out of line, since a start that serves never builds one.
#[cold]
#[inline(never)]
fn bad_value(i: usize, value: &[u8], expected: Expected) -> ConfigError {
    ConfigError {
        var: SETTINGS[i].var,
        value: String::from_utf8_lossy(value).into_owned(),
        expected: match expected {
            Expected::Number { min, max } => format!("a whole number from {min} to {max}"),
            Expected::Words(words) => words.to_owned(),
        },
    }
}

/// The settings as a Markdown table (`variable | default | meaning`), as the README and the
/// crate docs show it.
pub fn markdown_table() -> String {
    let mut s = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for row in SETTINGS {
        s.push_str(&format!(
            "| `{}` | {} | {} |\n",
            row.var, row.default, row.doc
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_string())
        })
    }

    /// The crate docs with their `//! ` taken off.
    fn crate_docs() -> String {
        include_str!("lib.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .map(|l| format!("{}\n", l.strip_prefix(' ').unwrap_or(l)))
            .collect()
    }

    #[test]
    fn test_the_tables_in_the_docs_are_the_rows() {
        if CHANGED_AT_BUILD {
            // The docs show the defaults of the rows, not of this build.
            return;
        }
        let table = markdown_table();
        for (doc, text) in [
            ("README.md", include_str!("../README.md").to_owned()),
            ("src/lib.rs", crate_docs()),
        ] {
            assert!(
                text.contains(&table),
                "{doc} does not hold the settings table of build.rs's rows; it should read:\n{table}"
            );
        }
    }

    #[test]
    fn test_every_setting_is_read_from_its_variable() {
        for (i, s) in SETTINGS.iter().enumerate() {
            // Another valid value than the default.
            let value = match (s.var, s.default) {
                ("SCF_LEAN_LOG_LEVEL", _) => "debug".to_string(),
                ("SCF_LEAN_LOG_FORMAT", _) => "json".to_string(),
                (_, Shown::Number(n)) => if n <= 1 { n + 1 } else { n - 1 }.to_string(),
                (_, Shown::Word(w)) => panic!("{}: no other value for {w}", s.var),
            };
            let c = with(&[(s.var, value.as_str())]).unwrap_or_else(|e| panic!("{e}"));
            assert_ne!(c, Config::default(), "{} (row {i}) changed nothing", s.var);
            let e = with(&[(s.var, "x7")]).unwrap_err();
            assert_eq!(e.var, s.var);
        }
    }

    #[test]
    fn test_defaults_match_the_documented_values() {
        let c = Config::default();
        assert_eq!(c.port, 9000);
        assert_eq!(c.max_head_bytes, 32 * 1024);
        assert_eq!(c.max_headers, 100);
        assert_eq!(c.max_target_bytes, 8 * 1024);
        assert_eq!(c.max_body_bytes, 6 * 1024 * 1024);
        assert_eq!(c.max_connections, 1024);
        assert_eq!(c.head_timeout, Duration::from_secs(10));
        assert_eq!(c.body_timeout, Duration::from_secs(30));
        assert!(c.idle_timeout >= Duration::from_secs(900));
        assert_eq!(c.shutdown_grace, Duration::from_secs(2));
        assert_eq!(with(&[]).unwrap(), c);
    }

    #[test]
    fn test_env_overrides_each_limit() {
        let c = with(&[
            ("PORT", "8080"),
            ("SCF_LEAN_MAX_BODY_BYTES", "10"),
            ("SCF_LEAN_HEAD_TIMEOUT_MS", " 250 "),
            ("SCF_LEAN_MAX_HEADERS", "100"),
            ("SCF_LEAN_LOG_LEVEL", "DEBUG"),
            ("SCF_LEAN_LOG_FORMAT", "json"),
        ])
        .unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.max_body_bytes, 10);
        assert_eq!(c.head_timeout, Duration::from_millis(250));
        assert_eq!(c.log_level, Level::Debug);
        assert_eq!(c.log_format, Format::Json);
    }

    #[test]
    fn test_environment_entries_first_of_a_name_counts() {
        let entries: [(&[u8], &[u8]); 5] = [
            (b"PATH", b"/bin"),
            (b"PORT", b"8081"),
            (b"SCF_LEAN_LOG_FORMAT", b"json"),
            (b"PORT", b"70000"),
            (b"SCF_LEAN_UNKNOWN", b"x"),
        ];
        let c = Config::from_entries(|f| entries.iter().for_each(|(n, v)| f(n, v))).unwrap();
        assert_eq!(c.port, 8081);
        assert_eq!(c.log_format, Format::Json);
        let bad: [(&[u8], &[u8]); 2] = [(b"SCF_LEAN_MAX_HEADERS", b"\xff"), (b"PORT", b"x")];
        let e = Config::from_entries(|f| bad.iter().for_each(|(n, v)| f(n, v))).unwrap_err();
        assert_eq!(e.var, "SCF_LEAN_MAX_HEADERS");
        assert_eq!(e.value, "\u{fffd}");
    }

    #[test]
    fn test_bad_values_name_the_variable() {
        let e = with(&[("PORT", "70000")]).unwrap_err();
        assert_eq!(e.var, "PORT");
        assert_eq!(
            e.to_string(),
            "PORT=\"70000\": expected a whole number from 0 to 65535"
        );
        assert_eq!(
            with(&[("SCF_LEAN_MAX_HEADERS", "101")]).unwrap_err().var,
            "SCF_LEAN_MAX_HEADERS"
        );
        assert_eq!(
            with(&[("SCF_LEAN_IDLE_TIMEOUT_MS", "-1")]).unwrap_err().var,
            "SCF_LEAN_IDLE_TIMEOUT_MS"
        );
        assert_eq!(
            with(&[("SCF_LEAN_LOG_LEVEL", "loud")]).unwrap_err().var,
            "SCF_LEAN_LOG_LEVEL"
        );
        assert_eq!(
            with(&[("SCF_LEAN_LOG_FORMAT", "xml")]).unwrap_err().var,
            "SCF_LEAN_LOG_FORMAT"
        );
    }
}
