//! Server-Sent Events: a function that streams simulated tokens, as an LLM's answer would come,
//! and the page that shows them. Run it with `cargo run --example sse`, then open
//! <http://localhost:9000/>, or:
//!
//! ```text
//! curl -N localhost:9000/events?n=5&delay_ms=200   # the events as they are written
//! ```
//!
//! `GET /events` answers `text/event-stream`: a `retry:`, then one `token` event per token (its
//! number as the `id:`), a heartbeat comment whenever a token takes longer than `HEARTBEAT`,
//! and a `done` event with the count. `n` (default 20, at most 1,000,000) and `delay_ms`
//! (default 50, at most 10,000) shape it. The page (`GET /`) opens an `EventSource` on it and lists what
//! arrives. The events are sent by a producer on a stream thread of its own, so the server
//! answers other requests meanwhile; if the client goes away, `send` fails and it stops.

use std::time::{Duration, Instant};

use scf_lean::{Error, Request, Response};

/// A comment goes out when no token did for this long, so that proxies keep the stream open.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// The words the tokens cycle through.
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

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>scf-lean SSE</title>
<style>body{font:16px system-ui;margin:2em}#text{white-space:pre-wrap;border:1px solid #ccc;padding:1em;min-height:4em}</style>
</head><body>
<h1>Server-Sent Events from scf-lean</h1>
<p id="status">connecting…</p>
<div id="text"></div>
<ol id="events"></ol>
<script>
const status = document.getElementById("status");
const list = document.getElementById("events");
const text = document.getElementById("text");
const source = new EventSource("/events" + location.search);
let n = 0;
source.onopen = () => { status.textContent = "open"; };
source.addEventListener("token", e => {
  n += 1;
  text.textContent += e.data;
  const li = document.createElement("li");
  li.textContent = "id " + e.lastEventId + ": " + JSON.stringify(e.data);
  list.appendChild(li);
});
source.addEventListener("done", e => {
  status.textContent = "done: " + n + " tokens, server sent " + e.data;
  status.setAttribute("data-done", n);
  source.close();
});
source.onerror = () => { if (!status.hasAttribute("data-done")) status.textContent = "error"; };
</script>
</body></html>
"#;

fn sse<'a>(req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
    let number = |name, default: u64, max: u64| {
        req.query_param(name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
            .min(max)
    };
    let n = number("n", 20, 1_000_000);
    let delay = Duration::from_millis(number("delay_ms", 50, 10_000));
    // The producer owns what it uses (n, delay) and runs on a stream thread of its own, while
    // the server goes on serving other requests.
    out.sse(move |events| {
        events.retry(3000)?;
        for i in 0..n {
            // Waiting for the next token (a model, a queue…): heartbeats meanwhile.
            let ready = Instant::now() + delay;
            loop {
                let left = ready.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(HEARTBEAT));
                events.heartbeat(HEARTBEAT)?;
            }
            let word = WORDS[i as usize % WORDS.len()];
            events.event(Some("token"), Some(itoa::Buffer::new().format(i)), word)?;
        }
        events.event(Some("done"), None, itoa::Buffer::new().format(n))?;
        scf_lean::info!("streamed {n} tokens");
        Ok(())
    })
}

fn http<'a>(req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
    match (req.method(), req.path()) {
        ("GET", "/events") => sse(req, out),
        ("GET", "/") => {
            out.content_type("text/html; charset=utf-8");
            out.set_body_static(PAGE.as_bytes());
            Ok(())
        }
        _ => Err(Error::not_found("GET / or GET /events")),
    }
}

/// The function, for the tests as for `main!`.
pub fn function() -> impl scf_lean::Function {
    scf_lean::http_fn(http)
}

scf_lean::main!(function());

#[cfg(test)]
mod tests {
    use super::*;
    use scf_lean::testing::TestServer;

    #[test]
    fn the_page_and_a_short_stream() {
        let s = TestServer::start(function());
        let page = s.get("/");
        assert_eq!(page.status, 200);
        assert!(page.text().contains("new EventSource"));
        let r = s.get("/events?n=3&delay_ms=0");
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        assert_eq!(
            r.text(),
            "retry: 3000\n\nevent: token\nid: 0\ndata: Streaming \n\n\
             event: token\nid: 1\ndata: is \n\nevent: token\nid: 2\ndata: what \n\n\
             event: done\ndata: 3\n\n"
        );
    }
}
