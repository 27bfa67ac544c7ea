//! The function contract, against an in-process server: errors and panics become JSON 500s and
//! keep the connection, `POST /event-invoke` goes to the event handler and everything else to
//! the HTTP handler, a missing handler is a 404, a borrowed body goes out exactly.
//!
//! Each test starts its own server (its own limits and timeouts) on `127.0.0.1:0` and talks to
//! it with hand-written bytes; every answer is checked exactly. Sockets have 5 s timeouts and
//! every loop is bounded, so a broken server fails a test instead of hanging it.

mod common;

use common::{
    Client, assert_echo, assert_json_error, event_echo, get, pattern, post, quiet, server, start,
};

#[test]
fn test_function_error_is_500_json() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    let r = c.request(get("/error"));
    assert_json_error(&r, 500, "it went \"wrong\"");
    assert_eq!(r.reason, "Internal Server Error");
    assert_eq!(
        r.header("connection"),
        None,
        "a function error keeps the connection"
    );
    assert_echo(&c.request(get("/next")), "GET", "/next", "", b"");
    // `?` turns any std error into a 500 with its message.
    let r = c.request(get("/big?not-a-number"));
    assert_json_error(&r, 500, "invalid digit found in string");
    // A response the function filled wrongly is a 500 too, and nothing of it is sent.
    let r = c.request(get("/bad-header"));
    assert_json_error(&r, 500, "the server writes this response header itself");
    assert_echo(&c.request(get("/last")), "GET", "/last", "", b"");
}

#[test]
fn test_function_panic_is_500_and_server_keeps_serving() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    c.send(format!("{}{}", get("/panic"), get("/after")));
    let r = c.read_response();
    assert_json_error(&r, 500, "the function panicked");
    assert_eq!(
        r.text(),
        r#"{"errorCode":500,"errorMessage":"the function panicked"}"#
    );
    assert_echo(&c.read_response(), "GET", "/after", "", b"");
    for _ in 0..3 {
        assert_json_error(&c.request(get("/panic")), 500, "the function panicked");
    }
    let mut c = Client::connect(addr);
    assert_echo(&c.request(post("/x", b"fine")), "POST", "/x", "", b"fine");
}

#[test]
fn test_event_invoke_goes_to_the_event_handler() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    let r = c.request(post("/event-invoke", br#"{"a":1}"#));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, event_echo("-", br#"{"a":1}"#));
    let r = c.request(
        "POST /event-invoke HTTP/1.1\r\nHost: t\r\nX-Scf-Request-Id: r-7\r\nContent-Length: 2\r\n\r\n{}",
    );
    assert_eq!(r.body, event_echo("r-7", b"{}"));
    // Only POST goes to it.
    assert_echo(
        &c.request(get("/event-invoke")),
        "GET",
        "/event-invoke",
        "",
        b"",
    );
}

#[test]
fn test_event_invoke_to_http_only_function_is_404() {
    let (_server, addr) = start(
        quiet(),
        scf_lean::http_fn(|req, out| {
            out.body_mut().extend_from_slice(req.path().as_bytes());
            Ok(())
        }),
    );
    let mut c = Client::connect(addr);
    let r = c.request(post("/event-invoke", b"{}"));
    assert_json_error(
        &r,
        404,
        "this function has no event handler: it serves HTTP requests only",
    );
    assert_eq!(r.header("connection"), None);
    let r = c.request(get("/p"));
    assert_eq!((r.status, r.text().as_str()), (200, "/p"));
}

#[test]
fn test_http_request_to_event_only_function_is_404() {
    let (_server, addr) = start(
        quiet(),
        scf_lean::event_fn(|event, _ctx, out| {
            out.body_mut().extend_from_slice(event);
            Ok(())
        }),
    );
    let mut c = Client::connect(addr);
    let r = c.request(get("/p"));
    assert_json_error(
        &r,
        404,
        "this function has no HTTP handler: send events as POST /event-invoke",
    );
    assert_eq!(r.header("connection"), None);
    let r = c.request(post("/event-invoke", b"[1]"));
    assert_eq!((r.status, r.text().as_str()), (200, "[1]"));
}

#[test]
fn test_borrowed_body_echoes_exactly() {
    let (_server, addr) = server(quiet());
    let mut c = Client::connect(addr);
    for body in [&b""[..], b"x", b"\x00\xff binary \r\n\r\n", &pattern(5000)] {
        let r = c.request(post("/ref", body));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        assert_eq!(r.body, body);
    }
    // Pipelined: each borrowed body is the right slice of the shared buffer.
    let mut all = Vec::new();
    for i in 0..5u8 {
        all.extend(post("/ref", &vec![b'a' + i; 100 * usize::from(i)]));
    }
    c.send(&all);
    for i in 0..5u8 {
        assert_eq!(c.read_response().body, vec![b'a' + i; 100 * usize::from(i)]);
    }
}

/// The request helpers a small HTTP function routes and reads with, over the wire: segments
/// and query parameters percent-decoded, a header as text, the body answered by reference, an
/// error that keeps its header, and a body error that names the body.
#[test]
fn test_request_helpers_and_errors_with_headers_over_http() {
    use scf_lean::testing::TestServer;
    use scf_lean::{Error, http_fn};
    let server = TestServer::start(http_fn(|req, out| {
        let mut s = req.segments();
        match (req.method(), s.next().as_deref(), s.next(), s.next()) {
            ("GET", Some("users"), Some(id), None) => {
                let greeting = req.query_param("greeting").unwrap_or("hello".into());
                let agent = req.header("user-agent").unwrap_or("-");
                out.json(&serde_json::json!({
                    "id": id, "greeting": greeting, "agent": agent, "path": req.path_decoded(),
                }))
            }
            ("POST", Some("echo"), None, None) => {
                out.set_body_ref(req.body());
                Ok(())
            }
            ("POST", Some("orders"), None, None) => {
                #[derive(serde::Deserialize)]
                struct Order {
                    #[allow(dead_code)]
                    qty: u32,
                }
                let _order: Order = req.json()?;
                Ok(())
            }
            ("GET", Some("private"), None, None) => Err(Error::new("sign in first")
                .with_status(401)
                .with_header("WWW-Authenticate", "Bearer")),
            _ => Err(Error::not_found("no such route")),
        }
    }));
    let r = server.request(
        "GET",
        "/users/%37/?greeting=good+day%2C%20Ada",
        &[("User-Agent", "t/1")],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json::<serde_json::Value>(),
        serde_json::json!({"id": "7", "greeting": "good day, Ada", "agent": "t/1", "path": "/users/7/"})
    );
    let r = server.request("POST", "/echo", &[], "as sent");
    assert_eq!((r.status, r.text().as_str()), (200, "as sent"));
    let r = server.request("POST", "/orders", &[], r#"{"qty":"x"}"#);
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .contains("the body does not fit Order: invalid type"),
        "{}",
        r.text()
    );
    let r = server.request("POST", "/orders", &[], "{}");
    assert!(
        r.text()
            .contains("the body does not fit Order: missing field `qty`")
    );
    let r = server.request("POST", "/orders", &[], "{");
    assert!(r.text().contains("the body is not valid JSON: EOF"));
    let r = server.get("/private");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(server.get("/users/1/extra").status, 404);
}
