//! What a function logs, as a test reads it back (`TestServer::builder(f).capture_logs(level)`):
//! each line with its level and request id, in order, whichever thread the call ran on — the
//! server's, a worker, a stream's producer — and the lines of `init` without an id.

use std::sync::Arc;
use std::time::Duration;

use scf_lean::testing::{LogLine, TestServer};
use scf_lean::{Config, Context, Error, Function, Level, Request, Response};

/// Logs around each call: `init` says it ran; an event logs at every level; `/panic` logs and
/// panics; `/stream` logs in its producer; any other path logs it with the call's request id
/// (after a pause, so that calls on workers overlap).
#[derive(Clone)]
struct Chatty;

impl Function for Chatty {
    fn init(&mut self) -> Result<(), Error> {
        scf_lean::info!("price list loaded");
        Ok(())
    }

    fn event<'a>(
        &mut self,
        event: &'a [u8],
        _ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        let n = event.len();
        scf_lean::debug!("event of {n} bytes");
        scf_lean::info!("charging");
        scf_lean::error!("card declined");
        scf_lean::warn!("retrying");
        scf_lean::info!("charged");
        out.set_body_static(b"ok");
        Ok(())
    }

    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        let id = req.context().request_id.unwrap_or("-").to_owned();
        match req.path() {
            "/panic" => {
                scf_lean::warn!("about to fail");
                panic!("out of stock")
            }
            "/stream" => {
                scf_lean::info!("stream starts");
                out.stream(move |body| {
                    scf_lean::info!("producing for {id}");
                    body.send(b"a")?;
                    scf_lean::error!("half sent");
                    body.send(b"b")?;
                    Ok(())
                })
            }
            path => {
                std::thread::sleep(Duration::from_millis(20));
                scf_lean::info!("{path} for {id}");
                out.set_body_static(b"ok");
                Ok(())
            }
        }
    }
}

fn summary(lines: &[LogLine]) -> Vec<(Level, Option<&str>, &str)> {
    lines
        .iter()
        .map(|l| (l.level, l.request_id.as_deref(), l.message.as_str()))
        .collect()
}

#[test]
fn test_a_calls_lines_come_back_in_order_with_its_request_id_and_init_has_none() {
    let s = TestServer::builder(Chatty)
        .capture_logs(Level::Info)
        .start();
    let r = s.event_with("{}", &[("X-Scf-Request-Id", "r-1")]);
    assert_eq!(r.status, 200);
    // Every level in the order logged (the error line among the others), debug filtered out.
    assert_eq!(
        summary(&s.logs()),
        [
            (Level::Info, None, "price list loaded"),
            (Level::Info, Some("r-1"), "charging"),
            (Level::Error, Some("r-1"), "card declined"),
            (Level::Warn, Some("r-1"), "retrying"),
            (Level::Info, Some("r-1"), "charged"),
        ]
    );
    assert!(s.logged(Level::Error, "r-1", "declined"));
    assert!(s.logged(Level::Info, None, "price list"));
    assert!(!s.logged(Level::Info, "r-2", "charged"));
    assert!(!s.logged(Level::Warn, "r-1", "charged"));
    let line = &s.logs()[1];
    assert_eq!((line.target.as_deref(), line.fields.len()), (None, 0));
    // The next call has its own id.
    s.event("{}");
    assert!(s.logged(Level::Info, "test-request-2", "charged"));
}

#[test]
fn test_the_capture_level_filters_and_debug_keeps_everything() {
    let s = TestServer::builder(Chatty)
        .capture_logs(Level::Warn)
        .start();
    s.event_with("{}", &[("X-Scf-Request-Id", "r-1")]);
    assert_eq!(
        summary(&s.logs()),
        [
            (Level::Error, Some("r-1"), "card declined"),
            (Level::Warn, Some("r-1"), "retrying"),
        ]
    );
    let s = TestServer::builder(Chatty)
        .capture_logs(Level::Debug)
        .start();
    s.event_with("{}", &[("X-Scf-Request-Id", "r-1")]);
    assert!(
        s.logged(Level::Debug, "r-1", "event of 2 bytes"),
        "{:?}",
        s.logs()
    );
}

#[test]
fn test_calls_on_workers_log_with_their_own_request_ids() {
    // The server's own lines (access lines) off: only the function's are captured.
    let config = Config {
        concurrency: 4,
        log_level: Level::Off,
        ..Config::default()
    };
    let s = Arc::new(
        TestServer::builder(scf_lean::concurrent(Chatty))
            .config(config)
            .capture_logs(Level::Info)
            .start(),
    );
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                let id = format!("w-{i}");
                let r = s.request(
                    "GET",
                    &format!("/item/{i}"),
                    &[("X-Scf-Request-Id", &id)],
                    b"",
                );
                assert_eq!(r.status, 200);
            })
        })
        .collect();
    for c in calls {
        c.join().unwrap();
    }
    let lines = s.logs();
    assert_eq!(lines.len(), 9, "{lines:?}"); // init's line and one per call
    for i in 0..8 {
        let id = format!("w-{i}");
        let msg = format!("/item/{i} for {id}");
        assert!(s.logged(Level::Info, id.as_str(), &msg), "{msg}: {lines:?}");
    }
    for line in &lines[1..] {
        let id = line.request_id.as_deref().unwrap();
        assert!(line.message.ends_with(&format!(" for {id}")), "{line:?}");
    }
}

#[test]
fn test_a_streams_producer_logs_with_its_request_id_before_the_answer_ends() {
    let s = TestServer::builder(Chatty)
        .capture_logs(Level::Info)
        .start();
    let r = s.request("GET", "/stream", &[("X-Scf-Request-Id", "s-1")], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "ab"));
    assert_eq!(
        summary(&s.logs()[1..]),
        [
            (Level::Info, Some("s-1"), "stream starts"),
            (Level::Info, Some("s-1"), "producing for s-1"),
            (Level::Error, Some("s-1"), "half sent"),
        ]
    );
}

#[test]
fn test_a_line_before_a_panic_is_kept_and_the_server_goes_on() {
    let s = TestServer::builder(Chatty)
        .capture_logs(Level::Info)
        .start();
    assert_eq!(
        s.request("GET", "/panic", &[("X-Scf-Request-Id", "p-1")], b"")
            .status,
        500
    );
    assert!(
        s.logged(Level::Warn, "p-1", "about to fail"),
        "{:?}",
        s.logs()
    );
    s.request("GET", "/after", &[("X-Scf-Request-Id", "p-2")], b"");
    assert!(
        s.logged(Level::Info, "p-2", "/after for p-2"),
        "{:?}",
        s.logs()
    );
}

#[test]
fn test_capture_is_per_server() {
    let a = TestServer::builder(Chatty)
        .capture_logs(Level::Info)
        .start();
    let b = TestServer::builder(Chatty)
        .capture_logs(Level::Info)
        .start();
    a.request("GET", "/a", &[("X-Scf-Request-Id", "a-1")], b"");
    b.request("GET", "/b", &[("X-Scf-Request-Id", "b-1")], b"");
    let (la, lb) = (a.logs(), b.logs());
    assert_eq!(
        summary(&la[1..]),
        [(Level::Info, Some("a-1"), "/a for a-1")]
    );
    assert_eq!(
        summary(&lb[1..]),
        [(Level::Info, Some("b-1"), "/b for b-1")]
    );
    // Without capture, the function's lines are not kept (and asking is a mistake).
    let quiet = TestServer::start(Chatty);
    assert_eq!(quiet.get("/").status, 200);
    let asked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| quiet.logs()));
    let message = asked.unwrap_err();
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("capture_logs"), "{message}");
}

#[test]
#[should_panic(expected = "the function's init failed: no price list")]
fn test_a_failing_init_fails_the_test_with_its_reason_when_capturing() {
    struct Broken;
    impl Function for Broken {
        fn init(&mut self) -> Result<(), Error> {
            scf_lean::error!("loading the price list");
            Err(Error::new("no price list"))
        }
    }
    let _ = TestServer::builder(Broken)
        .capture_logs(Level::Info)
        .start();
}
