//! The reference echo (`src/main.rs`, this package's binary): its answers, pinned.
//!
//! `TestServer` serves the echo on a loopback port, in this test process, exactly as SCF's
//! invocations reach it: `event` posts to `/event-invoke` with the `X-Scf-*` headers SCF sends
//! (fake credentials included), `get` and `request` send HTTP requests as API Gateway passes
//! them through. The server stops when the test ends, also when it fails. The last tests call
//! the echo directly, without a socket.

use scf_lean::testing::TestServer;
use scf_lean::{Context, Credentials, Function, Request, Response};
use serde_json::{Value, json};

/// `src/main.rs`, as the binary builds it: the tests take the echo from its `function()`.
#[path = "../src/main.rs"]
#[allow(dead_code)]
mod app;

#[test]
fn test_an_event_comes_back_with_its_context() {
    let server = TestServer::start(app::function());
    let event = std::fs::read("events/timer.json").unwrap();
    let r = server.event(&event);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: Value = r.json();
    assert_eq!(v["event"], serde_json::from_slice::<Value>(&event).unwrap());
    assert_eq!(v["context"]["request_id"], "test-request-1");
    assert_eq!(v["context"]["memory_limit_in_mb"], 128);
    r.assert_no_secrets();
}

#[test]
fn test_every_sample_event_is_answered() {
    let server = TestServer::start(app::function());
    for file in std::fs::read_dir("events").unwrap() {
        let path = file.unwrap().path();
        let r = server.event(std::fs::read(&path).unwrap());
        assert_eq!(r.status, 200, "{}: {}", path.display(), r.text());
        r.assert_no_secrets();
    }
}

#[test]
fn test_an_event_that_is_not_json_is_a_400() {
    let server = TestServer::start(app::function());
    let r = server.event("{oops");
    assert_eq!(r.status, 400);
    assert_eq!(r.json::<Value>()["errorCode"], 400);
}

#[test]
fn test_an_event_with_invalid_utf8_is_a_400() {
    let server = TestServer::start(app::function());
    let r = server.event(b"{\"a\":\"\xff\xfe\"}");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json::<Value>()["errorMessage"],
        "the event is not valid JSON: invalid UTF-8 at byte 6"
    );
}

#[test]
fn test_a_body_is_echoed_as_text_in_base64_or_as_its_length() {
    let server = TestServer::start(app::function());
    let echo = |body: &[u8]| server.request("POST", "/b", &[], body).json::<Value>();
    assert_eq!(echo(b"caf\xc3\xa9")["body"], "café");
    // Control characters would take 6 bytes each in JSON: Base64 takes 4 for 3.
    let v = echo(&[1u8; 3000]);
    assert_eq!(v["isBase64Encoded"], true);
    assert_eq!(v["body"].as_str().unwrap().len(), 4000);
    // Past what fits SCF's response limit: the length alone.
    let v = echo(&vec![1u8; 5 << 20]);
    assert_eq!(
        (v["body"].clone(), v["bodyLength"].clone()),
        (Value::Null, json!(5 << 20))
    );
}

#[test]
fn test_an_http_request_comes_back_as_json() {
    let server = TestServer::start(app::function());
    let r = server.request("POST", "/users/7?verbose=1", &[("X-Trace", "1")], "hi");
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = r.json();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/users/7");
    assert_eq!(v["query"], "verbose=1");
    assert_eq!(v["headers"]["x-trace"], "1");
    assert_eq!(v["body"], json!("hi"));
}

// Without a socket: `Context { .. }`, `Request::new` and `Response::new` build what the server
// would pass, and the function is called directly.

#[test]
fn test_event_echo_pins_the_shape() {
    let ctx = Context {
        request_id: Some("r-1"),
        memory_mb: Some(128),
        credentials: Credentials::new("id-secret", "key-secret", "token-secret"),
        ..Context::default()
    };
    let mut out = Response::new();
    app::function()
        .event(br#"{"Type":"timer"}"#, &ctx, &mut out)
        .unwrap();
    let v: Value = serde_json::from_slice(out.body()).unwrap();
    assert_eq!(v["event"], json!({"Type": "timer"}));
    assert_eq!(v["context"]["request_id"], "r-1");
    assert_eq!(v["context"]["memory_limit_in_mb"], 128);
    assert_eq!(v["context"]["function_name"], Value::Null);
    assert!(!String::from_utf8_lossy(out.body()).contains("secret"));
}

#[test]
fn test_event_that_is_not_json_is_400() {
    let mut out = Response::new();
    let e = app::function()
        .event(b"{nope", &Context::default(), &mut out)
        .unwrap_err();
    assert_eq!(e.status(), 400);
}

#[test]
fn test_http_echo_pins_the_shape() {
    let h = [
        ("Host", &b"a"[..]),
        ("X-Multi", &b"1"[..]),
        ("x-multi", &b"\"2\""[..]),
        ("X-MULTI", &b"caf\xe9"[..]),
        ("X-Scf-Secret-Key", &b"key-secret"[..]),
    ];
    let req = Request::new("PUT", "/p?q=1", &h, b"\xff\x00");
    let mut out = Response::new();
    app::function().http(&req, &mut out).unwrap();
    let v: Value = serde_json::from_slice(out.body()).unwrap();
    assert_eq!(
        v,
        json!({"method": "PUT", "path": "/p", "query": "q=1",
               "headers": {"host": "a", "x-multi": "1, \"2\", caf\u{fffd}"},
               "body": "/wA=", "isBase64Encoded": true})
    );
}
