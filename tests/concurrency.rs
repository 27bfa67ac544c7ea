//! Calls on worker threads (`SCF_LEAN_CONCURRENCY` > 1, a function made with
//! `scf_lean::concurrent`), through the test harness: calls that meet each other (so they ran at
//! once), state per worker and shared, `init` once before the clones, a panic caught per call,
//! the memory budget with calls in flight, streams answered from workers, and a function that
//! is not concurrent served one call at a time. (A worker's log lines: tests/binary.rs.) Every
//! wait is bounded.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use scf_lean::testing::TestServer;

mod common;
use scf_lean::{Config, Error, Function, Level, Request, Response};

/// A meeting point: `meet` returns true once `n` callers are waiting, false if they were not
/// all there within its wait (they did not run at once).
#[derive(Clone)]
struct Meeting(Arc<(Mutex<usize>, Condvar)>, usize, Duration);

impl Meeting {
    fn new(n: usize) -> Meeting {
        Meeting::waiting(n, Duration::from_secs(10))
    }

    fn waiting(n: usize, wait: Duration) -> Meeting {
        Meeting(Arc::new((Mutex::new(0), Condvar::new())), n, wait)
    }

    fn meet(&self) -> bool {
        let (count, cv) = &*self.0;
        let mut c = count.lock().unwrap();
        *c += 1;
        cv.notify_all();
        let (c, _) = cv.wait_timeout_while(c, self.2, |c| *c < self.1).unwrap();
        *c >= self.1
    }
}

/// An answer larger than what the kernel buffers of a loopback socket take (4 MiB at most by
/// default): until its client reads it, the server holds it whole.
const BIG: usize = 5 << 20;

#[derive(Clone)]
struct App {
    meeting: Meeting,
    /// Shared by every worker.
    calls: Arc<AtomicUsize>,
    /// Set by `init`, on the original: the clones see it.
    initialized: Arc<AtomicUsize>,
    /// This instance's own.
    mine: usize,
    /// Held shut by a test: `/block` waits for it.
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl App {
    fn new(meet: usize) -> App {
        App {
            meeting: Meeting::new(meet),
            calls: Arc::default(),
            initialized: Arc::default(),
            mine: 0,
            gate: Arc::default(),
        }
    }
}

impl Function for App {
    fn init(&mut self) -> Result<(), Error> {
        self.initialized.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        self.mine += 1;
        self.calls.fetch_add(1, Ordering::SeqCst);
        match req.path() {
            "/meet" => {
                let met = self.meeting.meet();
                out.json(&serde_json::json!({
                    "met": met,
                    "init": self.initialized.load(Ordering::SeqCst),
                    "mine": self.mine,
                }))
            }
            "/panic" => panic!("a bug in one call"),
            "/block" => {
                // Waits until the test opens the meeting's gate (at most 10 s).
                let (open, cv) = &*self.gate;
                let o = open.lock().unwrap();
                let _ = cv
                    .wait_timeout_while(o, Duration::from_secs(10), |o| !*o)
                    .unwrap();
                out.set_body_static(b"unblocked");
                Ok(())
            }
            "/big" => {
                self.meeting.meet();
                out.body_mut().resize(BIG, b'x');
                Ok(())
            }
            "/log" => {
                scf_lean::info!("from a worker");
                out.set_body_static(b"logged");
                Ok(())
            }
            "/stream" => out.stream(|body| {
                for i in 0..3 {
                    body.send(format!("{i};").as_bytes())?;
                }
                Ok(())
            }),
            _ => {
                out.set_body_static(b"ok");
                Ok(())
            }
        }
    }
}

fn config(n: usize) -> Config {
    Config {
        log_level: Level::Off,
        concurrency: n,
        ..Config::default()
    }
}

/// `n` requests to `path` at once, from threads of their own; their answers.
fn at_once(s: &Arc<TestServer>, n: usize, path: &'static str) -> Vec<(u16, String)> {
    let clients: Vec<_> = (0..n)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                let r = s.get(path);
                (r.status, r.text())
            })
        })
        .collect();
    clients.into_iter().map(|c| c.join().unwrap()).collect()
}

#[test]
fn test_calls_run_at_once_on_workers_with_state_of_their_own_and_shared() {
    let app = App::new(4);
    let calls = app.calls.clone();
    let s = Arc::new(TestServer::with_config(
        config(4),
        scf_lean::concurrent(app),
    ));
    let answers = at_once(&s, 4, "/meet");
    for (status, text) in &answers {
        assert_eq!(*status, 200, "{text}");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["met"], true, "four calls ran at once: {answers:?}");
        assert_eq!(v["init"], 1, "init ran once, before the clones");
        assert_eq!(v["mine"], 1, "each worker its own instance: {answers:?}");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "the shared counter saw all"
    );
}

#[test]
fn test_without_workers_calls_run_one_at_a_time() {
    // Not made with `concurrent`: the setting cannot apply. The first call waits its 300 ms
    // alone (the second comes only after it), so not both meet.
    let mut app = App::new(2);
    app.meeting = Meeting::waiting(2, Duration::from_millis(300));
    let s = Arc::new(TestServer::with_config(config(4), app));
    let answers = at_once(&s, 2, "/meet");
    let met = answers
        .iter()
        .filter(|(_, t)| t.contains(r#""met":true"#))
        .count();
    assert!(met < 2, "{answers:?}");
}

#[test]
fn test_more_calls_than_workers_wait_their_turn() {
    // Two workers, six calls: three rounds of two that meet.
    let s = Arc::new(TestServer::with_config(
        config(2),
        scf_lean::concurrent(App::new(2)),
    ));
    let answers = at_once(&s, 6, "/x");
    assert!(
        answers.iter().all(|(st, t)| *st == 200 && t == "ok"),
        "{answers:?}"
    );
    let met = at_once(&s, 2, "/meet");
    assert!(
        met.iter().all(|(_, t)| t.contains(r#""met":true"#)),
        "{met:?}"
    );
}

#[test]
fn test_a_panic_on_a_worker_is_caught_for_its_call() {
    let s = Arc::new(TestServer::with_config(
        config(3),
        scf_lean::concurrent(App::new(3)),
    ));
    for (status, text) in at_once(&s, 3, "/panic") {
        assert_eq!(status, 500, "{text}");
        assert!(text.contains("the function panicked"), "{text}");
    }
    for (status, text) in at_once(&s, 6, "/x") {
        assert_eq!((status, text.as_str()), (200, "ok"));
    }
}

#[test]
fn test_streams_from_workers() {
    let s = Arc::new(TestServer::with_config(
        config(4),
        scf_lean::concurrent(App::new(4)),
    ));
    for (status, text) in at_once(&s, 8, "/stream") {
        assert_eq!((status, text.as_str()), (200, "0;1;2;"));
    }
}

/// Four calls in flight at once each answer 5 MiB to a client that reads only the status line
/// (a small receive window): each answer stays held until read. Within a 16 MiB budget, of
/// which a connection may use three quarters, not all four fit, whatever order the calls end
/// in: those that do not are answered 503 — the budget holds for calls in flight together.
#[test]
fn test_the_budget_holds_with_calls_in_flight() {
    let config = Config {
        memory_budget_bytes: 16 << 20,
        ..config(4)
    };
    let s = TestServer::with_config(config, scf_lean::concurrent(App::new(4)));
    let addr = s.addr();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let c = std::net::TcpStream::connect(addr).unwrap();
                common::set_rcvbuf(&c, 4096);
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                (&c).write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                let mut status = [0u8; 12];
                (&c).read_exact(&mut status).unwrap();
                (String::from_utf8_lossy(&status[9..]).into_owned(), c)
            })
        })
        .collect();
    let answers: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let statuses: Vec<&str> = answers.iter().map(|(s, _)| s.as_str()).collect();
    let ok = statuses.iter().filter(|s| **s == "200").count();
    let refused = statuses.iter().filter(|s| **s == "503").count();
    assert_eq!(ok + refused, 4, "{statuses:?}");
    assert!(ok >= 1 && ok * BIG <= 12 << 20, "{statuses:?}");
    assert!(refused >= 1, "{statuses:?}");
}

/// Holds what `c` writes until it is shut (`TCP_CORK`).
fn cork(c: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket, and an int option of its size.
    let rc = unsafe {
        libc::setsockopt(
            c.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

/// A call still waiting for a worker when its client hangs up is dropped: it never runs, and
/// the connection closes at once (a proxy in front treats a client's hang-up the same way).
#[test]
fn test_a_call_whose_client_left_before_it_started_is_dropped() {
    let app = App::new(2);
    let (calls, gate) = (app.calls.clone(), app.gate.clone());
    let s = Arc::new(TestServer::with_config(
        config(2),
        scf_lean::concurrent(app),
    ));
    // Two calls hold both workers.
    let blocked: Vec<_> = (0..2)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || s.get("/block").text())
        })
        .collect();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while calls.load(Ordering::SeqCst) < 2 {
        assert!(
            std::time::Instant::now() < until,
            "the two calls never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // A third waits for a worker; its client hangs up and reads on: the connection closes
    // with no answer.
    let mut c = std::net::TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Corked: the request and the FIN leave in one segment when the socket is shut, by which
    // time the server has usually accepted the connection, so it reads both in one event (and
    // no later event tells of the FIN again): the case that once let the call run.
    cork(&c);
    c.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    let (open, cv) = &*gate;
    *open.lock().unwrap() = true;
    cv.notify_all();
    for b in blocked {
        assert_eq!(b.join().unwrap(), "unblocked");
    }
    assert_eq!(s.get("/x").text(), "ok");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the dropped call never ran"
    );
}
