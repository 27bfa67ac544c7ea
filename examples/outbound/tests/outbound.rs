//! The function against a local HTTPS API: a TLS server on 127.0.0.1 whose certificate is
//! signed by a test CA made afresh for each test (rcgen: nothing to commit, nothing to expire,
//! no private key in the repository). The function trusts that CA through `function_with`, the
//! constructor `function()` calls with the environment's settings, so no test sets a variable.
//! The API counts the TCP connections it accepts, and stops with the test, also when it fails.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use scf_lean::testing::{TestResponse, TestServer};
use serde_json::{Value, json};

/// `src/main.rs`, as the binary builds it.
#[path = "../src/main.rs"]
#[allow(dead_code)]
mod app;

/// What the local API says of `octocat`: GitHub's shape, with fields the function skips.
const OCTOCAT: &str = r#"{"login":"octocat","id":583231,"name":"The Octocat","company":"@github",
"public_repos":8,"followers":42,"following":9,"html_url":"https://github.com/octocat"}"#;

/// How long `/users/slow` stalls before it answers (unless the test ends first).
const STALL: Duration = Duration::from_secs(5);

/// A local HTTPS API on `127.0.0.1:<ephemeral port>`, for the life of the value.
struct Api {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    stop: AtomicBool,
    accepted: AtomicUsize,
    /// Each accepted connection (a handle to shut it down) and its thread.
    conns: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
}

impl Api {
    fn start() -> Api {
        // The test CA, and the API's certificate for 127.0.0.1, signed by it.
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "outbound test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        let tls = Arc::new(tls);

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            conns: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || {
            for tcp in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = tcp else { continue };
                s.accepted.fetch_add(1, Ordering::SeqCst);
                let handle = tcp.try_clone().unwrap();
                let (tls, s2) = (Arc::clone(&tls), Arc::clone(&s));
                let thread = std::thread::spawn(move || serve(tls, tcp, &s2.stop));
                s.conns.lock().unwrap().push((handle, thread));
            }
        });
        Api {
            addr,
            ca_pem,
            shared,
            acceptor: Some(acceptor),
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The function against this API, trusting its test CA.
    fn function(&self) -> app::Outbound {
        app::function_with(&self.url(), Some(self.ca_pem.as_bytes())).unwrap()
    }

    /// Closes every connection, as an API does with one idle too long (while SCF froze the
    /// instance between invocations, say).
    fn close_connections(&self) {
        for (tcp, _) in self.shared.conns.lock().unwrap().iter() {
            let _ = tcp.shutdown(Shutdown::Both);
        }
    }

    /// TCP connections accepted so far.
    fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Api {
    /// Stops accepting, ends every connection (a stall included) and joins every thread.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the acceptor
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        let conns = std::mem::take(&mut *self.shared.conns.lock().unwrap());
        for (tcp, thread) in conns {
            let _ = tcp.shutdown(Shutdown::Both);
            let _ = thread.join();
        }
    }
}

/// One connection: the TLS handshake, then requests (keep-alive) until the client closes.
fn serve(tls: Arc<rustls::ServerConfig>, tcp: TcpStream, stop: &AtomicBool) {
    let Ok(conn) = rustls::ServerConnection::new(tls) else {
        return;
    };
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let mut input = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = input.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return, // closed, or a handshake the client refused
                Ok(n) => input.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&input[..end]).into_owned();
        input.drain(..end);
        let path = head.split(' ').nth(1).unwrap_or("");
        let (status, body) = answer(path, stop);
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(response.as_bytes()).is_err() || stream.flush().is_err() {
            return;
        }
    }
}

/// The API's routes.
fn answer(path: &str, stop: &AtomicBool) -> (&'static str, &'static str) {
    match path {
        "/users/octocat" => ("200 OK", OCTOCAT),
        "/users/broken" => ("500 Internal Server Error", r#"{"message":"boom"}"#),
        "/users/garbled" => ("200 OK", "<html>not JSON</html>"),
        "/users/slow" => {
            let start = Instant::now();
            while start.elapsed() < STALL && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            ("200 OK", OCTOCAT)
        }
        _ => ("404 Not Found", r#"{"message":"Not Found"}"#),
    }
}

/// The error body's message, after checking the status and the `errorCode`.
fn error(r: &TestResponse, status: u16) -> String {
    assert_eq!(r.status, status, "{}", r.text());
    let v: Value = r.json();
    assert_eq!(v["errorCode"], status);
    v["errorMessage"].as_str().unwrap().to_owned()
}

fn octocat_summary() -> Value {
    json!({
        "user": "octocat",
        "name": "The Octocat",
        "publicRepos": 8,
        "followers": 42,
        "htmlUrl": "https://github.com/octocat",
    })
}

#[test]
fn an_event_and_a_request_are_answered_with_the_summary() {
    let api = Api::start();
    let server = TestServer::start(api.function());
    let r = server.event(r#"{"user":"octocat"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json::<Value>(), octocat_summary());
    r.assert_no_secrets();
    let r = server.get("/users/octocat");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json::<Value>(), octocat_summary());
}

#[test]
fn three_invocations_use_one_connection() {
    let api = Api::start();
    let server = TestServer::start(api.function());
    for r in [
        server.event(r#"{"user":"octocat"}"#),
        server.get("/users/octocat"),
        server.event(r#"{"user":"octocat"}"#),
    ] {
        assert_eq!(r.json::<Value>(), octocat_summary());
    }
    assert_eq!(api.accepted(), 1);
}

#[test]
fn a_connection_the_api_closed_is_replaced() {
    let api = Api::start();
    let server = TestServer::start(api.function());
    assert_eq!(server.get("/users/octocat").status, 200);
    api.close_connections();
    let r = server.get("/users/octocat");
    assert_eq!(r.json::<Value>(), octocat_summary());
    assert_eq!(api.accepted(), 2);
}

#[test]
fn an_api_404_is_a_404_and_a_500_a_502() {
    let api = Api::start();
    let server = TestServer::start(api.function());
    let r = server.event(r#"{"user":"nobody"}"#);
    assert_eq!(error(&r, 404), "the API has no user nobody");
    let r = server.get("/users/broken");
    assert_eq!(
        error(&r, 502),
        format!(
            "the API answered 500 Internal Server Error: GET {}/users/broken",
            api.url()
        )
    );
    // The error answers were read to the end: the connection is still the first one.
    assert_eq!(server.get("/users/octocat").status, 200);
    assert_eq!(api.accepted(), 1);
}

#[test]
fn an_answer_that_is_not_the_json_expected_is_a_502() {
    let api = Api::start();
    let server = TestServer::start(api.function());
    let r = server.event(r#"{"user":"garbled"}"#);
    assert_eq!(
        error(&r, 502),
        format!(
            "the API failed: GET {}/users/garbled: Failed to read JSON: expected value at line 1 \
             column 1",
            api.url()
        )
    );
}

/// The timeout is what was left of the invocation (1,100 ms) less the margin (100 ms): at
/// most 1,000 ms, less whatever the machine took before the call, which the test does not
/// control. "In time" is measured against the API's stall (5 s): the call was cut off, not
/// waited out.
#[test]
fn an_api_slower_than_the_time_left_is_a_504_in_time() {
    let api = Api::start();
    let server = TestServer::start(api.function());
    let start = Instant::now();
    let r = server.event_with(r#"{"user":"slow"}"#, &[("X-Scf-Timeout", "1100")]);
    let took = start.elapsed();
    let m = error(&r, 504);
    let ms: u64 = m
        .strip_prefix("the API did not answer within ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{m}"));
    assert!((50..=1000).contains(&ms), "{m}");
    assert!(
        m.ends_with(&format!(" ms: GET {}/users/slow", api.url())),
        "{m}"
    );
    // It waited for its timeout, and no longer than the API would have stalled.
    assert!(took >= Duration::from_millis(ms * 3 / 4), "{took:?}");
    assert!(took < STALL, "answered after {took:?}");
    // The next invocation gets a new connection: the stalled one was dropped.
    assert_eq!(server.get("/users/octocat").status, 200);
    assert_eq!(api.accepted(), 2);
}

#[test]
fn too_little_time_left_is_a_504_without_calling() {
    let api = Api::start();
    let server = TestServer::start(api.function());
    let r = server.event_with(r#"{"user":"octocat"}"#, &[("X-Scf-Timeout", "120")]);
    let m = error(&r, 504);
    assert!(m.starts_with("only "), "{m}");
    assert!(
        m.ends_with(" ms of the invocation left: too little to call the API"),
        "{m}"
    );
    assert_eq!(api.accepted(), 0);
}

#[test]
fn without_the_test_ca_the_certificate_is_refused() {
    let api = Api::start();
    let server = TestServer::start(app::function_with(&api.url(), None).unwrap());
    // Refused by the client, as the embedded roots do not have the test CA: a 502 that says
    // why, not a panic.
    let r = server.event(r#"{"user":"octocat"}"#);
    assert_eq!(
        error(&r, 502),
        format!(
            "the API failed: GET {}/users/octocat: Connection Failed: tls connection init \
             failed: invalid peer certificate: UnknownIssuer",
            api.url()
        )
    );
    assert_eq!(api.accepted(), 1);
}

#[test]
fn a_bad_name_or_route_is_answered_without_calling() {
    let api = Api::start();
    let server = TestServer::start(api.function());
    let bad = "a user name is 1 to 39 letters, digits or hyphens";
    assert_eq!(error(&server.event(r#"{"user":"../admin"}"#), 400), bad);
    assert_eq!(error(&server.get("/users/a%2Fb"), 400), bad);
    assert_eq!(
        error(&server.get(&format!("/users/{}", "a".repeat(40))), 400),
        bad
    );
    let m = error(&server.event(r#"{"name":"octocat"}"#), 400);
    assert!(
        m.starts_with("the event does not fit Event: missing field `user`"),
        "{m}"
    );
    assert_eq!(
        error(&server.get("/repos/x"), 404),
        "the route is GET /users/<name>"
    );
    assert_eq!(api.accepted(), 0);
}

#[test]
fn bad_settings_are_refused_at_start() {
    let err = |url: &str, pem: Option<&[u8]>| app::function_with(url, pem).err().unwrap();
    assert_eq!(
        err("api.github.com", None),
        "the API URL is not https://…: api.github.com"
    );
    assert_eq!(
        err("https://x", Some(b"not PEM")),
        "EXTRA_CA_PEM: no certificate in it"
    );
    let bad = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert!(err("https://x", Some(bad)).starts_with("EXTRA_CA_PEM: "));
}
