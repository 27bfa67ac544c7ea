//! Hostile clients and faults against the real binary, run as its own process (so that its
//! descriptors, CPU time and memory can be read from `/proc/<pid>`):
//!
//! - slowloris: connections trickling header bytes do not delay a legitimate request, and are
//!   closed by the head timeout;
//! - a slow reader of a 6 MB response holds only its own buffers and blocks nobody;
//! - descriptor exhaustion under `ulimit -n 256`: no spinning, the connections it has are
//!   served, new ones once others close;
//! - resets and half-closes mid-head, mid-body and mid-response, and a peer that vanishes with
//!   pipelined responses pending: every connection is closed (the debug log shows one
//!   `-> Closed` per connection) and the descriptor count returns to where it was;
//! - memory: connections that announce 6 MiB bodies and send 4 KiB cost what arrived; slow
//!   readers of 6 MB answers are held within the memory budget (peak RSS, VmHWM, checked);
//!   partial uploads that hold the whole budget — 600 × 40 KB, 1,000 × 33 KB, 64 × 1 MB,
//!   20 × 6 MB, a mix with heads that never end — give way to small requests, which are all
//!   served, within the budget;
//! - a flood of connections that never speak does not keep a new client out.
//!
//! The sizes are modest by default, for CI; `bench/hostile.sh` runs the full figures through
//! the `HOSTILE_*` variables. Every loop is bounded in count and time; all traffic is loopback.
//! The tests take a lock so that they run one at a time: each measures latency or CPU time.
//!
//! What they assert depends only on what they control: a bound on a latency is a timeout the
//! test sets (the others must not wait for it), a memory figure is read once the kernel shows
//! that the server has read what was sent (not after a pause). How fast the machine is decides
//! nothing; the latency figures are printed, and `HOSTILE_P99_MAX_MS` (set by
//! `bench/hostile.sh`) turns them into a bound, for a benchmark on a quiet machine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::sockets::wait_until_all_read;

mod common;

/// One test at a time: each measures latency or CPU time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The bound on the p99 latency of legitimate requests beside hostile ones, when
/// `HOSTILE_P99_MAX_MS` asks for it (`bench/hostile.sh` does). A speed figure, which the machine
/// decides: checked only when asked for.
fn p99_bound() -> Option<Duration> {
    std::env::var("HOSTILE_P99_MAX_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
}

/// A number from the environment, or the default.
fn knob(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Raises this process's descriptor limit to its hard limit (the clients need many).
fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit write and read only the struct passed.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
    r.rlim_cur
}

/// Closes with a reset (RST) instead of a FIN: `SO_LINGER` on with a zero timeout.
fn reset(s: TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a `linger` struct of the size passed.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const l).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

/// The server binary, running as a child process with its stdout collected line by line.
struct Proc {
    child: Child,
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `scf-lean` on `PORT=0` with these variables, under `ulimit -n nofile` if set; its
    /// port is the one its start-up line names, so `SCF_LEAN_LOG_LEVEL` must be `info` or
    /// `debug`. Once that line is out it listens: no probe connection is needed.
    fn start(env: &[(&str, &str)], nofile: Option<u32>) -> Proc {
        let bin = env!("CARGO_BIN_EXE_scf-lean");
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("bash");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\""), bin]);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .env("PORT", "0")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn scf-lean");
        let mut server = Proc {
            child,
            addr: ([127, 0, 0, 1], 0).into(),
            lines: Arc::new(Mutex::new(Vec::new())),
        };
        let (port, before) = common::child::read_startup(&mut server.child);
        server.addr.set_port(port);
        server
            .lines
            .lock()
            .unwrap()
            .extend(String::from_utf8_lossy(&before).lines().map(str::to_owned));
        // Keep reading stdout, so that a full pipe never stops the server.
        let out = server.child.stdout.take().unwrap();
        let sink = Arc::clone(&server.lines);
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        server
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open descriptors of the server.
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Open sockets of the server: its listener (1) and its connections. What a leak of
    /// connections shows in; its other descriptors are made during start-up.
    fn sockets(&self) -> usize {
        common::sockets::socket_count(self.pid())
    }

    /// User plus system CPU time of the server, in clock ticks (1/100 s).
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name (which ends with ')'): state is field 3; utime 14, stime 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    /// Resident memory of the server in KiB.
    fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Peak resident memory of the server in KiB (VmHWM: the largest RSS it has had).
    fn hwm_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Log lines that contain `needle`.
    fn count_lines(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits (bounded) until `cond` holds; false if it never did.
    fn wait_for(&self, d: Duration, mut cond: impl FnMut(&Self) -> bool) -> bool {
        let until = Instant::now() + d;
        loop {
            if cond(self) {
                return true;
            }
            if Instant::now() > until {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects with timeouts set.
fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one response (head and `Content-Length` body); returns (status, body length).
fn read_response(s: &mut TcpStream) -> (u16, usize) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut b).expect("read a response head"),
            1,
            "EOF in a head"
        );
        head.push(b[0]);
        assert!(head.len() < 64 * 1024, "response head too large");
    }
    let text = String::from_utf8_lossy(&head);
    let status: u16 = text[9..12].parse().expect("status");
    let len: usize = text
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("read a response body");
    (status, len)
}

/// Reads to EOF (or a reset); the bytes read. Panics if the peer keeps the connection open.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return all,
            Err(e) => panic!("{e} while waiting for the server to close"),
        }
    }
}

fn event(body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "POST /event-invoke HTTP/1.1\r\nHost: t\r\nX-Scf-Request-Id: r-1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

const GET: &[u8] = b"GET /legit?x=1 HTTP/1.1\r\nHost: t\r\n\r\n";

/// The `q`-quantile of sorted durations.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Sends `count` legitimate requests one at a time (keep-alive, alternating an event and a GET,
/// and every tenth on a fresh connection), none after `until` if given (at least one); returns
/// their latencies, sorted.
fn legit_latencies(
    addr: SocketAddr,
    count: usize,
    pause: Duration,
    until: Option<Instant>,
) -> Vec<Duration> {
    let mut keep = connect(addr);
    let mut lat = Vec::with_capacity(count);
    for i in 0..count {
        if i > 0 && until.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let req = if i % 2 == 0 {
            event(b"{\"k\":1}")
        } else {
            GET.to_vec()
        };
        let t = Instant::now();
        if i % 10 == 9 {
            let mut fresh = connect(addr);
            fresh.write_all(&req).unwrap();
            assert_eq!(read_response(&mut fresh).0, 200);
        } else {
            keep.write_all(&req).unwrap();
            assert_eq!(read_response(&mut keep).0, 200);
        }
        lat.push(t.elapsed());
        thread::sleep(pause);
    }
    lat.sort();
    lat
}

/// RFC 9112 §9.3 asks servers to close idle or slow connections; SCF's proxy must never wait
/// behind them. `HOSTILE_SLOWLORIS` connections (200 here, 900 in `bench/hostile.sh`) trickle
/// a head one byte per round; meanwhile legitimate requests are timed; then every trickler
/// must be answered 408 and closed by the head timeout.
///
/// "Not delayed" is measured against the head timeout this test sets: a server that made others
/// wait behind the tricklers would make them wait for that timeout, so no legitimate request
/// may take half of it. A busy machine slows every request a little, not by a second.
#[test]
fn test_slowloris_does_not_delay_others_and_is_closed_by_the_head_timeout() {
    let _g = serial();
    let n = knob("HOSTILE_SLOWLORIS", 200) as usize;
    let head_ms = knob("HOSTILE_HEAD_TIMEOUT_MS", 2000);
    raise_nofile();
    let head = head_ms.to_string();
    let mut server = Proc::start(
        &[
            ("SCF_LEAN_HEAD_TIMEOUT_MS", &head),
            ("SCF_LEAN_LOG_LEVEL", "info"),
        ],
        None,
    );
    let base_sockets = server.sockets();
    let slow: Vec<TcpStream> = (0..n).map(|_| connect(server.addr)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let trickler = {
        let stop = Arc::clone(&stop);
        let mut conns: Vec<Option<TcpStream>> =
            slow.iter().map(|s| Some(s.try_clone().unwrap())).collect();
        thread::spawn(move || {
            let head = b"GET /slow HTTP/1.1\r\nHost: t\r\nX-Pad: ";
            let mut sent = 0usize;
            // One byte per connection per round, 20 rounds a second, for at most 60 s.
            for round in 0..1200 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let b = head.get(round).copied().unwrap_or(b'a');
                for c in conns.iter_mut() {
                    if let Some(s) = c {
                        if s.write_all(&[b]).is_err() {
                            *c = None; // closed by the server
                        } else {
                            sent += 1;
                        }
                    }
                }
                thread::sleep(Duration::from_millis(50));
            }
            sent
        })
    };
    // Legitimate requests while the heads trickle: none sent after half the head timeout, so
    // that all are answered before the tricklers are closed.
    thread::sleep(Duration::from_millis(100));
    let half = Duration::from_millis(head_ms / 2);
    let count = (head_ms as usize * 2 / 3 / 2).clamp(100, 2000);
    let lat = legit_latencies(
        server.addr,
        count,
        Duration::from_millis(1),
        Some(started + half),
    );
    let window = started.elapsed();
    let (p50, p99, max) = (
        quantile(&lat, 0.5),
        quantile(&lat, 0.99),
        lat[lat.len() - 1],
    );
    eprintln!(
        "slowloris: {n} trickling connections; {} legitimate requests in {window:?}: \
         p50 {p50:?} p99 {p99:?} max {max:?}",
        lat.len()
    );
    assert!(
        max < half,
        "a legitimate request took {max:?}: it waited for the tricklers' timeout"
    );
    if let Some(bound) = p99_bound() {
        assert!(p99 < bound, "p99 {p99:?} past {bound:?}");
    }

    // Every trickler gets a 408 and EOF by the head timeout (plus a sweep's slack).
    let mut timed_out = 0;
    for mut s in slow {
        s.set_read_timeout(Some(Duration::from_millis(head_ms + 3000)))
            .unwrap();
        let got = read_to_close(&mut s);
        if got.starts_with(b"HTTP/1.1 408 ") {
            timed_out += 1;
        }
    }
    let closed_after = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let bytes = trickler.join().unwrap();
    eprintln!(
        "slowloris: {timed_out}/{n} answered 408 and closed within {closed_after:?} \
         (head timeout {head_ms} ms); {bytes} bytes trickled"
    );
    assert_eq!(timed_out, n);
    assert!(
        server.wait_for(Duration::from_secs(10), |s| s.sockets() <= base_sockets),
        "{} sockets open after the tricklers closed, {base_sockets} at start",
        server.sockets()
    );
    assert!(server.alive());
}

/// A client that reads a 6 MB response one byte at a time holds only its own buffers: the
/// server's memory grows by about the request and the response it holds, and other clients
/// are served meanwhile.
///
/// "Meanwhile" is made certain, not timed: the reader stops after the head and the first
/// 64 KiB until the others have been served, so the server holds nearly all of the answer
/// throughout; a server that waited on the reader would never answer them (their reads time
/// out). The pause stays far inside the body timeout the test sets.
#[test]
fn test_slow_reader_of_a_6mb_response_blocks_nobody() {
    let _g = serial();
    let size = knob("HOSTILE_SLOW_READ_BYTES", 6_000_000) as usize;
    let mut server = Proc::start(
        &[
            ("SCF_LEAN_LOG_LEVEL", "info"),
            ("SCF_LEAN_BODY_TIMEOUT_MS", "120000"),
        ],
        None,
    );
    let rss_before = server.rss_kb();
    let addr = server.addr;
    let (held_tx, held) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let reader = thread::spawn(move || {
        let mut s = connect(addr);
        // The echo answers with the body inside a JSON document: a 6 MB response.
        s.write_all(&post("/slow", &vec![b'a'; size])).unwrap();
        let t = Instant::now();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut b).unwrap(), 1);
            head.push(b[0]);
        }
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let len: usize = text
            .split("content-length: ")
            .nth(1)
            .and_then(|r| r.split("\r\n").next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        let mut reads = 0usize;
        let pause_at = (64 * 1024).min(len / 2);
        for i in 0..len {
            if i == pause_at {
                held_tx.send(()).unwrap();
                // Until the others are served (or the test gave up on them).
                let _ = go_rx.recv_timeout(Duration::from_secs(60));
            }
            assert_eq!(s.read(&mut b).unwrap(), 1, "EOF inside the body");
            reads += 1;
        }
        (len, reads, t.elapsed())
    });
    // Others are served while the answer is held.
    held.recv_timeout(Duration::from_secs(30))
        .expect("the reader got the start of its answer");
    let rss_during = server.rss_kb();
    let lat = legit_latencies(addr, 500, Duration::from_millis(1), None);
    let (p99, max) = (quantile(&lat, 0.99), lat[lat.len() - 1]);
    let rss_peak = server.rss_kb().max(rss_during);
    go.send(()).unwrap();
    let (len, reads, took) = reader.join().unwrap();
    eprintln!(
        "slow reader: {len} bytes read in {reads} reads of 1 byte in {took:?}; others meanwhile: \
         p99 {p99:?} max {max:?}; server RSS {rss_before} kB before, {rss_peak} kB while held"
    );
    assert!(len >= size && reads == len);
    if let Some(bound) = p99_bound() {
        assert!(p99 < bound, "p99 {p99:?} past {bound:?}");
    }
    // The request (in the read buffer) and the response (the function's body buffer), with
    // room for the allocator: nothing more is held for it.
    let grown_kb = rss_peak.saturating_sub(rss_before);
    assert!(
        grown_kb < (3 * size as u64) / 1024 + 8 * 1024,
        "RSS grew by {grown_kb} kB"
    );
    assert!(server.alive());
}

/// Descriptor exhaustion (`ulimit -n 256`, `HOSTILE_FD_ATTEMPTS` = 2,000 concurrent connection
/// attempts): the server holds what its descriptors allow and serves those; the others wait in
/// the backlog (or on SYN retries), and get in as the ones it holds make room — each held
/// connection, idle once served, gives its descriptor to a waiting one when it has been quiet
/// for 200 ms — or close. Accepting pauses without spinning: the CPU it uses meanwhile (from
/// /proc) is that of the connections it serves, against the cost of one connection measured
/// first in the same run.
///
/// Saturation is what `/proc` shows, not what a pause is hoped to give: every descriptor
/// taken, and every connection the server holds answered.
#[test]
fn test_descriptor_exhaustion_pauses_accepting_without_spinning() {
    use mio::net::TcpStream as MioStream;
    use mio::{Events, Interest, Poll, Token};

    let _g = serial();
    let attempts = knob("HOSTILE_FD_ATTEMPTS", 2000) as usize;
    let window = Duration::from_secs(knob("HOSTILE_FD_WINDOW_S", 12));
    let limit = raise_nofile();
    assert!(
        limit as usize > attempts + 64,
        "the hard descriptor limit ({limit}) is below {attempts} client sockets"
    );
    let mut server = Proc::start(&[("SCF_LEAN_LOG_LEVEL", "info")], Some(256));
    let base_sockets = server.sockets();
    // What a connection costs the server (a connect, a GET, its answer, a close), measured here,
    // in this run, on this machine as it is now.
    let calibration = 300;
    let cpu0 = server.cpu_ticks();
    for _ in 0..calibration {
        let mut s = connect(server.addr);
        s.write_all(GET).unwrap();
        assert_eq!(read_response(&mut s).0, 200);
    }
    let per_conn_ticks = (server.cpu_ticks() - cpu0) as f64 / calibration as f64;

    struct C {
        s: MioStream,
        sent: bool,
        buf: Vec<u8>,
        served: bool,
    }
    let mut poll = Poll::new().unwrap();
    let mut conns: Vec<Option<C>> = Vec::with_capacity(attempts);
    let t0 = Instant::now();
    for i in 0..attempts {
        let mut s = MioStream::connect(server.addr).expect("a non-blocking connect");
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
            .unwrap();
        conns.push(Some(C {
            s,
            sent: false,
            buf: Vec::new(),
            served: false,
        }));
        if i % 250 == 249 {
            thread::sleep(Duration::from_millis(10));
        }
    }
    let mut events = Events::with_capacity(1024);
    let mut served = 0usize;
    // Drives the clients for `d`: each sends one GET when connected and counts its answer.
    let mut run = |conns: &mut Vec<Option<C>>, d: Duration, served: &mut usize| {
        let until = Instant::now() + d;
        while Instant::now() < until {
            poll.poll(&mut events, Some(Duration::from_millis(20)))
                .unwrap();
            for ev in events.iter() {
                let Some(c) = conns.get_mut(ev.token().0).and_then(Option::as_mut) else {
                    continue;
                };
                if ev.is_writable() && !c.sent && c.s.peer_addr().is_ok() {
                    // A few bytes: the socket takes them whole.
                    if c.s.write(GET).map(|n| n == GET.len()).unwrap_or(false) {
                        c.sent = true;
                    }
                }
                if ev.is_readable() {
                    let mut tmp = [0u8; 4096];
                    while let Ok(n) = c.s.read(&mut tmp) {
                        if n == 0 {
                            break;
                        }
                        c.buf.extend_from_slice(&tmp[..n]);
                    }
                    if !c.served && c.buf.starts_with(b"HTTP/1.1 200 ") {
                        c.served = true;
                        *served += 1;
                    }
                }
            }
        }
    };
    // Phase 1: saturated. The server holds what its descriptors allow; the rest wait.
    let until = Instant::now() + window;
    loop {
        run(&mut conns, Duration::from_millis(100), &mut served);
        // Its connections: its sockets but the listener.
        if server.fds() >= 256 && served == server.sockets().saturating_sub(1) {
            break;
        }
        assert!(
            Instant::now() < until,
            "not saturated within {window:?}: fds {}, sockets {}, {served} served",
            server.fds(),
            server.sockets()
        );
    }
    let held = served;
    let fds_full = server.fds();
    eprintln!(
        "fd exhaustion: {attempts} attempts in {:?}; server holds {held} (fds {fds_full}, limit \
         256)",
        t0.elapsed(),
    );
    assert!(server.alive(), "the server died");
    assert!(held > 100, "only {held} connections served under the limit");
    assert!(held < attempts, "the limit did not bite");

    // Phase 2: the ones it holds, idle, make room for the waiting ones, 200 ms after their
    // answers; nothing is closed by the clients. Spinning would take the CPU it is given
    // whatever it served; serving takes what the calibration says a connection costs.
    let cpu0 = server.cpu_ticks();
    let before = served;
    let t_quiet = Instant::now();
    let until = Instant::now() + window;
    while served < before + held && Instant::now() < until {
        run(&mut conns, Duration::from_millis(20), &mut served);
    }
    let (cpu, took, got_in) = (
        server.cpu_ticks() - cpu0,
        t_quiet.elapsed(),
        served - before,
    );
    eprintln!(
        "fd exhaustion: {got_in} waiting connections got in as held ones went quiet, in \
         {took:?}; CPU {} ms ({per_conn_ticks:.2} ticks a connection when calibrated)",
        cpu * 10
    );
    assert!(got_in >= held, "only {got_in} got in within {window:?}");
    assert!(server.fds() <= 256);
    // In clock ticks (10 ms): four times the calibrated cost, and a tenth of the time taken.
    let allowed = 4.0 * per_conn_ticks * got_in as f64 + took.as_millis() as f64 / 100.0;
    assert!(
        (cpu as f64) <= allowed + 2.0,
        "{} ms of CPU for {got_in} connections in {took:?} (allowed {:.0} ms): spinning",
        cpu * 10,
        allowed * 10.0
    );

    // Phase 3: close what was served, round after round; the waiting ones get in.
    let waiting = served < attempts;
    let t_close = Instant::now();
    let mut first_new = None;
    let until = Instant::now() + window;
    while served < attempts && Instant::now() < until {
        for c in conns.iter_mut() {
            if c.as_ref().is_some_and(|c| c.served) {
                *c = None;
            }
        }
        let before = served;
        run(&mut conns, Duration::from_millis(20), &mut served);
        if first_new.is_none() && served > before {
            first_new = Some(t_close.elapsed());
        }
    }
    eprintln!(
        "fd exhaustion: after the held ones closed, the first waiting connection was served in \
         {first_new:?}; {served}/{attempts} served in {:?} (the rest wait on SYN retries)",
        t_close.elapsed()
    );
    assert!(
        first_new.is_some() || !waiting,
        "no waiting connection was served after others closed"
    );
    assert!(
        served >= held * 2,
        "only {served} served after closing {held}"
    );
    drop(conns);
    // A fresh connection is served at once, and nothing leaked.
    let mut s = connect(server.addr);
    s.write_all(GET).unwrap();
    assert_eq!(read_response(&mut s).0, 200);
    drop(s);
    assert!(
        server.wait_for(Duration::from_secs(10), |s| s.sockets() <= base_sockets),
        "{} sockets after all closed, {base_sockets} at start",
        server.sockets()
    );
    assert!(server.alive());
}

/// Resets and half-closes at every stage, and peers that vanish with pipelined responses
/// pending: the server closes every connection (one `-> Closed` transition in its debug log
/// per connection) and its descriptors return to their count at start.
#[test]
fn test_resets_and_half_closes_leak_nothing() {
    let _g = serial();
    let rounds = knob("HOSTILE_FAULT_ROUNDS", 10) as usize;
    let mut server = Proc::start(
        &[
            ("SCF_LEAN_LOG_LEVEL", "debug"),
            ("SCF_LEAN_LINGER_MS", "200"),
        ],
        None,
    );
    let addr = server.addr;
    let base_sockets = server.sockets();
    let closed_at_start = server.count_lines("-> Closed");
    let big = vec![b'b'; 512 * 1024];
    let mut made = 0usize;
    for _ in 0..rounds {
        // Reset before sending anything.
        reset(connect(addr));
        // Reset mid-head.
        let mut s = connect(addr);
        s.write_all(b"POST /event-invoke HTTP/1.1\r\nHost: t\r\nX-Scf-Req")
            .unwrap();
        reset(s);
        // Reset mid-body.
        let mut s = connect(addr);
        s.write_all(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nxxxx")
            .unwrap();
        reset(s);
        // Reset mid-chunked-body.
        let mut s = connect(addr);
        s.write_all(b"POST /p HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc")
            .unwrap();
        reset(s);
        // Reset mid-response: a 512 KiB echo, a little of it read.
        let mut s = connect(addr);
        s.write_all(&post("/p", &big)).unwrap();
        let mut some = [0u8; 1000];
        s.read_exact(&mut some).unwrap();
        reset(s);
        // Vanish with pipelined responses pending: eight 512 KiB echoes, none read; reset.
        let mut s = connect(addr);
        let mut pipe = Vec::new();
        for _ in 0..8 {
            pipe.extend_from_slice(&post("/p", &big));
        }
        s.set_nonblocking(true).unwrap();
        let mut off = 0;
        let until = Instant::now() + Duration::from_secs(5);
        while off < pipe.len() && Instant::now() < until {
            match s.write(&pipe[off..]) {
                Ok(n) => off += n,
                Err(_) => thread::sleep(Duration::from_millis(1)),
            }
        }
        reset(s);
        // Vanish with a plain close and responses pending (unread data: the kernel resets).
        let mut s = connect(addr);
        s.write_all(&post("/p", &big)).unwrap();
        s.write_all(&post("/p", &big)).unwrap();
        thread::sleep(Duration::from_millis(5));
        drop(s);
        // Half-close after a whole request: answered, then closed.
        let mut s = connect(addr);
        s.write_all(GET).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_response(&mut s).0, 200);
        assert!(read_to_close(&mut s).is_empty(), "bytes after the answer");
        // Half-close with two pipelined requests: both answered, then closed.
        let mut s = connect(addr);
        s.write_all(&[GET, GET].concat()).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_response(&mut s).0, 200);
        assert_eq!(read_response(&mut s).0, 200);
        assert!(read_to_close(&mut s).is_empty());
        // Half-close mid-head and mid-body: closed without an answer to a request never sent.
        for partial in [
            &b"GET / HTTP/1.1\r\nHo"[..],
            b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc",
        ] {
            let mut s = connect(addr);
            s.write_all(partial).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let got = read_to_close(&mut s);
            assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        }
        made += 11;
    }
    // The server still serves; then everything is closed.
    let mut s = connect(addr);
    s.write_all(GET).unwrap();
    assert_eq!(read_response(&mut s).0, 200);
    drop(s);
    made += 1;
    let all_closed = server.wait_for(Duration::from_secs(10), |s| {
        s.count_lines("-> Closed") - closed_at_start >= made && s.sockets() <= base_sockets
    });
    let closed = server.count_lines("-> Closed") - closed_at_start;
    eprintln!(
        "faults: {made} connections, {closed} closed in the log; sockets {} (at start \
         {base_sockets})",
        server.sockets()
    );
    assert!(
        all_closed,
        "{closed} of {made} closed; sockets {}",
        server.sockets()
    );
    assert_eq!(closed, made, "more closes than connections");
    assert!(server.alive());
}

/// Each connection announces a 6 MiB body and sends 4 KiB of it (`HOSTILE_ANNOUNCERS`
/// connections, 300 here, 1,000 in `bench/hostile.sh`): the server's memory follows what
/// arrived, not what was announced, and others are served meanwhile. The memory is read once
/// the server has read all that was sent (the kernel's queues show it), so it holds all of it.
#[test]
fn test_announced_bodies_cost_only_what_arrived() {
    let _g = serial();
    raise_nofile();
    let n = knob("HOSTILE_ANNOUNCERS", 300) as usize;
    let mut server = Proc::start(&[("SCF_LEAN_LOG_LEVEL", "info")], None);
    let before = server.rss_kb();
    let head = b"POST /event-invoke HTTP/1.1\r\nHost: t\r\nContent-Length: 6291456\r\n\r\n";
    let conns: Vec<TcpStream> = (0..n)
        .map(|_| {
            let mut s = connect(server.addr);
            s.write_all(head).unwrap();
            s.write_all(&[b'a'; 4096]).unwrap();
            s
        })
        .collect();
    wait_until_all_read(&conns);
    let lat = legit_latencies(server.addr, 50, Duration::from_millis(1), None);
    let (hwm, rss) = (server.hwm_kb(), server.rss_kb());
    eprintln!(
        "announcers: {n} connections announcing 6 MiB, sending 4 KiB: VmHWM {hwm} kB, VmRSS \
         {rss} kB ({before} kB before); others p99 {:?}",
        quantile(&lat, 0.99)
    );
    // 4 KiB arrived per connection: its buffer holds at most 8 KiB of it, doubled once.
    let allowed = before + (n as u64) * 16 + 8 * 1024;
    assert!(hwm < allowed, "VmHWM {hwm} kB, allowed {allowed} kB");
    drop(conns);
    assert!(server.alive());
}

/// `HOSTILE_SLOW_READERS` clients (20) each send a 6 MB body to the echo, whose answer is as
/// large, and read nothing: the server holds what the memory budget (32 MiB without a cgroup
/// limit) allows and answers the rest 503, never more.
#[test]
fn test_slow_readers_of_large_answers_stay_within_the_memory_budget() {
    let _g = serial();
    let n = knob("HOSTILE_SLOW_READERS", 20) as usize;
    let mut server = Proc::start(&[("SCF_LEAN_LOG_LEVEL", "info")], None);
    let addr = server.addr;
    let base_sockets = server.sockets();
    let size = 6_000_000;
    let readers: Vec<_> = (0..n)
        .map(|_| {
            thread::spawn(move || {
                let mut s = connect(addr);
                // A small receive window: the answer cannot leave the server's memory quickly.
                let small: libc::c_int = 16 * 1024;
                // SAFETY: a valid socket and an int of the size passed.
                unsafe {
                    libc::setsockopt(
                        s.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_RCVBUF,
                        (&raw const small).cast(),
                        size_of::<libc::c_int>() as libc::socklen_t,
                    );
                }
                // A refused request may close the connection before its body is all sent.
                let _ = s.write_all(&post("/slow", &vec![b'a'; size]));
                s
            })
        })
        .collect();
    let mut conns: Vec<TcpStream> = readers.into_iter().map(|t| t.join().unwrap()).collect();
    // Every client gets a complete answer: its echo, or a 503.
    let mut statuses = Vec::new();
    for s in &mut conns {
        statuses.push(read_response(s).0);
    }
    // The peak of the server's life so far: all of it, whenever the bodies were read.
    let hwm = server.hwm_kb();
    let ok = statuses.iter().filter(|&&st| st == 200).count();
    let refused = statuses.iter().filter(|&&st| st == 503).count();
    eprintln!(
        "slow readers: {n} clients x 6 MB answers, read late: {ok} answered, {refused} refused \
         (503); server VmHWM {hwm} kB"
    );
    assert_eq!(ok + refused, n, "{statuses:?}");
    // They cannot all fit; how many get through depends on how their bodies interleave (when
    // they all grow together, each may be refused).
    assert!(refused >= 1, "{statuses:?}");
    // The budget (32 MiB) plus one function answer built before it is weighed, and the server
    // itself.
    assert!(hwm < 48 * 1024, "VmHWM {hwm} kB");
    // Their memory is back once the server has closed them: one more such request, read at
    // once, is answered.
    drop(conns);
    assert!(
        server.wait_for(Duration::from_secs(10), |s| s.sockets() <= base_sockets),
        "{} sockets after the readers left, {base_sockets} at start",
        server.sockets()
    );
    let mut s = connect(addr);
    s.write_all(&post("/slow", &vec![b'a'; size])).unwrap();
    assert_eq!(read_response(&mut s).0, 200);
    assert!(server.alive());
}

/// `HOSTILE_SILENT` connections (1,100) connect and never send a byte: more than SCF's 1,024
/// descriptors (`ulimit -n 1024`, which runs out before the 1,024 slots). A new client is still
/// served: the oldest silent connection makes room.
///
/// Without that it would wait until the first silent connection timed out: the test sets that
/// timeout to a minute, and the new client's read gives up long before (10 s).
#[test]
fn test_a_silent_flood_does_not_keep_a_new_client_out() {
    let _g = serial();
    raise_nofile();
    let n = knob("HOSTILE_SILENT", 1100) as usize;
    let first_byte = Duration::from_secs(60);
    let first_byte_ms = first_byte.as_millis().to_string();
    let mut server = Proc::start(
        &[
            ("SCF_LEAN_LOG_LEVEL", "info"),
            ("SCF_LEAN_FIRST_BYTE_TIMEOUT_MS", &first_byte_ms),
        ],
        Some(1024),
    );
    let silent: Vec<TcpStream> = (0..n).map(|_| connect(server.addr)).collect();
    // Silent for longer than a request takes to follow its connection (200 ms). (Were the
    // server slower to accept them, they would be silent that long a moment later.)
    thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let mut c = connect(server.addr);
    c.write_all(GET).unwrap();
    assert_eq!(read_response(&mut c).0, 200);
    let took = t.elapsed();
    eprintln!("silent flood: {n} silent connections; a new client served in {took:?}");
    assert!(took < first_byte, "{took:?}");
    drop(silent);
    assert!(server.alive());
}

/// `HOSTILE_SILENT` connections (1,100) each make a request, read the answer and stay open,
/// idle, under SCF's 1,024 descriptors: more than the server can hold. Every one is served, and
/// so is a new client after them: idle keep-alive connections quiet for 200 ms make room (the
/// one idle longest first), as silent ones do. Without that the new client would wait for the
/// idle timeout, which the test sets to a minute (the default is 15): its read gives up at 10 s.
#[test]
fn test_idle_keep_alive_connections_do_not_keep_a_new_client_out() {
    let _g = serial();
    raise_nofile();
    let n = knob("HOSTILE_SILENT", 1100) as usize;
    let mut server = Proc::start(
        &[
            ("SCF_LEAN_LOG_LEVEL", "info"),
            ("SCF_LEAN_IDLE_TIMEOUT_MS", "60000"),
        ],
        Some(1024),
    );
    let t = Instant::now();
    let idle: Vec<TcpStream> = (0..n)
        .map(|_| {
            let mut s = connect(server.addr);
            s.write_all(GET).unwrap();
            assert_eq!(read_response(&mut s).0, 200);
            s
        })
        .collect();
    let all = t.elapsed();
    let t = Instant::now();
    let mut c = connect(server.addr);
    c.write_all(GET).unwrap();
    assert_eq!(read_response(&mut c).0, 200);
    let took = t.elapsed();
    eprintln!(
        "idle flood: {n} keep-alive connections each served ({all:?} in all), then idle; a new \
         client served in {took:?}"
    );
    drop(idle);
    assert!(server.alive());
}

/// After a burst of large requests (`HOSTILE_BURST` connections, 40, each sending a 2 MB body,
/// all held by the server at once) the memory goes back: on glibc too (the debug binary tested
/// here is glibc's), whose allocator would otherwise keep it.
///
/// "Held at once" is made certain: each body but its last byte is sent, and the last bytes go
/// only once the kernel shows that the server has read everything sent before them.
#[test]
fn test_memory_returns_after_a_burst_of_large_requests() {
    let _g = serial();
    let n = knob("HOSTILE_BURST", 40) as usize;
    let mut server = Proc::start(
        &[
            ("SCF_LEAN_LOG_LEVEL", "info"),
            ("SCF_LEAN_MEMORY_BUDGET_BYTES", "1073741824"),
        ],
        None,
    );
    let before = server.rss_kb();
    let addr = server.addr;
    // One large request first: glibc's own rule would then raise its mapping threshold past
    // the 2 MB buffers that follow, and keep them in its heap.
    let mut first = connect(addr);
    let mut json = vec![b'a'; 5_000_000];
    (json[0], json[4_999_999]) = (b'"', b'"');
    first.write_all(&event(&json)).unwrap();
    assert_eq!(read_response(&mut first).0, 200);
    drop(first);
    let clients: Vec<_> = (0..n)
        .map(|_| {
            thread::spawn(move || {
                let mut s = connect(addr);
                let mut json = vec![b'a'; 2_000_000];
                (json[0], json[1_999_999]) = (b'"', b'"');
                let request = event(&json);
                // All but the last byte: the server holds every body at once.
                s.write_all(&request[..request.len() - 1]).unwrap();
                (s, request[request.len() - 1])
            })
        })
        .collect();
    let held: Vec<_> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    wait_until_all_read(held.iter().map(|(s, _)| s));
    let mut conns: Vec<TcpStream> = held
        .into_iter()
        .map(|(mut s, last)| {
            s.write_all(&[last]).unwrap();
            s
        })
        .collect();
    for s in &mut conns {
        assert_eq!(read_response(s).0, 200);
    }
    let peak = server.hwm_kb();
    drop(conns);
    let settled = server.wait_for(Duration::from_secs(10), |p| p.rss_kb() < before + 4 * 1024);
    let after = server.rss_kb();
    eprintln!(
        "burst: {n} x 2 MB requests: VmRSS {before} kB before, peak {peak} kB, {after} kB after"
    );
    // The bodies were held at once.
    let bodies_kb = (n * 2_000_000 / 1024) as u64;
    assert!(
        peak > before + bodies_kb * 3 / 4,
        "the burst did not load it: {peak} kB"
    );
    assert!(settled, "RSS stayed at {after} kB ({before} kB before)");
    assert!(server.alive());
}

/// `count` connections that each send `sent` bytes of a request and stop: `announced` bytes of
/// body after a head (`Some`), or a head that never ends (`None`, `sent` bytes of one field).
#[derive(Clone, Copy)]
struct Holders {
    count: usize,
    sent: usize,
    announced: Option<usize>,
}

/// `count` × `sent` of an announced body.
const fn holders(count: usize, sent: usize, announced: usize) -> Holders {
    Holders {
        count,
        sent,
        announced: Some(announced),
    }
}

/// The budget the memory tests set: the default without a cgroup limit, and half of SCF's
/// smallest instance.
const BUDGET: u64 = 32 << 20;

/// Many partial uploads hold the memory budget — `shapes` of them, sent and stopped — while a
/// stream of small requests (an event and a GET in turn, every tenth on a fresh connection)
/// must all be answered 200: the holders that do not fit give way to them (503), and the
/// server's peak RSS stays within the budget, plus what the allocator makes of it (a quarter)
/// and the process itself. The quarter: musl rounds a 64 KiB buffer up to 73 KiB (an eighth),
/// and which holders give way, in which order, decides which freed chunks the next buffers
/// reuse. Quiet, the mix peaks 0.5% over the budget; once in about eight runs beside a build
/// it reached 14%. A leak, or a budget not kept, is past it at once (2x and more).
fn small_requests_served_beside(name: &str, shapes: &[Holders]) {
    let _g = serial();
    raise_nofile();
    let budget = BUDGET.to_string();
    let mut server = Proc::start(
        &[
            ("SCF_LEAN_LOG_LEVEL", "info"),
            ("SCF_LEAN_MEMORY_BUDGET_BYTES", &budget),
        ],
        None,
    );
    let addr = server.addr;
    let before = server.rss_kb();
    // Small holders are sent here; the large ones from threads, since a write of megabytes the
    // server refuses waits until it drains them.
    let mut conns = Vec::new();
    let mut senders = Vec::new();
    for shape in shapes {
        let head = match shape.announced {
            Some(n) => {
                format!("POST /event-invoke HTTP/1.1\r\nHost: t\r\nContent-Length: {n}\r\n\r\n")
            }
            None => "POST /event-invoke HTTP/1.1\r\nHost: t\r\nX-Pad: ".to_owned(),
        };
        let mut request = head.into_bytes();
        request.resize(request.len() + shape.sent, b' ');
        let request = Arc::new(request);
        for _ in 0..shape.count {
            let mut s = connect(addr);
            if shape.sent <= 64 * 1024 {
                s.write_all(&request).unwrap();
                conns.push(s);
            } else {
                let request = Arc::clone(&request);
                senders.push(thread::spawn(move || {
                    // A refused upload is closed before it is all sent.
                    let _ = s.write_all(&request);
                    s
                }));
            }
        }
    }
    conns.extend(senders.into_iter().map(|t| t.join().unwrap()));
    wait_until_all_read(&conns);
    // Every one of these must be 200 (legit_latencies asserts it).
    let lat = legit_latencies(addr, 50, Duration::from_millis(1), None);
    let hwm = server.hwm_kb();
    let (mut held, mut refused, mut closed) = (0, 0, 0);
    for s in &mut conns {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 12];
        match s.peek(&mut b) {
            Ok(12) if &b == b"HTTP/1.1 503" => refused += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => held += 1,
            _ => closed += 1,
        }
    }
    let sent_mb: usize = shapes.iter().map(|s| s.count * s.sent).sum::<usize>() / 1_000_000;
    eprintln!(
        "small holders {name}: {sent_mb} MB sent; {held} held, {refused} gave way (503), \
         {closed} closed; 50 small requests all 200, p50 {:?} p99 {:?}; VmHWM {hwm} kB \
         ({before} kB at start, budget {} kB)",
        quantile(&lat, 0.5),
        quantile(&lat, 0.99),
        BUDGET / 1024
    );
    let allowed = before + BUDGET / 1024 * 5 / 4;
    assert!(hwm <= allowed, "VmHWM {hwm} kB, allowed {allowed} kB");
    // What is held fits the budget: the rest gave way or was refused.
    assert!(
        held > 0 && refused + closed > 0,
        "{held} held, {refused} refused"
    );
    drop(conns);
    assert!(server.alive());
}

/// 600 connections each send 40,000 bytes of an announced 5 MB body (24 MB in all; 64 KiB
/// buffers, 37.5 MiB together). Before, they took the budget and every small request was 503.
#[test]
fn test_600_holders_of_40_kb_leave_small_requests_served() {
    small_requests_served_beside("600 x 40 KB", &[holders(600, 40_000, 5_000_000)]);
}

/// 1,000 connections each send 33,000 bytes of an announced 5 MB body: about 512 of them fill
/// the budget at 64 KiB each.
#[test]
fn test_1000_holders_of_33_kb_leave_small_requests_served() {
    small_requests_served_beside("1,000 x 33 KB", &[holders(1000, 33_000, 5_000_000)]);
}

/// 64 connections each send 1 MB of an announced 5 MB body: large holders, which keep to three
/// quarters of the budget.
#[test]
fn test_64_holders_of_1_mb_leave_small_requests_served() {
    small_requests_served_beside("64 x 1 MB", &[holders(64, 1_000_000, 5_000_000)]);
}

/// 20 connections each send 6 MB of an announced 6 MiB body.
#[test]
fn test_20_holders_of_6_mb_leave_small_requests_served() {
    small_requests_served_beside("20 x 6 MB", &[holders(20, 6_000_000, 6_291_456)]);
}

/// All of them at once, and heads that never end.
#[test]
fn test_a_mix_of_holders_leaves_small_requests_served() {
    small_requests_served_beside(
        "mix",
        &[
            holders(300, 40_000, 5_000_000),
            holders(200, 20_000, 40_000),
            Holders {
                count: 100,
                sent: 20_000,
                announced: None,
            },
            holders(10, 1_000_000, 5_000_000),
            holders(5, 6_000_000, 6_291_456),
        ],
    );
}
