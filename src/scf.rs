//! The platform contract: Tencent Cloud SCF's image functions, in one place.
//!
//! What SCF asks of an image function, and everything the rest of the crate knows of it:
//!
//! - **Port:** SCF sends every invocation to port 9000 ([`DEFAULT_PORT`]; `PORT` overrides it).
//! - **Routing:** events arrive as `POST /event-invoke` with the event JSON as the body; every
//!   other method and path is an HTTP-triggered request, passed through by API Gateway
//!   ([`route`]).
//! - **Context:** the invocation context comes in `X-Scf-*` request headers. The framing code
//!   offers each header to [`take_header`] in its one pass over the head; the ones that belong
//!   here land in the [`Context`], borrowed, and are not looked at again.
//! - **Credentials:** `X-Scf-Secret-Id`, `X-Scf-Secret-Key` and `X-Scf-Session-Token` hold
//!   temporary keys: [`is_secret_header`] names them, so that echoes and logs leave them out.
//! - **Environment:** `SCF_FUNCTIONNAME`, `SCF_FUNCTIONVERSION` and `USER_CODE_ROOT`, read once
//!   ([`env`]).
//! - **Job functions:** SCF's second image type binds no port: the event is in
//!   `SCF_CUSTOM_CONTAINER_EVENT` ([`JOB_EVENT`]), the context in the environment
//!   ([`JobEnv`]), and the exit code is the result (`job.rs`).
//!
//! The connection and the framing code call these and never name `X-Scf-` or `/event-invoke`.
//! Another platform (Alibaba Function Compute's `POST /invoke` and `x-fc-*` headers, Huawei
//! FunctionGraph's `X-CFF-*` on port 8000) is a sibling module with the same items, chosen by
//! the one `use … as platform` line in `lib.rs`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::context::Context;

/// The port SCF sends invocations to.
pub(crate) const DEFAULT_PORT: u16 = 9000;

/// What `--help` says the server is for.
pub(crate) const HELP: &str = "\
An HTTP server for a Tencent Cloud SCF image function: POST /event-invoke goes to the
event handler, every other request to the HTTP handler.
";

/// The variable that holds a job function's event: set, the process is a job (`job.rs`).
pub(crate) const JOB_EVENT: &str = "SCF_CUSTOM_CONTAINER_EVENT";

/// The event of a job function, if the process is one (the environment read in place: no
/// `getenv` machinery on a web function's start).
pub(crate) fn job_event() -> Option<Vec<u8>> {
    let mut event = None;
    crate::sys::for_each_env(
        |name| name == JOB_EVENT.as_bytes(),
        |_, value| {
            event.get_or_insert_with(|| value.to_vec());
        },
    );
    event
}

/// The context a job function gets, from the environment SCF sets for it: the function's name,
/// version and namespace, region, AppId, Uin and the role's temporary credentials. A job has no
/// request id, timeout or memory headers.
#[derive(Default)]
pub(crate) struct JobEnv {
    namespace: Option<String>,
    region: Option<String>,
    appid: Option<String>,
    uin: Option<String>,
    secret_id: Option<String>,
    secret_key: Option<String>,
    session_token: Option<String>,
}

impl JobEnv {
    pub fn read() -> JobEnv {
        let mut e = JobEnv::default();
        let wanted = |name: &[u8]| name.starts_with(b"TENCENTCLOUD_") || name == b"SCF_NAMESPACE";
        crate::sys::for_each_env(wanted, |name, value| {
            let field = match name {
                b"SCF_NAMESPACE" => &mut e.namespace,
                b"TENCENTCLOUD_REGION" => &mut e.region,
                b"TENCENTCLOUD_APPID" => &mut e.appid,
                b"TENCENTCLOUD_UIN" => &mut e.uin,
                b"TENCENTCLOUD_SECRETID" => &mut e.secret_id,
                b"TENCENTCLOUD_SECRETKEY" => &mut e.secret_key,
                b"TENCENTCLOUD_SESSIONTOKEN" => &mut e.session_token,
                _ => return,
            };
            if field.is_none() && !value.is_empty() {
                *field = std::str::from_utf8(value).ok().map(str::to_owned);
            }
        });
        e
    }

    pub fn context(&self) -> Context<'_> {
        let env = env();
        Context {
            name: env.function_name.as_deref(),
            version: env.function_version.as_deref(),
            namespace: self.namespace.as_deref(),
            region: self.region.as_deref(),
            appid: self.appid.as_deref(),
            uin: self.uin.as_deref(),
            credentials: crate::context::Credentials {
                secret_id: self.secret_id.as_deref(),
                secret_key: self.secret_key.as_deref(),
                session_token: self.session_token.as_deref(),
            },
            ..Context::default()
        }
    }
}

/// Which handler of a function a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// [`Function::event`](crate::Function::event): the body is the event.
    Event,
    /// [`Function::http`](crate::Function::http): the request as it came.
    Http,
}

/// `POST /event-invoke` is an event; every other request goes to the HTTP handler.
pub(crate) fn route(method: &str, path: &str) -> Route {
    if method == "POST" && path == "/event-invoke" {
        Route::Event
    } else {
        Route::Http
    }
}

/// The answer (404) of a function without an HTTP handler to any other request.
pub(crate) const NO_HTTP_HANDLER: &str =
    "this function has no HTTP handler: send events as POST /event-invoke";

/// The answer (404) of a function without an event handler to an event.
pub(crate) const NO_EVENT_HANDLER: &str =
    "this function has no event handler: it serves HTTP requests only";

/// The credential headers: never logged, echoed, or printed by `Debug`.
const SECRET_HEADERS: [&str; 3] = ["x-scf-secret-id", "x-scf-secret-key", "x-scf-session-token"];

/// Whether a header name is one of the three credential headers (left out of echoes and logs).
pub fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s))
}

/// Takes one header into `ctx` if it is an `X-Scf-*` field; returns whether it was. A missing or
/// malformed value is `None`. `arrival` anchors the deadline.
pub(crate) fn take_header<'a>(
    ctx: &mut Context<'a>,
    name: &str,
    value: &'a [u8],
    arrival: Instant,
) -> bool {
    const PREFIX: &str = "x-scf-";
    if name.len() <= PREFIX.len() || !name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
        return false;
    }
    let key = &name[PREFIX.len()..];
    let text = std::str::from_utf8(value).ok();
    let is = |k: &str| key.eq_ignore_ascii_case(k);
    if is("request-id") {
        ctx.request_id = text;
    } else if is("memory") {
        ctx.memory_mb = text.and_then(parse_u64).and_then(|n| u32::try_from(n).ok());
    } else if is("timeout") {
        ctx.timeout = text.and_then(parse_u64).map(Duration::from_millis);
        ctx.deadline = ctx.timeout.and_then(|t| arrival.checked_add(t));
    } else if is("version") {
        ctx.version = text;
    } else if is("name") {
        ctx.name = text;
    } else if is("namespace") {
        ctx.namespace = text;
    } else if is("region") {
        ctx.region = text;
    } else if is("appid") {
        ctx.appid = text;
    } else if is("uin") {
        ctx.uin = text;
    } else if is("trigger-src") {
        ctx.trigger_src = text;
    } else if is("secret-id") {
        ctx.credentials.secret_id = text;
    } else if is("secret-key") {
        ctx.credentials.secret_key = text;
    } else if is("session-token") {
        ctx.credentials.session_token = text;
    } else {
        return false;
    }
    true
}

/// A decimal number of at most 19 digits, no sign, no spaces; `None` otherwise.
fn parse_u64(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
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

/// A context filled from `(name, value)` headers as the server fills it, for unit tests.
#[cfg(test)]
pub(crate) fn context_from<'a>(headers: &[(&str, &'a str)]) -> Context<'a> {
    let mut c = Context::default();
    let now = Instant::now();
    for (n, v) in headers {
        take_header(&mut c, n, v.as_bytes(), now);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::context_from as ctx;

    #[test]
    fn test_every_scf_header_lands_in_its_field() {
        let before = Instant::now();
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
        // The deadline is 3 s after the request's arrival, which was taken between these two
        // moments (not "more than 2 s left", which a stalled test thread could make false).
        let after = Instant::now();
        let deadline = c.deadline.unwrap();
        let timeout = Duration::from_millis(3000);
        assert!(before + timeout <= deadline && deadline <= after + timeout);
        assert!(c.remaining().unwrap() <= timeout);
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
        let now = Instant::now();
        assert!(take_header(&mut c, "X-Scf-Name", b"\xff\xfe", now));
        assert_eq!(c.name, None);
        assert!(!take_header(&mut c, "X-Scf-", b"x", now));
        assert!(!take_header(&mut c, "X-Scf-Other", b"x", now));
        assert!(!take_header(&mut c, "Host", b"x", now));
    }

    #[test]
    fn test_secret_header_names() {
        assert!(is_secret_header("X-SCF-SECRET-KEY"));
        assert!(is_secret_header("x-scf-session-token"));
        assert!(is_secret_header("X-Scf-Secret-Id"));
        assert!(!is_secret_header("X-Scf-Request-Id"));
    }

    #[test]
    fn test_only_post_event_invoke_is_an_event() {
        assert_eq!(route("POST", "/event-invoke"), Route::Event);
        for (m, p) in [
            ("GET", "/event-invoke"),
            ("POST", "/event-invoke/"),
            ("POST", "/Event-Invoke"),
            ("POST", "/"),
        ] {
            assert_eq!(route(m, p), Route::Http, "{m} {p}");
        }
    }
}
