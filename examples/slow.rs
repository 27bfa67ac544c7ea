//! A function whose calls wait: `GET /wait?ms=N` blocks its thread for N ms (at most 10,000) —
//! `std::thread::sleep`, the stand-in for a blocking database query or HTTP call — and answers
//! `{"waited_ms":N}`.
//!
//! Made with `scf_lean::concurrent`, it runs up to `SCF_LEAN_CONCURRENCY` calls at once, each
//! on a worker thread with its own clone of the function; the server's loop goes on reading
//! and writing meanwhile. With the default (1), calls run one after another on the loop:
//!
//! ```text
//! SCF_LEAN_CONCURRENCY=32 cargo run --release --example slow
//! curl 'localhost:9000/wait?ms=50'   # {"waited_ms":50}
//! ```
//!
//! `bench/concurrency.sh` runs it with 32 clients beside hyper on tokio (`spawn_blocking`).

use std::time::Duration;

use scf_lean::{Error, Request, Response};

/// The longest wait asked for.
const MAX_MS: u64 = 10_000;

fn http<'a>(req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
    match (req.method(), req.path()) {
        ("GET", "/wait") => {
            let ms: u64 = match req.query_param("ms") {
                Some(v) => v
                    .parse()
                    .map_err(|_| Error::bad_request("ms is a number of milliseconds"))?,
                None => 0,
            };
            let ms = ms.min(MAX_MS);
            std::thread::sleep(Duration::from_millis(ms));
            scf_lean::debug!("waited {ms} ms");
            let mut n = itoa::Buffer::new();
            let body = out.body_mut();
            body.extend_from_slice(b"{\"waited_ms\":");
            body.extend_from_slice(n.format(ms).as_bytes());
            body.push(b'}');
            out.content_type("application/json");
            Ok(())
        }
        _ => Err(Error::not_found("GET /wait?ms=N")),
    }
}

/// The function, for the tests as for `main!`.
pub fn function() -> impl scf_lean::Function {
    scf_lean::concurrent(scf_lean::http_fn(http))
}

scf_lean::main!(function());

#[cfg(test)]
mod tests {
    use super::*;
    use scf_lean::testing::TestServer;
    use scf_lean::{Config, Level};
    use std::time::Instant;

    #[test]
    fn waits_and_says_so() {
        let s = TestServer::start(function());
        let r = s.get("/wait?ms=5");
        assert_eq!((r.status, r.text()), (200, r#"{"waited_ms":5}"#.to_owned()));
        assert_eq!(s.get("/wait?ms=x").status, 400);
        assert_eq!(s.get("/nope").status, 404);
    }

    /// Eight calls of 300 ms at once with 8 workers take one wait, not eight: each call's wait
    /// starts before any other ends (the first ends 300 ms after it began, the last began
    /// before that).
    #[test]
    fn calls_wait_side_by_side_on_workers() {
        let config = Config {
            log_level: Level::Off,
            concurrency: 8,
            ..Config::default()
        };
        let s = std::sync::Arc::new(TestServer::with_config(config, function()));
        let started = Instant::now();
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let r = s.get("/wait?ms=300");
                    assert_eq!(r.status, 200);
                    started.elapsed()
                })
            })
            .collect();
        let took: Vec<Duration> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        let last = took.iter().max().unwrap();
        // One after another they would take 2.4 s at least.
        assert!(*last < Duration::from_millis(2400), "{took:?}");
    }
}
