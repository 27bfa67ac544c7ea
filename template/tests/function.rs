//! The function's tests: change them with it, and `cargo test` runs them.
//!
//! `TestServer` serves the function on a loopback port, in this test process, exactly as SCF's
//! invocations reach it: `event` posts to `/event-invoke` with the `X-Scf-*` headers SCF sends
//! (fake credentials included), `get` and `request` send HTTP requests as API Gateway passes
//! them through. Each test starts a server of its own, with a new `function()`; it stops when
//! the test ends, also when it fails. The last test calls the function directly, without a
//! socket.

use scf_lean::testing::TestServer;
use scf_lean::{Context, Function, Level, Request, Response};
use serde_json::{Value, json};

/// `src/main.rs`, as the binary builds it: the tests take the function from its `function()`,
/// whatever its type.
#[path = "../src/main.rs"]
#[allow(dead_code)]
mod app;

fn timer_event() -> Vec<u8> {
    std::fs::read("events/timer.json").unwrap()
}

/// A POST of `body` to `/items`, as JSON.
fn post_item(server: &TestServer, body: &str) -> scf_lean::testing::TestResponse {
    server.request(
        "POST",
        "/items",
        &[("Content-Type", "application/json")],
        body,
    )
}

#[test]
fn a_timer_event_is_answered_with_the_stock() {
    let server = TestServer::start(app::function());
    let r = server.event(timer_event());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json::<Value>(),
        json!({"trigger": "EveryDay", "items": 0, "request": "test-request-1"})
    );
    r.assert_no_secrets();
}

#[test]
fn a_timer_event_logs_the_stock_with_its_request_id() {
    // `capture_logs` keeps the function's lines (from Info up) for the test to read.
    let server = TestServer::builder(app::function())
        .capture_logs(Level::Info)
        .start();
    server.event_with(timer_event(), &[("X-Scf-Request-Id", "t-1")]);
    assert!(
        server.logged(Level::Info, "t-1", "EveryDay fired; stock: 0"),
        "{:?}",
        server.logs()
    );
}

#[test]
fn another_triggers_event_is_a_400_naming_the_field() {
    let server = TestServer::start(app::function());
    let r = server.event(std::fs::read("events/cos.json").unwrap());
    assert_eq!(r.status, 400, "{}", r.text());
    let v: Value = r.json();
    assert_eq!(v["errorCode"], 400);
    let message = v["errorMessage"].as_str().unwrap();
    assert!(message.contains("missing field `TriggerName`"), "{message}");
}

#[test]
fn hello_greets_by_name_and_counts_across_calls() {
    let server = TestServer::start(app::function());
    let r = server.get("/hello/ada");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json::<Value>(), json!({"hello": "ada", "greeted": 1}));
    // The name percent-decoded; the count carried over from the call before.
    let r = server.get("/hello/J%C3%BCrgen");
    assert_eq!(r.json::<Value>(), json!({"hello": "Jürgen", "greeted": 2}));
}

#[test]
fn an_item_is_created_once_and_kept() {
    let server = TestServer::start(app::function());
    let r = post_item(&server, r#"{"name": "pen", "qty": 3}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json::<Value>(), json!({"name": "pen", "qty": 3}));

    let r = post_item(&server, r#"{"name": "pen", "qty": 1}"#);
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(
        r.json::<Value>(),
        json!({"errorCode": 409, "errorMessage": "pen is already in stock"})
    );

    // The next invocation, an event this time, sees the item.
    let r = server.event(timer_event());
    assert_eq!(r.json::<Value>()["items"], 1, "{}", r.text());
}

#[test]
fn an_item_that_does_not_fit_is_a_400() {
    let server = TestServer::start(app::function());
    let r = post_item(&server, r#"{"name": "pen"}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    let v: Value = r.json();
    let message = v["errorMessage"].as_str().unwrap();
    assert!(message.contains("missing field `qty`"), "{message}");
    assert_eq!(post_item(&server, "pen").status, 400);
}

#[test]
fn any_other_route_is_a_404() {
    let server = TestServer::start(app::function());
    for (method, target) in [
        ("GET", "/"),
        ("GET", "/items"),
        ("POST", "/hello/ada"),
        ("GET", "/hello/ada/more"),
    ] {
        let r = server.request(method, target, &[], "");
        assert_eq!(r.status, 404, "{method} {target}: {}", r.text());
        assert_eq!(
            r.json::<Value>(),
            json!({"errorCode": 404, "errorMessage": "no such route"})
        );
    }
}

// Without a socket: `Context { .. }`, `Request::new` and `Response::new` build what the server
// would pass, and the function is called as the server calls it.

#[test]
fn called_directly() {
    let mut f = app::function();
    let ctx = Context {
        request_id: Some("r-1"),
        ..Context::default()
    };
    let mut out = Response::new();
    f.event(br#"{"TriggerName": "nightly"}"#, &ctx, &mut out)
        .unwrap();
    let v: Value = serde_json::from_slice(out.body()).unwrap();
    assert_eq!(
        v,
        json!({"trigger": "nightly", "items": 0, "request": "r-1"})
    );

    let req = Request::new("POST", "/items", &[], br#"{"name": "ink", "qty": 2}"#);
    let mut out = Response::new();
    f.http(&req, &mut out).unwrap();
    assert_eq!(out.status(), 201);
    let e = f.http(&req, &mut Response::new()).unwrap_err();
    assert_eq!((e.status(), e.message()), (409, "ink is already in stock"));
}
