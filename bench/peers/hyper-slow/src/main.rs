//! Peer for bench/concurrency.sh: hyper 1.x, HTTP/1.1 only, on tokio's current-thread runtime
//! (one reactor thread). `GET /wait?ms=N` sleeps N ms (at most 10,000) with
//! `std::thread::sleep` on tokio's blocking pool (`spawn_blocking`, up to 512 threads), the
//! stand-in for a blocking database call, and answers `200 {"waited_ms":N}`; any other request
//! 404. `PORT` (default 9000).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The longest wait asked for, in ms.
const MAX_MS: u64 = 10_000;

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET || req.uri().path() != "/wait" {
        return Ok(reply(StatusCode::NOT_FOUND, Bytes::from_static(b"{\"errorCode\":404}")));
    }
    let ms = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == "ms")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .unwrap_or(0)
        .min(MAX_MS);
    let waited = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    })
    .await;
    Ok(match waited {
        Ok(ms) => reply(StatusCode::OK, Bytes::from(format!("{{\"waited_ms\":{ms}}}"))),
        Err(_) => reply(StatusCode::INTERNAL_SERVER_ERROR, Bytes::from_static(b"{\"errorCode\":500}")),
    })
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
