//! The SCF invocation context: the `X-Scf-*` request headers, borrowed, and the process
//! environment SCF sets.
//!
//! The server fills a [`Context`] in the same pass over the parsed headers that finds the body
//! framing (see `request.rs`): each header name is compared once, values are borrowed from the
//! read buffer, nothing is allocated. A missing or malformed value is `None`, never a panic.
//!
//! The temporary credentials (`X-Scf-Secret-Id`, `X-Scf-Secret-Key`, `X-Scf-Session-Token`) sit
//! in [`Credentials`], whose `Debug` prints only whether each one is present. [`Context`]'s
//! `Serialize` writes the fields SCF's own runtimes show, under their key names, and never the
//! credentials.

use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::ser::{Serialize, SerializeMap, Serializer};

/// The context of one invocation, borrowed from the request head.
///
/// Build one for a unit test with struct-update syntax:
/// ```
/// use scf_lean::Context;
/// let ctx = Context { request_id: Some("req-1"), memory_mb: Some(128), ..Context::default() };
/// assert_eq!(ctx.request_id, Some("req-1"));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    /// `X-Scf-Request-Id`: put it in every log line about this request.
    pub request_id: Option<&'a str>,
    /// `X-Scf-Memory`: memory limit of the instance, MB.
    pub memory_mb: Option<u32>,
    /// `X-Scf-Timeout`: execution timeout (the header is in ms).
    pub timeout: Option<Duration>,
    /// When the request head arrived plus `timeout`.
    pub deadline: Option<Instant>,
    /// `X-Scf-Version`: function version.
    pub version: Option<&'a str>,
    /// `X-Scf-Name`: function name.
    pub name: Option<&'a str>,
    /// `X-Scf-Namespace`.
    pub namespace: Option<&'a str>,
    /// `X-Scf-Region`.
    pub region: Option<&'a str>,
    /// `X-Scf-Appid`: the owner's AppId.
    pub appid: Option<&'a str>,
    /// `X-Scf-Uin`: the owner's Uin.
    pub uin: Option<&'a str>,
    /// `X-Scf-Trigger-Src`: `timer` when a timer trigger fired.
    pub trigger_src: Option<&'a str>,
    /// The temporary credentials (never printed).
    pub credentials: Credentials<'a>,
}

impl<'a> Context<'a> {
    /// Time left before the deadline, `None` without an `X-Scf-Timeout`; zero once passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Whether a timer trigger fired this invocation (`X-Scf-Trigger-Src: timer`).
    pub fn is_timer(&self) -> bool {
        self.trigger_src
            .is_some_and(|s| s.eq_ignore_ascii_case("timer"))
    }

    /// Takes one header into the context if it is an `X-Scf-*` field; returns whether it was.
    /// `arrival` anchors the deadline.
    pub(crate) fn take(&mut self, name: &str, value: &'a [u8], arrival: Instant) -> bool {
        const PREFIX: &str = "x-scf-";
        if name.len() <= PREFIX.len() || !name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
            return false;
        }
        let key = &name[PREFIX.len()..];
        let text = std::str::from_utf8(value).ok();
        let is = |k: &str| key.eq_ignore_ascii_case(k);
        if is("request-id") {
            self.request_id = text;
        } else if is("memory") {
            self.memory_mb = text.and_then(parse_u64).and_then(|n| u32::try_from(n).ok());
        } else if is("timeout") {
            self.timeout = text.and_then(parse_u64).map(Duration::from_millis);
            self.deadline = self.timeout.and_then(|t| arrival.checked_add(t));
        } else if is("version") {
            self.version = text;
        } else if is("name") {
            self.name = text;
        } else if is("namespace") {
            self.namespace = text;
        } else if is("region") {
            self.region = text;
        } else if is("appid") {
            self.appid = text;
        } else if is("uin") {
            self.uin = text;
        } else if is("trigger-src") {
            self.trigger_src = text;
        } else if is("secret-id") {
            self.credentials.secret_id = text;
        } else if is("secret-key") {
            self.credentials.secret_key = text;
        } else if is("session-token") {
            self.credentials.session_token = text;
        } else {
            return false;
        }
        true
    }
}

/// Whether a header name is one of the three credential headers (left out of echoes and logs).
pub fn is_secret_header(name: &str) -> bool {
    ["x-scf-secret-id", "x-scf-secret-key", "x-scf-session-token"]
        .iter()
        .any(|s| name.eq_ignore_ascii_case(s))
}

/// A decimal number of at most 19 digits, no sign, no spaces; `None` otherwise.
fn parse_u64(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// The temporary credentials SCF passes with each request. `Debug` never prints the values.
#[derive(Clone, Copy, Default)]
pub struct Credentials<'a> {
    secret_id: Option<&'a str>,
    secret_key: Option<&'a str>,
    session_token: Option<&'a str>,
}

impl<'a> Credentials<'a> {
    /// Credentials for a unit test.
    pub fn new(secret_id: &'a str, secret_key: &'a str, session_token: &'a str) -> Self {
        Credentials {
            secret_id: Some(secret_id),
            secret_key: Some(secret_key),
            session_token: Some(session_token),
        }
    }
    /// `X-Scf-Secret-Id`.
    pub fn secret_id(&self) -> Option<&'a str> {
        self.secret_id
    }
    /// `X-Scf-Secret-Key`.
    pub fn secret_key(&self) -> Option<&'a str> {
        self.secret_key
    }
    /// `X-Scf-Session-Token`.
    pub fn session_token(&self) -> Option<&'a str> {
        self.session_token
    }
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |v: Option<&str>| if v.is_some() { "<redacted>" } else { "<none>" };
        f.debug_struct("Credentials")
            .field("secret_id", &format_args!("{}", shown(self.secret_id)))
            .field("secret_key", &format_args!("{}", shown(self.secret_key)))
            .field(
                "session_token",
                &format_args!("{}", shown(self.session_token)),
            )
            .finish()
    }
}

/// The context as SCF's own runtimes name it; absent values are `null`; no credentials.
impl Serialize for Context<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(9))?;
        m.serialize_entry("request_id", &self.request_id)?;
        m.serialize_entry("function_name", &self.name)?;
        m.serialize_entry("function_version", &self.version)?;
        m.serialize_entry("namespace", &self.namespace)?;
        m.serialize_entry("memory_limit_in_mb", &self.memory_mb)?;
        let ms = self
            .timeout
            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        m.serialize_entry("time_limit_in_ms", &ms)?;
        m.serialize_entry("tencentcloud_region", &self.region)?;
        m.serialize_entry("tencentcloud_appid", &self.appid)?;
        m.serialize_entry("tencentcloud_uin", &self.uin)?;
        m.end()
    }
}

/// What SCF puts in the environment of an image function, read once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    /// `SCF_FUNCTIONNAME`.
    pub function_name: Option<String>,
    /// `SCF_FUNCTIONVERSION`.
    pub function_version: Option<String>,
    /// `USER_CODE_ROOT` (`/var/user/` on SCF).
    pub code_root: Option<String>,
}

/// The process environment SCF sets, read at the first call (the server calls it once at start,
/// after it listens) and kept for the life of the process.
pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut e = Env::default();
        // One pass over the environment; the first entry of a name counts, as with `getenv`.
        let wanted = |name: &[u8]| name.starts_with(b"SCF_FUNCTION") || name == b"USER_CODE_ROOT";
        crate::sys::for_each_env(wanted, |name, value| {
            let field = match name {
                b"SCF_FUNCTIONNAME" => &mut e.function_name,
                b"SCF_FUNCTIONVERSION" => &mut e.function_version,
                b"USER_CODE_ROOT" => &mut e.code_root,
                _ => return,
            };
            if field.is_none() && !value.is_empty() {
                *field = std::str::from_utf8(value).ok().map(str::to_owned);
            }
        });
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(headers: &[(&str, &'a str)]) -> Context<'a> {
        let mut c = Context::default();
        let now = Instant::now();
        for (n, v) in headers {
            c.take(n, v.as_bytes(), now);
        }
        c
    }

    #[test]
    fn test_every_scf_header_lands_in_its_field() {
        let c = ctx(&[
            ("X-Scf-Request-Id", "rid"),
            ("x-scf-memory", "128"),
            ("X-SCF-TIMEOUT", "3000"),
            ("X-Scf-Version", "$LATEST"),
            ("X-Scf-Name", "fn"),
            ("X-Scf-Namespace", "default"),
            ("X-Scf-Region", "ap-guangzhou"),
            ("X-Scf-Appid", "1250000000"),
            ("X-Scf-Uin", "100000000001"),
            ("X-Scf-Trigger-Src", "timer"),
            ("X-Scf-Secret-Id", "AKIDsecret"),
            ("X-Scf-Secret-Key", "keysecret"),
            ("X-Scf-Session-Token", "tokensecret"),
        ]);
        assert_eq!(c.request_id, Some("rid"));
        assert_eq!(c.memory_mb, Some(128));
        assert_eq!(c.timeout, Some(Duration::from_millis(3000)));
        assert!(c.remaining().unwrap() <= Duration::from_millis(3000));
        assert!(c.remaining().unwrap() > Duration::from_millis(2000));
        assert_eq!(c.version, Some("$LATEST"));
        assert_eq!(c.name, Some("fn"));
        assert_eq!(c.namespace, Some("default"));
        assert_eq!(c.region, Some("ap-guangzhou"));
        assert_eq!(c.appid, Some("1250000000"));
        assert_eq!(c.uin, Some("100000000001"));
        assert!(c.is_timer());
        assert_eq!(c.credentials.secret_id(), Some("AKIDsecret"));
        assert_eq!(c.credentials.secret_key(), Some("keysecret"));
        assert_eq!(c.credentials.session_token(), Some("tokensecret"));
    }

    #[test]
    fn test_malformed_numbers_are_none() {
        for bad in [
            "",
            "-1",
            "+5",
            "1.5",
            " 12",
            "12 ",
            "99999999999999999999",
            "0x10",
        ] {
            let c = ctx(&[("X-Scf-Memory", bad), ("X-Scf-Timeout", bad)]);
            assert_eq!(c.memory_mb, None, "{bad:?}");
            assert_eq!(c.timeout, None, "{bad:?}");
            assert_eq!(c.deadline, None, "{bad:?}");
        }
        assert_eq!(ctx(&[("X-Scf-Memory", "4294967296")]).memory_mb, None);
        assert_eq!(
            ctx(&[("X-Scf-Memory", "4294967295")]).memory_mb,
            Some(u32::MAX)
        );
        // The largest timeout still gives a deadline or none, never a panic.
        let c = ctx(&[("X-Scf-Timeout", "9999999999999999999")]);
        assert!(c.timeout.is_some());
    }

    #[test]
    fn test_non_utf8_value_is_none_and_other_headers_are_ignored() {
        let mut c = Context::default();
        assert!(c.take("X-Scf-Name", b"\xff\xfe", Instant::now()));
        assert_eq!(c.name, None);
        assert!(!c.take("X-Scf-", b"x", Instant::now()));
        assert!(!c.take("X-Scf-Other", b"x", Instant::now()));
        assert!(!c.take("Host", b"x", Instant::now()));
    }

    #[test]
    fn test_debug_never_prints_credentials() {
        let c = ctx(&[
            ("X-Scf-Secret-Id", "AKIDsecret"),
            ("X-Scf-Secret-Key", "keysecret"),
            ("X-Scf-Session-Token", "tokensecret"),
            ("X-Scf-Request-Id", "rid"),
        ]);
        for s in [
            format!("{c:?}"),
            format!("{c:#?}"),
            format!("{:?}", c.credentials),
        ] {
            for secret in ["AKIDsecret", "keysecret", "tokensecret"] {
                assert!(!s.contains(secret), "{s}");
            }
            assert!(s.contains("<redacted>"), "{s}");
        }
        assert!(format!("{c:?}").contains("rid"));
    }

    #[test]
    fn test_serialize_uses_scf_key_names_without_credentials() {
        let c = ctx(&[
            ("X-Scf-Request-Id", "rid"),
            ("X-Scf-Memory", "256"),
            ("X-Scf-Timeout", "3000"),
            ("X-Scf-Secret-Key", "keysecret"),
        ]);
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(
            s,
            r#"{"request_id":"rid","function_name":null,"function_version":null,"namespace":null,"memory_limit_in_mb":256,"time_limit_in_ms":3000,"tencentcloud_region":null,"tencentcloud_appid":null,"tencentcloud_uin":null}"#
        );
    }

    #[test]
    fn test_secret_header_names() {
        assert!(is_secret_header("X-SCF-SECRET-KEY"));
        assert!(is_secret_header("x-scf-session-token"));
        assert!(is_secret_header("X-Scf-Secret-Id"));
        assert!(!is_secret_header("X-Scf-Request-Id"));
    }
}
