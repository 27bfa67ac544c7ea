//! The harness function authors test with (`scf_lean::testing`): the context an event carries,
//! HTTP requests and HEAD, the credential check, and a server that stops when dropped — also
//! when the test panics.

use std::net::TcpStream;
use std::panic::{self, AssertUnwindSafe};

use scf_lean::testing::{SCF_CONTEXT, SECRETS, TestServer};
use scf_lean::{Context, Error, Function, Request, Response};

/// Answers events with the context it got, HTTP requests with their method, target, the
/// `X-Test` header and the body; `/leak` answers the secret key, as a careless function would.
struct Mirror;

impl Function for Mirror {
    fn event<'a>(
        &mut self,
        event: &'a [u8],
        ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        let event: serde_json::Value = scf_lean::from_json(event)?;
        out.json(&serde_json::json!({
            "event": event,
            "context": ctx,
            "timer": ctx.is_timer(),
            "has_key": ctx.credentials.secret_key().is_some(),
        }))
    }

    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        if req.path() == "/leak" {
            out.body_mut().extend_from_slice(
                req.context()
                    .credentials
                    .secret_key()
                    .unwrap_or("")
                    .as_bytes(),
            );
            return Ok(());
        }
        let test = req.header("x-test").unwrap_or("-").to_string();
        out.header("X-Method", req.method());
        out.body_mut()
            .extend_from_slice(format!("{} {} {test} ", req.method(), req.target()).as_bytes());
        out.body_mut().extend_from_slice(req.body());
        Ok(())
    }
}

#[test]
fn test_an_event_carries_a_realistic_scf_context() {
    let server = TestServer::start(Mirror);
    let r = server.event(r#"{"Type":"timer"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = r.json();
    assert_eq!(v["event"]["Type"], "timer");
    let c = &v["context"];
    assert_eq!(c["request_id"], "test-request-1");
    assert_eq!(c["memory_limit_in_mb"], 128);
    assert_eq!(c["time_limit_in_ms"], 3000);
    assert_eq!(c["function_name"], "test-function");
    assert_eq!(c["function_version"], "$LATEST");
    assert_eq!(c["namespace"], "default");
    assert_eq!(c["tencentcloud_region"], "ap-guangzhou");
    assert_eq!(v["has_key"], true, "the function can read the credentials");
    assert_eq!(v["timer"], false);
    r.assert_no_secrets();
    // Each event has a request id of its own; a header given replaces the context's.
    let v: serde_json::Value = server
        .event_with(
            "1",
            &[
                ("X-Scf-Trigger-Src", "timer"),
                ("X-Scf-Memory", "512"),
                ("x-scf-request-id", "mine"),
            ],
        )
        .json();
    assert_eq!(v["context"]["request_id"], "mine");
    assert_eq!(v["context"]["memory_limit_in_mb"], 512);
    assert_eq!(v["timer"], true);
    let v: serde_json::Value = server.event("2").json();
    assert_eq!(v["context"]["request_id"], "test-request-3");
    // An event that is not JSON gets the function's 400.
    let r = server.event("{oops");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(SCF_CONTEXT.len() >= 10);
}

#[test]
fn test_http_requests_and_head() {
    let server = TestServer::start(Mirror);
    let r = server.get("/users/7?verbose=1");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "GET /users/7?verbose=1 - ")
    );
    assert_eq!(r.header("x-method"), Some("GET"));
    let r = server.request("PUT", "/p", &[("X-Test", "yes")], "body");
    assert_eq!(r.text(), "PUT /p yes body");
    // HEAD: the GET answer's headers, no body.
    let r = server.request("HEAD", "/h", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some("9"),
        "the length of \"GET /h - \""
    );
    assert!(r.body.is_empty());
    assert_eq!(server.get("/after").text(), "GET /after - ");
}

#[test]
fn test_assert_no_secrets_finds_a_leaked_credential() {
    let server = TestServer::start(Mirror);
    let r = server.event_with("{}", &[("X-Scf-Secret-Key", SECRETS[1])]);
    r.assert_no_secrets();
    let leak = server.request("GET", "/leak", SCF_CONTEXT, b"");
    assert_eq!(leak.text(), SECRETS[1]);
    let caught = panic::catch_unwind(|| leak.assert_no_secrets());
    assert!(caught.is_err(), "a leaked secret key must fail the check");
}

#[test]
fn test_the_server_stops_when_dropped_and_when_a_test_panics() {
    let server = TestServer::start(Mirror);
    let addr = server.addr();
    assert_eq!(server.get("/").status, 200);
    drop(server);
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening after drop"
    );

    let mut seen = None;
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        let server = TestServer::start(Mirror);
        seen = Some(server.addr());
        assert_eq!(server.get("/").status, 500, "fails on purpose");
    }));
    assert!(r.is_err());
    let addr = seen.expect("the server started");
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening after a panic"
    );
}

/// A function with an `init`: the test server runs it once before serving.
struct Configured {
    greeting: Option<String>,
    fail: bool,
}

impl scf_lean::Function for Configured {
    fn init(&mut self) -> Result<(), scf_lean::Error> {
        if self.fail {
            return Err(scf_lean::Error::new("no config file"));
        }
        assert!(self.greeting.is_none(), "init ran twice");
        self.greeting = Some("hello".into());
        Ok(())
    }

    fn http<'a>(
        &mut self,
        _: &scf_lean::Request<'a>,
        out: &mut scf_lean::Response<'a>,
    ) -> Result<(), scf_lean::Error> {
        out.body_mut()
            .extend_from_slice(self.greeting.as_deref().unwrap_or("-").as_bytes());
        Ok(())
    }
}

#[test]
fn test_the_test_server_runs_init_once_before_serving() {
    let s = TestServer::start(Configured {
        greeting: None,
        fail: false,
    });
    assert_eq!(s.get("/").text(), "hello");
    assert_eq!(s.get("/").text(), "hello");
}

#[test]
#[should_panic(expected = "the function's init failed: no config file")]
fn test_a_failing_init_fails_the_test_with_its_reason() {
    let _ = TestServer::start(Configured {
        greeting: None,
        fail: true,
    });
}
