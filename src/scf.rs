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
//!   here land in the [`Context`], borrowed, and are not looked at again. SCF sets each once: a
//!   request that carries one twice is a client's forgery, refused (400) by name.
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
#[inline]
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

/// The context fields SCF sets, as their headers name them after `X-Scf-`.
#[derive(Clone, Copy)]
enum Field {
    RequestId,
    Memory,
    Timeout,
    Version,
    Name,
    Namespace,
    Region,
    Appid,
    Uin,
    TriggerSrc,
    SecretId,
    SecretKey,
    SessionToken,
}

impl Field {
    /// The field a header names after its `X-Scf-` prefix, in any case. (A chain of
    /// comparisons, each of which looks at the length first: no jump table, whose read-only data
    /// would sit outside the pages a request touches.)
    fn of(key: &str) -> Option<Field> {
        let is = |name: &str| key.eq_ignore_ascii_case(name);
        let field = if is("request-id") {
            Field::RequestId
        } else if is("memory") {
            Field::Memory
        } else if is("timeout") {
            Field::Timeout
        } else if is("version") {
            Field::Version
        } else if is("name") {
            Field::Name
        } else if is("namespace") {
            Field::Namespace
        } else if is("region") {
            Field::Region
        } else if is("appid") {
            Field::Appid
        } else if is("uin") {
            Field::Uin
        } else if is("trigger-src") {
            Field::TriggerSrc
        } else if is("secret-id") {
            Field::SecretId
        } else if is("secret-key") {
            Field::SecretKey
        } else if is("session-token") {
            Field::SessionToken
        } else {
            return None;
        };
        Some(field)
    }

    /// Its header's name after [`CONTEXT_PREFIX`], as SCF writes it: what a request that
    /// carries it twice is refused with (the name only: a value may be a credential).
    fn name(self) -> &'static str {
        match self {
            Field::RequestId => "Request-Id",
            Field::Memory => "Memory",
            Field::Timeout => "Timeout",
            Field::Version => "Version",
            Field::Name => "Name",
            Field::Namespace => "Namespace",
            Field::Region => "Region",
            Field::Appid => "Appid",
            Field::Uin => "Uin",
            Field::TriggerSrc => "Trigger-Src",
            Field::SecretId => "Secret-Id",
            Field::SecretKey => "Secret-Key",
            Field::SessionToken => "Session-Token",
        }
    }
}

/// What the names of the context headers begin with, as SCF writes it.
pub(crate) const CONTEXT_PREFIX: &str = "X-Scf-";

/// The context headers one request has carried so far (a bit per [`Field`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Seen(u16);

/// Takes one header into `ctx` if it is an `X-Scf-*` context field; returns whether it was. A
/// missing or malformed value is `None`. `arrival` anchors the deadline.
///
/// # Errors
/// The field came before in the same request (`seen`): SCF sets each context header once, so a
/// second one is the client's own, passed through API Gateway in front of SCF's or behind it —
/// a forged request id, or credentials of the caller's account in place of the function's. The
/// error is the header's name after [`CONTEXT_PREFIX`], never its values.
pub(crate) fn take_header<'a>(
    ctx: &mut Context<'a>,
    seen: &mut Seen,
    name: &str,
    value: &'a [u8],
    arrival: Instant,
) -> Result<bool, &'static str> {
    const PREFIX: &str = "x-scf-";
    if name.len() <= PREFIX.len() || !name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
        return Ok(false);
    }
    let Some(field) = Field::of(&name[PREFIX.len()..]) else {
        return Ok(false);
    };
    let bit = 1 << field as u16;
    if seen.0 & bit != 0 {
        return Err(field.name());
    }
    seen.0 |= bit;
    let text = std::str::from_utf8(value).ok();
    match field {
        Field::RequestId => ctx.request_id = text,
        Field::Memory => {
            ctx.memory_mb = text.and_then(parse_u64).and_then(|n| u32::try_from(n).ok());
        }
        Field::Timeout => {
            ctx.timeout = text.and_then(parse_u64).map(Duration::from_millis);
            ctx.deadline = ctx.timeout.and_then(|t| arrival.checked_add(t));
        }
        Field::Version => ctx.version = text,
        Field::Name => ctx.name = text,
        Field::Namespace => ctx.namespace = text,
        Field::Region => ctx.region = text,
        Field::Appid => ctx.appid = text,
        Field::Uin => ctx.uin = text,
        Field::TriggerSrc => ctx.trigger_src = text,
        Field::SecretId => ctx.credentials.secret_id = text,
        Field::SecretKey => ctx.credentials.secret_key = text,
        Field::SessionToken => ctx.credentials.session_token = text,
    }
    Ok(true)
}

/// The request id of a head's fields if it is there once, for the log lines of a request the
/// server refuses: a repeated one is a forgery, and neither copy is written.
pub(crate) fn request_id<'a>(fields: &[httparse::Header<'a>]) -> Option<&'a str> {
    let mut ids = fields.iter().filter(|h| {
        h.name.len() == "x-scf-request-id".len() && h.name.eq_ignore_ascii_case("x-scf-request-id")
    });
    let id = ids.next()?;
    if ids.next().is_some() {
        return None;
    }
    std::str::from_utf8(id.value).ok()
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
    let mut seen = Seen::default();
    let now = Instant::now();
    for (n, v) in headers {
        let _ = take_header(&mut c, &mut seen, n, v.as_bytes(), now);
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
        let mut seen = Seen::default();
        let now = Instant::now();
        let mut take = |n: &str, v: &'static [u8]| take_header(&mut c, &mut seen, n, v, now);
        assert_eq!(take("X-Scf-Name", b"\xff\xfe"), Ok(true));
        assert_eq!(take("X-Scf-", b"x"), Ok(false));
        assert_eq!(take("X-Scf-Other", b"x"), Ok(false));
        assert_eq!(take("X-Scf-Other", b"y"), Ok(false), "not a context field");
        assert_eq!(take("Host", b"x"), Ok(false));
        assert_eq!(c.name, None);
    }

    /// Every context header after its prefix, and the reason a second one is refused.
    const FIELDS: [(&str, &str); 13] = [
        ("request-id", "more than one X-Scf-Request-Id header"),
        ("memory", "more than one X-Scf-Memory header"),
        ("timeout", "more than one X-Scf-Timeout header"),
        ("version", "more than one X-Scf-Version header"),
        ("name", "more than one X-Scf-Name header"),
        ("namespace", "more than one X-Scf-Namespace header"),
        ("region", "more than one X-Scf-Region header"),
        ("appid", "more than one X-Scf-Appid header"),
        ("uin", "more than one X-Scf-Uin header"),
        ("trigger-src", "more than one X-Scf-Trigger-Src header"),
        ("secret-id", "more than one X-Scf-Secret-Id header"),
        ("secret-key", "more than one X-Scf-Secret-Key header"),
        ("session-token", "more than one X-Scf-Session-Token header"),
    ];

    #[test]
    fn test_a_context_header_sent_twice_is_refused_by_name() {
        let now = Instant::now();
        for (name, why) in FIELDS {
            for (first, second) in [
                (
                    format!("X-Scf-{name}"),
                    format!("x-scf-{}", name.to_uppercase()),
                ),
                // A first copy whose value is malformed still counts.
                (format!("X-SCF-{name}"), format!("X-Scf-{name}")),
            ] {
                let (mut c, mut seen) = (Context::default(), Seen::default());
                assert_eq!(
                    take_header(&mut c, &mut seen, &first, b"\xff", now),
                    Ok(true)
                );
                let twice = take_header(&mut c, &mut seen, &second, b"secret-value", now);
                let Err(named) = twice else {
                    panic!("{first} then {second}: {twice:?}");
                };
                let reason = crate::error::Reject::ForgedContext(named).reason();
                assert_eq!(reason, why, "{first} then {second}");
                assert_eq!(
                    crate::error::Reject::ForgedContext(named)
                        .to_error()
                        .message(),
                    why
                );
            }
        }
        // Every field has a bit of its own.
        let mut seen = Seen::default();
        let mut c = Context::default();
        for (name, _) in FIELDS {
            let h = format!("X-Scf-{name}");
            assert_eq!(
                take_header(&mut c, &mut seen, &h, b"1", now),
                Ok(true),
                "{h}"
            );
        }
    }

    #[test]
    fn test_the_request_id_of_a_refused_request_is_one_sent_once() {
        let h = |name, value| httparse::Header { name, value };
        let once = [h("Host", &b"a"[..]), h("X-Scf-Request-Id", b"r1")];
        assert_eq!(request_id(&once), Some("r1"));
        let twice = [
            h("x-scf-request-id", &b"forged"[..]),
            h("X-Scf-Request-Id", b"r1"),
        ];
        assert_eq!(request_id(&twice), None);
        assert_eq!(request_id(&once[..1]), None);
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
