//! Records of the `log` facade and events of `tracing` through the server's log (features `log`
//! and `tracing`: `cargo test --features log,tracing --test log_facades`): with the request id
//! of the call they are made in — inline, on a worker, in a stream's producer — and without one
//! outside calls; their target and fields; the level filter; in text and JSON, as a test
//! captures them and as a server process writes them on stdout and stderr.

#![cfg(all(feature = "log", feature = "tracing"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use scf_lean::testing::TestServer;
use scf_lean::{Config, Context, Error, Function, Level, Request, Response, Server};

/// Logs through both facades: in `init` (and on a thread of its own), in an event, in a call
/// on `/work/<n>`, in a stream's producer on `/stream`; `trace` and `debug` lines too, for the
/// level filter.
#[derive(Clone)]
struct Shop;

impl Function for Shop {
    fn init(&mut self) -> Result<(), Error> {
        log::info!(target: "shop::init", "price list loaded");
        tracing::info!(items = 3, "warm");
        // Outside any call, on a thread of the function's own: no request id either, and
        // written at once to stdout (so, in the server process only: not in the test's output).
        if std::env::var_os(CHILD).is_some() {
            std::thread::spawn(|| log::warn!("from a thread of its own"))
                .join()
                .unwrap();
        }
        Ok(())
    }

    fn event<'a>(
        &mut self,
        event: &'a [u8],
        _ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        let cents: u64 = scf_lean::from_json(event)?;
        log::info!("charging {cents}");
        tracing::info!(
            user = "ada",
            cents,
            vip = true,
            ratio = 0.5,
            msg = 1,
            "charged"
        );
        log::error!(target: "shop::card", "declined once");
        log::debug!("debug record");
        tracing::debug!(step = 2, "debug event");
        log::trace!("trace record");
        tracing::trace!("trace event");
        scf_lean::info!("the macros too");
        out.json(&cents)
    }

    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        let id = req.context().request_id.unwrap_or("-").to_owned();
        if req.path() == "/stream" {
            return out.stream(move |body| {
                log::info!("producing for {id}");
                tracing::warn!(part = 1, "half sent");
                body.send(b"done")?;
                Ok(())
            });
        }
        std::thread::sleep(Duration::from_millis(20));
        log::info!("work for {id}");
        tracing::info!(call = id.as_str(), "traced");
        out.set_body_static(b"ok");
        Ok(())
    }
}

fn quiet(concurrency: usize) -> Config {
    Config {
        concurrency,
        log_level: Level::Off,
        ..Config::default()
    }
}

#[test]
fn test_records_and_events_in_a_call_carry_its_id_target_and_fields() {
    let s = TestServer::builder(Shop)
        .config(quiet(1))
        .capture_logs(Level::Info)
        .start();
    assert_eq!(
        s.event_with("1250", &[("X-Scf-Request-Id", "r-1")]).status,
        200
    );
    let lines = s.logs();
    let summary: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                l.level,
                l.request_id.as_deref(),
                l.target.as_deref(),
                l.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (Level::Info, None, Some("shop::init"), "price list loaded"),
            (Level::Info, None, Some("log_facades"), "warm"),
            (
                Level::Info,
                Some("r-1"),
                Some("log_facades"),
                "charging 1250"
            ),
            (Level::Info, Some("r-1"), Some("log_facades"), "charged"),
            (
                Level::Error,
                Some("r-1"),
                Some("shop::card"),
                "declined once"
            ),
            (Level::Info, Some("r-1"), None, "the macros too"),
        ],
        "{lines:?}"
    );
    assert_eq!(lines[1].field("items"), Some("3"));
    let charged = &lines[3];
    assert_eq!(
        charged.fields,
        [
            ("user".into(), "ada".into()),
            ("cents".into(), "1250".into()),
            ("vip".into(), "true".into()),
            ("ratio".into(), "0.5".into()),
            ("field.msg".into(), "1".into()),
        ]
    );
    assert!(s.logged(Level::Error, "r-1", "declined"));
}

#[test]
fn test_the_level_filters_records_and_events_and_trace_never_passes() {
    let s = TestServer::builder(Shop)
        .config(quiet(1))
        .capture_logs(Level::Debug)
        .start();
    s.event_with("7", &[("X-Scf-Request-Id", "d-1")]);
    assert!(
        s.logged(Level::Debug, "d-1", "debug record"),
        "{:?}",
        s.logs()
    );
    let event = s.logs().into_iter().find(|l| l.message == "debug event");
    assert_eq!(
        event.and_then(|l| l.field("step").map(str::to_owned)),
        Some("2".into())
    );
    assert!(!s.logs().iter().any(|l| l.message.starts_with("trace")));

    let s = TestServer::builder(Shop)
        .config(quiet(1))
        .capture_logs(Level::Warn)
        .start();
    s.event_with("7", &[("X-Scf-Request-Id", "w-1")]);
    let kept: Vec<_> = s.logs().into_iter().map(|l| l.message).collect();
    assert_eq!(kept, ["declined once"]);
}

#[test]
fn test_records_on_workers_carry_their_own_calls_ids() {
    let s = Arc::new(
        TestServer::builder(scf_lean::concurrent(Shop))
            .config(quiet(4))
            .capture_logs(Level::Info)
            .start(),
    );
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                let id = format!("w-{i}");
                let r = s.request("GET", "/work", &[("X-Scf-Request-Id", &id)], b"");
                assert_eq!(r.status, 200);
            })
        })
        .collect();
    for c in calls {
        c.join().unwrap();
    }
    let lines = s.logs();
    let in_calls: Vec<_> = lines.iter().filter(|l| l.request_id.is_some()).collect();
    assert_eq!(in_calls.len(), 16, "{lines:?}");
    for line in in_calls {
        let id = line.request_id.as_deref().unwrap();
        match line.message.as_str() {
            "traced" => assert_eq!(line.field("call"), Some(id), "{line:?}"),
            m => assert_eq!(m, format!("work for {id}"), "{line:?}"),
        }
    }
}

#[test]
fn test_records_in_a_streams_producer_carry_its_id() {
    let s = TestServer::builder(Shop)
        .config(quiet(1))
        .capture_logs(Level::Info)
        .start();
    let r = s.request("GET", "/stream", &[("X-Scf-Request-Id", "s-1")], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "done"));
    assert!(
        s.logged(Level::Info, "s-1", "producing for s-1"),
        "{:?}",
        s.logs()
    );
    assert!(s.logged(Level::Warn, "s-1", "half sent"), "{:?}", s.logs());
}

#[test]
fn test_a_record_the_level_filters_is_never_formatted() {
    use std::fmt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static FORMATTED: AtomicUsize = AtomicUsize::new(0);
    struct Counted;
    impl fmt::Display for Counted {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            FORMATTED.fetch_add(1, Ordering::Relaxed);
            f.write_str("counted")
        }
    }
    let f = scf_lean::event_fn(|_event, _ctx, out| {
        log::debug!("{}", Counted);
        tracing::debug!(value = %Counted, "filtered");
        log::trace!("{}", Counted);
        tracing::trace!(value = %Counted);
        log::info!("{}", Counted);
        out.set_body_static(b"ok");
        Ok(())
    });
    // Another server of the process keeps debug lines: the facades let debug through, and
    // the level of the call's own log must stop them before they are formatted.
    let _debug = TestServer::builder(Shop)
        .config(quiet(1))
        .capture_logs(Level::Debug)
        .start();
    let s = TestServer::builder(f)
        .config(quiet(1))
        .capture_logs(Level::Info)
        .start();
    assert!(log::max_level() >= log::LevelFilter::Debug);
    assert!(tracing::level_filters::LevelFilter::current() >= tracing::Level::DEBUG);
    s.event_with("{}", &[("X-Scf-Request-Id", "f-1")]);
    assert!(s.logged(Level::Info, "f-1", "counted"), "{:?}", s.logs());
    assert_eq!(s.logs().len(), 1, "{:?}", s.logs());
    assert_eq!(FORMATTED.load(Ordering::Relaxed), 1, "only the info record");
}

// --- The same function as a server process: its stdout and stderr as SCF collects them. ---

/// Set for the child process: the test below that serves instead of returning at once.
const CHILD: &str = "SCF_LEAN_FACADES_CHILD";

/// Not a test of its own: the server process of
/// `test_a_server_process_writes_records_and_events_in_text_and_json`, run as this test binary
/// with `--ignored --exact`. It binds a loopback port, says which on stdout, and serves until
/// it is killed.
#[test]
#[ignore = "the server process of test_a_server_process_writes_records_and_events_in_text_and_json"]
fn facades_child_server() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let config = Config::from_env().expect("the child's settings");
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let server = Server::bind_to(config, loopback).expect("bind a loopback port");
    let port = server.local_addr().port();
    let mut out = std::io::stdout();
    let _ = writeln!(out, "child-port={port}");
    let _ = out.flush();
    let _ = server.serve(scf_lean::concurrent(Shop));
}

/// A child server process, killed when dropped; its stdout and stderr lines arrive on `lines`.
struct ChildServer {
    child: Child,
    lines: mpsc::Receiver<(bool, String)>,
    seen: Vec<(bool, String)>,
    port: u16,
}

impl ChildServer {
    fn start(env: &[(&str, &str)]) -> ChildServer {
        let mut command = Command::new(std::env::current_exe().unwrap());
        // The settings are the test's alone, whatever the environment running it says.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SCF_LEAN_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .args(["--ignored", "--exact", "facades_child_server"])
            .args(["--nocapture", "--test-threads=1", "--quiet"])
            .env(CHILD, "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the child server");
        let (tx, lines) = mpsc::channel();
        for (is_err, pipe) in [
            (
                false,
                Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            ),
            (true, Box::new(child.stderr.take().unwrap())),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((is_err, line)).is_err() {
                        break;
                    }
                }
            });
        }
        let mut s = ChildServer {
            child,
            lines,
            seen: Vec::new(),
            port: 0,
        };
        let Some((_, port)) = s.wait_for(|_, l| l.starts_with("child-port=")) else {
            panic!("the child server named no port: {:#?}", s.seen);
        };
        s.port = port["child-port=".len()..].parse().unwrap();
        s
    }

    /// Waits (10 s at most) for a line that `want` matches; every line read is kept in `seen`.
    fn wait_for(&mut self, want: impl Fn(bool, &str) -> bool) -> Option<(bool, String)> {
        if let Some(l) = self.seen.iter().find(|(e, l)| want(*e, l)) {
            return Some(l.clone());
        }
        let until = Instant::now() + Duration::from_secs(10);
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            self.seen.push(line.clone());
            if want(line.0, &line.1) {
                return Some(line);
            }
        }
        None
    }

    /// One request on a connection of its own; the status.
    fn request(&self, raw: &str) -> u16 {
        let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(raw.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0; 4096];
        // The answers here are small and `Connection: close`: read to the end.
        loop {
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
        let text = String::from_utf8_lossy(&answer);
        text.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn event(&self, id: &str, body: &str) -> u16 {
        self.request(&format!(
            "POST /event-invoke HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             X-Scf-Request-Id: {id}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    fn get(&self, path: &str, id: &str) -> u16 {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Scf-Request-Id: {id}\r\n\r\n"
        ))
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn test_a_server_process_writes_records_and_events_in_text_and_json() {
    // Text at info: debug lines filtered out; errors on stderr.
    let mut s = ChildServer::start(&[
        ("SCF_LEAN_LOG_FORMAT", "text"),
        ("SCF_LEAN_LOG_LEVEL", "info"),
    ]);
    assert_eq!(s.event("t-1", "1250"), 200);
    assert_eq!(s.get("/stream", "t-2"), 200);
    let access = |id: &'static str| {
        move |e: bool, l: &str| !e && l.starts_with(&format!("INFO [{id}] ")) && l.contains(" 200 ")
    };
    assert!(s.wait_for(access("t-1")).is_some(), "{:?}", s.seen);
    assert!(s.wait_for(access("t-2")).is_some(), "{:?}", s.seen);
    for (stderr, line) in [
        (false, "INFO [-] shop::init: price list loaded"),
        (false, "INFO [-] log_facades: warm items=3"),
        (false, "WARN [-] log_facades: from a thread of its own"),
        (false, "INFO [t-1] log_facades: charging 1250"),
        (
            false,
            "INFO [t-1] log_facades: charged user=\"ada\" cents=1250 vip=true ratio=0.5 msg=1",
        ),
        (true, "ERROR [t-1] shop::card: declined once"),
        (false, "INFO [t-1] the macros too"),
        (false, "INFO [t-2] log_facades: producing for t-2"),
        (false, "WARN [t-2] log_facades: half sent part=1"),
    ] {
        let found = s.wait_for(|e, l| e == stderr && l == line);
        assert!(found.is_some(), "{line:?} in {:#?}", s.seen);
    }
    // In the order logged, before the call's access line.
    let at = |want: &str| {
        s.seen
            .iter()
            .position(|(_, l)| l.starts_with(want))
            .unwrap()
    };
    assert!(at("INFO [t-1] log_facades: charging") < at("INFO [t-1] log_facades: charged"));
    assert!(at("INFO [t-1] the macros too") < at("INFO [t-1] POST /event-invoke 200"));
    let filtered = ["debug record", "debug event", "trace record", "trace event"];
    assert!(
        !s.seen
            .iter()
            .any(|(_, l)| filtered.iter().any(|f| l.contains(f))),
        "{:#?}",
        s.seen
    );
    drop(s);

    // JSON at debug, calls on workers: each line one JSON object with its request id.
    let mut s = ChildServer::start(&[
        ("SCF_LEAN_LOG_FORMAT", "json"),
        ("SCF_LEAN_LOG_LEVEL", "debug"),
        ("SCF_LEAN_CONCURRENCY", "4"),
    ]);
    assert_eq!(s.event("j-1", "1250"), 200);
    assert_eq!(s.get("/work", "j-2"), 200);
    for id in ["j-1", "j-2"] {
        let access =
            |e: bool, l: &str| !e && l.contains(&format!(r#""requestId":"{id}","msg":"request""#));
        assert!(s.wait_for(access).is_some(), "{:#?}", s.seen);
    }
    let json = |msg: &str| {
        let found = s.seen.iter().find_map(|(_, l)| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["msg"] == msg).then_some(v)
        });
        found.unwrap_or_else(|| panic!("{msg:?} in {:#?}", s.seen))
    };
    let loaded = json("price list loaded");
    assert_eq!(
        (&loaded["level"], &loaded["requestId"], &loaded["target"]),
        (
            &"INFO".into(),
            &serde_json::Value::Null,
            &"shop::init".into()
        )
    );
    let charged = json("charged");
    assert_eq!(charged["requestId"], "j-1");
    assert_eq!(charged["target"], "log_facades");
    assert_eq!(
        (
            &charged["user"],
            &charged["cents"],
            &charged["vip"],
            &charged["ratio"]
        ),
        (&"ada".into(), &1250.into(), &true.into(), &0.5.into())
    );
    assert_eq!(
        charged["field.msg"], 1,
        "a field cannot take the line's own msg"
    );
    let declined = json("declined once");
    assert_eq!(
        (&declined["level"], &declined["requestId"]),
        (&"ERROR".into(), &"j-1".into())
    );
    assert_eq!(json("debug record")["requestId"], "j-1");
    assert_eq!(json("debug event")["step"], 2);
    assert_eq!(json("work for j-2")["requestId"], "j-2");
    assert_eq!(json("traced")["call"], "j-2");
    assert!(
        !s.seen
            .iter()
            .any(|(_, l)| l.contains("trace record") || l.contains("trace event"))
    );
    // Every line the server wrote is one JSON object.
    for (_, line) in s.seen.iter().filter(|(_, l)| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["level"].is_string(), "{line}");
    }
}
