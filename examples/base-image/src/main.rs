//! An example function on scf-lean: a greeter that keeps a counter warm across invocations.
//!
//! - Event (`POST /event-invoke`): `{"name": "Ada"}` → `{"greeting": "hello, Ada",
//!   "invocations": 1, "request_id": "..."}`; a timer trigger is greeted as "timer".
//! - HTTP (`GET /hello?name=Ada`): the same greeting as JSON; other paths are a JSON 404.
//!
//! It is built exactly like scf-lean's own binary (static musl, non-PIE) and packaged with the
//! repository's `Dockerfile.musl` through `--build-arg BINARY=...`: see docs/IMAGE.md. Its
//! entry is `scf_lean::main!`, which skips std's runtime set-up, as the template's does.
#![cfg_attr(not(test), no_main)]

use scf_lean::{Context, Error, Function, Request, Response};
use serde_json::{Value, json};

/// State built once per instance and kept between invocations.
#[derive(Default)]
struct Greeter {
    invocations: u64,
}

impl Greeter {
    fn greet(&mut self, name: &str, request_id: Option<&str>) -> Value {
        self.invocations += 1;
        json!({
            "greeting": format!("hello, {name}"),
            "invocations": self.invocations,
            "request_id": request_id,
        })
    }
}

impl Function for Greeter {
    fn event<'a>(
        &mut self,
        event: &'a [u8],
        ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        let e: Value = scf_lean::from_json(event)?;
        let name = if ctx.is_timer() {
            "timer"
        } else {
            e["name"].as_str().unwrap_or("world")
        };
        out.json(&self.greet(name, ctx.request_id))
    }

    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        if req.path() != "/hello" {
            return Err(Error::not_found("try GET /hello?name=you"));
        }
        let name = req
            .query()
            .split('&')
            .find_map(|kv| kv.strip_prefix("name="))
            .filter(|n| !n.is_empty())
            .unwrap_or("world");
        out.json(&self.greet(name, req.context().request_id))
    }
}

scf_lean::main!(Greeter::default());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_event_greets_and_counts() {
        let ctx = Context {
            request_id: Some("r-1"),
            ..Context::default()
        };
        let mut g = Greeter::default();
        let mut out = Response::new();
        g.event(br#"{"name":"Ada"}"#, &ctx, &mut out).unwrap();
        let v: Value = serde_json::from_slice(out.body()).unwrap();
        assert_eq!(
            v,
            json!({"greeting": "hello, Ada", "invocations": 1, "request_id": "r-1"})
        );
    }

    #[test]
    fn test_http_hello_and_404() {
        let mut g = Greeter::default();
        let mut out = Response::new();
        let req = Request::new("GET", "/hello?name=Bo", &[], b"");
        g.http(&req, &mut out).unwrap();
        let v: Value = serde_json::from_slice(out.body()).unwrap();
        assert_eq!(v["greeting"], "hello, Bo");
        let req = Request::new("GET", "/nope", &[], b"");
        assert_eq!(g.http(&req, &mut out).unwrap_err().status(), 404);
    }
}
