//! Peer for bench/stream.sh: hyper on tokio's current-thread runtime, streaming the events of
//! scf-lean's `examples/sse.rs` at `GET /events?n=N&delay_ms=D` (`retry:`, N `token` events with
//! their number as `id:`, a `done` event), each event one body frame, sent as it is made.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const WORDS: [&str; 12] = [
    "Streaming ",
    "is ",
    "what ",
    "users ",
    "of ",
    "peer ",
    "runtimes ",
    "ask ",
    "for ",
    "most",
    ". ",
    "\n",
];

/// The event stream: one frame per event, the next one after `delay`.
struct Events {
    i: u64,
    n: u64,
    delay: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

fn token(i: u64) -> String {
    let word = WORDS[i as usize % WORDS.len()];
    let mut s = format!("event: token\nid: {i}\n");
    for line in word.split('\n') {
        s.push_str("data: ");
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    s
}

impl Body for Events {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.i > this.n + 1 {
            return Poll::Ready(None);
        }
        if this.i == 0 {
            this.i = 1;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                b"retry: 3000\n\n",
            )))));
        }
        if this.i <= this.n && !this.delay.is_zero() {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(this.delay)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        let k = this.i - 1;
        this.i += 1;
        let s = if k < this.n {
            token(k)
        } else {
            format!("event: done\ndata: {}\n\n", this.n)
        };
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(s)))))
    }
}

use std::future::Future;

async fn handle(req: Request<Incoming>) -> Result<Response<Events>, Infallible> {
    let q = req.uri().query().unwrap_or("");
    let num = |name: &str, default: u64| {
        q.split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let body = Events {
        i: 0,
        n: num("n", 20),
        delay: Duration::from_millis(num("delay_ms", 50)),
        sleep: None,
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert("content-type", "text/event-stream".parse().unwrap());
    h.insert("cache-control", "no-cache".parse().unwrap());
    Ok(r)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9000);
    let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .await
        .expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
