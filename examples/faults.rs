//! A function that fails in every way a function can, to see (and test) what SCF's caller and
//! the logs get for each. Run it with `cargo run --example faults`, then:
//!
//! ```text
//! curl -s localhost:9000/error            # 500 {"errorCode":500,"errorMessage":"..."}
//! curl -si localhost:9000/custom          # 503 with errorCode -1 and Retry-After: 5
//! curl -si localhost:9000/private         # 401 with WWW-Authenticate (logged at WARN)
//! curl -s localhost:9000/log              # ok, after a line at each level (with the id)
//! curl -s localhost:9000/panic            # 500 {"errorCode":500,"errorMessage":"the function panicked"}
//! curl -s localhost:9000/panic-noisy-drop # 500 too; its payload logs a line as it is dropped
//! curl -s localhost:9000/sleep            # "slept" after 3 s, the loop held meanwhile
//! curl -s localhost:9000/header           # 500: a header value with a line break is refused
//! curl -s localhost:9000/stream-fail      # a stream cut off by an error: no last chunk (curl
//!                                         # says so), the access line at ERROR says why
//! curl -s -d '{"n":1}' localhost:9000/event-invoke   # {"n":2}
//! curl -s -d 'nope' localhost:9000/event-invoke      # 400: the event is not valid JSON
//! curl -s -d '{"n":9223372036854775807}' localhost:9000/event-invoke   # 400: n + 1 overflows
//! curl -s -d '{"panic":true}' localhost:9000/event-invoke              # 500: a panic
//! curl -s localhost:9000/overflow         # the stack overflows: a line on stderr, the process
//!                                         # ends (SIGSEGV), SCF starts a new instance
//! ```
//!
//! `FAULTS_INIT=fail cargo run --example faults` shows an initialization that fails: one line on
//! stderr, exit code 1, no invocation served.
//!
//! Every failure is logged with the request id (`X-Scf-Request-Id`): a 5xx or a panic at ERROR
//! on stderr, a 4xx at WARN on stdout.

use scf_lean::{Context, Error, Function, Request, Response};

struct Faults;

/// Built once, before the server starts: a line logged here has no request id.
fn function() -> Faults {
    scf_lean::info!("faults: ready to fail");
    Faults
}

/// A typed event: `{"n": <integer>}`.
struct Event {
    n: i64,
}

impl Function for Faults {
    /// Once, before the first invocation. `FAULTS_INIT=fail` or `panic` makes it fail (the
    /// process logs why and exits 1); `wait` waits for a line on stdin, or its end (requests
    /// wait in the queue meanwhile: a test holds the init open that way).
    fn init(&mut self) -> Result<(), Error> {
        match std::env::var("FAULTS_INIT").as_deref() {
            Ok("fail") => return Err(Error::new("the database is unreachable")),
            Ok("panic") => panic!("init hit a bug"),
            Ok("wait") => {
                let _ = std::io::stdin().read_line(&mut String::new());
            }
            _ => {}
        }
        scf_lean::info!("faults: initialized");
        Ok(())
    }

    fn event<'a>(
        &mut self,
        event: &'a [u8],
        _ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        let v: serde_json::Value = scf_lean::from_json(event)?;
        if v["panic"] == true {
            panic!("the job hit a bug");
        }
        let e = Event {
            n: v["n"]
                .as_i64()
                .ok_or_else(|| Error::bad_request("\"n\" must be an integer"))?,
        };
        let n =
            e.n.checked_add(1)
                .ok_or_else(|| Error::bad_request("\"n\" + 1 does not fit a 64-bit integer"))?;
        out.json(&serde_json::json!({ "n": n }))
    }

    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        match req.path() {
            "/error" => Err(Error::new("something went wrong")),
            "/custom" => Err(Error::new("try later")
                .with_status(503)
                .with_code(-1)
                .with_header("Retry-After", "5")),
            "/private" => Err(Error::new("sign in first")
                .with_status(401)
                .with_header("WWW-Authenticate", "Bearer realm=\"faults\"")),
            "/bad-error-header" => Err(Error::bad_request("x").with_header("Content-Length", "1")),
            "/log" => {
                scf_lean::debug!("debug from {}", req.path());
                scf_lean::info!("info from {}", req.path());
                scf_lean::warn!("warn from {}", req.path());
                scf_lean::error!("error from {}", req.path());
                out.set_body_static(b"logged");
                Ok(())
            }
            "/panic" => panic!("the function hit a bug"),
            // A panic whose payload logs when it is dropped: after the call, on the loop's
            // thread, a line outside any invocation (no request id).
            "/panic-noisy-drop" => std::panic::panic_any(LogsWhenDropped),
            // A call that holds the loop for 3 s (a SIGTERM meanwhile waits for the grace
            // period's end).
            "/sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3));
                out.set_body_static(b"slept");
                Ok(())
            }
            "/header" => {
                out.header("X-Bad", "a\r\nInjected: yes");
                Ok(())
            }
            "/stream-fail" => out.stream(|body| {
                body.send(b"the first half, ")?;
                Err(Error::new("the source failed halfway"))
            }),
            "/overflow" => out.json(&deep(1)),
            "/parse" => {
                let n: u8 = "300".parse()?;
                out.json(&n)
            }
            _ => {
                out.set_body_static(b"ok");
                Ok(())
            }
        }
    }
}

/// A value that logs a line of 8,000 bytes (more than a pipe's page) when dropped.
struct LogsWhenDropped;

impl Drop for LogsWhenDropped {
    fn drop(&mut self) {
        scf_lean::info!("dropped: {}", "x".repeat(8000));
    }
}

/// Recursion that ends only at `u64::MAX` frames: each keeps a buffer, so the stack overflows
/// long before.
fn deep(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 64]);
    if n == u64::MAX {
        return 0;
    }
    deep(n + 1).wrapping_add(frame[7])
}

scf_lean::main!(function());
