//! Cold-start probe: exec → first complete response, for one or more server binaries.
//!
//! Build (std only, no Cargo): `rustc -O --edition 2021 bench/probe.rs -o /tmp/probe`
//! Run:   `/tmp/probe [-n RUNS] NAME=BINARY [NAME=BINARY ...]`
//!
//! Each run: take a free port, start the binary with `PORT=<port>` and `SCF_LEAN_LOG_LEVEL=off`,
//! retry `connect` to 127.0.0.1:<port> until it succeeds, send one `POST /event-invoke` with a
//! ~1 KB JSON event and the X-Scf-* headers, read the whole response (by Content-Length), check
//! it is a 200 carrying the request id, then SIGKILL and reap the process. The clock runs from
//! just before `spawn` to the last byte of the response. Runs are interleaved between binaries
//! (run i of every binary before run i+1 of any), so drift in the machine hits them all alike.
//! Prints one markdown row per binary: median, p10, p90, min (µs) and the file size.
//!
//! The connect loop yields the CPU between attempts: the server may have been placed on the
//! probe's CPU, and a bare spin would keep it off until the scheduler tick (4 ms at HZ=250).
//! Pinning the probe and the server to different CPUs was tried too: it adds ~60 µs of
//! cross-CPU wake-ups to every run and changes no ranking.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn event_body() -> String {
    // A ~1 KB event shaped like an API Gateway trigger.
    let mut body = String::from(
        r#"{"requestContext":{"serviceId":"service-f94sy04v","path":"/test/{path}","httpMethod":"POST","requestId":"c6af9ac6-7b61-11e6-9a41-93e8deadbeef","identity":{"secretId":"abdcdxxxxxxxsdfs"},"sourceIp":"10.0.2.14","stage":"release"},"headers":{"accept-Language":"en-US,en,cn","accept":"text/html,application/xml,application/json","host":"service-3ei3tii4-251000691.ap-guangzhou.apigateway.myqloud.com","user-agent":"User Agent String"},"body":"{\"test\":\"body\"}","pathParameters":{"path":"value"},"queryStringParameters":{"foo":"bar"},"headerParameters":{"Refer":"10.0.22.222"},"stageVariables":{"stage":"release"},"path":"/test/value","queryString":{"foo":"bar","bob":"alice"},"httpMethod":"POST","pad":""#,
    );
    while body.len() < 1022 {
        body.push('x');
    }
    body.push_str("\"}");
    body
}

fn request(body: &str) -> Vec<u8> {
    let mut r = String::new();
    r.push_str("POST /event-invoke HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    r.push_str("Content-Type: application/json\r\n");
    r.push_str("X-Scf-Request-Id: probe-0001\r\nX-Scf-Memory: 128\r\nX-Scf-Timeout: 3000\r\n");
    r.push_str("X-Scf-Version: $LATEST\r\nX-Scf-Name: probe\r\nX-Scf-Namespace: default\r\n");
    r.push_str(
        "X-Scf-Region: ap-guangzhou\r\nX-Scf-Appid: 1250000000\r\nX-Scf-Uin: 100000000001\r\n",
    );
    r.push_str("Content-Length: ");
    r.push_str(&body.len().to_string());
    r.push_str("\r\n\r\n");
    r.push_str(body);
    r.into_bytes()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Reads one response; returns (status line ok, whole response).
fn read_response(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).expect("read response");
        assert!(n > 0, "connection closed before the response was complete");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().expect("content-length"))
                .expect("a Content-Length");
            if buf.len() >= end + 4 + len {
                return buf;
            }
        }
    }
}

fn one_run(bin: &str, req: &[u8]) -> Duration {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .env("PORT", port.to_string())
        .env("SCF_LEAN_LOG_LEVEL", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let mut s = loop {
        match TcpStream::connect(&addr) {
            Ok(s) => break s,
            Err(_) => {
                if t0.elapsed() > Duration::from_secs(5) {
                    let _ = child.kill();
                    panic!("{bin}: not listening after 5 s");
                }
                // Not a bare spin: the server may have been started on this CPU.
                std::thread::yield_now();
            }
        }
    };
    let _ = s.set_nodelay(true);
    s.write_all(req).expect("send request");
    let resp = read_response(&mut s);
    let elapsed = t0.elapsed();
    assert!(resp.starts_with(b"HTTP/1.1 200"), "{bin}: not a 200");
    assert!(
        resp.windows(10).any(|w| w == b"probe-0001"),
        "{bin}: no request id in the echo"
    );
    drop(s);
    child.kill().expect("kill");
    child.wait().expect("wait");
    elapsed
}

fn pct(sorted: &[u128], p: usize) -> u128 {
    sorted[(sorted.len() - 1) * p / 100]
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut runs = 100;
    if args.first().map(String::as_str) == Some("-n") {
        runs = args[1].parse().expect("-n RUNS");
        args.drain(..2);
    }
    let bins: Vec<(String, String)> = args
        .iter()
        .map(|a| match a.split_once('=') {
            Some((n, b)) => (n.to_owned(), b.to_owned()),
            None => (a.clone(), a.clone()),
        })
        .collect();
    assert!(!bins.is_empty(), "usage: probe [-n RUNS] NAME=BINARY ...");
    let req = request(&event_body());
    eprintln!("probe: {runs} runs per binary, interleaved");
    // Warm the page cache and the probe's own code paths once per binary.
    for (_, b) in &bins {
        one_run(b, &req);
    }
    let mut times: Vec<Vec<u128>> = vec![Vec::with_capacity(runs); bins.len()];
    for _ in 0..runs {
        for (i, (_, b)) in bins.iter().enumerate() {
            times[i].push(one_run(b, &req).as_micros());
        }
    }
    println!("| variant | size (bytes) | exec→response median µs | p10 | p90 | min |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (i, (name, b)) in bins.iter().enumerate() {
        let t = &mut times[i];
        t.sort_unstable();
        let size = std::fs::metadata(b).map(|m| m.len()).unwrap_or(0);
        println!(
            "| {name} | {size} | {} | {} | {} | {} |",
            pct(t, 50),
            pct(t, 10),
            pct(t, 90),
            t[0]
        );
    }
}
