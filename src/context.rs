//! The invocation context a function sees: request id, limits, names and credentials.
//!
//! The server fills a [`Context`] in the same pass over the parsed headers that finds the body
//! framing (see `request.rs`), through the platform's header taker (`scf.rs`): each header name
//! is compared once, values are borrowed from the read buffer, nothing is allocated. A missing
//! or malformed value is `None`, never a panic.
//!
//! The temporary credentials (`X-Scf-Secret-Id`, `X-Scf-Secret-Key`, `X-Scf-Session-Token`) sit
//! in [`Credentials`], whose `Debug` prints only whether each one is present. [`Context`]'s
//! `Serialize` writes the fields SCF's own runtimes show, under their key names, and never the
//! credentials.

use std::fmt;
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
    ///
    /// SCF sets it for timers only, so on a web function (API Gateway passes a client's
    /// `X-Scf-*` headers through) a client can send it: it is the client's word there, never
    /// proof of who called.
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

    /// Whether a timer trigger fired this invocation (`X-Scf-Trigger-Src: timer`). On a web
    /// function a client can send that header (see [`Context::trigger_src`]): authenticate
    /// callers yourself.
    pub fn is_timer(&self) -> bool {
        self.trigger_src
            .is_some_and(|s| s.eq_ignore_ascii_case("timer"))
    }
}

/// The temporary credentials SCF passes with each request. `Debug` never prints the values.
#[derive(Clone, Copy, Default)]
pub struct Credentials<'a> {
    pub(crate) secret_id: Option<&'a str>,
    pub(crate) secret_key: Option<&'a str>,
    pub(crate) session_token: Option<&'a str>,
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

#[cfg(test)]
mod tests {
    use crate::platform::context_from as ctx;

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
}
