//! Peer: hyper 1.x, HTTP/1.1 only, on tokio's current-thread runtime (one thread, like
//! scf-lean). Answers `POST /event-invoke` as scf-lean's echo (src/main.rs) does: the event checked to be
//! JSON (400 if not), echoed as received, with the context from the X-Scf-* headers.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn text<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn num(h: &HeaderMap, name: &str) -> Option<u64> {
    text(h, name).and_then(|v| v.parse().ok())
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    if parts.uri.path() != "/event-invoke" {
        return Ok(reply(StatusCode::NOT_FOUND, Bytes::from_static(b"{\"errorCode\":404}")));
    }
    let event = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, Bytes::new())),
    };
    if serde_json::from_slice::<serde::de::IgnoredAny>(&event).is_err() {
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            Bytes::from_static(b"{\"errorCode\":400,\"errorMessage\":\"the event is not valid JSON\"}"),
        ));
    }
    let h = &parts.headers;
    let ctx = serde_json::json!({
        "request_id": text(h, "x-scf-request-id"),
        "function_name": text(h, "x-scf-name"),
        "function_version": text(h, "x-scf-version"),
        "namespace": text(h, "x-scf-namespace"),
        "memory_limit_in_mb": num(h, "x-scf-memory"),
        "time_limit_in_ms": num(h, "x-scf-timeout"),
        "tencentcloud_region": text(h, "x-scf-region"),
        "tencentcloud_appid": text(h, "x-scf-appid"),
        "tencentcloud_uin": text(h, "x-scf-uin"),
    });
    let mut out = Vec::with_capacity(event.len() + 320);
    out.extend_from_slice(b"{\"event\":");
    out.extend_from_slice(&event);
    out.extend_from_slice(b",\"context\":");
    serde_json::to_writer(&mut out, &ctx).expect("serialize");
    out.push(b'}');
    Ok(reply(StatusCode::OK, Bytes::from(out)))
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    r
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(9000);
    let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .await
        .expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
