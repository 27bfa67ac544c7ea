//! Sample events and local invoke.
//!
//! - Local invoke (`examples/invoke.rs`, compiled in here as a module) against the real echo
//!   binary on a port the kernel picked (`PORT=0`, read from its start-up line): every sample
//!   event comes back in the echo, with the context the invoke sent and without its dummy
//!   credentials.
//! - With `--features events`: every sample in `events/` parses into its type, borrowing, and a
//!   typed function behind a real server answers an event that does not fit with a 400 naming the
//!   bad field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

mod common;

#[allow(dead_code)]
#[path = "../examples/invoke.rs"]
mod invoke;

/// Every sample event file, by name.
fn samples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("events/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// The echo binary on a port the kernel picked; killed when dropped.
struct Binary {
    child: Child,
    addr: SocketAddr,
}

impl Binary {
    /// Starts it on `PORT=0` and reads its port from its start-up line (the log level keeps
    /// `info` for it); the rest of its log is drained, so that it never waits on a full pipe.
    fn start() -> Binary {
        let child = Command::new(env!("CARGO_BIN_EXE_scf-lean"))
            .env("PORT", "0")
            .env("SCF_LEAN_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the echo binary");
        let mut bin = Binary {
            child,
            addr: ([127, 0, 0, 1], 0).into(),
        };
        let (port, _) = common::child::read_startup(&mut bin.child);
        bin.addr.set_port(port);
        let mut out = bin.child.stdout.take().expect("stdout");
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        bin
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn invoke_args(bin: &Binary, file: &Path) -> Vec<String> {
    vec![
        file.to_string_lossy().into_owned(),
        "--url".into(),
        format!("http://{}", bin.addr),
    ]
}

#[test]
fn test_invoke_sends_every_sample_and_the_echo_returns_it() {
    let bin = Binary::start();
    for file in samples() {
        let inv = invoke::Invoke::from_args(invoke_args(&bin, &file)).unwrap();
        assert_eq!(inv.path, "/event-invoke");
        let a = inv.send().unwrap();
        let name = file.display();
        assert_eq!(
            a.status,
            200,
            "{name}: {}",
            String::from_utf8_lossy(&a.body)
        );
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        let sent: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(v["event"], sent, "{name}");
        let ctx = &v["context"];
        assert_eq!(ctx["request_id"], a.request_id.as_str(), "{name}");
        assert_eq!(ctx["function_name"], env!("CARGO_PKG_NAME"));
        assert_eq!(ctx["function_version"], "$LATEST");
        assert_eq!(ctx["namespace"], "default");
        assert_eq!(ctx["memory_limit_in_mb"], 128);
        assert_eq!(ctx["time_limit_in_ms"], 3000);
        assert_eq!(ctx["tencentcloud_region"], "ap-guangzhou");
        assert_eq!(ctx["tencentcloud_appid"], "1250000000");
        assert_eq!(ctx["tencentcloud_uin"], "100000000001");
        let text = String::from_utf8_lossy(&a.body);
        assert!(!text.contains("dummy"), "credentials echoed: {text}");
    }
}

#[test]
fn test_invoke_options_and_a_bad_event() {
    let bin = Binary::start();
    let dir = std::env::temp_dir().join(format!("scf-lean-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{oops").unwrap();
    let mut args = invoke_args(&bin, &bad);
    args.extend(["--name", "my-fn", "--memory", "256", "--timeout", "900000"].map(String::from));
    let inv = invoke::Invoke::from_args(args).unwrap();
    assert_eq!(
        (inv.name.as_str(), inv.memory_mb, inv.timeout_ms),
        ("my-fn", 256, 900_000)
    );
    let a = inv.send().unwrap();
    assert_eq!(a.status, 400);
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["errorCode"], 400);
    std::fs::remove_dir_all(&dir).unwrap();

    for (args, want) in [
        (vec![], "usage"),
        (vec!["a.json", "b.json"], "one event file only"),
        (vec!["a.json", "--bogus"], "unknown option --bogus"),
        (vec!["a.json", "--memory"], "--memory needs a value"),
        (
            vec!["/nonexistent/e.json"],
            "cannot read /nonexistent/e.json",
        ),
    ] {
        let err = invoke::Invoke::from_args(args.into_iter().map(String::from)).unwrap_err();
        assert!(err.contains(want), "{err}");
    }
    let timer = samples()
        .into_iter()
        .find(|p| p.ends_with("timer.json"))
        .unwrap();
    let t = timer.to_string_lossy().into_owned();
    let err =
        invoke::Invoke::from_args([t.clone(), "--url".into(), "https://x".into()]).unwrap_err();
    assert!(err.contains("http://"), "{err}");
    let inv =
        invoke::Invoke::from_args([t, "--url".into(), "http://localhost/custom".into()]).unwrap();
    assert_eq!(
        (inv.addr.as_str(), inv.path.as_str()),
        ("localhost:80", "/custom")
    );
}

#[cfg(feature = "events")]
mod typed {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use scf_lean::events::{
        ApiGatewayRequest, CkafkaEvent, ClbRequest, ClsEvent, CmqEvent, CosEvent, Event,
        IntegrationResponse, TimerEvent, parse,
    };
    use scf_lean::{Config, Context, Error, Function, Level, Response, Server};

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("events")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn test_every_sample_parses_into_its_type() {
        let b = read("timer.json");
        let e: TimerEvent = parse(&b).unwrap();
        assert_eq!((&*e.kind, &*e.trigger_name), ("Timer", "EveryDay"));
        assert!(e.message.is_borrowed());

        let b = read("cos.json");
        let e: CosEvent = parse(&b).unwrap();
        let r = &e.records[0];
        assert_eq!(r.cos.object.size, 1029);
        assert_eq!(r.cos.object.path(), "testfile");
        assert_eq!(r.cos.object.meta("x-cos-meta-mykey"), Some("myvalue"));
        assert_eq!(r.cos.bucket.appid, "1253970026");
        assert!(r.event.is_created());
        assert_eq!(r.event.request_id, 179_398_952);

        let b = read("ckafka.json");
        let e: CkafkaEvent = parse(&b).unwrap();
        assert_eq!(e.records.len(), 2);
        assert_eq!(e.records[1].ckafka.body, "Hello from Ckafka again!");

        for (file, kind, tags) in [
            ("cmq_topic.json", "topic", 2),
            ("cmq_queue.json", "queue", 2),
        ] {
            let b = read(file);
            let e: CmqEvent = parse(&b).unwrap();
            let m = &e.records[0].cmq;
            assert_eq!(m.kind, kind, "{file}");
            assert_eq!(m.tags.0.len(), tags, "{file}");
            assert!(m.source().is_some(), "{file}");
        }

        let b = read("cls.json");
        let e: ClsEvent = parse(&b).unwrap();
        let mut buf = Vec::new();
        let logs = e.clslogs.decode_into(&mut buf).unwrap();
        assert_eq!(logs.records.len(), 2);

        let b = read("clb.json");
        let e: ClbRequest = parse(&b).unwrap();
        assert_eq!(e.header("x-vip"), Some("10.0.0.8"));
        assert_eq!(e.body_bytes().unwrap(), &br#"{"key":"value"}"#[..]);

        let b = read("apigw.json");
        let e: ApiGatewayRequest = parse(&b).unwrap();
        assert_eq!(e.query("bob"), Some("alice"));
        assert_eq!(e.query_string["tag"].values().len(), 2);
        assert_eq!(
            e.request_context.identity.secret_id.as_deref(),
            Some("abdcdxxxxxxxsdfs")
        );
        // The body has escapes, so it is the one owned string.
        assert_eq!(e.body_bytes().unwrap(), &br#"{"test":"body"}"#[..]);
        assert!(!e.body.as_ref().unwrap().is_borrowed());
        assert!(e.path.is_borrowed());
    }

    #[test]
    fn test_a_sample_sent_to_the_wrong_type_is_a_400_with_a_path() {
        let b = read("cos.json");
        let e = parse::<CkafkaEvent>(&b).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(
            e.message().starts_with(
                "the event does not fit CkafkaEvent: Records[0]: missing field `Ckafka`"
            ),
            "{e}"
        );
        let b = read("timer.json");
        let e = parse::<CosEvent>(&b).unwrap_err();
        assert!(e.message().contains("missing field `Records`"), "{e}");
    }

    /// Parses `bytes` as every event type; what matters is that nothing panics and every error
    /// is a 400.
    fn parse_as_everything(bytes: &[u8]) {
        fn one<'a, T: serde::Deserialize<'a>>(b: &'a [u8]) {
            if let Err(e) = parse::<T>(b) {
                assert_eq!(e.status(), 400);
            }
        }
        one::<TimerEvent>(bytes);
        one::<CosEvent>(bytes);
        one::<CkafkaEvent>(bytes);
        one::<CmqEvent>(bytes);
        one::<ClbRequest>(bytes);
        one::<ApiGatewayRequest>(bytes);
        if let Ok(e) = parse::<ClsEvent>(bytes) {
            let mut buf = Vec::new();
            if let Err(e) = e.clslogs.decode_into(&mut buf) {
                assert_eq!(e.status(), 400);
            }
        }
    }

    #[test]
    fn test_no_prefix_or_flipped_byte_of_a_sample_panics() {
        for file in samples() {
            let b = std::fs::read(&file).unwrap();
            for cut in 0..=b.len() {
                parse_as_everything(&b[..cut]);
            }
            for i in 0..b.len() {
                for flip in [0x01, 0x20, 0x80] {
                    let mut m = b.clone();
                    m[i] ^= flip;
                    parse_as_everything(&m);
                }
            }
        }
    }

    /// A function that borrows its answer from the event: the `Function` impl pattern.
    struct Web;

    impl Function for Web {
        fn event<'a>(
            &mut self,
            event: &'a [u8],
            _ctx: &Context<'a>,
            out: &mut Response<'a>,
        ) -> Result<(), Error> {
            let req: ApiGatewayRequest<'a> = parse(event)?;
            let body = req.body.unwrap_or_default();
            out.json(&IntegrationResponse::text(200, body).header("X-Path", req.path))
        }
    }

    fn post(addr: SocketAddr, body: &[u8]) -> (u16, Value) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "POST /event-invoke HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let status = std::str::from_utf8(&raw[9..12]).unwrap().parse().unwrap();
        (status, serde_json::from_slice(&raw[end + 4..]).unwrap())
    }

    fn serve<F: Function + Send + 'static>(f: F) -> SocketAddr {
        let config = Config {
            log_level: Level::Off,
            ..Config::default()
        };
        let server = Server::bind_to(config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr();
        std::thread::spawn(move || server.serve(f));
        addr
    }

    #[test]
    fn test_typed_functions_over_http() {
        let addr = serve(TimerEvent::handler(|e, _ctx| {
            Ok(
                serde_json::json!({"trigger": e.trigger_name, "borrowed": e.trigger_name.is_borrowed()}),
            )
        }));
        let (status, v) = post(addr, &read("timer.json"));
        assert_eq!(status, 200);
        assert_eq!(
            v,
            serde_json::json!({"trigger": "EveryDay", "borrowed": true})
        );
        let (status, v) = post(addr, br#"{"Type":"timer","TriggerName":[],"Time":"x"}"#);
        assert_eq!(status, 400);
        assert_eq!(v["errorCode"], 400);
        let msg = v["errorMessage"].as_str().unwrap();
        assert!(
            msg.starts_with("the event does not fit TimerEvent: TriggerName: invalid type: sequence, expected a string"),
            "{msg}"
        );

        let addr = serve(Web);
        let (status, v) = post(addr, &read("apigw.json"));
        assert_eq!(status, 200);
        assert_eq!(
            v,
            serde_json::json!({"isBase64Encoded": false, "statusCode": 200,
                "headers": {"Content-Type": "text/plain; charset=utf-8", "X-Path": "/test/value"},
                "body": "{\"test\":\"body\"}"})
        );
        let (status, v) = post(addr, br#"{"httpMethod":"GET","queryString":{"a":1}}"#);
        assert_eq!(status, 400);
        assert!(
            v["errorMessage"]
                .as_str()
                .unwrap()
                .contains("queryString.a: invalid type: integer `1`"),
            "{v}"
        );
    }
}
