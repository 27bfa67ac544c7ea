//! Cold-start probe for bench/run.sh: spawn → listening → first complete response, for servers
//! and for container images. Derived from bench/probe.rs (same connect loop, same framing by
//! Content-Length); what it adds: the spawn→listening split, percentiles up to p99, a COS event
//! with every X-Scf-* header, CPU pinning, raw JSON output, a one-shot mode for hyperfine and a
//! container mode.
//!
//! Build (std only, no Cargo; static so that hyperfine's `--once` runs cost little to exec):
//!   rustc -O --edition 2021 --target x86_64-unknown-linux-musl -C target-feature=+crt-static \
//!     bench/cold/coldprobe.rs -o /tmp/coldprobe
//!
//! Modes:
//!   coldprobe [-n RUNS] [--pin SRV,PROBE] [--json FILE] NAME=CMD ...
//!       RUNS runs of every server (CMD: a program and its arguments, split on spaces),
//!       interleaved (A B C, B C A, C A B, ...: each round starts one target later), after one
//!       warm-up run each. Prints a markdown table, writes every measurement to FILE.
//!   coldprobe --once [--pin SRV,PROBE] CMD
//!       One run, silent, exit 0 on a good answer: `hyperfine -N 'coldprobe --once BIN'`.
//!   coldprobe --container [-n RUNS] [--json FILE] NAME=IMAGE ...
//!       For each run: `podman rmi` the image (untimed), then time `podman pull` + `podman run
//!       -d` (runc, SCF's ulimits, -p 127.0.0.1:PORT:9000) to the first complete response;
//!       `podman rm -f` (untimed). Interleaved like the process mode.
//!
//! Every run sends one `POST /event-invoke` carrying the COS event of bench/cold/cos-event.json
//! (or --event FILE) and every X-Scf-* header SCF sends (credentials included), reads the whole
//! response, and checks it is a 200 that echoes the request id.
//!
//! Pinning (--pin 0,1, the default in run.sh): the server runs on CPU SRV and the probe on CPU
//! PROBE, so that the two never queue behind each other. The probe moves itself to SRV just
//! before `spawn` (the child inherits the mask; std keeps using posix_spawn, no fork) and back
//! to PROBE right after. --pin none leaves scheduling alone (bench/probe.rs's choice: there the
//! connect loop yields so that a server placed on the probe's CPU can run).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

extern "C" {
    fn sched_setaffinity(pid: i32, cpusetsize: usize, mask: *const u64) -> i32;
}

fn pin_self(cpu: Option<usize>) {
    if let Some(c) = cpu {
        let mask: [u64; 16] = {
            let mut m = [0u64; 16];
            m[c / 64] |= 1 << (c % 64);
            m
        };
        // SAFETY: a valid mask of 1024 bits for the calling thread.
        let r = unsafe { sched_setaffinity(0, std::mem::size_of_val(&mask), mask.as_ptr()) };
        assert!(r == 0, "sched_setaffinity({c}) failed");
    }
}

const REQUEST_ID: &str = "cold-0001";

fn request(body: &[u8]) -> Vec<u8> {
    let mut r = String::new();
    r.push_str("POST /event-invoke HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n");
    r.push_str("Content-Type: application/json\r\n");
    r.push_str("X-Scf-Request-Id: ");
    r.push_str(REQUEST_ID);
    r.push_str("\r\nX-Scf-Memory: 128\r\nX-Scf-Timeout: 3000\r\n");
    r.push_str("X-Scf-Version: $LATEST\r\nX-Scf-Name: cos-handler\r\nX-Scf-Namespace: default\r\n");
    r.push_str("X-Scf-Region: ap-chengdu\r\nX-Scf-Appid: 1253970026\r\nX-Scf-Uin: 100000000001\r\n");
    r.push_str("X-Scf-Secret-Id: AKIDbenchbenchbenchbenchbenchbench\r\n");
    r.push_str("X-Scf-Secret-Key: benchbenchbenchbenchbenchbenchbe\r\n");
    r.push_str("X-Scf-Session-Token: benchtokenbenchtokenbenchtokenbenchtokenbenchtoken\r\n");
    r.push_str("Content-Length: ");
    r.push_str(&body.len().to_string());
    r.push_str("\r\n\r\n");
    let mut v = r.into_bytes();
    v.extend_from_slice(body);
    v
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Reads one response, framed by Content-Length.
fn read_response(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("closed before the response was complete"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| std::io::Error::other("no Content-Length"))?;
            if buf.len() >= end + 4 + len {
                return Ok(buf);
            }
        }
    }
}

fn check(what: &str, resp: &[u8]) {
    assert!(
        resp.starts_with(b"HTTP/1.1 200"),
        "{what}: not a 200: {}",
        String::from_utf8_lossy(&resp[..resp.len().min(200)])
    );
    assert!(
        resp.windows(REQUEST_ID.len()).any(|w| w == REQUEST_ID.as_bytes()),
        "{what}: no request id in the echo"
    );
}

struct Pin {
    server: Option<usize>,
    probe: Option<usize>,
}

/// One cold start: (spawn→listening, spawn→response), in µs.
fn one_run(cmd: &[String], req: &[u8], pin: &Pin) -> (f64, f64) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    pin_self(pin.server);
    let t0 = Instant::now();
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .env("PORT", port.to_string())
        .env("SCF_LEAN_LOG_LEVEL", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", cmd[0]));
    pin_self(pin.probe);
    let mut s = loop {
        match TcpStream::connect(&addr) {
            Ok(s) => break s,
            Err(_) => {
                if t0.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                    panic!("{}: not listening after 10 s", cmd.join(" "));
                }
                std::thread::yield_now();
            }
        }
    };
    let listening = t0.elapsed();
    let _ = s.set_nodelay(true);
    s.write_all(req).expect("send request");
    let resp = read_response(&mut s).expect("read response");
    let answered = t0.elapsed();
    check(&cmd.join(" "), &resp);
    drop(s);
    child.kill().expect("kill");
    child.wait().expect("wait");
    (us(listening), us(answered))
}

fn us(d: Duration) -> f64 {
    (d.as_nanos() as f64 / 100.0).round() / 10.0
}

fn podman(args: &[&str]) -> std::process::Output {
    let out = Command::new("podman")
        .args(["--runtime", "runc"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("podman");
    out
}

fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// One container cold start: (pull, run returned, first response), µs from before the pull.
fn one_container(image: &str, req: &[u8]) -> (f64, f64, f64) {
    // Gone locally, so the pull downloads and unpacks every layer.
    let _ = podman(&["rmi", "-f", image]);
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:9000");
    let t0 = Instant::now();
    podman_ok(&["pull", "-q", "--tls-verify=false", image]);
    let pulled = t0.elapsed();
    let id = podman_ok(&[
        "run", "-d", "--read-only", "--tmpfs", "/tmp", "--ulimit", "nofile=1024:1024",
        "--ulimit", "nproc=1024:1024", "-p", &publish, image,
    ]);
    let started = t0.elapsed();
    // The port is forwarded before the process listens: a connection may be taken and then
    // dropped, so the whole exchange is retried until it completes.
    let resp = loop {
        let attempt = TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(req)?;
            read_response(&mut s)
        });
        match attempt {
            Ok(r) => break r,
            Err(_) if t0.elapsed() < Duration::from_secs(120) => {
                std::thread::sleep(Duration::from_micros(200))
            }
            Err(e) => panic!("{image}: no answer after 120 s: {e}"),
        }
    };
    let answered = t0.elapsed();
    check(image, &resp);
    let _ = podman(&["rm", "-f", "-t", "0", &id]);
    (us(pulled), us(started), us(answered))
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn json_array(v: &[f64]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
    format!("[{}]", items.join(","))
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn parse_pin(s: &str) -> Pin {
    if s == "none" {
        return Pin { server: None, probe: None };
    }
    let (a, b) = s.split_once(',').expect("--pin SRV,PROBE");
    Pin {
        server: Some(a.parse().expect("cpu")),
        probe: Some(b.parse().expect("cpu")),
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut runs = 200;
    let mut pin = Pin { server: None, probe: None };
    let mut pin_text = "none".to_owned();
    let mut json: Option<String> = None;
    let mut event = "bench/cold/cos-event.json".to_owned();
    let mut once = false;
    let mut container = false;
    while let Some(a) = args.first().cloned() {
        match a.as_str() {
            "-n" => runs = args[1].parse().expect("-n RUNS"),
            "--pin" => {
                pin = parse_pin(&args[1]);
                pin_text = args[1].clone();
            }
            "--json" => json = Some(args[1].clone()),
            "--event" => event = args[1].clone(),
            "--once" => {
                once = true;
                args.remove(0);
                continue;
            }
            "--container" => {
                container = true;
                args.remove(0);
                continue;
            }
            _ => break,
        }
        args.drain(..2);
    }
    let body = std::fs::read(&event).unwrap_or_else(|e| panic!("{event}: {e}"));
    let req = request(&body);
    if once {
        let cmd: Vec<String> = args.join(" ").split_whitespace().map(str::to_owned).collect();
        assert!(!cmd.is_empty(), "usage: coldprobe --once CMD");
        one_run(&cmd, &req, &pin);
        return;
    }
    let targets: Vec<(String, String)> = args
        .iter()
        .map(|a| match a.split_once('=') {
            Some((n, c)) => (n.to_owned(), c.to_owned()),
            None => (a.clone(), a.clone()),
        })
        .collect();
    assert!(!targets.is_empty(), "usage: coldprobe [-n RUNS] NAME=CMD ...");
    let mode = if container { "container" } else { "process" };
    eprintln!("coldprobe: {mode}, {runs} runs each, interleaved, pin {pin_text}");
    // series[i] = per-target list of measurement series (process: listen, response;
    // container: pull, run, response).
    let nseries = if container { 3 } else { 2 };
    let mut series: Vec<Vec<Vec<f64>>> = vec![vec![Vec::with_capacity(runs); nseries]; targets.len()];
    let cmds: Vec<Vec<String>> = targets
        .iter()
        .map(|(_, c)| c.split_whitespace().map(str::to_owned).collect())
        .collect();
    let measure = |i: usize| -> Vec<f64> {
        if container {
            let (a, b, c) = one_container(&targets[i].1, &req);
            vec![a, b, c]
        } else {
            let (a, b) = one_run(&cmds[i], &req, &pin);
            vec![a, b]
        }
    };
    // Warm-up: the page cache, the probe's own code paths (not for containers: the pull is
    // what is measured).
    if !container {
        for i in 0..targets.len() {
            measure(i);
        }
    }
    let started = Instant::now();
    for r in 0..runs {
        // Round r starts at target r (mod n): no target always runs right after the same
        // other one (a heavy process's exit and cache pollution would land on its successor).
        for j in 0..targets.len() {
            let i = (j + r) % targets.len();
            for (k, v) in measure(i).into_iter().enumerate() {
                series[i][k].push(v);
            }
        }
        if container {
            eprintln!("  run {}/{runs} done ({:.0} s)", r + 1, started.elapsed().as_secs_f64());
        }
    }
    pin_self(None);
    let names: &[&str] = if container {
        &["pull_us", "run_us", "response_us"]
    } else {
        &["listen_us", "response_us"]
    };
    println!("| {mode} | {} |", names.iter().map(|n| format!("{n} min / p50 / p90 / p99")).collect::<Vec<_>>().join(" | "));
    println!("|---|{}", "---:|".repeat(names.len()));
    let mut out = format!(
        "{{\"mode\":\"{mode}\",\"runs\":{runs},\"pin\":{},\"event_bytes\":{},\"request_bytes\":{},\"targets\":[",
        json_str(&pin_text),
        body.len(),
        req.len()
    );
    for (i, (name, cmd)) in targets.iter().enumerate() {
        let mut cells = Vec::new();
        let mut fields = Vec::new();
        for (k, n) in names.iter().enumerate() {
            let mut s = series[i][k].clone();
            s.sort_by(f64::total_cmp);
            cells.push(format!(
                "{:.0} / {:.0} / {:.0} / {:.0}",
                s[0],
                pct(&s, 50.0),
                pct(&s, 90.0),
                pct(&s, 99.0)
            ));
            fields.push(format!("\"{n}\":{}", json_array(&series[i][k])));
        }
        println!("| {name} | {} |", cells.join(" | "));
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"name\":{},\"cmd\":{},{}}}",
            json_str(name),
            json_str(cmd),
            fields.join(",")
        ));
    }
    out.push_str("]}\n");
    if let Some(f) = json {
        std::fs::write(&f, out).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}
