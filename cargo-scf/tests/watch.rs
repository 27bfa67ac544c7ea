//! `cargo scf watch`: the function served through the tool's own port, rebuilt and restarted
//! on every edit. A request sent right after a save is answered by the new build (held, not
//! refused, while it builds); a build that fails leaves the last good one serving; streams
//! pass unbuffered; cargo's flags pass through; SIGTERM stops the function. Its limits hold:
//! connections open and held are capped (503 past the caps), a held one is released when its
//! client hangs up and answered 504 past the hold limit, 503 as the tool stops; a long output
//! line passes in pieces; a build that failed for want of descriptors is tried again; builds
//! stop (or die) with the tool; symbolic links are not followed. Loopback only; every process
//! is killed on every path (`common/function.rs`).

#[path = "common/function.rs"]
mod function;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use function::{BUILD, Project, SHORT, Tool, get, get_on, gone, main_rs, number_after};

/// `cargo scf watch --port 0 ARGS` in `project`: the tool and the port its `serving on` line
/// names.
fn watch(project: &Project, args: &[&str]) -> (Tool, u16) {
    watch_with(project, args, &[])
}

/// The same with `env` added to the tool's environment.
fn watch_with(project: &Project, args: &[&str], env: &[(&str, &str)]) -> (Tool, u16) {
    let mut all = vec!["watch", "--port", "0"];
    all.extend(args);
    let tool = Tool::start(&project.dir, &all, env);
    let line = tool
        .err
        .wait_for(SHORT, |l| l.starts_with("cargo scf watch: serving on "))
        .unwrap_or_else(|| panic!("no `serving on` line\n{}", tool.output()));
    let port = u16::try_from(number_after(&line, "0.0.0.0:")).unwrap();
    assert_ne!(port, 0);
    (tool, port)
}

/// The pid of the function process serving now (it asks it), killed with the tool.
fn serving_pid(tool: &mut Tool, port: u16) -> u32 {
    let (status, body) = get(port, "/pid", SHORT);
    assert_eq!(status, 200, "{body}");
    let pid = body.parse().unwrap();
    tool.owns(pid);
    pid
}

/// `GET /` right after `edit`, answered by a build that has it: how long the edit took to be
/// served, and the answer.
fn edit_then_get(port: u16, edit: impl FnOnce()) -> (Duration, (u16, String)) {
    let t = Instant::now();
    edit();
    let answer = get(port, "/", BUILD);
    (t.elapsed(), answer)
}

#[test]
fn test_watch_answers_each_edit_from_the_first_request_after_it_and_keeps_the_last_good_build() {
    let project = Project::new("scf-watch-probe", "one");
    let (mut tool, port) = watch(&project, &[]);
    // Sent while the first build runs: held until it serves.
    assert_eq!(get(port, "/", BUILD), (200, "one".to_owned()));
    let first = serving_pid(&mut tool, port);

    // A stream passes through as it is produced: its first piece arrives while the producer
    // waits for this test to create the mark.
    let tmp = tempfile::Builder::new()
        .prefix("scf-watch-")
        .tempdir_in("/tmp")
        .unwrap();
    let mark = tmp.path().join("go");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(SHORT)).unwrap();
    write!(
        s,
        "GET /stream?mark={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        mark.display()
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("first\n") {
        let n = s
            .read(&mut buf)
            .expect("the first piece, before the second is made");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(!String::from_utf8_lossy(&seen).contains("second"));
    std::fs::write(&mark, b"").unwrap();
    s.read_to_end(&mut seen).unwrap();
    assert!(String::from_utf8_lossy(&seen).contains("second\n"));

    // An edit, and a request at once: the new build answers it, not the old one, and not a
    // refusal.
    let (took, answer) = edit_then_get(port, || project.write_main(&main_rs("two")));
    assert_eq!(answer, (200, "two".to_owned()), "{}", tool.output());
    eprintln!("edit -> answered by the new build: {} ms", took.as_millis());
    let second = serving_pid(&mut tool, port);
    assert_ne!(first, second);
    assert!(
        gone(first, SHORT),
        "the old process stops once the new one serves"
    );

    // A compile error: shown, and the request held during the failed build goes to the last
    // good one.
    let broken = main_rs("three").replace("pub fn function()", "pub fn function( {");
    let (_, answer) = edit_then_get(port, || project.write_main(&broken));
    assert_eq!(answer, (200, "two".to_owned()), "{}", tool.output());
    assert!(
        tool.err
            .wait_for(SHORT, |l| l
                .contains("build failed (above): build 2 keeps serving"))
            .is_some(),
        "{}",
        tool.output()
    );
    assert!(
        tool.err.count(|l| l.starts_with("error")) > 0,
        "cargo's errors are shown\n{}",
        tool.output()
    );

    // Fixed: the next build serves.
    let (_, answer) = edit_then_get(port, || project.write_main(&main_rs("three")));
    assert_eq!(answer, (200, "three".to_owned()), "{}", tool.output());

    // An edit cargo has nothing to rebuild for restarts nothing.
    let third = serving_pid(&mut tool, port);
    let (_, answer) = edit_then_get(port, || {
        std::fs::write(project.dir.join("README.md"), "edited\n").unwrap();
    });
    assert_eq!(answer, (200, "three".to_owned()));
    assert_eq!(serving_pid(&mut tool, port), third);
    assert!(
        tool.err
            .wait_for(SHORT, |l| l.contains("the binary did not change"))
            .is_some(),
        "{}",
        tool.output()
    );

    // SIGTERM: the function is stopped, then the tool exits.
    tool.signal(libc::SIGTERM);
    let status = tool.wait(SHORT).expect("the tool exits");
    assert!(status.success(), "{status:?}\n{}", tool.output());
    assert!(gone(third, SHORT), "the function outlived the tool");
}

#[test]
fn test_watch_passes_cargo_flags_and_answers_502_while_no_build_serves() {
    let project = Project::new("scf-watch-flags", "quiet");
    let broken = main_rs("quiet").replace("pub fn function()", "pub fn function( {");
    project.write_main(&broken);
    let (mut tool, port) = watch(&project, &["--", "--features", "loud"]);
    // No good build yet: the tool answers for the function, and says why.
    let (status, body) = get(port, "/", BUILD);
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("no build of the function is serving"),
        "{body}"
    );

    let (_, answer) = edit_then_get(port, || project.write_main(&main_rs("quiet")));
    assert_eq!(
        answer,
        (200, "LOUD".to_owned()),
        "--features loud reached cargo"
    );
    let pid = serving_pid(&mut tool, port);

    tool.signal(libc::SIGINT);
    let status = tool.wait(SHORT).expect("the tool exits");
    assert!(status.success(), "{status:?}\n{}", tool.output());
    assert!(gone(pid, SHORT));
}

/// A directory in /tmp for the test's marks.
#[cfg(target_os = "linux")]
fn tmp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("scf-watch-")
        .tempdir_in("/tmp")
        .unwrap()
}

/// A keep-alive connection answered 200 by the function, left open. A connection closing from
/// before may hold a place for a moment: then the tool's 503, and another try.
fn served_keep_alive(port: u16) -> TcpStream {
    let end = Instant::now() + SHORT;
    loop {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (status, body) = get_on(&mut s, "/");
        match status {
            200 => return s,
            503 if Instant::now() < end => std::thread::sleep(Duration::from_millis(10)),
            _ => panic!("{status} {body}"),
        }
    }
}

/// Past its cap on open connections (`CARGO_SCF_WATCH_MAX_CONNECTIONS`: 2 here, 512 by
/// default) the tool answers 503 at once, saying why; a place that frees serves again.
#[test]
fn test_watch_answers_503_at_once_past_its_cap_on_open_connections() {
    let project = Project::new("scf-watch-cap", "capped");
    let (tool, port) = watch_with(&project, &[], &[("CARGO_SCF_WATCH_MAX_CONNECTIONS", "2")]);
    assert_eq!(get(port, "/", BUILD), (200, "capped".to_owned()));
    // Two idle keep-alive connections take the two places.
    let (a, b) = (served_keep_alive(port), served_keep_alive(port));
    let (status, body) = get(port, "/", SHORT);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("as many connections are open as it takes at once (2)"),
        "{body}"
    );
    // A place that frees serves again.
    drop(a);
    let end = Instant::now() + SHORT;
    loop {
        match get(port, "/", SHORT) {
            (200, body) => break assert_eq!(body, "capped"),
            (503, _) if Instant::now() < end => std::thread::sleep(Duration::from_millis(10)),
            other => panic!("{other:?}\n{}", tool.output()),
        }
    }
    drop(b);
}

/// The status and body of an answer read whole.
#[cfg(target_os = "linux")]
fn parse(answer: &[u8]) -> (u16, String) {
    let answer = String::from_utf8_lossy(answer);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {answer:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    (status, body.to_owned())
}

/// Two requests sent while a build is blocked, with one connection held at most.
#[cfg(target_os = "linux")]
struct HeldAndRefused {
    /// The one the tool holds (whichever of the two it took first).
    held: TcpStream,
    /// The held one's answer, when it comes.
    later: std::sync::mpsc::Receiver<(usize, Vec<u8>)>,
    /// The other's answer, which comes at once.
    refused: (u16, String),
}

#[cfg(target_os = "linux")]
fn one_held_one_refused(port: u16) -> HeldAndRefused {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut streams = Vec::new();
    for i in 0..2 {
        let s = function::send_get(port, "/");
        let mut reader = s.try_clone().unwrap();
        reader.set_read_timeout(Some(3 * SHORT)).unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut answer = Vec::new();
            let _ = reader.read_to_end(&mut answer);
            let _ = tx.send((i, answer));
        });
        streams.push(s);
    }
    let (first, answer) = rx.recv_timeout(SHORT).expect("one is answered at once");
    HeldAndRefused {
        held: streams.swap_remove(1 - first),
        later: rx,
        refused: parse(&answer),
    }
}

/// The tool's connection threads (Linux's /proc).
#[cfg(target_os = "linux")]
fn connection_threads(tool: &Tool) -> usize {
    function::threads_named(tool.pid(), "connection")
}

/// While a build runs (here blocked by its build script): one connection held at most
/// (`CARGO_SCF_WATCH_MAX_HELD`), the next answered 503 at once; a held connection whose client
/// hangs up is let go (its thread ends); SIGTERM answers the held connection 503 and stops
/// cargo's whole process group, build script included.
#[cfg(target_os = "linux")]
#[test]
fn test_watch_caps_held_connections_lets_hung_up_ones_go_and_answers_503_as_it_stops() {
    let project = Project::new("scf-watch-held", "held");
    project.block_builds();
    let marks = tmp_dir();
    let marks_dir = marks.path().to_str().unwrap();
    let (mut tool, port) = watch_with(
        &project,
        &[],
        &[
            ("CARGO_SCF_WATCH_MAX_HELD", "1"),
            ("SCF_TEST_BUILD_MARKS", marks_dir),
        ],
    );
    let (script, cargo) = function::blocked_build(marks.path());
    tool.owns(script);
    tool.owns(cargo);
    // Cargo leads a process group of its own, which the tool signals whole.
    // SAFETY: getpgid only reads.
    assert_eq!(unsafe { libc::getpgid(cargo as i32) }, cargo as i32);

    let two = one_held_one_refused(port);
    let (status, body) = &two.refused;
    assert_eq!(*status, 503, "{body}");
    assert!(
        body.contains("it holds as many connections as it may while a build runs (1)"),
        "{body}"
    );
    assert!(
        function::eventually(|| connection_threads(&tool) == 1),
        "the refused connection is done"
    );
    two.held.shutdown(std::net::Shutdown::Both).unwrap();
    assert!(
        function::eventually(|| connection_threads(&tool) == 0),
        "a held connection whose client hung up is let go\n{}",
        tool.output()
    );

    let two = one_held_one_refused(port);
    assert_eq!(two.refused.0, 503);
    tool.signal(libc::SIGTERM);
    let (_, answer) = two
        .later
        .recv_timeout(SHORT)
        .expect("the held one is answered");
    let (status, body) = parse(&answer);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cargo scf watch: it is stopping"), "{body}");
    let exit = tool.wait(SHORT).expect("the tool exits");
    assert!(exit.success(), "{exit:?}\n{}", tool.output());
    assert!(gone(script, SHORT), "the build script outlived the tool");
    assert!(gone(cargo, SHORT), "cargo outlived the tool");
}

/// A connection held past the hold limit (`CARGO_SCF_WATCH_HOLD_MS`) is answered 504. A tool
/// killed outright (SIGKILL) takes cargo with it; the sync directory it could not remove is
/// removed by the next one.
#[cfg(target_os = "linux")]
#[test]
fn test_watch_answers_504_past_its_hold_limit_and_a_killed_watch_leaves_no_cargo() {
    let project = Project::new("scf-watch-hold", "hold");
    project.block_builds();
    let marks = tmp_dir();
    let marks_dir = marks.path().to_str().unwrap();
    let (mut tool, port) = watch_with(
        &project,
        &[],
        &[
            ("CARGO_SCF_WATCH_HOLD_MS", "300"),
            ("SCF_TEST_BUILD_MARKS", marks_dir),
        ],
    );
    let (script, cargo) = function::blocked_build(marks.path());
    tool.owns(script);
    tool.owns(cargo);
    let (status, body) = get(port, "/", SHORT);
    assert_eq!(status, 504, "{body}");
    assert!(
        body.contains("held for 300ms, the most it holds one"),
        "{body}"
    );

    let sync_dir = function::target_dir()
        .join("scf")
        .join(format!("watch-{}", tool.pid()));
    assert!(sync_dir.is_dir());
    tool.signal(libc::SIGKILL);
    tool.wait(SHORT).expect("killed");
    assert!(gone(cargo, SHORT), "cargo outlived the killed tool");

    // The build goes on at once now.
    std::fs::write(marks.path().join("go"), b"").unwrap();
    let (_next, port) = watch_with(&project, &[], &[("SCF_TEST_BUILD_MARKS", marks_dir)]);
    assert!(
        !sync_dir.exists(),
        "the killed tool's sync directory is removed"
    );
    assert_eq!(get(port, "/", BUILD), (200, "hold".to_owned()));
}

/// A line of 64 MiB on the function's stdout passes through whole (in pieces: the tool's peak
/// memory stays below the line's size).
#[test]
fn test_watch_passes_a_long_output_line_through_without_holding_it() {
    const MIB: usize = 64;
    let project = Project::new("scf-watch-spew", "spew");
    let (tool, port) = watch(&project, &[]);
    // Served by then: the build of the lock file the first build writes, whose process would
    // otherwise start (its start-up line among the pieces) while the line passes.
    for _ in 0..2 {
        assert_eq!(get(port, "/", BUILD), (200, "spew".to_owned()));
    }
    assert_eq!(
        get(port, &format!("/spew?mb={MIB}"), BUILD),
        (200, "spewed".to_owned())
    );
    let line = tool
        .out
        .wait_for(SHORT, |l| l.starts_with("xxxx"))
        .expect("the line passed through");
    assert_eq!(line.len(), MIB << 20);
    assert!(line.bytes().all(|b| b == b'x'));
    #[cfg(target_os = "linux")]
    {
        let peak_kb = function::status_kb(tool.pid(), "VmHWM");
        assert!(
            peak_kb < (MIB as u64) << 10,
            "the tool's peak memory, {peak_kb} kB, holds the line"
        );
    }
}

/// Sets process `pid`'s soft limit on descriptors; the soft limit it had.
#[cfg(target_os = "linux")]
fn set_files_limit(pid: i32, soft: u64) -> u64 {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit reads nothing and writes the limits into `old`.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0);
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: prlimit reads `new`, a valid rlimit.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
    old.rlim_cur
}

/// A function or a build that cannot be started for want of descriptors (EMFILE) is tried
/// again, not dropped: once descriptors are back, the edit is served.
#[cfg(target_os = "linux")]
#[test]
fn test_watch_tries_again_what_failed_to_start_for_want_of_descriptors() {
    let project = Project::new("scf-watch-emfile", "one");
    project.block_builds();
    let marks = tmp_dir();
    let marks_dir = marks.path().to_str().unwrap();
    let (mut tool, port) = watch_with(&project, &[], &[("SCF_TEST_BUILD_MARKS", marks_dir)]);
    let (script, cargo) = function::blocked_build(marks.path());
    tool.owns(script);
    tool.owns(cargo);
    // The lines saying that `what` failed for want of descriptors and is tried again.
    let retries = |tool: &Tool, what: &str| {
        tool.err.count(|l| {
            l.starts_with(what) && l.contains("Too many open files") && l.contains("trying again")
        })
    };
    // Waits for one more of them than `before`.
    let retried = |tool: &Tool, what: &str, before: usize| {
        assert!(
            function::eventually(|| retries(tool, what) > before),
            "no retry of {what:?}\n{}",
            tool.output()
        );
    };

    // No descriptor left for the tool as the build ends: the function cannot be started.
    let limit = set_files_limit(tool.pid(), 0);
    std::fs::write(marks.path().join("go"), b"").unwrap();
    retried(&tool, "cargo scf watch: start ", 0);
    set_files_limit(tool.pid(), limit);
    assert_eq!(get(port, "/", BUILD), (200, "one".to_owned()));
    // The build of the lock file the first build wrote is done by the time this is answered.
    assert_eq!(get(port, "/", BUILD), (200, "one".to_owned()));

    // None left as a file is saved: cargo cannot be started.
    let build = "cargo scf watch: run cargo build: ";
    let before = retries(&tool, build);
    let limit = set_files_limit(tool.pid(), 0);
    project.write_main(&main_rs("two"));
    retried(&tool, build, before);
    set_files_limit(tool.pid(), limit);
    assert_eq!(
        tool.err.count(|l| l.contains("is cargo on PATH")),
        0,
        "the hint is for cargo not found only\n{}",
        tool.output()
    );
    assert_eq!(
        get(port, "/", BUILD),
        (200, "two".to_owned()),
        "{}",
        tool.output()
    );
}

/// The directories beneath `dir`, itself included, symbolic links not followed.
#[cfg(target_os = "linux")]
fn directories(dir: &std::path::Path) -> usize {
    1 + std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| directories(&e.path()))
        .sum::<usize>()
}

/// Symbolic links to directories are not followed: a link to a tree (at the top, inside a
/// watched directory, made while the tool runs) adds no watch for it.
#[cfg(target_os = "linux")]
#[test]
fn test_watch_does_not_follow_symbolic_links() {
    let project = Project::new("scf-watch-links", "links");
    let tree = tempfile::tempdir().unwrap();
    for i in 0..100 {
        std::fs::create_dir_all(tree.path().join(format!("d{i}/e"))).unwrap();
    }
    std::os::unix::fs::symlink(tree.path(), project.dir.join("linked")).unwrap();
    std::os::unix::fs::symlink(tree.path(), project.dir.join("src/linked")).unwrap();
    let (tool, port) = watch(&project, &[]);
    assert_eq!(get(port, "/", BUILD), (200, "links".to_owned()));
    // Made while it runs: seen before a request sent after it is answered.
    std::os::unix::fs::symlink(tree.path(), project.dir.join("linked-later")).unwrap();
    assert_eq!(get(port, "/", BUILD), (200, "links".to_owned()));
    let own = directories(&project.dir);
    let watches = function::inotify_watches(tool.pid());
    assert!(
        watches <= own + 1,
        "{watches} inotify watches for the package's {own} directories and the sync one"
    );
}
