//! Server binaries run as child processes on `PORT=0`: the kernel picks a free port as the
//! server binds it, and the server names it in its start-up line. (A port a test picks and
//! releases before the start is free only until another test, running at the same time, is
//! handed it too.)

use std::io::{ErrorKind, Read};
use std::process::{Child, ChildStdout};
use std::sync::mpsc;
use std::time::Duration;

/// How long a binary may take to print its start-up line.
pub const STARTUP: Duration = Duration::from_secs(10);

/// The port a start-up line names, in text (`INFO [-] scf-lean 0.1.0 (7426053cfb32) listening
/// on 0.0.0.0:41235 in 49 us (...)`) or JSON (`{..."msg":"listening",...,"port":41235,...}`);
/// `None` for any other line.
pub fn startup_port(line: &str) -> Option<u16> {
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v["msg"] != "listening" {
            return None;
        }
        return v["port"].as_u64()?.try_into().ok();
    }
    let rest = line.strip_prefix("INFO [-] ")?;
    let (_, addr) = rest.split_once(" listening on 0.0.0.0:")?;
    addr.split_once(" in ")?.0.parse().ok()
}

/// Reads `child`'s stdout up to and including its start-up line, waiting at most [`STARTUP`];
/// returns the port the line names and every byte read: the lines before it (a function may
/// log while it is built) and the line itself. Nothing after the line is read: stdout is given
/// back to `child`, for the test to read, or to leave unread.
///
/// The log level must be `info` or `debug`: at `warn`, `error` or `off` there is no start-up
/// line. Panics when none comes in time or stdout ends first; the caller holds `child` in a
/// guard that kills it when dropped, so it is stopped then too.
pub fn read_startup(child: &mut Child) -> (u16, Vec<u8>) {
    let out = child.stdout.take().expect("the child's stdout is piped");
    let (tx, rx) = mpsc::channel();
    // In a thread, so that the wait is bounded: a read from a pipe has no timeout. If the wait
    // gives up, the guard's kill ends the thread's read (EOF).
    std::thread::spawn(move || {
        let _ = tx.send(read_to_startup(out));
    });
    match rx.recv_timeout(STARTUP) {
        Ok((out, read, Some(port))) => {
            child.stdout = Some(out);
            (port, read)
        }
        Ok((_, read, None)) => panic!(
            "stdout ended without a start-up line: {:?}",
            String::from_utf8_lossy(&read)
        ),
        Err(_) => panic!("no start-up line within {STARTUP:?} (is the log level info or debug?)"),
    }
}

/// Reads one byte at a time, so that nothing past the start-up line is taken, up to that line
/// (with its port) or the end of stdout.
fn read_to_startup(mut out: ChildStdout) -> (ChildStdout, Vec<u8>, Option<u16>) {
    let mut read = Vec::new();
    let mut line_start = 0;
    let mut b = [0u8; 1];
    loop {
        match out.read(&mut b) {
            Ok(1) => read.push(b[0]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Ok(_) | Err(_) => return (out, read, None),
        }
        if b[0] == b'\n' {
            let line = String::from_utf8_lossy(&read[line_start..read.len() - 1]);
            if let Some(port) = startup_port(&line) {
                return (out, read, Some(port));
            }
            line_start = read.len();
        }
    }
}
