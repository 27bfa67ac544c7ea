//! A function project for the `cargo scf run` and `watch` tests, and the tool's process.
//!
//! The project is made by `cargo scf new` from this repository's template, its `src/main.rs`
//! replaced by a probe ([`main_rs`]) that answers what the tests look at: its answer, an
//! environment variable, its pid, a write to a path, a slow request, a stream, a long line on
//! stdout; its build can be made to wait for the test ([`Project::block_builds`]). Every project
//! builds into one target directory (`target/tmp/scf-functions`), so scf-lean and the other
//! dependencies compile once for all the tests and all their runs.
//!
//! The tool runs in a process group of its own, its stdout and stderr collected line by line;
//! dropping it kills the group and every function process it was told of, also when a test
//! panics. Every wait is bounded.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A build of the probe, dependencies included when the target directory is cold.
pub const BUILD: Duration = Duration::from_secs(600);
/// Anything else: an answer, a line, an exit.
pub const SHORT: Duration = Duration::from_secs(20);

/// The target directory every probe builds into.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("scf-functions")
}

/// The repository the projects depend on (scf-lean's clone).
pub fn scf_lean() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The probe's source, answering `answer` to `GET /`. With the package's `loud` feature on
/// (when the manifest declares it) it answers `LOUD` instead.
pub fn main_rs(answer: &str) -> String {
    PROBE.replace("ANSWER_HERE", answer)
}

const PROBE: &str = r#"//! The probe the `cargo scf run` and `watch` tests serve.

use std::time::{Duration, Instant};

use scf_lean::{Context, Error, Function, Request, Response};

const ANSWER: &str = "ANSWER_HERE";

pub struct Probe;

impl Function for Probe {
    /// A job: `{"fail": true}` fails; otherwise the event comes back with some of the
    /// environment.
    fn event<'a>(
        &mut self,
        event: &'a [u8],
        _: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        let e: serde_json::Value = scf_lean::from_json(event)?;
        if e["fail"] == true {
            return Err(Error::new("asked to fail"));
        }
        let var = |k: &str| std::env::var(k).ok();
        out.json(&serde_json::json!({
            "event": e,
            "SCF_FUNCTIONNAME": var("SCF_FUNCTIONNAME"),
            "PORT": var("PORT"),
        }))
    }

    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        let q = |n: &str| req.query_param(n).map(|v| v.into_owned()).unwrap_or_default();
        let answer = match req.path() {
            "/" if cfg!(feature = "loud") => "LOUD".to_owned(),
            "/" => ANSWER.to_owned(),
            "/env" => std::env::var(q("name")).unwrap_or_else(|_| "<unset>".into()),
            "/pid" => std::process::id().to_string(),
            "/spew" => {
                // MB mebibytes of `x` on stdout, then one newline: a single long line.
                use std::io::Write as _;
                let chunk = vec![b'x'; 1 << 20];
                let mut stdout = std::io::stdout().lock();
                for _ in 0..q("mb").parse::<usize>().unwrap_or(1) {
                    stdout.write_all(&chunk)?;
                }
                stdout.write_all(b"\n")?;
                stdout.flush()?;
                "spewed".into()
            }
            "/write" => match std::fs::write(q("path"), b"x") {
                Ok(()) => "written".into(),
                Err(e) => format!("{:?}", e.kind()),
            },
            "/sleep" => {
                std::fs::write(q("mark"), b"")?;
                std::thread::sleep(Duration::from_millis(q("ms").parse().unwrap_or(0)));
                "slept".into()
            }
            "/stream" => {
                let mark = q("mark");
                return out.stream(move |body| {
                    body.send(b"first\n")?;
                    let end = Instant::now() + Duration::from_secs(20);
                    while !std::path::Path::new(&mark).exists() && Instant::now() < end {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    body.send(b"second\n")?;
                    Ok(())
                });
            }
            _ => return Err(Error::not_found("no such path")),
        };
        out.body_mut().extend_from_slice(answer.as_bytes());
        Ok(())
    }
}

pub fn function() -> Probe {
    Probe
}

scf_lean::main!(function());
"#;

/// A function project made from the template, with the probe as its function.
pub struct Project {
    /// Removed with the project, when it is a temporary one.
    _tmp: Option<tempfile::TempDir>,
    pub dir: PathBuf,
    pub name: String,
}

impl Project {
    /// `cargo scf new NAME` in a new temporary directory, the probe answering `answer`, and a
    /// `loud` feature.
    pub fn new(name: &str, answer: &str) -> Project {
        let tmp = tempfile::tempdir().unwrap();
        let mut p = Project::make(tmp.path(), name, answer);
        p._tmp = Some(tmp);
        p
    }

    /// The same in `target/tmp/scf-projects` (made anew, kept after the test process: for a
    /// project shared by the tests of one process).
    pub fn kept(name: &str, answer: &str) -> Project {
        let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scf-projects");
        let _ = std::fs::remove_dir_all(parent.join(name));
        std::fs::create_dir_all(&parent).unwrap();
        Project::make(&parent, name, answer)
    }

    fn make(parent: &Path, name: &str, answer: &str) -> Project {
        let out = Command::new(env!("CARGO_BIN_EXE_cargo-scf"))
            .current_dir(parent)
            .args(["scf", "new", name, "--vcs", "none", "--scf-lean"])
            .arg(scf_lean())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo scf new: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = parent.join(name);
        let manifest = dir.join("Cargo.toml");
        let mut toml = std::fs::read_to_string(&manifest).unwrap();
        toml.push_str("\n[features]\nloud = []\n");
        std::fs::write(&manifest, toml).unwrap();
        let p = Project {
            _tmp: None,
            dir,
            name: name.to_owned(),
        };
        p.write_main(&main_rs(answer));
        p
    }

    pub fn write_main(&self, source: &str) {
        std::fs::write(self.dir.join("src/main.rs"), source).unwrap();
    }

    /// Replaces the build script with [`BLOCKING_BUILD_RS`]: a build run with
    /// `SCF_TEST_BUILD_MARKS=DIR` in its environment waits for the test.
    pub fn block_builds(&self) {
        std::fs::write(self.dir.join("build.rs"), BLOCKING_BUILD_RS).unwrap();
    }
}

/// A build script that, given `SCF_TEST_BUILD_MARKS=DIR`, writes `PID PPID` (its own and
/// cargo's) to `DIR/build-pid` and waits until `DIR/go` exists (60 s at most, past any wait of
/// a test). It runs again whenever the variable changes.
pub const BLOCKING_BUILD_RS: &str = r#"fn main() {
    println!("cargo:rerun-if-env-changed=SCF_TEST_BUILD_MARKS");
    let Some(dir) = std::env::var_os("SCF_TEST_BUILD_MARKS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let ids = format!("{} {}", std::process::id(), std::os::unix::process::parent_id());
    std::fs::write(dir.join("build-pid.tmp"), ids).unwrap();
    std::fs::rename(dir.join("build-pid.tmp"), dir.join("build-pid")).unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !dir.join("go").exists() && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
"#;

/// The blocked build script's pid and cargo's (its parent), once it runs (`marks` is its
/// `SCF_TEST_BUILD_MARKS`).
pub fn blocked_build(marks: &Path) -> (u32, u32) {
    let path = marks.join("build-pid");
    let end = Instant::now() + BUILD;
    loop {
        if let Ok(ids) = std::fs::read_to_string(&path) {
            let mut ids = ids.split(' ').map(|n| n.parse().unwrap());
            return (ids.next().unwrap(), ids.next().unwrap());
        }
        assert!(Instant::now() < end, "the build script never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Lines of a stream of the tool's, collected as they come.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Lines {
    fn collect(self, from: impl std::io::Read + Send + 'static) {
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { return };
                self.0.0.lock().unwrap().push(line);
                self.0.1.notify_all();
            }
        });
    }

    /// The first line (so far, or coming within `limit`) that `matches`.
    pub fn wait_for(&self, limit: Duration, matches: impl Fn(&str) -> bool) -> Option<String> {
        let end = Instant::now() + limit;
        let mut lines = self.0.0.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| matches(l)) {
                return Some(l.clone());
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            lines = self.0.1.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// How many lines `matches` so far.
    pub fn count(&self, matches: impl Fn(&str) -> bool) -> usize {
        self.0
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| matches(l))
            .count()
    }

    pub fn text(&self) -> String {
        self.0.0.lock().unwrap().join("\n")
    }
}

/// `cargo scf ARGS`, running; killed with its process group (and the function processes it
/// was told of) when dropped.
pub struct Tool {
    child: Child,
    pub out: Lines,
    pub err: Lines,
    functions: Vec<u32>,
}

impl Tool {
    /// Starts `cargo scf ARGS` in `dir`, building into the shared target directory; `env` is
    /// added to the environment, and the log settings that would change the function's lines
    /// are removed.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Tool {
        Tool::start_with_input(dir, args, env, None)
    }

    /// The same, with `input` on its stdin (else stdin is empty).
    pub fn start_with_input(
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        input: Option<Vec<u8>>,
    ) -> Tool {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cargo-scf"));
        c.arg("scf")
            .args(args)
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", target_dir())
            .env_remove("SCF_LEAN_LOG_LEVEL")
            .env_remove("SCF_LEAN_LOG_FORMAT")
            .envs(env.iter().copied())
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = c.spawn().unwrap();
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            std::thread::spawn(move || stdin.write_all(&input));
        }
        let (out, err) = (Lines::default(), Lines::default());
        out.clone().collect(child.stdout.take().unwrap());
        err.clone().collect(child.stderr.take().unwrap());
        Tool {
            child,
            out,
            err,
            functions: Vec::new(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// A function process to kill with the tool.
    pub fn owns(&mut self, pid: u32) {
        self.functions.push(pid);
    }

    /// Sends `sig` to the tool alone.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill with our own child's pid (not yet waited for).
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// Sends `sig` to the tool's process group, as a terminal's Ctrl-C does.
    pub fn signal_group(&self, sig: i32) {
        // SAFETY: kill of our own child's process group.
        assert_eq!(unsafe { libc::kill(-self.pid(), sig) }, 0);
    }

    /// Its exit status, within `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Both streams, for a failure's message.
    pub fn output(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.out.text(),
            self.err.text()
        )
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        // SAFETY: kill of our child's process group and of the function processes it started.
        unsafe {
            libc::kill(-self.pid(), libc::SIGKILL);
            for pid in &self.functions {
                libc::kill(*pid as i32, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

/// Whether process `pid` is gone (exited: reaped, or a zombie waiting for its new parent to
/// reap it), within `limit`.
pub fn gone(pid: u32, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    loop {
        // SAFETY: kill with signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid as i32, 0) } != 0 || zombie(pid) {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` has exited and waits to be reaped (Linux's /proc; elsewhere never said).
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// `GET path` on 127.0.0.1:`port` with `Connection: close`: the status and the body, read
/// within `limit`.
pub fn get(port: u16, path: &str, limit: Duration) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(limit)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    if let Err(e) = s.read_to_end(&mut answer) {
        panic!(
            "GET {path}: {e} after {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no head in {answer:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: {head:?}"));
    (status, body.to_owned())
}

/// `GET path` on an open connection, kept alive: the status and the body (as long as its
/// `Content-Length` says), read within SHORT.
pub fn get_on(s: &mut TcpStream, path: &str) -> (u16, String) {
    s.set_read_timeout(Some(SHORT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => answer.push(byte[0]),
            other => panic!(
                "GET {path}: {other:?} after {:?}",
                String::from_utf8_lossy(&answer)
            ),
        }
    }
    let head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |n| n.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

/// Sends `GET path` on a new connection, reading nothing.
pub fn send_get(port: u16, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    s
}

/// Reads the rest of an answer, `Connection: close`: its status and body.
pub fn read_answer(mut s: TcpStream) -> (u16, String) {
    s.set_read_timeout(Some(SHORT)).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {answer:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    (status, body.to_owned())
}

/// Waits until `f` holds (within SHORT); whether it did.
pub fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + SHORT;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The threads of process `pid` whose name starts with `prefix` (Linux's /proc).
pub fn threads_named(pid: i32, prefix: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .count()
}

/// A field of `/proc/PID/status`, in kB (`VmHWM`: the peak of its resident memory).
pub fn status_kb(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    number_after(line.trim_start(), "") as u64
}

/// The inotify watches process `pid` has (Linux's /proc: the `inotify wd:` lines of its
/// inotify descriptors).
pub fn inotify_watches(pid: i32) -> usize {
    let mut n = 0;
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let inotify =
            std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == "anon_inode:inotify");
        if inotify {
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().display()))
                    .unwrap_or_default();
            n += info
                .lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count();
        }
    }
    n
}

/// The number after `key` in `line` (`port 4567`, `0.0.0.0:4567`).
pub fn number_after(line: &str, key: &str) -> u32 {
    let (_, rest) = line
        .split_once(key)
        .unwrap_or_else(|| panic!("no {key:?} in {line:?}"));
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {key:?} in {line:?}"))
}
