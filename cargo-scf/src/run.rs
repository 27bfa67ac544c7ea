//! `cargo scf run`: the function built for this host and served as SCF serves it.
//!
//! The binary is a plain `cargo build` (the dev profile unless the cargo arguments say
//! `--release`) for the host, Linux or macOS, never the musl target: what runs here is the
//! function's code, and what is made like SCF is the process around it. That is fidelity, for
//! testing, not isolation: the limits and Landlock make the function meet SCF's conditions, not
//! a sandbox that holds code one does not trust (root is not held by `RLIMIT_NPROC`, and
//! Landlock's filesystem rules leave `chmod`, `chown`, connections to Unix sockets and signals
//! to other processes free).
//!
//! - **Port:** `PORT=9000` (`--port`), as SCF's `ImagePort`; `--port 0` takes a free one, which
//!   the function's start-up line names.
//! - **Environment:** SCF's variables ([`Function::scf_env`]) over the user's own environment,
//!   which passes through, and `--env KEY=VALUE` over both. `TMPDIR` is removed (SCF has none:
//!   temporary files go to `/tmp`).
//! - **Limits:** `RLIMIT_NOFILE` 1,024 and, on Linux, `RLIMIT_NPROC` 1,024 processes and
//!   threads, set in the child before `exec`. Linux counts `RLIMIT_NPROC` per user, across all
//!   the user's processes, so the limit is 1,024 above the threads the user runs already: the
//!   function gets SCF's 1,024 of its own (root is not held by it at all). macOS counts every
//!   process of the user too and has no per-thread count, so there only descriptors are
//!   limited. Memory is not limited: SCF's 64–3,072 MB is a cgroup limit, which a process
//!   cannot put on itself, and `RLIMIT_AS` would count address space (thread stacks, allocator
//!   arenas), not memory, and refuse what SCF allows.
//! - **Filesystem:** SCF's root is read-only and only `/tmp` is writable. On Linux with
//!   Landlock the child restricts itself before `exec`: read and execute everywhere, write
//!   beneath `/tmp` and to `/dev/null`, `/dev/zero`, `/dev/full`, `/dev/tty` and `/dev/pts`.
//!   Without Landlock (an older kernel, macOS) writes are not restricted, and the tool says so.
//! - **Working directory:** `/`, as in the `FROM scratch` image (no `WORKDIR`).
//! - **Signals:** SIGINT, SIGTERM and SIGHUP to the tool are forwarded to the function (SIGHUP
//!   as SIGTERM), which has its grace period (`SCF_LEAN_SHUTDOWN_GRACE_MS`, 2 s); a second
//!   signal is forwarded too (scf-lean then exits at once), and a function still running a
//!   second after its grace period is killed. The tool exits with the function's status
//!   (128 + N when a signal N ended it). The function runs in a process group of its own, so
//!   that a Ctrl-C reaches it once, through the tool; on Linux it is killed if the tool dies.
//!   So does cargo while it builds: a signal to the tool stops cargo's whole group (its
//!   compilers and build scripts too), and on Linux cargo dies with the tool.
//! - **Jobs:** `--event FILE|-` runs it as a job function: the event in
//!   `SCF_CUSTOM_CONTAINER_EVENT` (at most SCF's 128 KiB; on Linux 28 bytes less, so that
//!   every event taken can be passed: [`max_event_bytes`]), no `PORT`, stdin empty; its exit
//!   code is the result.
//!
//! `watch.rs` starts the function the same way: [`FunctionArgs`], [`Function`], [`start_build`]
//! and [`catch_signals`] are shared.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

use crate::project::Project;

/// SCF's limit on the file descriptors of an instance.
const MAX_FILES: libc::rlim_t = 1024;
/// SCF's limit on the processes and threads of an instance.
const MAX_TASKS: libc::rlim_t = 1024;
/// SCF's limit on a job function's event, `SCF_CUSTOM_CONTAINER_EVENT`: 128 KiB.
const SCF_MAX_EVENT_BYTES: usize = 128 * 1024;
/// Linux's limit on one string of a new process's arguments or environment, `MAX_ARG_STRLEN`:
/// 32 pages (131,072 bytes with 4 KiB pages), the terminating NUL included. A longer one fails
/// `exec` with "Argument list too long".
#[cfg(target_os = "linux")]
const MAX_ARG_STRLEN_PAGES: usize = 32;
/// The variable that holds a job function's event.
const JOB_EVENT: &str = "SCF_CUSTOM_CONTAINER_EVENT";
/// SCF's version name for the function's latest code.
const VERSION: &str = "$LATEST";
/// SCF's default namespace.
const NAMESPACE: &str = "default";
/// The owner's AppId and Uin: fakes of the right shape (scf_lean::testing's).
const APPID: &str = "1250000000";
const UIN: &str = "100000000001";
/// scf-lean's shutdown grace when `SCF_LEAN_SHUTDOWN_GRACE_MS` does not say.
const DEFAULT_GRACE: Duration = Duration::from_millis(2000);
/// How long past its grace period a function that was told to stop may take before SIGKILL.
pub(crate) const KILL_MARGIN: Duration = Duration::from_secs(1);
/// How often a child process is checked for its exit.
const POLL: Duration = Duration::from_millis(10);

/// Build the function for this host and serve it as SCF does (or run it as a job function).
///
/// PORT=9000, SCF's environment variables, SCF's limits (1,024 descriptors, 1,024 processes and
/// threads), `/` as the working directory and, where the kernel has Landlock, only /tmp
/// writable: SCF's conditions, for testing — not a sandbox for code you do not trust. SIGINT
/// and SIGTERM go on to the function, which has its grace period; the exit code is the
/// function's. With --event it runs once as a job function.
///
/// The environment: SCF_FUNCTIONNAME (--name, default the package name),
/// SCF_FUNCTIONVERSION=$LATEST, SCF_NAMESPACE=default, TENCENTCLOUD_RUNENV=SCF,
/// TENCENTCLOUD_REGION (--region), TENCENTCLOUD_APPID=1250000000 and
/// TENCENTCLOUD_UIN=100000000001 (fakes), USER_CODE_ROOT=/var/user/, USER=qcloud; PORT, or
/// SCF_CUSTOM_CONTAINER_EVENT for a job. Your own environment passes through (TMPDIR
/// excepted), and --env KEY=VALUE wins over both.
#[derive(clap::Args)]
pub struct Args {
    /// The port, given to the function as PORT; 0 takes a free one, which the function's
    /// start-up line names.
    #[arg(long, default_value_t = scf_lean::image::PORT, conflicts_with = "event")]
    port: u16,
    /// Run it once as a job function on this event (a file, or - for stdin): the event goes in
    /// SCF_CUSTOM_CONTAINER_EVENT (at most SCF's 131,072 bytes; on Linux 131,044, as the
    /// variable's name counts in Linux's limit), no port is given, and the exit code is the
    /// job's result.
    #[arg(long, value_name = "FILE|-")]
    event: Option<PathBuf>,
    #[command(flatten)]
    function: FunctionArgs,
}

/// What `run` and `watch` take alike: which function, its SCF environment, cargo's arguments.
#[derive(clap::Args)]
pub(crate) struct FunctionArgs {
    /// SCF_FUNCTIONNAME (default: the package name).
    #[arg(long)]
    pub name: Option<String>,
    /// TENCENTCLOUD_REGION.
    #[arg(long, default_value = "ap-guangzhou")]
    pub region: String,
    /// A variable for the function's environment, KEY=VALUE (repeat it for more); it wins over
    /// SCF's and yours.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// The function's Cargo.toml (default: the package cargo finds here).
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Arguments for `cargo build` (--release, --features F, --locked...), after `--`.
    #[arg(last = true, value_name = "CARGO ARGS")]
    pub cargo_args: Vec<OsString>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
            Ok((k.to_owned(), v.to_owned()))
        }
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// What the main loop of `run` waits for.
enum Event {
    Signal(i32),
    Built(Result<Built>),
    Exited(ExitStatus),
}

/// `cargo scf run`.
pub fn run(args: Args) -> Result<()> {
    let event = args.event.as_deref().map(read_event).transpose()?;
    let project = Project::find(args.function.manifest_path.as_deref())?;
    let function = Function::new(&args.function, &project);
    let (tx, rx) = mpsc::channel();
    catch_signals(tx.clone(), Event::Signal)?;

    let build = start_build(&project, &args.function.cargo_args)?;
    let cargo = build.proc().clone();
    let built_tx = tx.clone();
    std::thread::spawn(move || {
        let _ = built_tx.send(Event::Built(build.finish()));
    });
    let built = loop {
        match rx.recv().context("the build's thread is gone")? {
            Event::Built(built) => break built?,
            Event::Signal(sig) => {
                // Cargo has a process group of its own (a terminal's Ctrl-C does not reach it):
                // the whole group is stopped.
                cargo.signal(libc::SIGTERM);
                if cargo.wait_for(Duration::from_secs(5)).is_none() {
                    cargo.signal(libc::SIGKILL);
                }
                exit_with(128 + sig);
            }
            Event::Exited(_) => {}
        }
    };

    let mode = match &event {
        Some(e) => Mode::Job(e),
        None => Mode::Web(args.port),
    };
    let started = function.spawn(&built.binary, &mode, Stdio::inherit())?;
    let what = match &event {
        Some(e) => format!("as a job function on a {}-byte event", e.len()),
        None => format!("on port {}", args.port),
    };
    eprintln!(
        "cargo scf run: {} {what}, as on SCF, for testing — not a sandbox: {}",
        relative(&built.binary, &project.dir).display(),
        started.conditions
    );
    if let Some(warning) = &started.warning {
        eprintln!("cargo scf run: warning: {warning}");
    }
    let proc = started.proc;
    proc.on_exit(move |status| {
        let _ = tx.send(Event::Exited(status));
    });

    let mut kill_at: Option<Instant> = None;
    loop {
        let event = match kill_at {
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(e) => e,
                Err(RecvTimeoutError::Timeout) => {
                    eprintln!(
                        "cargo scf run: the function did not stop within its grace period ({} ms): SIGKILL",
                        function.grace.as_millis()
                    );
                    proc.signal(libc::SIGKILL);
                    kill_at = None;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => bail!("the function's waiter is gone"),
            },
            None => rx.recv().context("the function's waiter is gone")?,
        };
        match event {
            Event::Signal(sig) => {
                proc.signal(forwarded(sig));
                kill_at.get_or_insert_with(|| Instant::now() + function.grace + KILL_MARGIN);
            }
            Event::Exited(status) => {
                if !status.success() {
                    eprintln!("cargo scf run: the function {}", describe_exit(status));
                }
                exit_with(exit_code(status));
            }
            Event::Built(_) => {}
        }
    }
}

/// The longest event `--event` takes: SCF's 128 KiB where this host can pass that much in
/// `SCF_CUSTOM_CONTAINER_EVENT`. On Linux the variable's whole string (`NAME=`, the event and a
/// NUL) must fit in `MAX_ARG_STRLEN`, so with 4 KiB pages the event can be 131,072 − 28 =
/// 131,044 bytes at most: every event taken here can be passed to the function.
pub(crate) fn max_event_bytes() -> usize {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let passable = MAX_ARG_STRLEN_PAGES * page - (JOB_EVENT.len() + "=".len() + 1);
        SCF_MAX_EVENT_BYTES.min(passable)
    }
    #[cfg(not(target_os = "linux"))]
    {
        SCF_MAX_EVENT_BYTES
    }
}

/// The event of `--event`: a file's bytes, or stdin's for `-`; at most [`max_event_bytes`],
/// and without NUL bytes (an environment variable cannot hold one).
fn read_event(from: &Path) -> Result<OsString> {
    let max = max_event_bytes();
    let mut bytes = Vec::new();
    let limit = max as u64 + 1;
    if from == Path::new("-") {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut bytes)
            .context("read the event from stdin")?;
    } else {
        std::fs::File::open(from)
            .and_then(|f| f.take(limit).read_to_end(&mut bytes))
            .with_context(|| format!("read the event from {}", from.display()))?;
    }
    if bytes.len() > max {
        if max < SCF_MAX_EVENT_BYTES {
            bail!(
                "the event is over {max} bytes, the most this host can pass in {JOB_EVENT} \
                 (SCF takes {SCF_MAX_EVENT_BYTES}; Linux limits one environment string to \
                 {} bytes, the variable's name, `=` and a NUL included)",
                max + JOB_EVENT.len() + 2
            );
        }
        bail!("the event is over SCF's {max}-byte limit for a job function's {JOB_EVENT}");
    }
    if bytes.contains(&0) {
        bail!("the event holds a NUL byte, which an environment variable cannot");
    }
    use std::os::unix::ffi::OsStringExt as _;
    Ok(OsString::from_vec(bytes))
}

/// Flushes stdout and ends the process with `code`.
fn exit_with(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// The signal a caught one is forwarded as: SIGHUP (the terminal went away) as SIGTERM, which
/// scf-lean handles; the others as they are.
pub(crate) fn forwarded(sig: i32) -> i32 {
    if sig == libc::SIGHUP {
        libc::SIGTERM
    } else {
        sig
    }
}

/// A process's exit as a shell reports it: its code, or 128 + the signal that ended it.
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// "exited with status 1", "was killed by SIGKILL".
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by {}", signal_name(sig)),
        _ => format!("ended ({status})"),
    }
}

/// A signal's name, for messages.
pub(crate) fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        n => format!("signal {n}"),
    }
}

/// `path` relative to `base` when it is beneath it.
pub(crate) fn relative<'a>(path: &'a Path, base: &Path) -> &'a Path {
    path.strip_prefix(base).unwrap_or(path)
}

/// How the function runs: serving HTTP on a port, or once as a job on an event.
pub(crate) enum Mode<'a> {
    Web(u16),
    Job(&'a OsStr),
}

/// The function as `run` and `watch` start it: its SCF environment and grace period.
pub(crate) struct Function {
    /// `SCF_FUNCTIONNAME`.
    name: String,
    region: String,
    /// `--env`, applied last.
    env: Vec<(String, String)>,
    /// How long the function may take to stop after SIGTERM (`SCF_LEAN_SHUTDOWN_GRACE_MS`).
    pub grace: Duration,
}

/// A function process, started.
pub(crate) struct Started {
    pub proc: Arc<Proc>,
    /// Its stdout, when it was asked for a pipe.
    pub stdout: Option<ChildStdout>,
    /// What of SCF's conditions it runs under: limits and filesystem, for a status line.
    pub conditions: String,
    /// A condition that does not hold here although the status line names it (root is not
    /// held by the process limit).
    pub warning: Option<String>,
}

impl Function {
    pub(crate) fn new(args: &FunctionArgs, project: &Project) -> Function {
        let grace = args
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "SCF_LEAN_SHUTDOWN_GRACE_MS")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("SCF_LEAN_SHUTDOWN_GRACE_MS").ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_GRACE, Duration::from_millis);
        Function {
            name: args.name.clone().unwrap_or_else(|| project.name.clone()),
            region: args.region.clone(),
            env: args.env.clone(),
            grace,
        }
    }

    /// The value the function gets for `key` from `--env` or the tool's environment.
    pub(crate) fn env_value(&self, key: &str) -> Option<String> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(key).ok())
    }

    /// The variables SCF sets in an image function's environment (its documentation's list,
    /// with the ones the runtime adds), with local values: the owner's AppId and Uin are fakes
    /// of the right shape. A role's temporary credentials (`TENCENTCLOUD_SECRETID`,
    /// `_SECRETKEY`, `_SESSIONTOKEN`) are not made up: yours pass through if you set them.
    fn scf_env(&self) -> [(&'static str, &str); 9] {
        [
            ("SCF_FUNCTIONNAME", &self.name),
            ("SCF_FUNCTIONVERSION", VERSION),
            ("SCF_NAMESPACE", NAMESPACE),
            ("TENCENTCLOUD_RUNENV", "SCF"),
            ("TENCENTCLOUD_REGION", &self.region),
            ("TENCENTCLOUD_APPID", APPID),
            ("TENCENTCLOUD_UIN", UIN),
            ("USER_CODE_ROOT", "/var/user/"),
            ("USER", "qcloud"),
        ]
    }

    /// Starts `binary` as SCF would: its environment, `/` as working directory, stdin empty,
    /// a process group of its own, SCF's limits and (with Landlock) only /tmp writable.
    /// `stdout` is inherited or piped; stderr is inherited.
    pub(crate) fn spawn(&self, binary: &Path, mode: &Mode<'_>, stdout: Stdio) -> Result<Started> {
        let mut c = Command::new(binary);
        c.current_dir("/")
            .stdin(Stdio::null())
            .stdout(stdout)
            .env_remove("TMPDIR")
            .process_group(0);
        for (k, v) in self.scf_env() {
            c.env(k, v);
        }
        match mode {
            Mode::Web(port) => {
                c.env("PORT", port.to_string()).env_remove(JOB_EVENT);
            }
            Mode::Job(event) => {
                c.env(JOB_EVENT, event).env_remove("PORT");
            }
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let limits = Limits::scf();
        let (mut child, applied) = sandbox::Sandbox::new()
            .and_then(|sandbox| sandbox::spawn(&mut c, &limits, sandbox))
            .with_context(|| format!("start {}", binary.display()))?;
        Ok(Started {
            stdout: child.stdout.take(),
            proc: Proc::new(child),
            conditions: format!("{}; {}", limits.describe(), applied.describe()),
            warning: limits.warning(),
        })
    }
}

/// SCF's limits as this host can set them in the child: the values computed here, set by
/// `setrlimit` between `fork` and `exec` (where nothing may allocate).
pub(crate) struct Limits {
    nofile: libc::rlim_t,
    /// `None` where the host's count is not SCF's (macOS).
    nproc: Option<libc::rlim_t>,
}

impl Limits {
    fn scf() -> Limits {
        Limits {
            nofile: lowered(libc::RLIMIT_NOFILE, MAX_FILES),
            nproc: nproc_limit(),
        }
    }

    fn describe(&self) -> String {
        let files = format!("{} descriptors", self.nofile);
        match self.nproc {
            Some(n) if n == MAX_TASKS => {
                format!("{files}, {n} processes and threads")
            }
            Some(n) => format!(
                "{files}, {MAX_TASKS} processes and threads of its own (RLIMIT_NPROC {n}: Linux counts \
                 all of the user's)"
            ),
            None => format!(
                "{files}, processes and threads not limited (macOS counts all of the user's)"
            ),
        }
    }

    /// What the limits do not hold here although [`Limits::describe`] names them: Linux does not
    /// apply `RLIMIT_NPROC` to root.
    fn warning(&self) -> Option<String> {
        // SAFETY: getuid has no preconditions.
        let root = unsafe { libc::getuid() } == 0;
        (root && self.nproc.is_some()).then(|| {
            format!(
                "running as root: the limit of {MAX_TASKS} processes and threads is not enforced \
                 (Linux exempts root from RLIMIT_NPROC)"
            )
        })
    }

    /// Sets the limits in the calling process. Async-signal-safe: only `setrlimit`.
    fn apply(&self) -> std::io::Result<()> {
        set_limit(libc::RLIMIT_NOFILE, self.nofile)?;
        #[cfg(target_os = "linux")]
        if let Some(n) = self.nproc {
            set_limit(libc::RLIMIT_NPROC, n)?;
        }
        Ok(())
    }
}

/// `want`, or the hard limit when that is lower (a process cannot raise its hard limit).
fn lowered(resource: RlimitResource, want: libc::rlim_t) -> libc::rlim_t {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limits into `cur`, a valid rlimit.
    if unsafe { libc::getrlimit(resource, &mut cur) } != 0 {
        return want;
    }
    want.min(cur.rlim_max)
}

/// The resource type `getrlimit` takes on this platform.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type RlimitResource = libc::c_int;

/// Sets a soft and hard limit in the calling process (async-signal-safe).
fn set_limit(resource: RlimitResource, value: libc::rlim_t) -> std::io::Result<()> {
    let l = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads a valid rlimit; it touches nothing else of this process.
    if unsafe { libc::setrlimit(resource, &l) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// RLIMIT_NPROC for the function. Linux counts it per real user, across all of the user's
/// processes and threads, so the function gets SCF's 1,024 on top of those the user runs now;
/// root is exempt from it (the kernel does not apply it), so there it is 1,024 as written.
#[cfg(target_os = "linux")]
fn nproc_limit() -> Option<libc::rlim_t> {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let others = if uid == 0 { 0 } else { user_threads(uid) };
    Some(lowered(libc::RLIMIT_NPROC, MAX_TASKS + others))
}

#[cfg(not(target_os = "linux"))]
fn nproc_limit() -> Option<libc::rlim_t> {
    None
}

/// The threads that processes of real user `uid` run now, from /proc.
#[cfg(target_os = "linux")]
fn user_threads(uid: libc::uid_t) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0;
    for entry in dir.flatten() {
        if !entry
            .file_name()
            .as_encoded_bytes()
            .iter()
            .all(u8::is_ascii_digit)
        {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        if field("Uid:") == Some(u64::from(uid)) {
            n += field("Threads:").unwrap_or(1);
        }
    }
    n
}

/// Sets an empty signal mask in the calling process: the tool blocks SIGINT, SIGTERM and SIGHUP
/// in all its threads ([`catch_signals`]) and a child inherits the mask through `exec`.
/// Async-signal-safe.
fn unblock_signals() -> std::io::Result<()> {
    // SAFETY: sigemptyset initializes `set`; sigprocmask reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// In a child between `fork` and `exec` (async-signal-safe): on Linux, asks for SIGKILL when
/// the tool's thread that started it ends (the main thread, which starts every build and
/// function: so a killed tool leaves none behind), and fails if the tool, `parent`, is gone
/// already. Elsewhere nothing.
fn die_with_parent(parent: libc::pid_t) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl and getppid are async-signal-safe system calls.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The tool died before the request took effect: follow it.
        if libc::getppid() != parent {
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = parent;
    Ok(())
}

/// Whether `err` comes from running out of file descriptors (`EMFILE`: the process's;
/// `ENFILE`: the system's), a condition that passes: what failed may be tried again.
pub(crate) fn out_of_files(err: &anyhow::Error) -> bool {
    err.chain().any(is_out_of_files)
}

/// Whether `err` is an I/O error `EMFILE` or `ENFILE` (not what it wraps).
fn is_out_of_files(err: &(dyn std::error::Error + 'static)) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|e| matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)))
}

/// The signals the tool catches: Ctrl-C, `kill`, and the terminal going away.
fn caught_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initializes `set`; sigaddset adds valid signal numbers to it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, and so in every thread it starts
/// later, and sends each one that arrives as `wrap(signal)` from a thread that waits for them
/// (`sigwait`): no handler, nothing async-signal-unsafe to worry about. Call it before any
/// other thread starts, or that thread would take the signals with their default action
/// (death). Children unblock them between `fork` and `exec`.
pub(crate) fn catch_signals<T: Send + 'static>(tx: Sender<T>, wrap: fn(i32) -> T) -> Result<()> {
    let set = caught_signals();
    // SAFETY: pthread_sigmask reads a valid, initialized set.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        bail!(
            "block SIGINT and SIGTERM: {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            loop {
                let mut sig = 0;
                // SAFETY: sigwait reads a valid set and writes the signal into `sig`.
                if unsafe { libc::sigwait(&set, &mut sig) } == 0 && tx.send(wrap(sig)).is_err() {
                    return;
                }
            }
        })
        .context("start the signal thread")?;
    Ok(())
}

/// A child process whose exit is polled under a lock: it is reaped in one place, and a signal
/// is sent only while it has not been, so that it never reaches a reused pid.
pub(crate) struct Proc {
    child: Mutex<Child>,
    /// Its process id.
    pub pid: u32,
    /// It leads a process group of its own, and signals go to the whole group.
    group: bool,
}

impl Proc {
    pub(crate) fn new(child: Child) -> Arc<Proc> {
        Arc::new(Proc {
            pid: child.id(),
            child: Mutex::new(child),
            group: false,
        })
    }

    /// A child that leads a process group of its own (`process_group(0)`): its signals go to
    /// the group, so that what it started (cargo's compilers and build scripts) gets them too.
    pub(crate) fn new_group(child: Child) -> Arc<Proc> {
        Arc::new(Proc {
            pid: child.id(),
            child: Mutex::new(child),
            group: true,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `sig` (to its group, if it leads one) unless the process has exited; whether it
    /// was sent.
    pub(crate) fn signal(&self, sig: i32) -> bool {
        let mut child = self.lock();
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        let pid = self.pid as libc::pid_t;
        // SAFETY: kill with the pid of a child not yet reaped (the lock keeps it so), or the
        // process group it leads, whose id cannot be reused while it lives.
        unsafe { libc::kill(if self.group { -pid } else { pid }, sig) == 0 }
    }

    /// Its exit status, if it has exited (it is reaped then).
    pub(crate) fn try_status(&self) -> Option<ExitStatus> {
        match self.lock().try_wait() {
            Ok(status) => status,
            // Not ours to wait for any more: as good as gone.
            Err(_) => Some(ExitStatus::from_raw(0xff00)),
        }
    }

    /// Waits for its exit.
    pub(crate) fn wait(&self) -> ExitStatus {
        loop {
            if let Some(status) = self.try_status() {
                return status;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits at most `limit` for its exit.
    pub(crate) fn wait_for(&self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Calls `then` with its exit status when it exits, from a thread of its own.
    pub(crate) fn on_exit(self: &Arc<Self>, then: impl FnOnce(ExitStatus) + Send + 'static) {
        let proc = Arc::clone(self);
        std::thread::spawn(move || {
            loop {
                if let Some(status) = proc.try_status() {
                    then(status);
                    return;
                }
                std::thread::sleep(POLL);
            }
        });
    }
}

/// A `cargo build` of the function for this host, under way.
pub(crate) struct Build {
    proc: Arc<Proc>,
    stdout: ChildStdout,
    manifest: PathBuf,
    name: String,
}

/// What a build made.
pub(crate) struct Built {
    /// The function's executable.
    pub binary: PathBuf,
    /// Cargo found it up to date: the binary is the one of the last build.
    pub fresh: bool,
}

/// Starts `cargo build` of the project for this host, with `cargo_args`. Cargo's progress and
/// the compiler's messages go to stderr as usual; its stdout carries JSON messages, which name
/// the binary ([`Build::finish`]).
///
/// Cargo runs in a process group of its own, which [`Proc::signal`] signals whole: stopping a
/// build stops its compilers and build scripts too. A terminal's Ctrl-C reaches it through the
/// tool. On Linux cargo is killed if the tool dies (its compilers and build scripts then end
/// as they finish, their output going nowhere).
pub(crate) fn start_build(project: &Project, cargo_args: &[OsString]) -> Result<Build> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = project.dir.join("Cargo.toml");
    let mut c = Command::new(cargo);
    c.current_dir(&project.dir)
        .args([
            "build",
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .args(cargo_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0);
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure only makes async-signal-safe system calls (sigprocmask, prctl,
    // getppid).
    unsafe {
        c.pre_exec(move || {
            unblock_signals()?;
            die_with_parent(parent)
        });
    }
    let mut child = c.spawn().map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (is cargo on PATH?)"
        } else {
            ""
        };
        anyhow::Error::new(e).context(format!("run cargo build{hint}"))
    })?;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    Ok(Build {
        proc: Proc::new_group(child),
        stdout,
        manifest: manifest.canonicalize().unwrap_or(manifest),
        name: project.name.clone(),
    })
}

/// A line of `cargo build --message-format=json`: only the fields read here.
#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    manifest_path: Option<PathBuf>,
    #[serde(default)]
    target: Option<MessageTarget>,
    #[serde(default)]
    executable: Option<PathBuf>,
    #[serde(default)]
    fresh: bool,
}

#[derive(Deserialize)]
struct MessageTarget {
    name: String,
    kind: Vec<String>,
}

impl Build {
    /// The cargo process (to stop it).
    pub(crate) fn proc(&self) -> &Arc<Proc> {
        &self.proc
    }

    /// Reads cargo's messages to the end and waits for it: the function's binary (the one
    /// named after the package, or its only one), or why there is none.
    pub(crate) fn finish(self) -> Result<Built> {
        let mut bins: Vec<(String, PathBuf, bool)> = Vec::new();
        for line in BufReader::new(self.stdout).lines() {
            let Ok(line) = line else { break };
            let Ok(m) = serde_json::from_str::<Message>(&line) else {
                continue;
            };
            let ours = m.manifest_path.as_deref().is_some_and(|p| {
                p == self.manifest || p.canonicalize().is_ok_and(|p| p == self.manifest)
            });
            if m.reason != "compiler-artifact" || !ours {
                continue;
            }
            if let (Some(t), Some(exe)) = (m.target, m.executable)
                && t.kind.iter().any(|k| k == "bin")
            {
                bins.push((t.name, exe, m.fresh));
            }
        }
        if !self.proc.wait().success() {
            bail!("cargo build failed (above)");
        }
        let pick = match bins.iter().position(|(n, ..)| *n == self.name) {
            Some(i) => i,
            None if bins.len() == 1 => 0,
            None if bins.is_empty() => bail!("cargo built no binary of {}", self.name),
            None => bail!(
                "{} has several binaries ({}): name one with `-- --bin NAME`",
                self.name,
                bins.iter()
                    .map(|(n, ..)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let (_, binary, fresh) = bins.swap_remove(pick);
        Ok(Built { binary, fresh })
    }
}

/// The filesystem the function gets: SCF's read-only root with /tmp writable, by Landlock where
/// the kernel has it; and the child's side of starting it (limits, parent-death signal).
mod sandbox {
    use std::process::{Child, Command};

    use super::Limits;

    /// What the child got, as it reported it from between `fork` and `exec`.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) enum Applied {
        /// Every right Landlock was asked to restrict is restricted.
        Full,
        /// This kernel's Landlock lacks some of the rights asked for.
        Partial,
        /// No Landlock here (an older kernel, one without it, or not Linux): writes are free.
        None(&'static str),
        /// Landlock refused; writes are free.
        Failed(String),
    }

    impl Applied {
        /// For the status line; "only /tmp is writable (Landlock" marks a restriction in force.
        pub(crate) fn describe(&self) -> String {
            match self {
                Applied::Full => "only /tmp is writable (Landlock)".into(),
                Applied::Partial => {
                    "only /tmp is writable (Landlock, without the rights this kernel lacks)".into()
                }
                Applied::None(why) => {
                    format!(
                        "writes are not restricted on this host ({why}): on SCF only /tmp is writable"
                    )
                }
                Applied::Failed(why) => format!(
                    "writes are not restricted (Landlock failed: {why}): on SCF only /tmp is writable"
                ),
            }
        }
    }

    #[cfg(target_os = "linux")]
    pub(crate) use linux::{Sandbox, spawn};
    #[cfg(not(target_os = "linux"))]
    pub(crate) use other::{Sandbox, spawn};

    #[cfg(target_os = "linux")]
    mod linux {
        use std::io::Read as _;
        use std::os::fd::AsRawFd as _;
        use std::os::unix::process::CommandExt as _;

        use landlock::{
            ABI, Access, AccessFs, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreated,
            RulesetCreatedAttr, RulesetStatus, path_beneath_rules,
        };

        use super::{Applied, Child, Command, Limits};

        /// The Landlock ABI whose filesystem rights are asked for (Linux 6.10: writes, renames
        /// across directories, truncation, device ioctls); an older kernel restricts what it
        /// knows of them.
        const ABI: ABI = ABI::V5;

        /// Written into the writable places for the function: beneath /tmp, and the device
        /// files a process writes to.
        const WRITABLE: [&str; 1] = ["/tmp"];
        const DEVICES: [&str; 7] = [
            "/dev/null",
            "/dev/zero",
            "/dev/full",
            "/dev/tty",
            "/dev/pts",
            "/dev/random",
            "/dev/urandom",
        ];

        /// A Landlock ruleset, made in the parent (it opens paths and allocates), for the child
        /// to enforce on itself between `fork` and `exec`.
        pub(crate) struct Sandbox(Result<RulesetCreated, String>);

        impl Sandbox {
            /// The ruleset, or why Landlock cannot restrict (the function then runs with writes
            /// free, and the status line says so). Out of descriptors (a passing condition), an
            /// error: the start fails and may be tried again, rather than run without the rules
            /// (`path_beneath_rules` leaves out a path it cannot open: without `/`, nothing
            /// could be read).
            pub(crate) fn new() -> std::io::Result<Sandbox> {
                let root = match PathFd::new("/") {
                    Ok(root) => root,
                    Err(e) => return check(&e).map(|()| Sandbox(Err(e.to_string()))),
                };
                let made = Ruleset::default()
                    .handle_access(AccessFs::from_all(ABI))
                    .and_then(|r| r.create())
                    .and_then(|r| r.add_rule(PathBeneath::new(root, AccessFs::from_read(ABI))))
                    .and_then(|r| {
                        r.add_rules(path_beneath_rules(WRITABLE, AccessFs::from_all(ABI)))
                    })
                    .and_then(|r| {
                        r.add_rules(path_beneath_rules(DEVICES, AccessFs::from_file(ABI)))
                    });
                match made {
                    Ok(r) => Ok(Sandbox(Ok(r))),
                    Err(e) => check(&e).map(|()| Sandbox(Err(e.to_string()))),
                }
            }
        }

        /// `EMFILE` or `ENFILE` anywhere in `err`'s chain, as an error of its own.
        fn check(err: &(dyn std::error::Error + 'static)) -> std::io::Result<()> {
            let errno = std::iter::successors(Some(err), |e| e.source())
                .filter(|e| super::super::is_out_of_files(*e))
                .find_map(|e| e.downcast_ref::<std::io::Error>()?.raw_os_error());
            match errno {
                Some(errno) => Err(std::io::Error::from_raw_os_error(errno)),
                None => Ok(()),
            }
        }

        /// The byte the child reports its restriction with.
        const FULL: u8 = 2;
        const PARTIAL: u8 = 1;
        const NONE: u8 = 0;
        const FAILED: u8 = 3;

        /// Spawns `c` with SCF's `limits` and the `sandbox`, in the child before `exec`; also
        /// SIGKILL for the child when this thread ends (the tool's main thread, which spawns
        /// every function: so a killed tool leaves no function behind). The child reports what
        /// Landlock did through a pipe that `exec` closes.
        pub(crate) fn spawn(
            c: &mut Command,
            limits: &Limits,
            sandbox: Sandbox,
        ) -> std::io::Result<(Child, Applied)> {
            let (nofile, nproc) = (limits.nofile, limits.nproc);
            let mut ruleset = match sandbox.0 {
                Ok(r) => Some(r),
                Err(why) => {
                    let child = spawn_plain(c, nofile, nproc)?;
                    return Ok((child, Applied::Failed(why)));
                }
            };
            let (mut report_r, report_w) = std::io::pipe()?;
            let report_fd = report_w.as_raw_fd();
            // SAFETY: getpid has no preconditions.
            let parent = unsafe { libc::getpid() };
            let pre_exec = move || -> std::io::Result<()> {
                super::super::unblock_signals()?;
                Limits { nofile, nproc }.apply()?;
                super::super::die_with_parent(parent)?;
                let (byte, errno) = match ruleset.take().map(RulesetCreated::restrict_self) {
                    Some(Ok(s)) => match s.ruleset {
                        RulesetStatus::FullyEnforced => (FULL, 0),
                        RulesetStatus::PartiallyEnforced => (PARTIAL, 0),
                        _ => (NONE, 0),
                    },
                    Some(Err(_)) => (
                        FAILED,
                        std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
                    ),
                    None => (NONE, 0),
                };
                let mut report = [byte, 0, 0, 0, 0];
                report[1..].copy_from_slice(&errno.to_le_bytes());
                // SAFETY: write(2) of a stack buffer to the report pipe, async-signal-safe.
                unsafe { libc::write(report_fd, report.as_ptr().cast(), report.len()) };
                Ok(())
            };
            // SAFETY: the closure makes only async-signal-safe system calls (sigprocmask,
            // setrlimit, prctl, getppid, Landlock's, write) and allocates nothing: the ruleset
            // was made before the fork.
            unsafe {
                c.pre_exec(pre_exec);
            }
            let child = c.spawn();
            drop(report_w);
            let child = child?;
            let mut report = Vec::new();
            let _ = report_r.read_to_end(&mut report);
            let applied = match report.first() {
                Some(&FULL) => Applied::Full,
                Some(&PARTIAL) => Applied::Partial,
                Some(&FAILED) => {
                    let errno = report
                        .get(1..5)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, i32::from_le_bytes);
                    Applied::Failed(std::io::Error::from_raw_os_error(errno).to_string())
                }
                _ => Applied::None("this kernel has no Landlock"),
            };
            Ok((child, applied))
        }

        /// Spawns `c` with the limits and the parent-death signal, without Landlock.
        fn spawn_plain(
            c: &mut Command,
            nofile: libc::rlim_t,
            nproc: Option<libc::rlim_t>,
        ) -> std::io::Result<Child> {
            // SAFETY: getpid has no preconditions.
            let parent = unsafe { libc::getpid() };
            // SAFETY: only async-signal-safe system calls (sigprocmask, setrlimit, prctl,
            // getppid).
            unsafe {
                c.pre_exec(move || {
                    super::super::unblock_signals()?;
                    Limits { nofile, nproc }.apply()?;
                    super::super::die_with_parent(parent)
                });
            }
            c.spawn()
        }
    }

    #[cfg(not(target_os = "linux"))]
    mod other {
        use std::os::unix::process::CommandExt as _;

        use super::{Applied, Child, Command, Limits};

        /// No Landlock off Linux.
        pub(crate) struct Sandbox;

        impl Sandbox {
            pub(crate) fn new() -> std::io::Result<Sandbox> {
                Ok(Sandbox)
            }
        }

        /// Spawns `c` with SCF's `limits`, set in the child before `exec`.
        pub(crate) fn spawn(
            c: &mut Command,
            limits: &Limits,
            _: Sandbox,
        ) -> std::io::Result<(Child, Applied)> {
            let (nofile, nproc) = (limits.nofile, limits.nproc);
            // SAFETY: only async-signal-safe system calls (sigprocmask, setrlimit).
            unsafe {
                c.pre_exec(move || {
                    super::super::unblock_signals()?;
                    Limits { nofile, nproc }.apply()
                });
            }
            let child = c.spawn()?;
            Ok((child, Applied::None("Landlock is Linux's")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_out_of_files_is_found_through_the_context() {
        let emfile = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::EMFILE))
            .context("run cargo build");
        assert!(out_of_files(&emfile));
        let enfile = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::ENFILE));
        assert!(out_of_files(&enfile.context("start x").context("more")));
        let other = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::ENOENT));
        assert!(!out_of_files(&other));
        assert!(!out_of_files(&anyhow::anyhow!("Too many open files")));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn test_the_event_limit_leaves_room_for_the_variables_name_and_nul() {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page == 4096 {
            assert_eq!(max_event_bytes(), 131_072 - 28);
        }
        assert!(max_event_bytes() <= SCF_MAX_EVENT_BYTES);
        assert_eq!("SCF_CUSTOM_CONTAINER_EVENT=".len() + 1, 28);
    }
}
