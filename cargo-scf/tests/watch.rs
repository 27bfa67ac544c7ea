//! `cargo scf watch`: the function served through the tool's own port, rebuilt and restarted
//! on every edit. A request sent right after a save is answered by the new build (held, not
//! refused, while it builds); a build that fails leaves the last good one serving; streams
//! pass unbuffered; cargo's flags pass through; SIGTERM stops the function. Loopback only;
//! every process is killed on every path (`common/function.rs`).

#[path = "common/function.rs"]
mod function;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use function::{BUILD, Project, SHORT, Tool, get, gone, main_rs, number_after};

/// `cargo scf watch --port 0 ARGS` in `project`: the tool and the port its `serving on` line
/// names.
fn watch(project: &Project, args: &[&str]) -> (Tool, u16) {
    let mut all = vec!["watch", "--port", "0"];
    all.extend(args);
    let tool = Tool::start(&project.dir, &all, &[]);
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
