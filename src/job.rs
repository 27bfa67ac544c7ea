//! Job functions: SCF's second image type. No port: the event is in the environment variable
//! `SCF_CUSTOM_CONTAINER_EVENT` (at most 128 KB), the process runs the event handler once and
//! its exit code is the result; SCF releases the instance when it exits.
//!
//! The same binary serves both types: [`run`] is chosen at start when the variable is set.
//!
//! | outcome | stdout | stderr | exit |
//! |---|---|---|---|
//! | the function answers | the function's log lines, then the answer's body and a newline | | 0 |
//! | it returns an error | its log lines | `ERROR [-] function error: 400: …` | 1 |
//! | it panics, or its answer is invalid | its log lines | `ERROR [-] function panicked: …` | 1 |
//! | its [`Function::init`] fails | its log lines | `ERROR [-] init failed: …` | 1 |
//! | the event is empty or not JSON | | `<name>: bad event: SCF_CUSTOM_CONTAINER_EVENT is …` | 2 |
//! | the answer cannot reach stdout (a broken pipe, or stdout closed at start) | | `ERROR [-] the answer could not be written to stdout: …` | 1 |
//!
//! A stdout closed at start is reopened on `/dev/null` (by std's runtime, or by `main!`) so
//! that no later descriptor takes its number; an answer written there would reach nobody, so
//! the job says so and exits 1.
//!
//! The exit code follows `Ok` or `Err`: an answer whose status the function set to 500 with
//! `Ok` still exits 0 (return the `Err`). A bad setting also exits 2, as when serving.
//!
//! The function's lines (`scf_lean::info!`…) go through the server's log as in an invocation,
//! without a request id; the context is what the environment gives (`platform::JobEnv`).

use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use crate::config::Config;
use crate::error::Error;
use crate::log::{Level, Log};
use crate::platform::{self, JOB_EVENT};
use crate::version::Identity;
use crate::{Function, Response, panic_hook, scope};

/// How long the log may take to drain into stdout and stderr at the end.
const DRAIN: Duration = Duration::from_secs(2);

/// Runs `f` once on `event`; the process exit code. Out of line: a web function's start does
/// not carry its code (src/hot-text.ld).
#[cold]
#[inline(never)]
pub(crate) fn run<F: Function>(
    mut f: F,
    config: &Config,
    identity: Option<&Identity>,
    event: &[u8],
) -> u8 {
    if let Err(why) = check(event) {
        return crate::log::fail(identity, "bad event", &why, 2);
    }
    panic_hook::install();
    crate::logger::set_settings(config);
    let mut log = Log::new(config.log_level, config.log_format);
    let job = platform::JobEnv::read();
    let ctx = job.context();
    if let Err(why) = crate::invoke::init(&mut f, &mut log) {
        log.line(Level::Error, None, &why);
        log.drain(DRAIN);
        return 1;
    }
    let mut out = Response::new();
    let result = scope::call(&mut log, None, || {
        panic::catch_unwind(AssertUnwindSafe(|| f.event(event, &ctx, &mut out)))
    });
    let failure = crate::invoke::job_failure(result, &out);
    if let Some(line) = &failure {
        log.line(Level::Error, None, line);
    }
    log.drain(DRAIN);
    if failure.is_some() {
        return 1;
    }
    let mut answer = out.body().to_vec();
    answer.push(b'\n');
    // The answer is the job's result: not delivered, not done.
    let written = if crate::sys::reopened_on_dev_null(1) {
        Err("stdout was closed when the process started".to_owned())
    } else {
        crate::sys::write_all(1, &answer).map_err(|e| e.to_string())
    };
    if let Err(why) = written {
        let line = format!("the answer could not be written to stdout: {why}");
        log.line(Level::Error, None, &line);
        log.drain(DRAIN);
        return 1;
    }
    0
}

/// Why an event cannot be run: empty, or not JSON.
fn check(event: &[u8]) -> Result<(), String> {
    if event.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("{JOB_EVENT} is empty"));
    }
    crate::error::parse_json::<serde::de::IgnoredAny>(JOB_EVENT, event)
        .map(drop)
        .map_err(|e: Error| e.message().to_owned())
}
