//! A function that fails in every way a function can, to see (and test) what SCF's caller and
//! the logs get for each. Run it with `cargo run --example faults`, then:
//!
//! ```text
//! curl -s localhost:9000/error            # 500 {"errorCode":500,"errorMessage":"..."}
//! curl -s localhost:9000/custom           # 503 with errorCode -1
//! curl -s localhost:9000/panic            # 500 {"errorCode":500,"errorMessage":"the function panicked"}
//! curl -s localhost:9000/header           # 500: a header value with a line break is refused
//! curl -s -d '{"n":1}' localhost:9000/event-invoke   # {"n":2}
//! curl -s -d 'nope' localhost:9000/event-invoke      # 400: the event is not valid JSON
//! ```
//!
//! Every failure is logged on stderr with the request id (`X-Scf-Request-Id`).

use std::process::ExitCode;

use scf_lean::{Context, Error, Function, Request, Response};

struct Faults;

/// A typed event: `{"n": <integer>}`.
struct Event {
    n: i64,
}

impl Function for Faults {
    fn event<'a>(
        &mut self,
        event: &'a [u8],
        _ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        let v: serde_json::Value = scf_lean::from_json(event)?;
        let e = Event {
            n: v["n"]
                .as_i64()
                .ok_or_else(|| Error::bad_request("\"n\" must be an integer"))?,
        };
        out.json(&serde_json::json!({ "n": e.n + 1 }))
    }

    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        match req.path() {
            "/error" => Err(Error::new("something went wrong")),
            "/custom" => Err(Error::new("try later").with_status(503).with_code(-1)),
            "/panic" => panic!("the function hit a bug"),
            "/header" => {
                out.header("X-Bad", "a\r\nInjected: yes");
                Ok(())
            }
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

fn main() -> ExitCode {
    scf_lean::run(Faults)
}
