//! The streaming bench's client (bench/stream.sh): for each server (`name=port`, interleaved,
//! A B A B…), `runs` fresh connections that each ask `GET /events?n=1&delay_ms=0` and time the
//! first `token` event from the connect (time to first event), then `rate_runs` streams
//! of `n` events with no delay, timed to the `done` event (events per second). Medians on
//! stdout, one JSON object per server. std only: `rustc -O streamprobe.rs`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn request(port: u16, n: u64) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = format!("GET /events?n={n}&delay_ms=0 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s
}

/// Reads until `needle` has come; the bytes read.
fn until(s: &mut TcpStream, needle: &[u8]) -> usize {
    let mut buf = vec![0u8; 1 << 16];
    let mut tail: Vec<u8> = Vec::new();
    let mut total = 0;
    loop {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "EOF before {:?}", String::from_utf8_lossy(needle));
        total += n;
        tail.extend_from_slice(&buf[..n]);
        if tail.windows(needle.len()).any(|w| w == needle) {
            return total;
        }
        let keep = tail.len().saturating_sub(needle.len());
        tail.drain(..keep);
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str, d: u64| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (runs, rate_runs, n) = (get("--runs", 200), get("--rate-runs", 5), get("--n", 100_000));
    let peers: Vec<(String, u16)> = args
        .iter()
        .filter_map(|a| a.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().expect("port")))
        .collect();
    let mut first: Vec<Vec<f64>> = vec![Vec::new(); peers.len()];
    let mut rate: Vec<Vec<f64>> = vec![Vec::new(); peers.len()];
    let mut bytes = vec![0usize; peers.len()];
    for r in 0..runs {
        for k in 0..peers.len() {
            let k = (k + r as usize) % peers.len();
            let t = Instant::now();
            let mut s = request(peers[k].1, 1);
            until(&mut s, b"event: token");
            first[k].push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    for r in 0..rate_runs {
        for k in 0..peers.len() {
            let k = (k + r as usize) % peers.len();
            let t = Instant::now();
            let mut s = request(peers[k].1, n);
            bytes[k] = until(&mut s, b"event: done");
            rate[k].push(n as f64 / t.elapsed().as_secs_f64());
        }
    }
    for (k, (name, _)) in peers.iter().enumerate() {
        let mut f = first[k].clone();
        let p90 = {
            f.sort_by(|a, b| a.partial_cmp(b).unwrap());
            f.get(f.len() * 9 / 10).copied().unwrap_or(0.0)
        };
        println!(
            "{{\"peer\":\"{name}\",\"first_event_p50_us\":{:.0},\"first_event_p90_us\":{:.0},\"events_per_s_p50\":{:.0},\"stream_bytes\":{},\"runs\":{runs},\"rate_runs\":{rate_runs},\"n\":{n}}}",
            median(&mut first[k]),
            p90,
            median(&mut rate[k]),
            bytes[k]
        );
    }
}
