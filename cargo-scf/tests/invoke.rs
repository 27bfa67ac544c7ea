//! `cargo scf invoke` as a user runs it: the built binary, against
//!
//! - scf-lean's echo (the reference function, `src/main.rs`, built here with `cargo
//!   build -p scf-lean`), started on `PORT=0` and read for the port its start-up line names:
//!   it answers an event with the event and the context it was sent, and an HTTP request with
//!   its method, path, query, headers (not the credential headers) and body;
//! - a recorder made here: a listener that keeps the raw request and answers what the test
//!   says (a status other than 2xx, credential headers, the credentials sent given back as
//!   header names, in another case, or alone after their scheme, a body cut short, no answer
//!   at all);
//! - a port where nothing listens (held by a connected socket, so nothing else takes it).
//!
//! Exit codes 0, 1 and 2; no value of a credential header, in any case, in anything the command
//! prints but the body; an event of SCF's synchronous limit sent, one byte more refused.
//! Loopback only. Every process is killed on every path (guards), every wait is bounded.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long one run of the command may take.
const RUN: Duration = Duration::from_secs(60);
/// How long the echo may take to print its start-up line.
const STARTUP: Duration = Duration::from_secs(10);
/// How long building the echo may take.
const BUILD: Duration = Duration::from_secs(600);
/// How long the recorder waits for the command's connection and request.
const RECORD: Duration = Duration::from_secs(30);

/// Credentials given with -H: real-looking values that must never be printed.
const SECRETS: [(&str, &str); 3] = [
    ("X-Scf-Secret-Id", "AKIDinvoketest0123456789"),
    ("X-Scf-Secret-Key", "invoke-test-secret-key-abcdef"),
    ("X-Scf-Session-Token", "invoke-test-session-token-zyx"),
];

/// A child process, killed and reaped when dropped (also when a test panics).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cmd` run to its end with `stdin` as its input; its exit code and output. Killed, and the
/// test failed, after `limit`.
fn run_bounded(cmd: &mut Command, stdin: &[u8], limit: Duration) -> Run {
    let shown = format!("{cmd:?}");
    let mut child = Guard(
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{shown}: {e}")),
    );
    let reader = |mut p: Box<dyn std::io::Read + Send>| {
        thread::spawn(move || {
            let mut s = Vec::new();
            let _ = p.read_to_end(&mut s);
            s
        })
    };
    let out = reader(Box::new(child.0.stdout.take().unwrap()));
    let err = reader(Box::new(child.0.stderr.take().unwrap()));
    let mut input = child.0.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "{shown} did not finish within {limit:?}"
        );
        thread::sleep(Duration::from_millis(5));
    };
    let _ = writer.join();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
    }
}

/// A finished `cargo scf invoke`.
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!(
            "exit code {}\nstdout:\n{}\nstderr:\n{}",
            self.code,
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        )
    }

    /// stdout as JSON.
    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.all()))
    }

    /// The request id the command says it sent.
    fn request_id(&self) -> &str {
        let at = self
            .stderr
            .find("request id ")
            .expect("a request id on stderr")
            + 11;
        let rest = &self.stderr[at..];
        &rest[..rest.find(')').expect("the request line ends with )")]
    }

    /// Asserts that none of `secrets` shows, in any case, in what the command printed.
    fn assert_hides(&self, secrets: &[&str]) {
        let out = String::from_utf8_lossy(&self.stdout).to_lowercase();
        let err = self.stderr.to_lowercase();
        for s in secrets {
            let s = s.to_lowercase();
            assert!(
                !out.contains(&s) && !err.contains(&s),
                "a credential ({} characters) is in the output:\n{}",
                s.len(),
                self.all()
            );
        }
    }
}

/// `cargo scf invoke ARGS`, run in `dir`, with `stdin`.
fn invoke_in(dir: &Path, args: &[&str], stdin: &[u8]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-scf"));
    cmd.arg("scf").arg("invoke").args(args).current_dir(dir);
    run_bounded(&mut cmd, stdin, RUN)
}

/// `cargo scf invoke ARGS` in this package's directory, with `--name` given (so that no
/// `cargo metadata` runs) unless `args` name one.
fn invoke(args: &[&str]) -> Run {
    let mut all = args.to_vec();
    if !args.contains(&"--name") {
        all.extend(["--name", "fn-under-test"]);
    }
    invoke_in(Path::new(env!("CARGO_MANIFEST_DIR")), &all, b"")
}

/// The workspace's directory (scf-lean's repository).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cargo-scf is inside scf-lean's repository")
        .to_path_buf()
}

/// The sample event `name` as the repository holds it.
fn sample(name: &str) -> Value {
    let path = workspace().join("events").join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// scf-lean's echo, built once per test run in this test binary's profile (a no-op when it is
/// up to date); its path as cargo reports it.
fn echo_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_cargo-scf"));
        let profile = match exe.parent().and_then(|d| d.file_name()) {
            Some(d) if d != "debug" => d.to_string_lossy().into_owned(),
            _ => "dev".into(),
        };
        let manifest = workspace().join("Cargo.toml");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", "scf-lean", "--bin", "scf-lean", "--profile"])
            .arg(&profile)
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--message-format=json-render-diagnostics");
        let r = run_bounded(&mut cmd, b"", BUILD);
        assert_eq!(r.code, 0, "cannot build scf-lean's echo:\n{}", r.all());
        String::from_utf8_lossy(&r.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "scf-lean")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the echo's executable")
    })
}

/// scf-lean's echo on a port the kernel picked; killed when dropped.
struct Echo {
    _child: Guard,
    port: u16,
}

impl Echo {
    /// Starts it on `PORT=0` and reads its port from its start-up line (`INFO [-] scf-lean
    /// 0.1.0 (...) listening on 0.0.0.0:PORT in ...`); the rest of its log is drained, so that
    /// it never waits on a full pipe.
    fn start() -> Echo {
        let mut child = Guard(
            Command::new(echo_binary())
                .env("PORT", "0")
                .env("SCF_LEAN_LOG_LEVEL", "info")
                .env_remove("SCF_LEAN_LOG_FORMAT")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start scf-lean's echo"),
        );
        let out = child.0.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(out);
            let mut line = String::new();
            while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
                if let Some(port) = startup_port(&line) {
                    let _ = tx.send(port);
                    break;
                }
                line.clear();
            }
            let _ = std::io::copy(&mut lines, &mut std::io::sink());
        });
        let port = rx
            .recv_timeout(STARTUP)
            .expect("the echo's start-up line, naming its port");
        Echo {
            _child: child,
            port,
        }
    }

    fn port(&self) -> String {
        self.port.to_string()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// The port a start-up line names.
fn startup_port(line: &str) -> Option<u16> {
    let (_, rest) = line.split_once(" listening on 0.0.0.0:")?;
    rest.split_once(' ')?.0.parse().ok()
}

/// A one-shot HTTP server: takes one connection, reads one request (head and
/// `Content-Length` body), writes what `answer` makes of it (nothing: it holds the connection
/// until the client closes it), and gives back the raw request.
struct Recorder {
    port: u16,
    request: JoinHandle<Vec<u8>>,
}

impl Recorder {
    fn start(answer: impl FnOnce(&[u8]) -> Option<Vec<u8>> + Send + 'static) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let request = thread::spawn(move || {
            let deadline = Instant::now() + RECORD;
            let mut s = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        assert!(Instant::now() < deadline, "no connection within {RECORD:?}");
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(RECORD)).unwrap();
            let request = read_request(&mut s);
            match answer(&request) {
                Some(a) => {
                    s.write_all(&a).unwrap();
                    let _ = s.shutdown(std::net::Shutdown::Write);
                    // Until the client has it all and closes.
                    let _ = s.read_to_end(&mut Vec::new());
                }
                None => {
                    let _ = s.read_to_end(&mut Vec::new());
                }
            }
            request
        });
        Recorder { port, request }
    }

    fn port(&self) -> String {
        self.port.to_string()
    }

    /// The request it read.
    fn request(self) -> Vec<u8> {
        self.request.join().expect("the recorder")
    }
}

/// One request: its head, then as many body bytes as its `Content-Length` says (the head
/// looked for until found, not in every read of a large body).
fn read_request(s: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = None;
    loop {
        if total.is_none()
            && let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&raw[..end]).into_owned();
            let len: usize = head_value(&head, "content-length").map_or(0, |v| v.parse().unwrap());
            total = Some(end + 4 + len);
        }
        if total.is_some_and(|t| raw.len() >= t) {
            return raw;
        }
        let n = s.read(&mut buf).expect("read the request");
        assert!(
            n > 0,
            "the request ended early: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
    }
}

/// The value of header `name` (any case) in a request or response head.
fn head_value<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// The request's head (text) and body.
fn split_request(raw: &[u8]) -> (String, &[u8]) {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (
        String::from_utf8(raw[..end].to_vec()).unwrap(),
        &raw[end + 4..],
    )
}

/// A loopback port where nothing listens, for as long as the value lives: the local port of a
/// connected socket. The kernel refuses a connection to it, and gives it to no other listener.
fn refused_port() -> (TcpListener, TcpStream, TcpStream, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let port = client.local_addr().unwrap().port();
    assert!(
        TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err(),
        "port {port} answers"
    );
    (listener, client, server, port)
}

fn secret_args() -> Vec<String> {
    SECRETS
        .iter()
        .flat_map(|(n, v)| ["-H".to_owned(), format!("{n}: {v}")])
        .collect()
}

fn secret_values() -> Vec<&'static str> {
    SECRETS.iter().map(|(_, v)| *v).collect()
}

#[test]
fn test_event_reaches_the_echo_with_the_context_sent() {
    let echo = Echo::start();
    let port = echo.port();
    let mut args = vec![
        "--example",
        "timer",
        "--port",
        &port,
        "--memory",
        "256",
        "--timeout",
        "4000",
        "--region",
        "ap-beijing",
        "--namespace",
        "ns1",
        "-v",
    ];
    let secrets = secret_args();
    args.extend(secrets.iter().map(String::as_str));
    let r = invoke(&args);
    assert_eq!(r.code, 0, "{}", r.all());
    let answer = r.json();
    assert_eq!(answer["event"], sample("timer"), "{}", r.all());
    assert_eq!(
        answer["context"],
        json!({
            "request_id": r.request_id(),
            "function_name": "fn-under-test",
            "function_version": "$LATEST",
            "namespace": "ns1",
            "memory_limit_in_mb": 256,
            "time_limit_in_ms": 4000,
            "tencentcloud_region": "ap-beijing",
            "tencentcloud_appid": "1250000000",
            "tencentcloud_uin": "100000000001",
        })
    );
    assert_eq!(r.request_id().len(), 36);
    assert!(
        r.stderr.starts_with(&format!(
            "> POST http://127.0.0.1:{port}/event-invoke (122 bytes, request id "
        )),
        "{}",
        r.all()
    );
    assert!(r.stderr.contains("\n< 200 OK in "), "{}", r.all());
    assert!(
        r.stderr.contains("\n< content-type: application/json\n"),
        "{}",
        r.all()
    );
    // -v shows every header sent, a credential's value redacted.
    for line in [
        "> X-Scf-Trigger-Src: timer",
        "> X-Scf-Secret-Id: <redacted>",
        "> X-Scf-Secret-Key: <redacted>",
        "> X-Scf-Session-Token: <redacted>",
        "> X-Scf-Memory: 256",
        "> Content-Length: 122",
    ] {
        assert!(r.stderr.contains(line), "{line}:\n{}", r.all());
    }
    r.assert_hides(&secret_values());
}

#[test]
fn test_http_request_reaches_the_echo() {
    let echo = Echo::start();
    let port = echo.port();
    let mut args = vec![
        "--http",
        "put",
        "/items/7?q=1&flag",
        "--port",
        &port,
        "-H",
        "X-Trace: abc",
        "--data",
        "{\"qty\":2}",
    ];
    let secrets = secret_args();
    args.extend(secrets.iter().map(String::as_str));
    let r = invoke(&args);
    assert_eq!(r.code, 0, "{}", r.all());
    let a = r.json();
    assert_eq!(a["method"], "PUT");
    assert_eq!(a["path"], "/items/7");
    assert_eq!(a["query"], "q=1&flag");
    assert_eq!(a["body"], "{\"qty\":2}");
    let h = &a["headers"];
    for (name, value) in [
        ("x-trace", "abc"),
        ("content-type", "application/json"),
        ("content-length", "9"),
        ("x-scf-request-id", r.request_id()),
        ("x-scf-memory", "128"),
        ("x-scf-timeout", "3000"),
        ("x-scf-version", "$LATEST"),
        ("x-scf-name", "fn-under-test"),
        ("x-scf-namespace", "default"),
        ("x-scf-region", "ap-guangzhou"),
        ("x-scf-appid", "1250000000"),
        ("x-scf-uin", "100000000001"),
    ] {
        assert_eq!(h[name], value, "{name}: {}", r.all());
    }
    assert!(h["user-agent"].as_str().unwrap().starts_with("cargo-scf/"));
    assert_eq!(h.get("x-scf-trigger-src"), None, "{}", r.all());
    assert!(
        r.stderr.starts_with(&format!(
            "> PUT http://127.0.0.1:{port}/items/7?q=1&flag (9 bytes"
        )),
        "{}",
        r.all()
    );
    r.assert_hides(&secret_values());

    // No data: no body, no Content-Type.
    let r = invoke(&["--http", "GET", "/", "--url", &echo.url("")]);
    assert_eq!(r.code, 0, "{}", r.all());
    let a = r.json();
    assert_eq!(
        (&a["method"], &a["path"], &a["body"]),
        (&json!("GET"), &json!("/"), &json!(""))
    );
    assert_eq!(a["headers"].get("content-type"), None, "{}", r.all());
    assert_eq!(a["headers"].get("content-length"), None, "{}", r.all());
    assert!(r.stderr.contains("(no body, request id"), "{}", r.all());
}

#[test]
fn test_event_to_another_path_shows_every_header_but_the_credentials() {
    // The echo answers any path but /event-invoke with what it received: the headers an event
    // carries, X-Scf-Trigger-Src included.
    let echo = Echo::start();
    let r = invoke(&["--example", "timer", "--url", &echo.url("/timer-check?x=1")]);
    assert_eq!(r.code, 0, "{}", r.all());
    let a = r.json();
    assert_eq!(a["method"], "POST");
    assert_eq!(a["path"], "/timer-check");
    assert_eq!(a["query"], "x=1");
    let sent: Value = serde_json::from_str(a["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, sample("timer"));
    let h = &a["headers"];
    assert_eq!(h["x-scf-trigger-src"], "timer");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-scf-request-id"], r.request_id());
    // The echo never echoes credentials; the recorder's test checks that they are sent.
    for (name, _) in SECRETS {
        assert_eq!(h.get(name.to_lowercase()), None);
    }
}

#[test]
fn test_every_sample_event_is_answered() {
    let echo = Echo::start();
    let list = invoke(&["--example", "list"]);
    assert_eq!(list.code, 0, "{}", list.all());
    let names: Vec<String> = String::from_utf8(list.stdout.clone())
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    assert_eq!(
        names,
        [
            "timer",
            "cos",
            "ckafka",
            "cmq_topic",
            "cmq_queue",
            "cls",
            "clb",
            "apigw"
        ]
    );
    assert!(list.stderr.is_empty(), "{}", list.all());
    let port = echo.port();
    for name in &names {
        // `-` and `_` are the same; so are cases.
        let given = if name == "cmq_topic" {
            "CMQ-Topic".to_owned()
        } else {
            name.clone()
        };
        let r = invoke(&["--example", &given, "--port", &port]);
        assert_eq!(r.code, 0, "{name}: {}", r.all());
        assert_eq!(r.json()["event"], sample(name), "{name}");
    }
}

#[test]
fn test_event_from_stdin_and_from_a_file() {
    let echo = Echo::start();
    let port = echo.port();
    let dir = tempfile::tempdir().unwrap();
    let r = invoke_in(
        dir.path(),
        &["-", "--port", &port, "--name", "f"],
        b"{\"id\":7}",
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.json()["event"], json!({"id": 7}));

    let file = dir.path().join("event.json");
    std::fs::write(&file, b"[1, 2, 3]").unwrap();
    let r = invoke(&[file.to_str().unwrap(), "--port", &port]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.json()["event"], json!([1, 2, 3]));
}

#[test]
fn test_name_defaults_to_the_project_here() {
    let echo = Echo::start();
    let url = echo.url("");
    let args = ["--http", "GET", "/", "--url", &url];
    // In a function's project: its package name (cargo-scf is a binary package).
    let r = invoke_in(Path::new(env!("CARGO_MANIFEST_DIR")), &args, b"");
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.json()["headers"]["x-scf-name"], "cargo-scf");
    // Elsewhere: the template's package name.
    let dir = tempfile::tempdir().unwrap();
    let r = invoke_in(dir.path(), &args, b"");
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.json()["headers"]["x-scf-name"], "my-function");
}

#[test]
fn test_an_answer_not_2xx_exits_1() {
    let echo = Echo::start();
    let r = invoke(&["--data", "not json", "--port", &echo.port()]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(r.json()["errorCode"], 400, "{}", r.all());
    assert!(
        r.stderr
            .starts_with("warning: the event is not JSON (line 1 column 2)"),
        "{}",
        r.all()
    );
    assert!(r.stderr.contains("\n< 400 Bad Request in "), "{}", r.all());

    // A redirect is the function's answer, not followed.
    let rec = Recorder::start(|_| {
        Some(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n".to_vec())
    });
    let r = invoke(&["--http", "GET", "/old", "--port", &rec.port()]);
    let (head, _) = split_request(&rec.request());
    assert!(head.starts_with("GET /old HTTP/1.1\r\n"), "{head}");
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("\n< 302 Found in "), "{}", r.all());
    assert!(
        r.stderr.contains("\n< location: /elsewhere\n"),
        "{}",
        r.all()
    );
}

#[test]
fn test_the_raw_request_and_an_answer_with_credentials() {
    // The recorder answers 404 with the credential headers' values back in its headers: the
    // command shows neither, and the body as it is.
    let rec = Recorder::start(|raw| {
        let (head, _) = split_request(raw);
        let id = head_value(&head, "x-scf-secret-id")
            .unwrap_or("")
            .to_owned();
        let token = head_value(&head, "x-scf-session-token")
            .unwrap_or("")
            .to_owned();
        Some(
            format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\
                 X-Scf-Secret-Key: answered-secret-key-value\r\nX-Echoed: id={id} token={token}\r\n\
                 \r\nnot here"
            )
            .into_bytes(),
        )
    });
    let r = invoke(&["--data", "{\"a\":1}", "--port", &rec.port(), "-v"]);
    let raw = rec.request();
    let (head, body) = split_request(&raw);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(r.stdout, b"not here");
    assert!(
        head.starts_with("POST /event-invoke HTTP/1.1\r\n"),
        "{head}"
    );
    assert_eq!(body, b"{\"a\":1}");
    assert_eq!(head_value(&head, "content-length"), Some("7"));
    assert_eq!(head_value(&head, "content-type"), Some("application/json"));
    assert_eq!(head_value(&head, "x-scf-request-id"), Some(r.request_id()));
    assert_eq!(head_value(&head, "x-scf-name"), Some("fn-under-test"));
    assert_eq!(head_value(&head, "x-scf-trigger-src"), None);
    // The fake credentials are sent, and never shown.
    let sent: Vec<&str> = ["x-scf-secret-id", "x-scf-secret-key", "x-scf-session-token"]
        .iter()
        .map(|n| head_value(&head, n).unwrap_or_else(|| panic!("{n} sent:\n{head}")))
        .collect();
    assert!(sent.iter().all(|v| v.len() >= 16), "{sent:?}");
    let mut hidden = sent.clone();
    hidden.push("answered-secret-key-value");
    r.assert_hides(&hidden);
    assert!(r.stderr.contains("\n< 404 Not Found in "), "{}", r.all());
    assert!(
        r.stderr.contains("\n< x-scf-secret-key: <redacted>\n"),
        "{}",
        r.all()
    );
    assert!(
        r.stderr
            .contains("\n< x-echoed: id=<redacted> token=<redacted>\n"),
        "{}",
        r.all()
    );
}

#[test]
fn test_credentials_given_with_h_are_sent_and_never_shown() {
    let rec = Recorder::start(|_| Some(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()));
    let port = rec.port();
    let mut args = vec!["--example", "cos", "--port", &port, "-v"];
    let secrets = secret_args();
    args.extend(secrets.iter().map(String::as_str));
    args.extend(["-H", "Authorization: Bearer invoke-test-bearer-token"]);
    let r = invoke(&args);
    let raw = rec.request();
    let (head, _) = split_request(&raw);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.is_empty(), "{}", r.all());
    for (name, value) in SECRETS {
        assert_eq!(head_value(&head, name), Some(value), "{head}");
    }
    assert_eq!(
        head_value(&head, "authorization"),
        Some("Bearer invoke-test-bearer-token")
    );
    let mut hidden = secret_values();
    hidden.push("invoke-test-bearer-token");
    r.assert_hides(&hidden);
    assert!(
        r.stderr.contains("> Authorization: <redacted>"),
        "{}",
        r.all()
    );
}

#[test]
fn test_no_answer_exits_2() {
    // Nothing listening.
    let (_l, _c, _s, port) = refused_port();
    let r = invoke(&["--example", "timer", "--port", &port.to_string()]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stdout.is_empty(), "{}", r.all());
    assert!(
        r.stderr.contains(&format!(
            "error: nothing answers at http://127.0.0.1:{port}/event-invoke: start the function \
             with `cargo scf run` or `cargo scf watch`"
        )),
        "{}",
        r.all()
    );

    // Listening, never answering: the timeout plus 5 s.
    let rec = Recorder::start(|_| None);
    let start = Instant::now();
    let r = invoke(&["--data", "{}", "--port", &rec.port(), "--timeout", "1"]);
    let took = start.elapsed();
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("error: no answer from http://127.0.0.1:")
            && r.stderr
                .contains("within 5001 ms (--timeout 1 ms, plus 5 s)"),
        "{}",
        r.all()
    );
    assert!(took >= Duration::from_secs(5), "{took:?}");
    let _ = rec.request();

    // A body cut short: what came is on stdout, the run failed.
    let rec =
        Recorder::start(|_| Some(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart".to_vec()));
    let r = invoke(&["--data", "{}", "--port", &rec.port()]);
    let _ = rec.request();
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(r.stdout, b"part");
    assert!(
        r.stderr.contains("error: the answer's body was cut short"),
        "{}",
        r.all()
    );
}

#[test]
fn test_argument_errors_exit_2_before_sending() {
    let (_l, _c, _s, port) = refused_port();
    let port = port.to_string();
    for (args, want) in [
        (
            &["--port", &port][..],
            "error: no event to send: give a FILE of JSON, - to read it from stdin, --data JSON",
        ),
        (
            &["--example", "sqs", "--port", &port],
            "no sample event named \"sqs\"",
        ),
        (
            &["no-such-file.json", "--port", &port],
            "read no-such-file.json",
        ),
        (
            &["--data", "{}", "--url", "ftp://127.0.0.1/"],
            "only http:// and https:// are spoken",
        ),
        (
            &["--http", "GET", "items", "--port", &port],
            "--http PATH must start with /",
        ),
        (
            &["--data", "{}", "-H", "oops", "--port", &port],
            "'NAME: VALUE'",
        ),
        (
            &["--data", "{}", "--example", "timer", "--port", &port],
            "cannot be used with",
        ),
        (&["--http", "GET"], "2 values required"),
    ] {
        let r = invoke(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.all());
        assert!(r.stderr.contains(want), "{args:?}: {}", r.all());
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.all());
        // Nothing was sent: no request line.
        assert!(
            !r.stderr.lines().any(|l| l.starts_with("> ")),
            "{args:?}: {}",
            r.all()
        );
    }
}

#[test]
fn test_credentials_given_back_by_a_hostile_server_are_never_shown() {
    // The recorder answers with every credential it was sent given back: as a header's name,
    // upper- and lower-cased, the bearer token alone (in a challenge too), Basic's pair and
    // password decoded, across the cut of a long value and at its end. Only the body, shown as
    // it is by design, holds none.
    const BEARER: &str = "Tok3n-Z8krbsj5ykbzqpn74wfk";
    const USER: &str = "ann";
    const PASSWORD: &str = "Pa55w0rd-Qx7vLm2";
    let rec = Recorder::start(|raw| {
        let (head, _) = split_request(raw);
        let value = |n: &str| head_value(&head, n).unwrap_or("").to_owned();
        let token = value("authorization")
            .split_once(' ')
            .map(|(_, t)| t.to_owned())
            .unwrap_or_default();
        let basic = value("proxy-authorization")
            .split_once(' ')
            .map(|(_, t)| t.to_owned())
            .unwrap_or_default();
        let mut secrets: Vec<String> = SECRETS.iter().map(|(n, _)| value(n)).collect();
        secrets.push(token.clone());
        secrets.push(format!("{USER}:{PASSWORD}"));
        secrets.push(PASSWORD.to_owned());
        let mut a = String::from("HTTP/1.1 401 Unauthorized\r\nContent-Length: 9\r\n");
        for (i, s) in secrets.iter().enumerate() {
            if !s.contains(':') {
                a += &format!("{s}: as-a-header-name\r\n");
                a += &format!("{}: as-a-header-name\r\n", s.to_uppercase());
            }
            a += &format!("X-Echo-Upper-{i}: {}\r\n", s.to_uppercase());
            a += &format!("X-Echo-Lower-{i}: {}\r\n", s.to_lowercase());
            a += &format!("X-Echo-{i}: {s}\r\n");
        }
        a += &format!(
            "WWW-Authenticate: Bearer realm=\"api\", error=\"invalid_token\", token=\"{token}\"\r\n"
        );
        a += &format!("X-Token: {}\r\n", token.to_uppercase());
        a += &format!("X-Basic: {basic}\r\n");
        a += &format!("X-Long: {}{}\r\n", "a".repeat(395), token.to_uppercase());
        a += &format!(
            "X-Tail: {}{}{}\r\n",
            "b".repeat(394),
            &token[..8],
            "c".repeat(20)
        );
        a += &format!("{}{token}: long-name\r\n", "n".repeat(90));
        a += "\r\nreflected";
        Some(a.into_bytes())
    });
    let port = rec.port();
    let basic = format!("Basic {}", base64_of(&format!("{USER}:{PASSWORD}")));
    let mut args = vec![
        "--data".to_owned(),
        "{}".to_owned(),
        "--port".to_owned(),
        port,
        "-v".to_owned(),
        "-H".to_owned(),
        format!("Authorization: Bearer {BEARER}"),
        "-H".to_owned(),
        format!("Proxy-Authorization: {basic}"),
    ];
    args.extend(secret_args());
    let r = invoke(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let raw = rec.request();
    let (head, _) = split_request(&raw);
    assert_eq!(
        head_value(&head, "authorization"),
        Some(&*format!("Bearer {BEARER}"))
    );
    assert_eq!(head_value(&head, "proxy-authorization"), Some(&*basic));
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(r.stdout, b"reflected", "{}", r.all());
    let pair = format!("{USER}:{PASSWORD}");
    let mut hidden = secret_values();
    hidden.extend([BEARER, PASSWORD, &pair, &basic[6..], &basic[..8]]);
    r.assert_hides(&hidden);
    // Every line given back is there, its secrets taken out.
    for line in [
        "< www-authenticate: Bearer realm=\"api\", error=\"invalid_token\", token=\"<redacted>\"",
        "< x-token: <redacted>",
        "< x-basic: <redacted>",
        "< x-echo-0: <redacted>",
        "< x-echo-upper-3: <redacted>",
        "< x-echo-lower-5: <redacted>",
        "< <redacted>: as-a-header-name",
        &format!("< x-long: {}<reda…", "a".repeat(395)),
        &format!("< x-tail: {}<redacted>…", "b".repeat(394)),
        &format!("< {}<redacted>: long-name", "n".repeat(90)),
        "> Authorization: <redacted>",
        "> Proxy-Authorization: <redacted>",
    ] {
        assert!(r.stderr.lines().any(|l| l == line), "{line}:\n{}", r.all());
    }
    // Nor a secret's beginning at a cut.
    assert!(
        !r.stderr
            .to_lowercase()
            .contains(&BEARER[..4].to_lowercase()),
        "{}",
        r.all()
    );
}

/// Standard base64 (with padding) of `text`.
fn base64_of(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn test_an_event_of_the_sync_limit_is_sent_and_one_byte_more_refused() {
    const LIMIT: usize = 6_000_000;
    // Exactly the limit: a JSON string, sent whole.
    let mut event = vec![b'x'; LIMIT];
    event[0] = b'"';
    event[LIMIT - 1] = b'"';
    let rec = Recorder::start(|_| Some(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()));
    let dir = tempfile::tempdir().unwrap();
    let r = invoke_in(
        dir.path(),
        &["-", "--port", &rec.port(), "--name", "f"],
        &event,
    );
    let raw = rec.request();
    let (head, body) = split_request(&raw);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(head_value(&head, "content-length"), Some("6000000"));
    assert!(body == event.as_slice(), "{} bytes received", body.len());

    // One byte more, from stdin, a file, or no end at all (/dev/zero): refused, nothing sent.
    let (_l, _c, _s, port) = refused_port();
    let port = port.to_string();
    let file = dir.path().join("big.json");
    event.push(b' ');
    std::fs::write(&file, &event).unwrap();
    let file = file.to_str().unwrap();
    let mut cases = vec![
        (
            vec!["-", "--port", &port],
            event.clone(),
            "the event from stdin",
        ),
        (vec![file, "--port", &port], Vec::new(), "the event in "),
        (
            vec!["--http", "PUT", "/", "-", "--port", &port],
            event.clone(),
            "the body from stdin",
        ),
    ];
    if Path::new("/dev/zero").exists() {
        cases.push((
            vec!["/dev/zero", "--port", &port],
            Vec::new(),
            "the event in /dev/zero",
        ));
    }
    for (args, stdin, want) in cases {
        let r = invoke_in(dir.path(), &[&args[..], &["--name", "f"]].concat(), &stdin);
        assert_eq!(r.code, 2, "{args:?}: {}", r.all());
        assert!(
            r.stderr.contains(&format!("error: {want}"))
                && r.stderr.contains(
                    "is more than 6000000 bytes (6 MB), SCF's limit on a synchronous request (SCF \
                 answers a larger one with 406 itself): not sent"
                ),
            "{args:?}: {}",
            r.all()
        );
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.all());
        assert!(
            !r.stderr.lines().any(|l| l.starts_with("> ")),
            "{args:?}: {}",
            r.all()
        );
    }
}
