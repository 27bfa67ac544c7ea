//! A timer job: runs on a schedule (the trigger's cron), does its work within the time SCF
//! gives it, and answers what it did. Build and run with the `events` feature:
//!
//! ```text
//! cargo run --features events --example timer &
//! cargo run --example invoke -- events/timer.json
//! # {"done":3,"firedAt":"2019-02-21T11:49:00Z","left":0,"message":"user define msg body","trigger":"EveryDay"}
//! ```
//!
//! `TimerEvent::handler` parses the event (a 400 naming the bad field if it is not a timer
//! event) and serializes what the closure returns.

use std::process::ExitCode;

use scf_lean::Context;
use scf_lean::events::{Event, TimerEvent};
use serde_json::{Value, json};

/// The work to do on each run; a real job would page through a table or a bucket.
const BATCH: [&str; 3] = ["expire-sessions", "rotate-keys", "send-digest"];

/// One run: do as much of the batch as the time left allows (never start a step with less
/// than a second to go), and say what was done.
fn run_job(e: TimerEvent<'_>, ctx: &Context<'_>) -> Result<Value, scf_lean::Error> {
    let mut done = 0;
    for step in BATCH {
        if ctx.remaining().is_some_and(|left| left.as_millis() < 1000) {
            break;
        }
        // The work itself; here, a log line with the request id.
        eprintln!("[{}] {step}", ctx.request_id.unwrap_or("-"));
        done += 1;
    }
    Ok(json!({
        "trigger": e.trigger_name,
        "firedAt": e.time,
        "message": e.message,
        "done": done,
        "left": BATCH.len() - done,
    }))
}

fn main() -> ExitCode {
    scf_lean::run(TimerEvent::handler(run_job))
}

#[cfg(test)]
mod tests {
    use super::*;
    use scf_lean::{Function, Response};
    use std::time::{Duration, Instant};

    #[test]
    fn test_a_run_does_the_whole_batch() {
        let mut f = TimerEvent::handler(run_job);
        let ctx = Context {
            request_id: Some("r-1"),
            trigger_src: Some("timer"),
            deadline: Some(Instant::now() + Duration::from_secs(30)),
            ..Context::default()
        };
        let mut out = Response::new();
        f.event(include_bytes!("../events/timer.json"), &ctx, &mut out)
            .unwrap();
        let v: Value = serde_json::from_slice(out.body()).unwrap();
        assert_eq!(v["trigger"], "EveryDay");
        assert_eq!(v["done"], 3);
    }

    #[test]
    fn test_no_time_left_means_no_step_started() {
        let ctx = Context {
            deadline: Some(Instant::now()),
            ..Context::default()
        };
        let e: TimerEvent =
            scf_lean::events::parse(include_bytes!("../events/timer.json")).unwrap();
        let v = run_job(e, &ctx).unwrap();
        assert_eq!((v["done"].as_u64(), v["left"].as_u64()), (Some(0), Some(3)));
    }

    #[test]
    fn test_another_trigger_is_a_400() {
        let mut f = TimerEvent::handler(run_job);
        let mut out = Response::new();
        let e = f
            .event(
                include_bytes!("../events/cos.json"),
                &Context::default(),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.message().contains("missing field `Type`"), "{e}");
    }
}
