//! An API Gateway web handler with integration response: the gateway sends each HTTP request
//! as an event, and the function answers `{"isBase64Encoded","statusCode","headers","body"}`,
//! which the gateway turns back into HTTP. Build and run with the `events` feature:
//!
//! ```text
//! cargo run --features events --example apigw &
//! cargo run --example invoke -- events/apigw.json
//! # {"isBase64Encoded":false,"statusCode":200,"headers":{"Content-Type":"application/json"},"body":"{\"you sent\":{\"test\":\"body\"}}"}
//! ```
//!
//! Routes: `GET /hello?name=NAME` (text), `POST /test/value` (JSON echo of a JSON body),
//! `GET /pixel.gif` (binary, Base64), anything else a 404 — all as integration responses, so
//! the gateway never sees a shape it cannot parse (its 403 "Invalid scf response format").

use std::process::ExitCode;

use scf_lean::events::{ApiGatewayRequest, Event, IntegrationResponse};
use scf_lean::{Context, Error};

/// A 1×1 transparent GIF.
const PIXEL: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

fn route(
    req: ApiGatewayRequest<'_>,
    _ctx: &Context<'_>,
) -> Result<IntegrationResponse<'static>, Error> {
    let r = match (&*req.http_method, &*req.path) {
        ("GET", "/hello") => {
            let name = req.query("name").unwrap_or("world");
            IntegrationResponse::text(200, format!("hello {name}"))
        }
        ("POST", "/test/value") => {
            let body = req.body_bytes()?;
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(v) => IntegrationResponse::json(200, &serde_json::json!({ "you sent": v }))?,
                Err(e) => IntegrationResponse::text(400, format!("the body is not JSON: {e}")),
            }
        }
        ("GET", "/pixel.gif") => IntegrationResponse::binary(200, "image/gif", PIXEL)
            .header("Cache-Control", "max-age=86400"),
        _ => IntegrationResponse::text(404, "no such route"),
    };
    Ok(r)
}

fn main() -> ExitCode {
    scf_lean::run(ApiGatewayRequest::handler(route))
}

#[cfg(test)]
mod tests {
    use super::*;
    use scf_lean::events::parse;

    fn call(json: &str) -> IntegrationResponse<'static> {
        route(parse(json.as_bytes()).unwrap(), &Context::default()).unwrap()
    }

    #[test]
    fn test_routes() {
        let r = call(r#"{"httpMethod":"GET","path":"/hello","queryString":{"name":"ada"}}"#);
        assert_eq!((r.status_code, &*r.body), (200, "hello ada"));
        let r = call(r#"{"httpMethod":"GET","path":"/hello","queryString":{"name":true}}"#);
        assert_eq!(r.body, "hello world");
        let r = call(r#"{"httpMethod":"GET","path":"/pixel.gif"}"#);
        assert!(r.is_base64_encoded);
        assert_eq!(r.body_bytes().unwrap(), PIXEL);
        assert_eq!(r.headers["Content-Type"], "image/gif");
        let r = call(r#"{"httpMethod":"DELETE","path":"/x"}"#);
        assert_eq!(r.status_code, 404);
        let r = call(r#"{"httpMethod":"POST","path":"/test/value","body":"nope"}"#);
        assert_eq!(r.status_code, 400);
    }

    #[test]
    fn test_the_sample_through_the_function() {
        use scf_lean::{Function, Response};
        let mut f = ApiGatewayRequest::handler(route);
        let mut out = Response::new();
        f.event(
            include_bytes!("../events/apigw.json"),
            &Context::default(),
            &mut out,
        )
        .unwrap();
        let r: IntegrationResponse = serde_json::from_slice(out.body()).unwrap();
        assert_eq!(r.status_code, 200);
        assert_eq!(r.body, r#"{"you sent":{"test":"body"}}"#);
        assert_eq!(r.headers["Content-Type"], "application/json");
    }
}
