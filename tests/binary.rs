//! The real binaries, as SCF runs them: start-up line, configuration errors, bind failure,
//! `--help`/`--version`, graceful shutdown on SIGTERM/SIGINT, log lines with request ids, and
//! a scan of everything printed and answered for the credential values.
//!
//! Each test starts its own process on `PORT=0` (the port the kernel picks, read from the
//! start-up line) and stops it; every wait is bounded, and waits for what must have happened
//! (a line, a signal mask in `/proc`, the kernel's socket queues) rather than for a time.
//! Where a time is the point, it is measured against a setting the test makes (a grace period,
//! a timeout), never against the machine's speed.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::sockets::{listening_port, wait_until_read};

mod common;

const SECRETS: [&str; 3] = [
    "AKIDsecretid0123456789",
    "secretkey-abcdefghijklmnop",
    "sessiontoken-zyxwvutsrqponm",
];

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_scf-lean"))
}

/// `target/<profile>/examples/NAME`, built by `cargo test` along with the tests.
fn example(name: &str) -> PathBuf {
    let mut p = bin();
    p.pop();
    p.push("examples");
    p.push(name);
    // `cargo test` builds the examples, `cargo test --test binary` does not: build it here
    // either way, so that it is never an old one (a no-op when it is up to date).
    let profile = match bin().parent().and_then(|d| d.file_name()) {
        Some(d) if d != "debug" => d.to_string_lossy().into_owned(),
        _ => "dev".into(),
    };
    let ok = Command::new(env!("CARGO"))
        .args(["build", "--profile", &profile, "--example", name])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "cannot build example {name}");
    p
}

/// A port this test holds (a listener it never accepts on) for as long as the value lives: a
/// binary given it cannot listen on it.
fn held_port() -> (TcpListener, u16) {
    let held = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port();
    (held, port)
}

/// How long a test waits for a process to exit, or for what it shows in `/proc`.
const WAIT: Duration = Duration::from_secs(10);

/// A running binary; killed on drop (also when a test panics) unless it was waited for.
struct Server {
    child: Option<Child>,
    port: u16,
    /// Its stdout up to its start-up line: the rest is still in the pipe.
    before: Vec<u8>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Server {
    /// Runs `cmd` on `PORT=0`, its standard streams piped; the port is not known yet.
    fn spawn(cmd: &mut Command) -> Server {
        Server::spawn_as_set(
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
    }

    /// Runs `cmd` on `PORT=0` with the standard streams it names; the port is not known yet.
    fn spawn_as_set(cmd: &mut Command) -> Server {
        Server {
            child: Some(cmd.env("PORT", "0").spawn().unwrap()),
            port: 0,
            before: Vec::new(),
        }
    }

    /// Starts `path` with these variables; its port is the one its start-up line names (so the
    /// log level must be `info` or `debug`).
    fn start(path: PathBuf, env: &[(&str, &str)]) -> Server {
        let mut s = Server::spawn(Command::new(path).envs(env.iter().copied()));
        let (port, before) = common::child::read_startup(s.child.as_mut().unwrap());
        (s.port, s.before) = (port, before);
        s
    }

    /// Starts `cmd`, which prints no start-up line (its log is off, or its stdout closed);
    /// its port is the one its listener has in `/proc`.
    fn start_silent(cmd: &mut Command) -> Server {
        let mut s = Server::spawn(cmd);
        let until = Instant::now() + WAIT;
        s.port = loop {
            if let Some(port) = listening_port(s.pid()) {
                break port;
            }
            let exited = s.child.as_mut().unwrap().try_wait().unwrap();
            assert!(exited.is_none(), "exited before listening: {exited:?}");
            assert!(Instant::now() < until, "not listening within {WAIT:?}");
            thread::sleep(Duration::from_millis(5));
        };
        s
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the process catches `sig` (the server's handler wakes its loop).
    fn catches(&self, sig: i32) -> bool {
        signal_set(self.pid(), "SigCgt") & (1 << (sig - 1)) != 0
    }

    /// Sends `sig`, once the server handles it: a server started silent has no start-up line to
    /// wait for, and a signal sent before it catches the signal would end it by the default
    /// action, which is not what a test checks.
    fn signal(&self, sig: i32) {
        let until = Instant::now() + WAIT;
        while !self.catches(sig) {
            assert!(Instant::now() < until, "signal {sig} never caught");
            thread::sleep(Duration::from_millis(1));
        }
        let rc = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(rc.success());
    }

    /// Waits until the first signal was taken (the listener closes then), so that a second one
    /// is not merged with it (two pending are one).
    fn wait_until_not_listening(&self) {
        let until = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < until, "the first signal was not taken");
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the exit (at most `limit`), then returns its status, output (stdout whole,
    /// the start-up line and what came before it included) and the time taken.
    fn wait(mut self, limit: Duration) -> (ExitStatus, Output, Duration) {
        let t = Instant::now();
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut out = self.child.take().unwrap().wait_with_output().unwrap();
                out.stdout.splice(0..0, std::mem::take(&mut self.before));
                return (status, out, t.elapsed());
            }
            if t.elapsed() > limit {
                // Drop kills it.
                panic!("server did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(self) -> (ExitStatus, String, String) {
        self.signal(15);
        let (status, out, _) = self.wait(WAIT);
        (
            status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// The signal set `field` (`SigBlk`, `SigCgt`…) of process `pid`, from `/proc/<pid>/status`:
/// bit `n - 1` for signal `n`.
fn signal_set(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// The sockets process `pid` has open.
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Reads one response: (status, head, body).
fn read_response(s: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        // read_exact: a read interrupted by a signal is tried again.
        if let Err(e) = s.read_exact(&mut byte) {
            panic!(
                "{e} inside a response head: {:?}",
                String::from_utf8_lossy(&buf)
            );
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    (status, head, body)
}

fn request(s: &mut TcpStream, raw: &str) -> (u16, String, Vec<u8>) {
    s.write_all(raw.as_bytes()).unwrap();
    read_response(s)
}

fn event_request(id: &str, body: &str) -> String {
    format!(
        "POST /event-invoke HTTP/1.1\r\nHost: x\r\nX-Scf-Request-Id: {id}\r\nX-Scf-Memory: 128\r\n\
         X-Scf-Timeout: 3000\r\nX-Scf-Name: fn\r\nX-Scf-Secret-Id: {}\r\nX-Scf-Secret-Key: {}\r\n\
         X-Scf-Session-Token: {}\r\nContent-Length: {}\r\n\r\n{body}",
        SECRETS[0],
        SECRETS[1],
        SECRETS[2],
        body.len()
    )
}

#[test]
fn test_startup_line_gives_version_port_and_microseconds() {
    let s = Server::start(bin(), &[]);
    // Once the line is out, SIGTERM and SIGINT are the server's to handle (caught by its
    // handler), so that whoever waited for the line may stop it at once.
    assert!(
        s.catches(15) && s.catches(2),
        "signals not caught at the start-up line"
    );
    let port = s.port;
    let (status, out, _) = s.stop();
    assert!(status.success(), "{status:?}");
    let line = out.lines().next().unwrap();
    let prefix = format!("INFO [-] scf-lean {} (", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&prefix), "{line}");
    let tail = format!(") listening on 0.0.0.0:{port} in ");
    let at = line.find(&tail).unwrap_or_else(|| panic!("{line}"));
    let (us, cpu) = line[at + tail.len()..]
        .strip_suffix(" us)")
        .and_then(|r| r.split_once(" us (process CPU since start: "))
        .unwrap_or_else(|| panic!("{line}"));
    let us: u64 = us.parse().unwrap();
    let cpu: u64 = cpu.parse().unwrap();
    assert!(us < 5_000_000, "{us}");
    // The process started before main did: its CPU time covers exec and the runtime too.
    assert!(cpu > 0 && cpu < 5_000_000, "{cpu}");
}

#[test]
fn test_event_and_http_echo_through_the_binary() {
    let s = Server::start(bin(), &[]);
    let mut c = s.connect();
    let (status, head, body) = request(&mut c, &event_request("rid-1", r#"{"Type":"timer"}"#));
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: application/json\r\n"),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["event"], serde_json::json!({"Type": "timer"}));
    assert_eq!(v["context"]["request_id"], "rid-1");
    assert_eq!(v["context"]["time_limit_in_ms"], 3000);
    assert_eq!(v["context"]["tencentcloud_region"], serde_json::Value::Null);
    let (status, _, body) = request(&mut c, "GET /a/b?x=1&y HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/a/b");
    assert_eq!(v["query"], "x=1&y");
    assert_eq!(v["headers"]["host"], "h");
    assert_eq!(v["body"], "");
    let (status, _, body) = request(&mut c, &event_request("rid-2", "{nope"));
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["errorCode"], 400);
    assert!(
        v["errorMessage"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    let (status, out, err) = s.stop();
    assert!(status.success());
    // A 400 is the caller's mistake: WARN on stdout.
    assert!(out.contains("WARN [rid-2] function error: 400"), "{out}");
    assert!(!err.contains("rid-2"), "{err}");
}

#[test]
fn test_credentials_never_reach_logs_or_echoes() {
    for format in ["text", "json"] {
        let s = Server::start(
            example("faults"),
            &[
                ("SCF_LEAN_LOG_LEVEL", "debug"),
                ("SCF_LEAN_LOG_FORMAT", format),
            ],
        );
        let mut answers = Vec::new();
        let mut c = s.connect();
        for path in ["/error", "/panic", "/header", "/parse", "/ok"] {
            let raw =
                event_request("rid-s", "").replace("POST /event-invoke", &format!("GET {path}"));
            answers.push(request(&mut c, &raw).2);
        }
        answers.push(request(&mut c, &event_request("rid-s", "{bad")).2);
        drop(c);
        let echo = Server::start(
            bin(),
            &[
                ("SCF_LEAN_LOG_LEVEL", "debug"),
                ("SCF_LEAN_LOG_FORMAT", format),
            ],
        );
        let mut c = echo.connect();
        answers.push(request(&mut c, &event_request("rid-e", r#"{"k":1}"#)).2);
        let raw = event_request("rid-h", "x").replace("POST /event-invoke", "PUT /echo");
        answers.push(request(&mut c, &raw).2);
        // A request that is rejected before any function runs.
        let raw = event_request("rid-r", "x").replace("Host: x\r\n", "");
        let mut c2 = echo.connect();
        answers.push(request(&mut c2, &raw).2);
        let (_, out1, err1) = s.stop();
        let (_, out2, err2) = echo.stop();
        let everything = [out1, err1, out2, err2].concat()
            + &answers
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<String>();
        assert!(everything.contains("rid-s"), "{everything}");
        assert!(everything.contains("rid-e"));
        for secret in SECRETS {
            assert!(
                !everything.contains(secret),
                "{secret} leaked in: {everything}"
            );
        }
    }
}

#[test]
fn test_a_refused_request_is_logged_with_its_method_path_and_request_id() {
    let s = Server::start(bin(), &[("SCF_LEAN_MAX_BODY_BYTES", "10")]);
    let mut c = s.connect();
    c.write_all(
        b"POST /event-invoke HTTP/1.1\r\nHost: x\r\nX-Scf-Request-Id: rid-413\r\n\
          Content-Length: 11\r\n\r\n",
    )
    .unwrap();
    let (status, _, body) = read_response(&mut c);
    assert_eq!(status, 413);
    assert!(
        String::from_utf8_lossy(&body).contains("larger than SCF_LEAN_MAX_BODY_BYTES"),
        "{body:?}"
    );
    drop(c);
    let (_, out, _) = s.stop();
    assert!(
        out.contains("INFO [rid-413] POST /event-invoke 413 "),
        "{out}"
    );
}

/// A context header sent twice is a client's forgery (SCF sends each once): a 400 that names
/// the header, a WARN line without either value, and the access line without the request id.
#[test]
fn test_a_forged_context_header_is_refused_and_logged_at_warn_without_its_values() {
    for format in ["text", "json"] {
        let s = Server::start(bin(), &[("SCF_LEAN_LOG_FORMAT", format)]);
        let mut c = s.connect();
        let forged = "GET /pay HTTP/1.1\r\nHost: x\r\nX-Scf-Request-Id: rid-forged\r\n\
                      X-Scf-Secret-Key: callers-secret-key\r\nX-Scf-Request-Id: rid-real\r\n\
                      X-Scf-Secret-Key: functions-secret-key\r\n\r\n";
        let (status, _, body) = request(&mut c, forged);
        let body = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body,
            r#"{"errorCode":400,"errorMessage":"more than one X-Scf-Request-Id header"}"#
        );
        drop(c);
        let (_, out, err) = s.stop();
        let all = [out.as_str(), err.as_str(), body.as_str()].concat();
        for value in [
            "rid-forged",
            "rid-real",
            "callers-secret-key",
            "functions-secret-key",
        ] {
            assert!(!all.contains(value), "{value} in: {all}");
        }
        let warn = out
            .lines()
            .find(|l| l.contains("more than one X-Scf-Request-Id header"))
            .unwrap_or_else(|| panic!("no line about the forgery: {out}"));
        if format == "text" {
            assert!(warn.starts_with("WARN [-] "), "{warn}");
            assert!(out.contains("INFO [-] GET /pay 400 "), "{out}");
        } else {
            let v: serde_json::Value = serde_json::from_str(warn).unwrap();
            assert_eq!(
                (v["level"].as_str(), v["requestId"].as_null()),
                (Some("WARN"), Some(()))
            );
        }
    }
}

/// A request id of valid UTF-8 that carries NEL (a line break to many log parsers) and CSI (a
/// terminal escape) reaches no log line raw: `?` in text, `\uXXXX` in JSON, one line each.
#[test]
fn test_c1_controls_and_separators_in_a_request_id_are_escaped_in_log_lines() {
    let id = "rid\u{85}INFO [x] GET /admin 200\u{9b}31m\u{2028}end";
    for format in ["text", "json"] {
        let s = Server::start(bin(), &[("SCF_LEAN_LOG_FORMAT", format)]);
        let mut c = s.connect();
        let (status, _, _) = request(&mut c, &event_request(id, "{}"));
        assert_eq!(status, 200);
        drop(c);
        let (_, out, _) = s.stop();
        let access = out
            .lines()
            .find(|l| l.contains("/event-invoke"))
            .unwrap_or_else(|| panic!("no access line: {out:?}"));
        for bad in ['\u{85}', '\u{9b}', '\u{2028}'] {
            assert!(!out.contains(bad), "{bad:?} in {out:?}");
        }
        if format == "text" {
            assert!(
                access.starts_with(
                    "INFO [rid?INFO?[x??GET?/admin?200?31m?end] POST /event-invoke 200 "
                ),
                "{access:?}"
            );
        } else {
            let v: serde_json::Value = serde_json::from_str(access).unwrap();
            assert_eq!(v["requestId"], id);
        }
    }
}

#[test]
fn test_function_failures_are_logged_with_the_request_id() {
    let s = Server::start(example("faults"), &[]);
    let mut c = s.connect();
    let get = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nX-Scf-Request-Id: id-{}\r\n\r\n",
            &path[1..]
        )
    };
    let (status, head, body) = request(&mut c, &get("/panic"));
    assert_eq!(status, 500);
    assert!(head.contains("Content-Type: application/json"));
    assert_eq!(
        body,
        br#"{"errorCode":500,"errorMessage":"the function panicked"}"#
    );
    // The server goes on serving after a panic, on the same connection.
    let (status, _, body) = request(&mut c, &get("/ok"));
    assert_eq!((status, &body[..]), (200, &b"ok"[..]));
    let (status, head, body) = request(&mut c, &get("/custom"));
    assert_eq!(status, 503);
    assert_eq!(body, br#"{"errorCode":-1,"errorMessage":"try later"}"#);
    assert!(head.contains("\r\nRetry-After: 5\r\n"), "{head}");
    let (status, head, body) = request(&mut c, &get("/private"));
    assert_eq!(status, 401);
    assert_eq!(body, br#"{"errorCode":401,"errorMessage":"sign in first"}"#);
    assert!(
        head.contains("\r\nWWW-Authenticate: Bearer realm=\"faults\"\r\n"),
        "{head}"
    );
    assert!(head.contains("Content-Type: application/json"), "{head}");
    // A header the server owns on an error: a plain 500 that says so, no header of its own.
    let (status, head, body) = request(&mut c, &get("/bad-error-header"));
    assert_eq!(status, 500);
    assert!(
        String::from_utf8_lossy(&body).contains("the server writes this response header itself")
    );
    assert!(!head.contains("Content-Length: 1\r\n"), "{head}");
    let (status, _, body) = request(&mut c, &get("/header"));
    assert_eq!(status, 500);
    assert!(String::from_utf8_lossy(&body).contains("invalid response header value"));
    let (status, _, _) = request(&mut c, &get("/error"));
    assert_eq!(status, 500);
    let (_, out, err) = s.stop();
    assert!(
        err.contains("ERROR [id-panic] function panicked: panicked at examples/faults.rs"),
        "{err}"
    );
    // A 4xx is the caller's mistake: WARN on stdout, not ERROR.
    assert!(
        out.contains("WARN [id-private] function error: 401: sign in first"),
        "{out}"
    );
    assert!(!err.contains("id-private"), "{err}");
    assert!(err.contains("the function hit a bug"), "{err}");
    assert!(
        err.contains("ERROR [id-custom] function error: 503 (code -1): try later"),
        "{err}"
    );
    assert!(
        err.contains("ERROR [id-error] function error: 500: something went wrong"),
        "{err}"
    );
    assert!(
        err.contains("ERROR [id-header] invalid response: "),
        "{err}"
    );
    // The default panic hook's anonymous line does not appear.
    assert!(!err.contains("thread 'main' panicked"), "{err}");
}

#[test]
fn test_a_functions_own_lines_go_through_the_servers_log() {
    for format in ["text", "json"] {
        let s = Server::start(
            example("faults"),
            &[
                ("SCF_LEAN_LOG_LEVEL", "debug"),
                ("SCF_LEAN_LOG_FORMAT", format),
            ],
        );
        let mut c = s.connect();
        let raw = "GET /log HTTP/1.1\r\nHost: x\r\nX-Scf-Request-Id: id-log\r\n\r\n";
        let (status, _, body) = request(&mut c, raw);
        assert_eq!((status, &body[..]), (200, &b"logged"[..]));
        let (_, out, err) = s.stop();
        if format == "text" {
            // Built before the server started: no request id.
            assert!(out.contains("INFO [-] faults: ready to fail\n"), "{out}");
            for level in ["DEBUG", "INFO", "WARN"] {
                let line = format!("{level} [id-log] {} from /log\n", level.to_lowercase());
                assert!(out.contains(&line), "{line} in {out}");
            }
            assert!(err.contains("ERROR [id-log] error from /log\n"), "{err}");
            // In order, before the access line.
            let info = out.find("INFO [id-log] info from").unwrap();
            assert!(info < out.find("INFO [id-log] GET /log 200").unwrap());
        } else {
            let lines: Vec<serde_json::Value> = out
                .lines()
                .chain(err.lines())
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
            let ready = lines.iter().find(|l| l["msg"] == "faults: ready to fail");
            assert_eq!(ready.unwrap()["requestId"], serde_json::Value::Null);
            for level in ["DEBUG", "INFO", "WARN", "ERROR"] {
                let msg = format!("{} from /log", level.to_lowercase());
                let line = lines.iter().find(|l| l["msg"] == msg.as_str()).unwrap();
                assert_eq!(
                    (&line["level"], &line["requestId"]),
                    (&level.into(), &"id-log".into())
                );
            }
        }
    }
    // At the default level: no debug line.
    let s = Server::start(example("faults"), &[]);
    let mut c = s.connect();
    request(&mut c, "GET /log HTTP/1.1\r\nHost: x\r\n\r\n");
    let (_, out, _) = s.stop();
    assert!(out.contains("INFO [-] info from /log"), "{out}");
    assert!(!out.contains("debug from"), "{out}");
}

#[test]
fn test_json_log_lines_parse() {
    let s = Server::start(bin(), &[("SCF_LEAN_LOG_FORMAT", "json")]);
    let mut c = s.connect();
    request(&mut c, &event_request("rid-j", "{}"));
    request(&mut c, &event_request("rid-k", "{"));
    let (_, out, err) = s.stop();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .chain(err.lines())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines[0]["msg"], "listening");
    // The port right after "listening", where the text form names it.
    let first = out.lines().next().unwrap();
    let port = lines[0]["port"].as_u64().unwrap();
    assert!(
        first.contains(&format!("\"msg\":\"listening\",\"port\":{port},")),
        "{first}"
    );
    assert!(lines[0]["startupUs"].as_u64().is_some());
    assert!(lines[0]["processCpuUs"].as_u64().is_some());
    let access = lines.iter().find(|l| l["requestId"] == "rid-j").unwrap();
    assert_eq!(access["status"], 200);
    assert_eq!(access["path"], "/event-invoke");
    let error = lines
        .iter()
        .find(|l| l["level"] == "WARN" && l["requestId"] == "rid-k")
        .unwrap();
    assert!(error["msg"].as_str().unwrap().contains("not valid JSON"));
}

#[test]
fn test_log_level_off_prints_nothing() {
    let s = Server::start_silent(Command::new(bin()).env("SCF_LEAN_LOG_LEVEL", "off"));
    let mut c = s.connect();
    request(&mut c, &event_request("rid-o", "{"));
    let (status, out, err) = s.stop();
    assert!(status.success());
    assert_eq!((out.as_str(), err.as_str()), ("", ""));
}

/// The grace period is set to a minute: an exit within the test's wait (10 s) is the server's
/// own, once its last request is answered, not the end of the grace period.
#[test]
fn test_sigterm_finishes_a_request_in_flight_then_exits_zero() {
    let s = Server::start(bin(), &[("SCF_LEAN_SHUTDOWN_GRACE_MS", "60000")]);
    let mut idle = s.connect();
    request(&mut idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut busy = s.connect();
    let raw = event_request("rid-f", r#"{"half":"way"}"#);
    let (first, rest) = raw.split_at(raw.len() - 8);
    busy.write_all(first.as_bytes()).unwrap();
    // In flight: the server has read the head and part of the body.
    wait_until_read(&busy);
    s.signal(15);
    // The idle connection is closed at once, without a response.
    let mut b = [0u8; 1];
    assert_eq!(idle.read(&mut b).unwrap(), 0);
    // New connections are refused: the listener was closed before the idle connections were.
    assert!(TcpStream::connect(("127.0.0.1", s.port)).is_err());
    // The body still arriving completes and its response is flushed, saying close.
    busy.write_all(rest.as_bytes()).unwrap();
    let (status, head, body) = read_response(&mut busy);
    assert_eq!(status, 200);
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("\"half\":\"way\""));
    drop(busy);
    let (status, _, _) = s.wait(WAIT);
    assert_eq!(status.code(), Some(0));
}

/// "At once" is measured against the grace period, set to a minute: idle connections do not
/// hold the exit for it.
#[test]
fn test_sigint_with_idle_connections_exits_at_once() {
    let s = Server::start(bin(), &[("SCF_LEAN_SHUTDOWN_GRACE_MS", "60000")]);
    let _c1 = s.connect();
    let mut c2 = s.connect();
    request(&mut c2, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    s.signal(2);
    let (status, _, took) = s.wait(WAIT);
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(60), "{took:?}");
}

/// The body timeout is set to a minute: the exit comes from the grace period (300 ms), and
/// not before it.
#[test]
fn test_grace_period_bounds_a_stuck_request() {
    let s = Server::start(
        bin(),
        &[
            ("SCF_LEAN_SHUTDOWN_GRACE_MS", "300"),
            ("SCF_LEAN_BODY_TIMEOUT_MS", "60000"),
        ],
    );
    let mut c = s.connect();
    c.write_all(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        .unwrap();
    // In flight: the server has read what was sent of it.
    wait_until_read(&c);
    let t = Instant::now();
    s.signal(15);
    let (status, out, _) = s.wait(WAIT);
    assert_eq!(status.code(), Some(0));
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("connections dropped: 1"));
}

/// The grace period is a minute: an exit within the test's wait is the second signal's doing.
#[test]
fn test_second_signal_exits_at_once() {
    let s = Server::start(bin(), &[("SCF_LEAN_SHUTDOWN_GRACE_MS", "60000")]);
    let mut c = s.connect();
    c.write_all(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        .unwrap();
    wait_until_read(&c);
    s.signal(15);
    s.wait_until_not_listening();
    s.signal(15);
    let (status, _, took) = s.wait(WAIT);
    assert_eq!(status.code(), Some(128 + 15));
    assert!(took < Duration::from_secs(60), "{took:?}");
}

#[test]
fn test_bind_failure_is_one_clear_line_and_nonzero_exit() {
    let taken = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(bin())
        .env("PORT", port.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("scf-lean: cannot listen on 0.0.0.0:{port}: ")),
        "{err}"
    );
}

#[test]
fn test_bad_setting_names_the_variable() {
    let out = Command::new(bin())
        .env("SCF_LEAN_MAX_BODY_BYTES", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        "scf-lean: bad setting: SCF_LEAN_MAX_BODY_BYTES=\"lots\": expected a whole number from 0 to 4294967296\n"
    );
}

#[test]
fn test_help_and_version_bind_nothing() {
    // The port is taken: answering must not need it.
    let taken = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(bin())
        .arg("--version")
        .env("PORT", &port)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v = String::from_utf8(out.stdout).unwrap();
    assert!(
        v.starts_with(&format!("scf-lean {} (", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    let out = Command::new(bin())
        .arg("--help")
        .env("PORT", &port)
        .output()
        .unwrap();
    assert!(out.status.success());
    let h = String::from_utf8(out.stdout).unwrap();
    for var in [
        "PORT",
        "SCF_LEAN_MAX_BODY_BYTES",
        "SCF_LEAN_IDLE_TIMEOUT_MS",
        "SCF_LEAN_LOG_LEVEL",
    ] {
        assert!(h.contains(var), "{var} missing from --help");
    }
    let out = Command::new(bin()).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn test_closed_standard_descriptors_are_reopened_on_dev_null() {
    // Started with 0, 1 and 2 closed, the listener would take descriptor 0 and the first
    // client descriptor 1 or 2 — and log lines would go to that client. They must be opened on
    // /dev/null first, as std's runtime does (the template's entry skips std's runtime).
    // With no stdout there is no start-up line: the port is read from /proc.
    let s = Server::start_silent(
        Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" <&- >&- 2>&-"#)
            .arg(bin())
            .env("SCF_LEAN_LOG_LEVEL", "debug"),
    );
    let mut c = s.connect();
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{}/fd/{fd}", s.pid())).unwrap();
        assert_eq!(target, PathBuf::from("/dev/null"), "descriptor {fd}");
    }
    for i in 0..3 {
        let (status, head, body) = request(&mut c, &event_request(&format!("r{i}"), "[1]"));
        assert_eq!(status, 200, "{head}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["event"], serde_json::json!([1]));
    }
}

/// Requests on one keep-alive connection, each answered 200; their count.
fn hammer(s: &Server, n: usize) -> usize {
    let mut c = s.connect();
    (0..n)
        .filter(|_| request(&mut c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n").0 == 200)
        .count()
}

/// "At once" is measured against the grace period, set to a minute: a server that waited for
/// its log would wait for that.
#[test]
fn test_a_log_pipe_nobody_reads_blocks_nothing() {
    // stdout is a pipe the test does not read: 5,000 access lines are ten times what the pipe
    // and the log buffer hold together.
    let grace = [("SCF_LEAN_SHUTDOWN_GRACE_MS", "60000")];
    let s = Server::start(bin(), &grace);
    let t = Instant::now();
    assert_eq!(hammer(&s, 5000), 5000);
    let served = t.elapsed();
    // SIGTERM still stops it at once, the pipe still full.
    s.signal(15);
    let (status, out, took) = s.wait(WAIT);
    assert_eq!(status.code(), Some(0));
    let lines = out.stdout.split(|&b| b == b'\n').count();
    eprintln!(
        "stalled log pipe: 5000 requests answered in {served:?}, exit {took:?} after SIGTERM, \
         {lines} lines got out"
    );
    assert!(lines < 5000, "{lines} lines: the pipe did not stall");

    // Once the pipe drains, a line says how many were lost: requests go on until it is there.
    let dropped = "log lines dropped while the log pipe was full (or longer than 64 KiB): ";
    let mut s = Server::start(bin(), &[]);
    assert_eq!(hammer(&s, 6000), 6000);
    let mut stdout = s.child.as_mut().unwrap().stdout.take().unwrap();
    let read = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&read);
    let reader = std::thread::spawn(move || {
        let mut b = [0u8; 64 * 1024];
        while let Ok(n @ 1..) = stdout.read(&mut b) {
            sink.lock().unwrap().extend_from_slice(&b[..n]);
        }
    });
    let has_line = || String::from_utf8_lossy(&read.lock().unwrap()).contains(dropped);
    let until = Instant::now() + WAIT;
    while !has_line() {
        assert!(Instant::now() < until, "no count of the dropped lines");
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(hammer(&s, 1), 1);
    }
    let (status, _, _) = s.stop();
    assert_eq!(status.code(), Some(0));
    reader.join().unwrap();
    let text = String::from_utf8_lossy(&read.lock().unwrap()).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains(dropped))
        .unwrap_or_else(|| panic!("no count of the dropped lines in:\n{text}"));
    let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n > 0 && n < 6000, "{line}");
}

/// A streamed answer to HEAD (the head only, the function sees GET): its access line says HEAD,
/// as a plain answer's does.
#[test]
fn test_the_access_line_of_a_streamed_head_says_head() {
    let s = Server::start(example("faults"), &[]);
    let mut c = s.connect();
    c.write_all(b"HEAD /stream-fail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    let (_, out, err) = s.stop();
    let all = format!("{out}{err}");
    assert!(all.contains("HEAD /stream-fail 200"), "{all}");
    assert!(!all.contains("GET /stream-fail"), "{all}");
}

/// A pipe for a child's stdout or stderr that the test fills to the last byte: its read end,
/// its write end (for the child), and a description of the write end of the test's own,
/// non-blocking (`O_NONBLOCK` on the child's would change how the child writes).
fn fillable_pipe() -> (std::fs::File, std::os::fd::OwnedFd, std::fs::File) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::fs::OpenOptionsExt;
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both were just opened, and each is owned once.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let own = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(format!("/proc/self/fd/{}", write.as_raw_fd()))
        .unwrap();
    (read.into(), write, own)
}

/// Fills the pipe `own` writes to: pages, then single bytes into the last page's slack.
fn fill(own: &mut std::fs::File) {
    for piece in [&[b'.'; 4096][..], b"."] {
        loop {
            match own.write(piece) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
}

/// A line logged on the loop's thread outside any call (a panic payload that logs when dropped)
/// while stdout is full to the last byte: dropped and counted, never waited for. (It used to be
/// one blocking `write`: the loop stopped until somebody read the pipe.)
#[test]
fn test_a_line_outside_calls_on_the_loops_thread_never_waits_for_a_full_stdout() {
    let (read, write, mut own) = fillable_pipe();
    let mut s = Server::spawn_as_set(
        Command::new(example("faults"))
            .stdout(Stdio::from(write))
            .stderr(Stdio::null()),
    );
    let mut lines = std::io::BufReader::new(read);
    s.port = loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut lines, &mut line).unwrap() > 0);
        if let Some(at) = line.find("listening on 0.0.0.0:") {
            let port = line[at + 21..].split(' ').next().unwrap();
            break port.parse().unwrap();
        }
    };
    fill(&mut own);
    let mut c = s.connect();
    for _ in 0..3 {
        let (status, _, _) = request(&mut c, "GET /panic-noisy-drop HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(status, 500);
        assert_eq!(hammer(&s, 20), 20, "the loop waited for the full pipe");
    }
    // Drained, the pipe gets the count of what was lost, the three lines among it.
    let reader = thread::spawn(move || {
        let mut all = Vec::new();
        let _ = lines.read_to_end(&mut all);
        all
    });
    let until = Instant::now() + WAIT;
    let (status, _, _) = loop {
        assert_eq!(hammer(&s, 1), 1);
        if Instant::now() > until - Duration::from_secs(8) {
            break s.stop();
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    drop(own);
    let out = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    let dropped = "log lines dropped while the log pipe was full (or longer than 64 KiB): ";
    // One note or more (a count waits in the log's buffer while the pipe is full; lines
    // dropped after it get a note of their own).
    let n: u64 = out
        .lines()
        .filter_map(|l| l.split_once(dropped))
        .map(|(_, n)| n.parse::<u64>().unwrap())
        .sum();
    assert!(n >= 3, "{n} dropped lines counted in:\n{out}");
}

/// The grace period's end with stderr full to the last byte: the timer's line is written only
/// if it goes at once, and the process ends all the same. (It used to wait in the handler's
/// `write` for somebody to read stderr, and SIGTERM and SIGINT could no longer end it.)
#[test]
fn test_the_grace_periods_end_never_waits_for_a_full_stderr() {
    let (_read, write, mut own) = fillable_pipe();
    let mut s = Server::spawn_as_set(
        Command::new(example("faults"))
            .env("SCF_LEAN_SHUTDOWN_GRACE_MS", "200")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(write)),
    );
    let (port, before) = common::child::read_startup(s.child.as_mut().unwrap());
    (s.port, s.before) = (port, before);
    fill(&mut own);
    // A call that holds the loop past the grace period.
    let mut slow = s.connect();
    slow.write_all(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    thread::sleep(Duration::from_millis(100));
    s.signal(15);
    let (status, _, took) = s.wait(WAIT);
    assert_eq!(status.code(), Some(0), "ended by the grace timer");
    assert!(
        took < Duration::from_secs(2),
        "{took:?}: the sleeping call ran out"
    );
}

#[test]
fn test_a_stack_overflow_under_main_macro_says_so_on_stderr() {
    use std::os::unix::process::ExitStatusExt;
    // examples/faults starts with scf_lean::main!: std's runtime, which would report a stack
    // overflow, never runs; the server sets up the report itself the first time it is idle
    // (on SCF, before the first request: the platform sends it once it has seen the port
    // open), or once the first request is served.
    for (idle_first, warm_up) in [(true, false), (false, true)] {
        let s = Server::start(example("faults"), &[]);
        if idle_first {
            // Idle: the report is set up, its handler shows among the caught signals.
            let until = Instant::now() + WAIT;
            let fatal = 1 << (libc::SIGSEGV - 1) | 1 << (libc::SIGBUS - 1);
            while signal_set(s.pid(), "SigCgt") & fatal != fatal {
                assert!(Instant::now() < until, "no handler for SIGSEGV once idle");
                thread::sleep(Duration::from_millis(1));
            }
        }
        let mut c = s.connect();
        if warm_up {
            assert_eq!(
                request(&mut c, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").0,
                200
            );
        }
        c.write_all(b"GET /overflow HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
        let (status, out, _) = s.wait(WAIT);
        assert_eq!(status.signal(), Some(libc::SIGSEGV), "{status:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("fatal: SIGSEGV or SIGBUS: the stack overflowed"),
            "first request: {idle_first}; stderr: {err}"
        );
    }
}

#[test]
fn test_an_integer_overflow_in_the_example_is_a_400_not_a_wrap() {
    let s = Server::start(example("faults"), &[]);
    let mut c = s.connect();
    let (status, _, body) = request(
        &mut c,
        &event_request("rid-n", r#"{"n":9223372036854775807}"#),
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("does not fit a 64-bit integer"));
    let (status, _, body) = request(&mut c, &event_request("rid-n", r#"{"n":41}"#));
    assert_eq!((status, body), (200, br#"{"n":42}"#.to_vec()));
}

/// Runs a binary as an SCF job function: the event in `SCF_CUSTOM_CONTAINER_EVENT`, no port.
/// `PORT` names a port this test holds, so a binary that tried to listen would fail (exit 1).
fn job(path: PathBuf, event: &str, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let (_held, port) = held_port();
    run_to_exit(
        Command::new(path)
            .env("PORT", port.to_string())
            .env("SCF_CUSTOM_CONTAINER_EVENT", event)
            .envs(env.iter().copied()),
    )
}

/// Runs `cmd` to its exit (killed and failed after 10 s): its code, stdout and stderr.
fn run_to_exit(cmd: &mut Command) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not exit within 10 s");
        }
        thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn test_a_job_runs_the_event_once_and_exits_zero_with_the_answer() {
    let env = [
        ("SCF_FUNCTIONNAME", "nightly-report"),
        ("TENCENTCLOUD_REGION", "ap-guangzhou"),
        ("TENCENTCLOUD_SECRETID", SECRETS[0]),
        ("TENCENTCLOUD_SECRETKEY", SECRETS[1]),
        ("TENCENTCLOUD_SESSIONTOKEN", SECRETS[2]),
        ("SCF_LEAN_LOG_LEVEL", "debug"),
    ];
    let (code, out, err) = job(bin(), r#"{"Type":"Timer","Message":"go"}"#, &env);
    assert_eq!(code, Some(0), "{out}{err}");
    // The server's own debug line first, then the answer as the last line.
    assert!(out.starts_with("DEBUG [-] init took "), "{out}");
    let answer: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(answer["event"]["Message"], "go");
    assert_eq!(answer["context"]["function_name"], "nightly-report");
    assert_eq!(answer["context"]["tencentcloud_region"], "ap-guangzhou");
    assert_eq!(answer["context"]["request_id"], serde_json::Value::Null);
    assert!(!out.contains("listening"), "{out}");
    for secret in SECRETS {
        assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
    }
    // An example function: its answer, exit 0.
    let (code, out, _) = job(example("faults"), r#"{"n":41}"#, &[]);
    assert_eq!(
        (code, out.as_str()),
        (
            Some(0),
            "INFO [-] faults: ready to fail\nINFO [-] faults: initialized\n{\"n\":42}\n"
        )
    );
}

#[test]
fn test_a_job_that_fails_or_panics_exits_one_with_the_error_on_stderr() {
    let (code, out, err) = job(example("faults"), r#"{"n":"x"}"#, &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("ERROR [-] function error: 400: \"n\" must be an integer"),
        "{err}"
    );
    assert!(!out.contains("errorCode"), "{out}");
    let (code, _, err) = job(example("faults"), r#"{"panic":true}"#, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("ERROR [-] function panicked: panicked at examples/faults.rs"),
        "{err}"
    );
    assert!(err.contains("the job hit a bug"), "{err}");
    assert!(!err.contains("thread 'main' panicked"), "{err}");
}

#[test]
fn test_an_empty_or_malformed_job_event_is_a_clear_exit_two() {
    for (event, why) in [
        ("", "SCF_CUSTOM_CONTAINER_EVENT is empty"),
        (" \n", "SCF_CUSTOM_CONTAINER_EVENT is empty"),
        (
            "{",
            "SCF_CUSTOM_CONTAINER_EVENT is not valid JSON: EOF while parsing an object",
        ),
        (
            "{\"a\":1} x",
            "SCF_CUSTOM_CONTAINER_EVENT is not valid JSON: trailing characters",
        ),
    ] {
        let (code, out, err) = job(bin(), event, &[]);
        assert_eq!(code, Some(2), "{event:?}: {out}{err}");
        assert!(
            err.starts_with(&format!("scf-lean: bad event: {why}")),
            "{event:?}: {err}"
        );
        assert_eq!(out, "", "{event:?}");
    }
}

#[test]
fn test_a_failing_init_is_logged_and_exits_one_before_any_invocation() {
    for (how, line) in [
        (
            "fail",
            "ERROR [-] init failed: the database is unreachable\n",
        ),
        (
            "panic",
            "ERROR [-] init panicked: panicked at examples/faults.rs",
        ),
    ] {
        let (code, out, err) = run_to_exit(
            Command::new(example("faults"))
                .env("PORT", "0")
                .env("FAULTS_INIT", how),
        );
        assert_eq!(code, Some(1), "{how}: {out}{err}");
        assert!(err.contains(line), "{how}: {err}");
        assert!(!out.contains("faults: initialized"), "{how}: {out}");
        // The same in a job: no event handled.
        let (code, out, err) = job(example("faults"), r#"{"n":1}"#, &[("FAULTS_INIT", how)]);
        assert_eq!(code, Some(1), "{how}: {out}{err}");
        assert!(err.contains(line), "{how}: {err}");
        assert!(!out.contains("\"n\""), "{how}: {out}");
    }
}

/// Listening comes first: a request waits in the queue while init runs. The test holds the
/// init open (`FAULTS_INIT=wait` waits for a line on stdin) until its request is sent, so the
/// request certainly arrives during init, however fast or slow the machine.
#[test]
fn test_a_request_that_arrives_during_init_is_served_after_it() {
    let mut s = Server::start(example("faults"), &[("FAULTS_INIT", "wait")]);
    let mut c = s.connect();
    c.write_all(event_request("rid-init", r#"{"n":1}"#).as_bytes())
        .unwrap();
    // No answer while init runs. (Only a wrong early answer could show here: a slow machine
    // cannot fail it.)
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let early = c.read(&mut [0u8; 1]);
    assert!(
        early
            .as_ref()
            .is_err_and(|e| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "during init: {early:?}"
    );
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut stdin = s.child.as_mut().unwrap().stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    let (status, _, body) = read_response(&mut c);
    assert_eq!((status, &body[..]), (200, &br#"{"n":2}"#[..]));
    let (_, out, _) = s.stop();
    let init = out.find("faults: initialized").unwrap();
    assert!(
        init < out.find("INFO [rid-init] POST /event-invoke 200").unwrap(),
        "{out}"
    );
}

/// `curl -N` on the SSE example: each event is on the wire as it is written. The `retry:` line
/// comes at once, the tokens 300 ms apart, so it arrives long before the stream ends.
#[test]
fn test_sse_example_streams_to_curl_without_buffering() {
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("SCF_LEAN_REQUIRE_BROWSER_TEST").is_none(),
            "curl is required"
        );
        eprintln!("skipped: no curl");
        return;
    }
    let s = Server::start(example("sse"), &[]);
    let url = format!("http://127.0.0.1:{}/events?n=3&delay_ms=300", s.port);
    let t = Instant::now();
    let mut curl = Command::new("curl")
        .args(["-sN", "--max-time", "10", &url])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = curl.stdout.take().unwrap();
    let mut got = Vec::new();
    let mut first = None;
    let mut b = [0u8; 4096];
    loop {
        let n = out.read(&mut b).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&b[..n]);
        if first.is_none() && got.starts_with(b"retry: 3000\n\n") {
            first = Some(t.elapsed());
        }
    }
    let end = t.elapsed();
    assert!(curl.wait().unwrap().success());
    let text = String::from_utf8(got).unwrap();
    assert!(text.ends_with("event: done\ndata: 3\n\n"), "{text}");
    assert_eq!(text.matches("event: token\n").count(), 3, "{text}");
    let first = first.unwrap();
    assert!(end >= Duration::from_millis(850), "{end:?}");
    assert!(
        first + Duration::from_millis(500) < end,
        "first {first:?}, end {end:?}"
    );
}

/// A real browser: headless Chromium opens the example's page, whose `EventSource` lists the
/// events it receives; the page as it stands after the stream is read back.
#[test]
fn test_sse_example_in_a_real_browser() {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok());
    let Some(chromium) = chromium else {
        assert!(
            std::env::var_os("SCF_LEAN_REQUIRE_BROWSER_TEST").is_none(),
            "no chromium: apt-get install chromium"
        );
        eprintln!("skipped: no chromium (apt-get install chromium)");
        return;
    };
    let s = Server::start(example("sse"), &[]);
    let url = format!("http://127.0.0.1:{}/?n=5&delay_ms=50", s.port);
    let profile = std::env::temp_dir().join(format!("scf-lean-chromium-{}", std::process::id()));
    let mut browser = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while browser.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = browser.kill();
            let _ = browser.wait();
            let _ = std::fs::remove_dir_all(&profile);
            panic!("chromium did not finish within 60 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let dom = String::from_utf8(browser.wait_with_output().unwrap().stdout).unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        dom.contains(r#"<p id="status" data-done="5">done: 5 tokens, server sent 5</p>"#),
        "{dom}"
    );
    for (i, word) in ["Streaming ", "is ", "what ", "users ", "of "]
        .iter()
        .enumerate()
    {
        let item = format!("<li>id {i}: \"{word}\"</li>");
        assert!(dom.contains(&item), "{item} in {dom}");
    }
}

/// The access line of the request to `path` in `log`.
fn access_line<'l>(log: &'l str, path: &str) -> &'l str {
    let needle = if path.starts_with('/') {
        format!(" {path} ")
    } else {
        path.to_owned()
    };
    log.lines()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no access line for {path}: {log}"))
}

/// A stream cut off is logged as cut off: its access line says why, at WARN when the client
/// left or stopped reading, at ERROR (on stderr) when the function failed; a whole stream's at
/// INFO with nothing added.
#[test]
fn test_a_stream_cut_off_is_logged_with_its_cause() {
    let s = Server::start(example("sse"), &[("SCF_LEAN_BODY_TIMEOUT_MS", "300")]);
    // Whole.
    let mut c = s.connect();
    c.write_all(b"GET /events?n=2&delay_ms=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    assert!(all.ends_with(b"0\r\n\r\n"));
    drop(c);
    // The client leaves after the first event.
    let mut c = s.connect();
    c.write_all(b"GET /events?n=1000&delay_ms=5&left HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut b = [0u8; 64];
    c.read_exact(&mut b).unwrap();
    drop(c);
    // The client stops reading: a small receive window, and nothing read.
    let c = s.connect();
    common::set_rcvbuf(&c, 4096);
    (&c).write_all(b"GET /events?n=1000000&delay_ms=0&stalled HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // A request beside them is served at once: no stream holds the loop.
    let mut next = s.connect();
    let (status, _, _) = request(&mut next, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    drop(next);
    // The stalled stream is cut off after its body timeout: the server closes its socket, and
    // then holds only its listener.
    let until = Instant::now() + WAIT;
    while sockets(s.pid()) > 1 {
        assert!(
            Instant::now() < until,
            "the stalled stream was never cut off"
        );
        thread::sleep(Duration::from_millis(10));
    }
    drop(c);
    let (_, out, _) = s.stop();
    let whole = access_line(&out, "/events");
    assert!(
        whole.starts_with("INFO [-] GET /events 200 ") && whole.ends_with("us"),
        "{whole}"
    );
    let mut cut = out.lines().filter(|l| l.contains("cut off"));
    let left = cut.next().unwrap_or_else(|| panic!("{out}"));
    assert!(left.starts_with("WARN [-] GET /events 200 "), "{left}");
    assert!(left.ends_with("us cut off: the client left"), "{left}");
    let stalled = cut.next().unwrap_or_else(|| panic!("{out}"));
    assert!(
        stalled.starts_with("WARN [-] GET /events 200 "),
        "{stalled}"
    );
    assert!(
        stalled.ends_with("cut off: the client did not read for SCF_LEAN_BODY_TIMEOUT_MS"),
        "{stalled}"
    );

    // The function fails mid-stream: ERROR, on stderr, in text and in JSON.
    for format in ["text", "json"] {
        let s = Server::start(example("faults"), &[("SCF_LEAN_LOG_FORMAT", format)]);
        let mut c = s.connect();
        c.write_all(b"GET /stream-fail HTTP/1.1\r\nHost: x\r\nX-Scf-Request-Id: rid-cut\r\n\r\n")
            .unwrap();
        let _ = c.read_to_end(&mut Vec::new());
        drop(c);
        let (_, out, err) = s.stop();
        assert!(!out.contains("/stream-fail"), "{out}");
        let line = access_line(
            &err,
            if format == "text" {
                "/stream-fail"
            } else {
                "\"path\":\"/stream-fail\","
            },
        );
        if format == "text" {
            assert!(
                line.starts_with("ERROR [rid-cut] GET /stream-fail 200 "),
                "{line}"
            );
            assert!(
                line.ends_with("cut off: the function returned an error"),
                "{line}"
            );
        } else {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["level"], "ERROR");
            assert_eq!(v["cut"], "the function returned an error");
            assert_eq!(v["requestId"], "rid-cut");
        }
    }
}

/// A stream goes on after SIGTERM within the grace period, no longer: then it is cut off (its
/// `send` fails, its access line says so) and the process exits.
#[test]
fn test_sigterm_ends_a_stream_within_the_grace_period() {
    let s = Server::start(example("sse"), &[("SCF_LEAN_SHUTDOWN_GRACE_MS", "500")]);
    let mut c = s.connect();
    // 1,000 tokens 100 ms apart: 100 s if nothing stops it.
    c.write_all(b"GET /events?n=1000&delay_ms=100 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut b = [0u8; 4096];
    let n = c.read(&mut b).unwrap();
    assert!(b[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
    s.signal(15);
    // Within the test's wait (10 s), not the stream's 100 s: the grace period ended it.
    let (status, out, _) = s.wait(WAIT);
    assert!(status.success(), "{status:?}");
    let out = String::from_utf8_lossy(&out.stdout);
    let line = access_line(&out, "/events");
    assert!(line.starts_with("WARN [-] GET /events 200 "), "{line}");
    assert!(line.ends_with("cut off: the server shut down"), "{line}");
    // The client saw the stream end without its last chunk.
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(
        !rest.ends_with(b"0\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// A job started with stdout closed: the answer would go to the `/dev/null` put in its place.
/// It reaches nobody, so the job fails (exit 1) and says why on stderr; its log lines are lost
/// with stdout. With stdout sent to `/dev/null` on purpose (write-only, as a shell opens it),
/// the job succeeds.
#[test]
fn test_a_job_with_stdout_closed_exits_one_with_the_reason_on_stderr() {
    let run = |redirect: &str| {
        Command::new("bash")
            .args([
                "-c",
                &format!("exec {redirect}; exec \"$0\""),
                bin().to_str().unwrap(),
            ])
            .env("SCF_CUSTOM_CONTAINER_EVENT", r#"{"a":1}"#)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    let closed = run(">&-");
    let err = String::from_utf8_lossy(&closed.stderr);
    assert_eq!(closed.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "the answer could not be written to stdout: stdout was closed when the process started"
        ),
        "{err}"
    );
    let null = run(">/dev/null");
    assert_eq!(
        null.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&null.stderr)
    );
}

#[test]
fn test_a_job_whose_answer_cannot_be_written_exits_one() {
    // stdout a pipe whose reader is gone: the write fails (EPIPE). A job binds nothing: PORT
    // names a port this test holds.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let (_held, port) = held_port();
    let out = Command::new(bin())
        .env("SCF_CUSTOM_CONTAINER_EVENT", "{}")
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the answer could not be written to stdout: Broken pipe"),
        "{err}"
    );
}

/// A second signal during a stream ends the process at once, with 128 + the signal, whatever
/// the grace period (a minute here) and the stream (100 s) have left.
#[test]
fn test_a_second_signal_during_a_stream_exits_at_once() {
    let s = Server::start(example("sse"), &[("SCF_LEAN_SHUTDOWN_GRACE_MS", "60000")]);
    let mut c = s.connect();
    c.write_all(b"GET /events?n=1000&delay_ms=100 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut b = [0u8; 4096];
    let n = c.read(&mut b).unwrap();
    assert!(b[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
    s.signal(15);
    s.wait_until_not_listening();
    s.signal(2);
    let (status, _, took) = s.wait(WAIT);
    assert_eq!(status.code(), Some(128 + 2));
    assert!(took < Duration::from_secs(60), "{took:?}");
}

/// A call that holds the loop (10 s, inline) does not hold the shutdown: the grace period
/// (300 ms) ends the process, and stderr says why.
#[test]
fn test_sigterm_during_a_long_call_exits_after_the_grace_period() {
    let s = Server::start(example("slow"), &[("SCF_LEAN_SHUTDOWN_GRACE_MS", "300")]);
    let mut c = s.connect();
    c.write_all(b"GET /wait?ms=10000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    wait_until_read(&c);
    let t = Instant::now();
    s.signal(15);
    let (status, _, _) = s.wait(WAIT);
    let took = t.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(
        took < Duration::from_secs(9),
        "the call's 10 s, not the grace: {took:?}"
    );
}

/// `init` that never returns does not hold the shutdown either.
#[test]
fn test_sigterm_during_init_exits_after_the_grace_period() {
    let s = Server::start(
        example("faults"),
        &[
            ("FAULTS_INIT", "wait"),
            ("SCF_LEAN_SHUTDOWN_GRACE_MS", "300"),
        ],
    );
    s.signal(15);
    let (status, out, _) = s.wait(WAIT);
    assert_eq!(status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("shutdown grace period over with work in flight: exiting"),
        "{err}"
    );
}

/// Calls on workers log through the server's log like calls on the loop: the function's own
/// lines and the access line, each with its request id.
#[test]
fn test_lines_logged_on_workers_carry_their_request_ids() {
    let s = Server::start(
        example("slow"),
        &[
            ("SCF_LEAN_CONCURRENCY", "4"),
            ("SCF_LEAN_LOG_LEVEL", "debug"),
        ],
    );
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let port = s.port;
            thread::spawn(move || {
                let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                c.set_read_timeout(Some(WAIT)).unwrap();
                let req = format!(
                    "GET /wait?ms={} HTTP/1.1\r\nHost: x\r\nX-Scf-Request-Id: rid-w{i}\r\n\r\n",
                    10 + i
                );
                let (status, _, _) = request(&mut c, &req);
                assert_eq!(status, 200);
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let (_, out, _) = s.stop();
    for i in 0..4 {
        let ms = 10 + i;
        assert!(
            out.contains(&format!("DEBUG [rid-w{i}] waited {ms} ms")),
            "{out}"
        );
        assert!(
            out.contains(&format!("INFO [rid-w{i}] GET /wait 200 ")),
            "{out}"
        );
    }
}

/// SIGTERM while a call runs on a worker: its answer goes out, the kept connection closes after
/// it, and the process exits then — not at the end of the grace period (20 s here).
#[test]
fn test_sigterm_exits_once_the_answers_on_workers_are_out() {
    let s = Server::start(
        example("slow"),
        &[
            ("SCF_LEAN_CONCURRENCY", "2"),
            ("SCF_LEAN_SHUTDOWN_GRACE_MS", "20000"),
        ],
    );
    let mut c = s.connect();
    c.write_all(b"GET /wait?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    wait_until_read(&c);
    let t = Instant::now();
    s.signal(15);
    let (status, _, body) = read_response(&mut c);
    assert_eq!((status, &body[..]), (200, &br#"{"waited_ms":300}"#[..]));
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "the connection closes after the answer");
    let (status, _, _) = s.wait(WAIT);
    assert_eq!(status.code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}
