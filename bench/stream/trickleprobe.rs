//! The trickle bench's client (bench/trickle.sh): a plain request's latency while slow readers
//! hold long streams open. Against one server (`name=port`):
//!
//! 1. `--baseline` plain requests, `--gap-ms` apart, on the idle server.
//! 2. `--streams` connections, each with SO_RCVBUF `--rcvbuf` set before the connect, ask
//!    `--stream-path` (a long event stream) and then read at most `--read-bytes` every
//!    `--read-every-ms`: the server's side of each fills and stays full.
//! 3. After `--settle-ms`, `--requests` plain requests `--plain-path`, `--gap-ms` apart, each on
//!    a fresh connection (`Connection: close`), timed from the connect to the end of the
//!    response; one not answered within `--timeout-ms` counts as a timeout at the time waited.
//!    The phase stops at `--deadline-s` whatever is left.
//!
//! One JSON object on stdout: percentiles (nearest rank) and the max of both phases in µs,
//! counts, and what the slow readers received. Every socket has timeouts and a watchdog ends
//! the process past the deadline, so it returns in about `--settle-ms + --deadline-s` plus a
//! few seconds. std only: `rustc -O --edition 2021 trickleprobe.rs`.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

mod sys {
    use std::ffi::c_void;
    pub const AF_INET: i32 = 2;
    pub const SOCK_STREAM: i32 = 1;
    pub const SOCK_CLOEXEC: i32 = 0o2000000;
    pub const SOL_SOCKET: i32 = 1;
    pub const SO_RCVBUF: i32 = 8;
    #[repr(C)]
    pub struct SockaddrIn {
        pub family: u16,
        pub port: u16,
        pub addr: u32,
        pub zero: [u8; 8],
    }
    extern "C" {
        pub fn socket(domain: i32, ty: i32, protocol: i32) -> i32;
        pub fn setsockopt(fd: i32, level: i32, name: i32, val: *const c_void, len: u32) -> i32;
        pub fn getsockopt(fd: i32, level: i32, name: i32, val: *mut c_void, len: *mut u32) -> i32;
        pub fn connect(fd: i32, addr: *const SockaddrIn, len: u32) -> i32;
    }
}

/// A connection to 127.0.0.1:`port` whose receive buffer is set to `rcvbuf` before the connect
/// (so that the window it offers is small from the handshake on); the buffer the kernel gave.
fn small_window(port: u16, rcvbuf: i32) -> std::io::Result<(TcpStream, i32)> {
    unsafe {
        let fd = sys::socket(sys::AF_INET, sys::SOCK_STREAM | sys::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Owned from here: dropped (closed) on every path.
        let s = TcpStream::from_raw_fd(fd);
        let v = rcvbuf;
        if sys::setsockopt(fd, sys::SOL_SOCKET, sys::SO_RCVBUF, &v as *const i32 as _, 4) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SO_SNDTIMEO bounds connect() too on Linux.
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        let addr = sys::SockaddrIn {
            family: sys::AF_INET as u16,
            port: port.to_be(),
            addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
            zero: [0; 8],
        };
        if sys::connect(fd, &addr, std::mem::size_of::<sys::SockaddrIn>() as u32) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut got: i32 = 0;
        let mut len: u32 = 4;
        sys::getsockopt(fd, sys::SOL_SOCKET, sys::SO_RCVBUF, &mut got as *mut i32 as _, &mut len);
        Ok((s, got))
    }
}

/// What one slow reader saw.
#[derive(Default, Clone)]
struct Reader {
    ok: bool,
    bytes: u64,
    first_byte_us: Option<u64>,
    rcvbuf: i32,
    error: Option<String>,
}

fn trickle(port: u16, path: String, rcvbuf: i32, chunk: usize, every: Duration, stop: Arc<AtomicBool>) -> Reader {
    let mut r = Reader::default();
    let t0 = Instant::now();
    let (mut s, got) = match small_window(port, rcvbuf) {
        Ok(x) => x,
        Err(e) => {
            r.error = Some(format!("connect: {e}"));
            return r;
        }
    };
    r.rcvbuf = got;
    let _ = s.set_read_timeout(Some(every.max(Duration::from_millis(10))));
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    if let Err(e) = s.write_all(req.as_bytes()) {
        r.error = Some(format!("write: {e}"));
        return r;
    }
    let mut buf = vec![0u8; chunk];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => {
                r.error = Some("EOF".into());
                break;
            }
            Ok(n) => {
                if r.first_byte_us.is_none() {
                    r.first_byte_us = Some(t0.elapsed().as_micros() as u64);
                    r.ok = buf[..n].starts_with(b"HTTP/1.1 200");
                }
                r.bytes += n as u64;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => {
                r.error = Some(format!("read: {e}"));
                break;
            }
        }
        thread::sleep(every);
    }
    r
}

enum Outcome {
    Ok,
    Timeout,
    Error(String),
}

/// Whether `buf` holds a whole response (head and body) yet.
fn complete(buf: &[u8]) -> Result<bool, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { return Ok(false) };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let body = &buf[end + 4..];
    if !head.starts_with("http/1.1 200") {
        return Err(format!("status: {}", head.lines().next().unwrap_or("")));
    }
    let header = |name: &str| {
        head.lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    if let Some(n) = header("content-length") {
        let n: usize = n.parse().map_err(|_| "content-length".to_string())?;
        return Ok(body.len() >= n);
    }
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut at = 0;
        loop {
            let Some(eol) = body[at..].windows(2).position(|w| w == b"\r\n") else { return Ok(false) };
            let line = String::from_utf8_lossy(&body[at..at + eol]);
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("chunk size {line:?}"))?;
            at += eol + 2;
            if size == 0 {
                return Ok(body.len() >= at + 2); // no trailers: the last CRLF
            }
            at += size + 2;
            if at > body.len() {
                return Ok(false);
            }
        }
    }
    Ok(false) // to EOF
}

/// One plain request on a fresh connection, within `limit`: the time from the connect to the
/// end of the response, and how it ended.
fn plain(port: u16, path: &str, limit: Duration) -> (Duration, Outcome) {
    let t = Instant::now();
    let left = || limit.saturating_sub(t.elapsed());
    let fail = |e: std::io::Error| {
        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
            Outcome::Timeout
        } else {
            Outcome::Error(e.to_string())
        }
    };
    let mut s = match TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), limit) {
        Ok(s) => s,
        Err(e) => return (t.elapsed(), fail(e)),
    };
    let _ = s.set_nodelay(true);
    let _ = s.set_write_timeout(Some(left().max(Duration::from_millis(1))));
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if let Err(e) = s.write_all(req.as_bytes()) {
        return (t.elapsed(), fail(e));
    }
    let mut got = Vec::with_capacity(4096);
    let mut buf = [0u8; 16384];
    loop {
        let l = left();
        if l.is_zero() {
            return (t.elapsed(), Outcome::Timeout);
        }
        let _ = s.set_read_timeout(Some(l));
        match s.read(&mut buf) {
            Ok(0) => {
                let d = t.elapsed();
                return match complete(&got) {
                    Err(e) => (d, Outcome::Error(e)),
                    Ok(_) if got.windows(4).any(|w| w == b"\r\n\r\n") => (d, Outcome::Ok),
                    Ok(_) => (d, Outcome::Error("EOF before a response".into())),
                };
            }
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                match complete(&got) {
                    Ok(true) => return (t.elapsed(), Outcome::Ok),
                    Ok(false) => {}
                    Err(e) => return (t.elapsed(), Outcome::Error(e)),
                }
            }
            Err(e) => return (t.elapsed(), fail(e)),
        }
    }
}

#[derive(Default)]
struct Phase {
    us: Vec<u64>,
    answered: u64,
    timeouts: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Phase {
    fn run(port: u16, path: &str, count: u64, gap: Duration, timeout: Duration, until: Instant) -> Phase {
        let mut p = Phase::default();
        for i in 0..count {
            let now = Instant::now();
            if now >= until {
                break;
            }
            if i > 0 {
                thread::sleep(gap.min(until - now));
            }
            let limit = timeout.min(until.saturating_duration_since(Instant::now()));
            if limit.is_zero() {
                break;
            }
            let (d, o) = plain(port, path, limit);
            p.us.push(d.as_micros() as u64);
            match o {
                Outcome::Ok => p.answered += 1,
                Outcome::Timeout => p.timeouts += 1,
                Outcome::Error(e) => {
                    p.errors += 1;
                    p.first_error.get_or_insert(e);
                }
            }
        }
        p
    }

    /// Nearest rank.
    fn pct(&self, q: f64) -> u64 {
        let mut v = self.us.clone();
        v.sort_unstable();
        if v.is_empty() {
            return 0;
        }
        let k = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[k - 1]
    }

    fn json(&self, name: &str) -> String {
        format!(
            "\"{name}_sent\":{},\"{name}_answered\":{},\"{name}_timeouts\":{},\"{name}_errors\":{},\
             \"{name}_p50_us\":{},\"{name}_p99_us\":{},\"{name}_max_us\":{},\"{name}_first_error\":{}",
            self.us.len(),
            self.answered,
            self.timeouts,
            self.errors,
            self.pct(0.5),
            self.pct(0.99),
            self.us.iter().max().copied().unwrap_or(0),
            match &self.first_error {
                Some(e) => format!("\"{}\"", e.replace(['"', '\\'], "'")),
                None => "null".into(),
            }
        )
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str, d: u64| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse().unwrap_or_else(|_| panic!("{k}: not a number: {v}")))
            .unwrap_or(d)
    };
    let text = |k: &str, d: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| d.to_string())
    };
    let streams = get("--streams", 20);
    let rcvbuf = get("--rcvbuf", 4096) as i32;
    let chunk = get("--read-bytes", 4096) as usize;
    let every = Duration::from_millis(get("--read-every-ms", 200));
    let requests = get("--requests", 200);
    let baseline = get("--baseline", 50);
    let gap = Duration::from_millis(get("--gap-ms", 20));
    let timeout = Duration::from_millis(get("--timeout-ms", 10_000));
    let settle = Duration::from_millis(get("--settle-ms", 1000));
    let deadline = Duration::from_secs(get("--deadline-s", 40));
    let stream_path = text("--stream-path", "/events?n=1000000&delay_ms=0");
    let plain_path = text("--plain-path", "/");
    let (name, port) = args
        .last()
        .filter(|_| args.len() % 2 == 1)
        .and_then(|a| a.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse::<u16>().expect("port")))
        .expect("usage: trickleprobe [--option value]... name=port");

    // Whatever happens, the process ends: the baseline's bound, the settle, the plain phase's
    // deadline, the readers' last tick, and slack.
    let budget = timeout.min(Duration::from_secs(5)) * 2 + settle + deadline + every + Duration::from_secs(10);
    thread::spawn(move || {
        thread::sleep(budget);
        eprintln!("trickleprobe: still running after {budget:?}, giving up");
        std::process::exit(2);
    });

    // 1. The idle server: it must answer, at most a few seconds per request.
    let idle_timeout = timeout.min(Duration::from_secs(5));
    let idle = Phase::run(port, &plain_path, baseline, gap, idle_timeout, Instant::now() + idle_timeout * 2);
    if idle.answered == 0 || idle.answered < idle.us.len() as u64 {
        eprintln!(
            "trickleprobe: {name}: GET {plain_path} on the idle server: {} of {} answered ({} timeouts, first error: {:?})",
            idle.answered,
            idle.us.len(),
            idle.timeouts,
            idle.first_error
        );
        std::process::exit(1);
    }

    // 2. The slow readers.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..streams)
        .map(|_| {
            let (stop, path) = (stop.clone(), stream_path.clone());
            thread::spawn(move || trickle(port, path, rcvbuf, chunk, every, stop))
        })
        .collect();
    thread::sleep(settle);

    // 3. Plain requests beside them.
    let t = Instant::now();
    let busy = Phase::run(port, &plain_path, requests, gap, timeout, t + deadline);
    let busy_s = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<Reader> = readers.into_iter().map(|h| h.join().unwrap_or_default()).collect();
    let started = seen.iter().filter(|r| r.first_byte_us.is_some()).count();
    let ok = seen.iter().filter(|r| r.ok).count();
    let bytes: Vec<u64> = seen.iter().map(|r| r.bytes).collect();
    let err = seen.iter().find_map(|r| r.error.clone());
    let mut first: Vec<u64> = seen.iter().filter_map(|r| r.first_byte_us).collect();
    first.sort_unstable();
    println!(
        "{{\"peer\":\"{name}\",\"plain_path\":\"{plain_path}\",\"stream_path\":\"{stream_path}\",\
         \"streams\":{streams},\"rcvbuf_set\":{rcvbuf},\"rcvbuf_got\":{},\"read_bytes\":{chunk},\
         \"read_every_ms\":{},\"gap_ms\":{},\"timeout_ms\":{},\"deadline_s\":{},\"settle_ms\":{},\
         \"requests\":{requests},{},{},\"busy_phase_s\":{busy_s:.2},\
         \"streams_started\":{started},\"streams_200\":{ok},\"stream_bytes_total\":{},\
         \"stream_bytes_min\":{},\"stream_bytes_max\":{},\"stream_first_byte_max_us\":{},\"stream_error\":{}}}",
        seen.iter().map(|r| r.rcvbuf).max().unwrap_or(0),
        every.as_millis(),
        gap.as_millis(),
        timeout.as_millis(),
        deadline.as_secs(),
        settle.as_millis(),
        idle.json("idle"),
        busy.json("plain"),
        bytes.iter().sum::<u64>(),
        bytes.iter().min().copied().unwrap_or(0),
        bytes.iter().max().copied().unwrap_or(0),
        first.last().copied().unwrap_or(0),
        match err {
            Some(e) => format!("\"{}\"", e.replace(['"', '\\'], "'")),
            None => "null".into(),
        }
    );
}
