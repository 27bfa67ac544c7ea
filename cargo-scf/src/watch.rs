//! `cargo scf watch`: the function served, rebuilt and restarted on every edit.
//!
//! The tool listens on the port itself and passes each TCP connection, byte for byte, to the
//! function's current process, which it starts as `cargo scf run` does (`run.rs`: SCF's
//! environment, limits and filesystem) with `PORT=0`, reading the port the function took from
//! its start-up line. So a build never leaves the port closed:
//!
//! - **A connection is routed when it opens**, to a build of every change made before it
//!   opened. While such a build is under way, the connection is held (accepted, nothing read
//!   or refused) and released to the new process once it listens; if the build fails, or its
//!   process exits before it listens, held connections go to the last good build.
//! - **"Before it opened" is exact:** before routing a connection, the tool creates a file in a
//!   directory of its own that it watches with the same watcher, and waits until that file's
//!   event arrives. Events come in order, so by then every change saved before the client
//!   connected has been seen (and holds the connection until it is built). This is why the
//!   watcher's events are taken as they come and debounced here, rather than by a debouncer
//!   that delivers them late: the hold must start with the first event.
//! - **Restarts:** the new process first, then SIGTERM to the old one, which has its grace
//!   period (`SCF_LEAN_SHUTDOWN_GRACE_MS`) to finish what it serves, then SIGKILL. A
//!   connection stays with the process it was routed to: a keep-alive connection opened before
//!   an edit is closed by the old process as it stops, and the client's next connection goes
//!   to the new one.
//! - **Unchanged binaries** (an edit to a README, a comment cargo does not rebuild for) do not
//!   restart anything.
//! - A function that exits on its own after it served for a second is started again, as SCF
//!   starts a new instance; one that exits sooner waits for the next change. With no process
//!   to serve, a connection gets a 502 from the tool saying why.
//! - **Bounded:** at most [`MAX_CONNECTIONS`] connections at once (two descriptors and two
//!   threads each while passed on: one socket each side, shared by both directions), fewer if
//!   the descriptor limit, raised to its hard limit at start, is too low for them beside
//!   [`FD_RESERVE`]; at most [`MAX_HELD`] held, each for [`HOLD_LIMIT`] at most, and let go
//!   when its client hangs up. Past a cap the tool answers 503 at once (504 past the hold
//!   limit), saying why. A held connection waits on a pipe that is closed when where it goes
//!   may have changed, a sync file's connection is woken by its own event: no event wakes
//!   every connection. A build or start that failed for want of descriptors is tried again
//!   after [`RETRY_AFTER`].
//! - **Events lost** (the kernel's queue overflowed) count as a change, built to be sure, and
//!   release the connections waiting for their sync files to that build. Opening, reading,
//!   closing a file and changing its metadata alone are not changes.
//! - **Output:** the function's stdout passes line by line, a line longer than
//!   [`OUTPUT_CHUNK`] in pieces; the start-up line is looked for in the first
//!   [`STARTUP_SCAN`] bytes.
//! - **Stopping:** cargo runs in a process group of its own, stopped whole (SIGTERM, then
//!   SIGKILL after [`run::KILL_MARGIN`]); on Linux cargo dies with the tool. Held connections
//!   are answered 503. A killed tool's sync directory is removed by the next one.
//!
//! Watched: the package's directory, recursively, except `target/` (and the target directory
//! wherever it is), `.git`, `.hg`, `.svn`, `.jj`, `.idea`, `.vscode` and editors' temporary
//! files (`*~`, `.*.swp`, `.#*`, `#*#`, `4913`, `*.tmp`, JetBrains' `___jb_*`). Symbolic links
//! are not followed. Path dependencies outside it are not watched.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::io::{PipeReader, PipeWriter, Read, Write as _};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd as _;
use std::path::{Component, Path, PathBuf};
use std::process::{ChildStdout, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use notify::event::ModifyKind;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::project::Project;
use crate::run::{self, Built, Function, FunctionArgs, Mode, Proc};

/// How long the files must be quiet after a change before the build starts: an editor's save
/// (a temporary file, a rename) is one change.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// SCF's start-up limit: a process not listening within 30 s is given up.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a new connection waits for its own file's event (the watcher catching up); past
/// it, the connection is routed with the changes seen so far.
const SYNC_LIMIT: Duration = Duration::from_secs(2);
/// A process that served at least this long before it exited on its own is started again.
const RESTART_AFTER: Duration = Duration::from_secs(1);
/// How long a refused client's unread request is drained, so that the close does not reset the
/// tool's answer away.
const DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// The most connections the tool holds or passes on at once (fewer where its descriptor limit
/// is too low for them: [`Caps::new`]). Past it a connection is answered `503` at once.
const MAX_CONNECTIONS: usize = 512;
/// The most connections held at once while a build runs (among [`MAX_CONNECTIONS`]). Past it a
/// connection that would be held is answered `503` at once.
const MAX_HELD: usize = 256;
/// The longest a connection is held for a build (from when it opened); past it, it is
/// answered `504`.
const HOLD_LIMIT: Duration = Duration::from_secs(300);
/// Descriptors a connection takes while it is passed on: the client's socket and the
/// function's (one socket each, shared by the two directions).
const FDS_PER_CONNECTION: u64 = 2;
/// Descriptors kept for the tool's own work beside the connections: the watcher, builds and
/// their pipes, function processes and theirs, Landlock's ruleset, sync files, wake pipes.
const FD_RESERVE: u64 = 128;
/// The most connections refused past [`MAX_CONNECTIONS`] whose requests are drained at once (a
/// thread and a descriptor each); past it the answer is written and the connection closed.
const MAX_ANSWERING: usize = 64;
/// The stack of a connection's threads, which copy bytes through an 8 KiB buffer: far below
/// the 2 MiB default, so that the threads of [`MAX_CONNECTIONS`] reserve little memory.
const CONNECTION_STACK: usize = 256 * 1024;
/// How long a build or start that failed for want of descriptors (`EMFILE`, `ENFILE`: a
/// condition that passes) waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// As the tool stops: how long the connections it holds have to be answered `503`.
const ANSWER_LIMIT: Duration = Duration::from_secs(1);
/// How often a held connection looks at the build's state when no wake pipe could be made
/// (out of descriptors); otherwise it is woken when the state changes.
const WAKE_FALLBACK: Duration = Duration::from_millis(100);
/// The function's output passes through line by line, and a line longer than this in pieces
/// of this size: the tool holds no more of it.
const OUTPUT_CHUNK: usize = 64 * 1024;
/// The start-up line (which names the function's port) is looked for in the first bytes of
/// the function's output only, this many.
const STARTUP_SCAN: usize = 16 * 1024;

/// For tests: lower [`MAX_CONNECTIONS`], [`MAX_HELD`] and [`HOLD_LIMIT`] (in milliseconds).
const MAX_CONNECTIONS_VAR: &str = "CARGO_SCF_WATCH_MAX_CONNECTIONS";
const MAX_HELD_VAR: &str = "CARGO_SCF_WATCH_MAX_HELD";
const HOLD_LIMIT_VAR: &str = "CARGO_SCF_WATCH_HOLD_MS";

/// Directories never watched, wherever they are in the package.
const IGNORED_DIRS: [&str; 6] = [".git", ".hg", ".svn", ".jj", ".idea", ".vscode"];

/// Serve the function, and rebuild and restart it whenever its files change.
///
/// The function runs as `cargo scf run` runs it, with the same SCF environment, limits and
/// flags. The tool listens on the port itself (0.0.0.0:9000 by default) and passes each
/// connection to the function's current process: a connection that opens while a change is
/// being built waits, and is served by the new build; when the build fails, cargo's errors are
/// shown and the last good build goes on serving.
///
/// Status lines go to stderr, the function's logs to stdout. The first line names the port:
/// `cargo scf watch: serving on 0.0.0.0:PORT (http://127.0.0.1:PORT); watching DIR`.
#[derive(clap::Args)]
pub struct Args {
    /// The port the tool listens on, on 0.0.0.0; 0 takes a free one, which the `serving on`
    /// line names.
    #[arg(long, default_value_t = scf_lean::image::PORT)]
    port: u16,
    #[command(flatten)]
    function: FunctionArgs,
}

/// What the main loop waits for.
enum Event {
    Signal(i32),
    /// A file changed (its path), or the watcher failed (why).
    Changed(Result<PathBuf, String>),
    Built(Result<Built>),
    /// Process `id` listens on `port`.
    Ready {
        id: u64,
        port: u16,
    },
    Exited {
        id: u64,
        status: ExitStatus,
    },
}

/// `cargo scf watch`.
pub fn run(args: Args) -> Result<()> {
    let project = Project::find(args.function.manifest_path.as_deref())?;
    let function = Function::new(&args.function, &project);
    let (tx, rx) = mpsc::channel();
    run::catch_signals(tx.clone(), Event::Signal)?;
    let caps = Caps::new(raise_files_limit());

    let dir = project
        .dir
        .canonicalize()
        .with_context(|| format!("find {}", project.dir.display()))?;
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, args.port)).with_context(|| {
        format!(
            "listen on 0.0.0.0:{}: is another `cargo scf watch` or `run` there? Give another \
                 port with --port (0: any free one)",
            args.port
        )
    })?;
    let port = listener.local_addr()?.port();

    let shared = Arc::new(Shared::new(caps));
    let sync = SyncDir::new(&project.target_directory).map(Arc::new);
    let filter = Filter::new(&dir, &project.target_directory);
    let mut watcher = {
        let (shared, tx, sync) = (Arc::clone(&shared), tx.clone(), sync.clone());
        let filter = filter.clone();
        // Symbolic links are not followed: one to `/` would have every directory watched.
        let config = notify::Config::default().with_follow_symlinks(false);
        RecommendedWatcher::new(
            move |e: notify::Result<notify::Event>| {
                on_file_event(e, &filter, sync.as_deref(), &shared, &tx);
            },
            config,
        )
        .context("watch the project's files")?
    };
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("watch {}", dir.display()))?;
    let mut watched = HashSet::new();
    for entry in std::fs::read_dir(&dir)?.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) && filter.relevant(&path) {
            watcher
                .watch(&path, RecursiveMode::Recursive)
                .with_context(|| format!("watch {}", path.display()))?;
            watched.insert(path);
        }
    }
    let sync = match sync {
        Some(s) => match watcher.watch(&s.dir, RecursiveMode::NonRecursive) {
            Ok(()) => Some(s),
            Err(e) => {
                eprintln!(
                    "cargo scf watch: cannot watch {} ({e}): a change saved just before a \
                     request may miss it",
                    s.dir.display()
                );
                s.remove();
                None
            }
        },
        None => None,
    };

    eprintln!(
        "cargo scf watch: serving on 0.0.0.0:{port} (http://127.0.0.1:{port}); watching {}",
        dir.display()
    );
    if let Some(files) = caps.lowered_by {
        eprintln!(
            "cargo scf watch: {files} file descriptors: at most {} connections at once",
            caps.connections
        );
    }
    {
        let (shared, sync) = (Arc::clone(&shared), sync.clone());
        std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || accept(&listener, &shared, sync.as_ref()))
            .context("start the accepting thread")?;
    }

    let quiet = function
        .env_value("SCF_LEAN_LOG_LEVEL")
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| matches!(v.as_str(), "off" | "error" | "warn"));
    if quiet {
        eprintln!(
            "cargo scf watch: SCF_LEAN_LOG_LEVEL hides the function's start-up line: its port is \
             chosen here"
        );
    }
    let mut w = Watch {
        project: &project,
        dir,
        cargo_args: args.function.cargo_args,
        function,
        shared,
        tx,
        watcher,
        watched,
        quiet,
        building: None,
        build_kill_at: None,
        // Build at once.
        pending: Some(Pending {
            due: Instant::now(),
            paths: None,
        }),
        serving: None,
        starting: None,
        retry_start: None,
        stopping: Vec::new(),
        builds: 0,
        next_id: 0,
        said_conditions: false,
        shutting_down: false,
    };
    let result = w.run(&rx);
    // Held connections are answered 503 as the tool stops: let them be.
    w.shared.wait_answered(ANSWER_LIMIT);
    if let Some(s) = sync {
        s.remove();
    }
    result
}

/// Raises the tool's own soft limit on descriptors to its hard limit (the function's stays
/// SCF's 1,024, set in its process): the connections it passes on take two each. The soft
/// limit now.
fn raise_files_limit() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `l`, a valid rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return 1024;
    }
    // macOS's hard limit may be "unlimited", which setrlimit refuses for descriptors: its
    // per-process maximum (OPEN_MAX, 10,240) is tried then.
    for want in [l.rlim_max, 10_240] {
        if want <= l.rlim_cur {
            break;
        }
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: l.rlim_max,
        };
        // SAFETY: setrlimit reads a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            l.rlim_cur = want;
            break;
        }
    }
    if l.rlim_cur == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        l.rlim_cur
    }
}

/// How many connections the tool takes, and for how long it holds one.
#[derive(Clone, Copy)]
struct Caps {
    /// Connections open at once: [`MAX_CONNECTIONS`], or fewer to fit the descriptor limit.
    connections: usize,
    /// Connections held at once: [`MAX_HELD`].
    held: usize,
    /// [`HOLD_LIMIT`].
    hold: Duration,
    /// The descriptor limit, when it lowered `connections` below [`MAX_CONNECTIONS`].
    lowered_by: Option<u64>,
}

impl Caps {
    /// The caps for a tool allowed `files` descriptors: the connections' two each, and
    /// [`FD_RESERVE`] and [`MAX_ANSWERING`] beside them. The variables of tests change them.
    fn new(files: u64) -> Caps {
        Caps::with(files, |name| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
    }

    /// The same, with the variables' values from `var`.
    fn with(files: u64, var: impl Fn(&str) -> Option<u64>) -> Caps {
        let fit = files.saturating_sub(FD_RESERVE + MAX_ANSWERING as u64) / FDS_PER_CONNECTION;
        let fit = usize::try_from(fit).unwrap_or(usize::MAX).max(1);
        let wanted = var(MAX_CONNECTIONS_VAR)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(MAX_CONNECTIONS)
            .max(1);
        let connections = wanted.min(fit);
        let held = var(MAX_HELD_VAR)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(MAX_HELD)
            .clamp(1, connections);
        Caps {
            connections,
            held,
            hold: var(HOLD_LIMIT_VAR).map_or(HOLD_LIMIT, Duration::from_millis),
            lowered_by: (fit < MAX_CONNECTIONS.min(wanted)).then_some(files),
        }
    }
}

/// A process of the function.
struct Instance {
    id: u64,
    /// Which build it runs (counted from 1).
    build: u64,
    proc: Arc<Proc>,
    binary: PathBuf,
    /// When it started listening.
    ready_at: Option<Instant>,
}

/// A process started and not yet listening: it serves the changes up to `covers` once it does.
struct Starting {
    instance: Instance,
    covers: u64,
    deadline: Instant,
}

/// A start that failed for want of descriptors, to try again.
struct RetryStart {
    binary: PathBuf,
    build: u64,
    covers: u64,
    at: Instant,
}

/// Changes seen and not yet built.
struct Pending {
    /// When the build may start: the quiet time after the last change, or a retry's wait.
    due: Instant,
    /// The first path and the last one, for the status line (an editor's save may start with a
    /// temporary file that is gone by then).
    paths: Option<(PathBuf, PathBuf)>,
}

/// The main loop's state: builds, processes, and what connections are told.
struct Watch<'a> {
    project: &'a Project,
    /// The package's directory, canonical (as events name it).
    dir: PathBuf,
    cargo_args: Vec<OsString>,
    function: Function,
    shared: Arc<Shared>,
    tx: Sender<Event>,
    watcher: RecommendedWatcher,
    /// The package's subdirectories watched recursively.
    watched: HashSet<PathBuf>,
    /// The function's log level hides its start-up line: its port is chosen here.
    quiet: bool,
    /// cargo, while a build is under way; the changes it covers; when it started.
    building: Option<(Arc<Proc>, u64, Instant)>,
    /// As the tool stops: when cargo's group is killed if it has not stopped.
    build_kill_at: Option<Instant>,
    pending: Option<Pending>,
    serving: Option<Instance>,
    starting: Option<Starting>,
    retry_start: Option<RetryStart>,
    /// Processes told to stop, and when they are killed if they have not.
    stopping: Vec<(Instance, Instant)>,
    builds: u64,
    next_id: u64,
    said_conditions: bool,
    shutting_down: bool,
}

impl Watch<'_> {
    fn run(&mut self, rx: &mpsc::Receiver<Event>) -> Result<()> {
        loop {
            if self.shutting_down
                && self.building.is_none()
                && self.serving.is_none()
                && self.starting.is_none()
                && self.stopping.is_empty()
            {
                return Ok(());
            }
            if !self.shutting_down
                && self.building.is_none()
                && self
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.due <= Instant::now())
            {
                self.start_build();
            }
            let event = match self.next_deadline() {
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(e) => Some(e),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => bail!("the watcher's threads are gone"),
                },
                None => Some(rx.recv().context("the watcher's threads are gone")?),
            };
            match event {
                Some(e) => self.on(e),
                None => self.on_time(),
            }
        }
    }

    /// The next moment something is due: a build after the quiet time, a start tried again, a
    /// process that must be listening or gone by then, a build that must have stopped.
    fn next_deadline(&self) -> Option<Instant> {
        let debounce = self
            .pending
            .as_ref()
            .filter(|_| self.building.is_none() && !self.shutting_down)
            .map(|p| p.due);
        let retry = self.retry_start.as_ref().map(|r| r.at);
        let starting = self.starting.as_ref().map(|s| s.deadline);
        let stopping = self.stopping.iter().map(|(_, at)| *at).min();
        let build = self.build_kill_at.filter(|_| self.building.is_some());
        [debounce, retry, starting, stopping, build]
            .into_iter()
            .flatten()
            .min()
    }

    fn on(&mut self, event: Event) {
        match event {
            Event::Signal(sig) => self.on_signal(sig),
            Event::Changed(change) => self.on_change(change),
            Event::Built(result) => self.on_built(result),
            Event::Ready { id, port } => self.on_ready(id, port),
            Event::Exited { id, status } => self.on_exit(id, status),
        }
    }

    fn on_signal(&mut self, sig: i32) {
        let forwarded = run::forwarded(sig);
        if self.shutting_down {
            // A second signal: on to every process still there (scf-lean exits at once), and
            // the build's whole group killed.
            for (i, _) in &self.stopping {
                i.proc.signal(forwarded);
            }
            if let Some((cargo, ..)) = &self.building {
                cargo.signal(libc::SIGKILL);
            }
            return;
        }
        self.shutting_down = true;
        eprintln!("cargo scf watch: stopping ({})", run::signal_name(sig));
        self.pending = None;
        self.retry_start = None;
        self.shared.update(|s| s.stopping = true);
        if let Some((cargo, ..)) = &self.building {
            // Cargo's group: its compilers and build scripts stop with it.
            cargo.signal(libc::SIGTERM);
            self.build_kill_at = Some(Instant::now() + run::KILL_MARGIN);
        }
        if let Some(s) = self.starting.take() {
            self.stop(s.instance, forwarded);
        }
        if let Some(i) = self.serving.take() {
            self.stop(i, forwarded);
        }
    }

    fn on_change(&mut self, change: Result<PathBuf, String>) {
        if self.shutting_down {
            return;
        }
        let path = match change {
            Ok(path) => {
                self.watch_new_dir(&path);
                Some(path)
            }
            Err(why) => {
                eprintln!("cargo scf watch: the watcher: {why}: building to be sure");
                None
            }
        };
        let due = Instant::now() + DEBOUNCE;
        let p = self.pending.get_or_insert(Pending { due, paths: None });
        p.due = due;
        if let Some(path) = path {
            match &mut p.paths {
                Some((_, last)) => *last = path,
                None => p.paths = Some((path.clone(), path)),
            }
        }
    }

    /// A directory made at the package's top level is watched from now on.
    fn watch_new_dir(&mut self, path: &Path) {
        if path.parent() != Some(self.dir.as_path()) {
            return;
        }
        // Not through a symbolic link: one to `/` would have every directory watched.
        if !path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            self.watched.remove(path);
            return;
        }
        if self.watched.insert(path.to_path_buf())
            && let Err(e) = self.watcher.watch(path, RecursiveMode::Recursive)
        {
            eprintln!("cargo scf watch: cannot watch {}: {e}", path.display());
        }
    }

    fn start_build(&mut self) {
        let covers = self.shared.lock().edits;
        let paths = self.pending.take().and_then(|p| p.paths);
        match &paths {
            Some((first, last)) => {
                let path = if first.exists() || !last.exists() {
                    first
                } else {
                    last
                };
                eprintln!(
                    "cargo scf watch: {} changed: building…",
                    run::relative(path, &self.dir).display()
                );
            }
            None => eprintln!("cargo scf watch: building…"),
        }
        match run::start_build(self.project, &self.cargo_args) {
            Ok(build) => {
                self.building = Some((Arc::clone(build.proc()), covers, Instant::now()));
                let tx = self.tx.clone();
                std::thread::spawn(move || {
                    let _ = tx.send(Event::Built(build.finish()));
                });
            }
            Err(e) if run::out_of_files(&e) => {
                eprintln!(
                    "cargo scf watch: {e:#}: trying again in {}",
                    humantime::format_duration(RETRY_AFTER)
                );
                // The connections waiting for it wait on (within their hold limit).
                let due = Instant::now() + RETRY_AFTER;
                self.pending = Some(Pending { due, paths });
            }
            Err(e) => {
                eprintln!("cargo scf watch: {e:#}: {}", self.keeps_serving());
                self.resolve(covers);
            }
        }
    }

    fn on_built(&mut self, result: Result<Built>) {
        let Some((_, covers, began)) = self.building.take() else {
            return;
        };
        if self.shutting_down {
            return;
        }
        match result {
            Ok(built) => {
                eprintln!(
                    "cargo scf watch: built in {:.1} s",
                    began.elapsed().as_secs_f64()
                );
                let unchanged = built.fresh
                    && self.starting.is_none()
                    && self.retry_start.is_none()
                    && self
                        .serving
                        .as_ref()
                        .is_some_and(|s| s.binary == built.binary);
                if unchanged {
                    eprintln!(
                        "cargo scf watch: the binary did not change: {}",
                        self.keeps_serving()
                    );
                    self.resolve(covers);
                } else {
                    self.builds += 1;
                    self.start(built.binary, self.builds, covers);
                }
            }
            Err(e) => {
                eprintln!("cargo scf watch: {e:#}: {}", self.keeps_serving());
                self.resolve(covers);
            }
        }
    }

    /// Starts a process of `binary` that will serve the changes up to `covers`.
    fn start(&mut self, binary: PathBuf, build: u64, covers: u64) {
        // A newer start supersedes one waiting to be tried again.
        self.retry_start = None;
        let port = if self.quiet { free_port() } else { Ok(0) };
        let started = port.and_then(|port| {
            self.function
                .spawn(&binary, &Mode::Web(port), Stdio::piped())
                .map(|s| (s, port))
        });
        let (started, port) = match started {
            Ok(s) => s,
            Err(e) if run::out_of_files(&e) => {
                eprintln!(
                    "cargo scf watch: {e:#}: trying again in {}",
                    humantime::format_duration(RETRY_AFTER)
                );
                self.retry_start = Some(RetryStart {
                    binary,
                    build,
                    covers,
                    at: Instant::now() + RETRY_AFTER,
                });
                self.publish_starting();
                return;
            }
            Err(e) => {
                eprintln!("cargo scf watch: {e:#}: {}", self.keeps_serving());
                self.publish_starting();
                self.resolve(covers);
                return;
            }
        };
        if !self.said_conditions {
            self.said_conditions = true;
            eprintln!(
                "cargo scf watch: the function runs as on SCF, for testing — not a sandbox: {}",
                started.conditions
            );
            if let Some(warning) = &started.warning {
                eprintln!("cargo scf watch: warning: {warning}");
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        let proc = started.proc;
        if let Some(stdout) = started.stdout {
            let tx = (!self.quiet).then(|| self.tx.clone());
            std::thread::spawn(move || forward_output(stdout, id, tx));
        }
        if self.quiet {
            let (tx, proc) = (self.tx.clone(), Arc::clone(&proc));
            std::thread::spawn(move || probe(port, &proc, id, &tx));
        }
        let tx = self.tx.clone();
        proc.on_exit(move |status| {
            let _ = tx.send(Event::Exited { id, status });
        });
        if let Some(older) = self.starting.take() {
            self.stop(older.instance, libc::SIGTERM);
        }
        self.starting = Some(Starting {
            instance: Instance {
                id,
                build,
                proc,
                binary,
                ready_at: None,
            },
            covers,
            deadline: Instant::now() + START_LIMIT,
        });
        self.publish_starting();
    }

    /// Tells the connections whether a process is coming (one starting, or a start to try
    /// again): those with no process to go to wait for it.
    fn publish_starting(&self) {
        let starting = self.starting.is_some() || self.retry_start.is_some();
        self.shared.update(|s| s.starting = starting);
    }

    fn on_ready(&mut self, id: u64, port: u16) {
        if self.starting.as_ref().is_none_or(|s| s.instance.id != id) {
            return;
        }
        let Some(Starting {
            mut instance,
            covers,
            ..
        }) = self.starting.take()
        else {
            return;
        };
        instance.ready_at = Some(Instant::now());
        eprintln!(
            "cargo scf watch: serving build {} (pid {}, itself on port {port})",
            instance.build, instance.proc.pid
        );
        let starting = self.retry_start.is_some();
        self.shared.update(|s| {
            s.upstream = Some(port);
            s.starting = starting;
            s.resolved = Some(s.resolved.map_or(covers, |r| r.max(covers)));
        });
        if let Some(old) = self.serving.replace(instance) {
            self.stop(old, libc::SIGTERM);
        }
    }

    fn on_exit(&mut self, id: u64, status: ExitStatus) {
        self.stopping.retain(|(i, _)| i.id != id);
        if self.starting.as_ref().is_some_and(|s| s.instance.id == id) {
            let Some(s) = self.starting.take() else {
                return;
            };
            self.publish_starting();
            eprintln!(
                "cargo scf watch: build {} {} before it listened: {}",
                s.instance.build,
                run::describe_exit(status),
                self.keeps_serving()
            );
            self.resolve(s.covers);
            return;
        }
        if self.serving.as_ref().is_none_or(|s| s.id != id) {
            return;
        }
        let Some(gone) = self.serving.take() else {
            return;
        };
        self.shared.update(|s| s.upstream = None);
        let served = gone.ready_at.map_or(Duration::ZERO, |t| t.elapsed());
        if served >= RESTART_AFTER
            && self.starting.is_none()
            && self.retry_start.is_none()
            && !self.shutting_down
        {
            eprintln!(
                "cargo scf watch: build {} {}: starting it again",
                gone.build,
                run::describe_exit(status)
            );
            let covers = self.shared.lock().resolved.unwrap_or(0);
            self.start(gone.binary, gone.build, covers);
        } else {
            eprintln!(
                "cargo scf watch: build {} {}: it starts again on the next change",
                gone.build,
                run::describe_exit(status)
            );
        }
    }

    /// Deadlines passed: a start to try again, a process that did not listen in time, or did
    /// not stop, a build that did not stop.
    fn on_time(&mut self) {
        let now = Instant::now();
        if self.retry_start.as_ref().is_some_and(|r| r.at <= now)
            && let Some(r) = self.retry_start.take()
        {
            self.start(r.binary, r.build, r.covers);
        }
        if self.build_kill_at.is_some_and(|at| at <= now) {
            self.build_kill_at = None;
            if let Some((cargo, ..)) = &self.building {
                eprintln!("cargo scf watch: cargo did not stop: SIGKILL");
                cargo.signal(libc::SIGKILL);
            }
        }
        if let Some(s) = self.starting.as_mut()
            && s.deadline <= now
        {
            eprintln!(
                "cargo scf watch: build {} did not listen within {} s (SCF's limit): SIGKILL",
                s.instance.build,
                START_LIMIT.as_secs()
            );
            s.instance.proc.signal(libc::SIGKILL);
            // Its exit ends the start (on_exit); until then, nothing more to do here.
            s.deadline = now + Duration::from_secs(3600);
        }
        for (i, at) in &mut self.stopping {
            if *at <= now {
                eprintln!(
                    "cargo scf watch: build {} did not stop within its grace period: SIGKILL",
                    i.build
                );
                i.proc.signal(libc::SIGKILL);
                *at = now + Duration::from_secs(3600);
            }
        }
    }

    /// Tells a process to stop with `sig`; it is killed if it has not within its grace period.
    fn stop(&mut self, instance: Instance, sig: i32) {
        instance.proc.signal(sig);
        let at = Instant::now() + self.function.grace + run::KILL_MARGIN;
        self.stopping.push((instance, at));
    }

    /// The changes up to `covers` are built (or failed to): the connections waiting for them go
    /// to what serves now.
    fn resolve(&self, covers: u64) {
        self.shared
            .update(|s| s.resolved = Some(s.resolved.map_or(covers, |r| r.max(covers))));
    }

    fn keeps_serving(&self) -> String {
        match &self.serving {
            Some(s) => format!("build {} keeps serving", s.build),
            None => "nothing serves until a build succeeds".into(),
        }
    }
}

/// A port free on loopback now, for a function whose start-up line does not say its own.
fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("find a free port")?;
    Ok(l.local_addr()?.port())
}

/// Connects to `port` until the process listens there (or exits, or START_LIMIT passes).
fn probe(port: u16, proc: &Proc, id: u64, tx: &Sender<Event>) {
    let end = Instant::now() + START_LIMIT;
    let addr = (Ipv4Addr::LOCALHOST, port).into();
    while Instant::now() < end && proc.try_status().is_none() {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            let _ = tx.send(Event::Ready { id, port });
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies the function's stdout to the tool's ([`pass_output`]), and sends the port of its
/// start-up line when it comes (if `tx`).
fn forward_output(stdout: ChildStdout, id: u64, tx: Option<Sender<Event>>) {
    let ready = tx.map(|tx| {
        move |port| {
            let _ = tx.send(Event::Ready { id, port });
        }
    });
    pass_output(stdout, write_output, ready);
}

/// Passes `from`'s bytes to `out` line by line, a line longer than [`OUTPUT_CHUNK`] in pieces
/// of that size (the bytes unchanged: no newline is added), so that no more of it is held; and
/// calls `ready` with the port of the start-up line if it comes within the first
/// [`STARTUP_SCAN`] bytes.
fn pass_output(
    mut from: impl Read,
    mut out: impl FnMut(&[u8]),
    mut ready: Option<impl FnOnce(u16)>,
) {
    let mut buf = vec![0u8; OUTPUT_CHUNK];
    // Bytes held: the start of a line.
    let mut held = 0;
    // Where the held bytes are in the output, and whether they continue a line passed on
    // in part already (which is then not a start-up line).
    let mut offset = 0;
    let mut continued = false;
    loop {
        let n = match from.read(&mut buf[held..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => 0,
        };
        if n == 0 {
            if held > 0 {
                out(&buf[..held]);
            }
            return;
        }
        let new = held;
        held += n;
        // Complete lines go on; a partial one waits for its end unless the buffer is full. The
        // bytes held before had no newline: only the new ones are looked at.
        let end = match buf[new..held].iter().rposition(|&b| b == b'\n') {
            Some(i) => new + i + 1,
            None if held == buf.len() => held,
            None => continue,
        };
        out(&buf[..end]);
        if ready.is_some() {
            let mut line_start = 0;
            for line in buf[..end].split_inclusive(|&b| b == b'\n') {
                if offset + line_start >= STARTUP_SCAN {
                    break;
                }
                let whole = !(continued && line_start == 0) && line.ends_with(b"\n");
                if whole
                    && let Some(port) = startup_port(line)
                    && let Some(ready) = ready.take()
                {
                    ready(port);
                    break;
                }
                line_start += line.len();
            }
            if offset + end >= STARTUP_SCAN {
                // Not within the bytes looked at: the start limit deals with it.
                ready = None;
            }
        }
        continued = buf[end - 1] != b'\n';
        buf.copy_within(end..held, 0);
        held -= end;
        offset += end;
    }
}

/// Writes the function's output to the tool's stdout at once.
fn write_output(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

/// The port of scf-lean's start-up line: `INFO [-] NAME … listening on 0.0.0.0:PORT in …`,
/// or in JSON `{"level":"INFO",…,"msg":"listening",…,"port":PORT,…}`.
fn startup_port(line: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(line).ok()?.trim_end();
    if text.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        if v.get("msg")?.as_str()? != "listening" {
            return None;
        }
        return u16::try_from(v.get("port")?.as_u64()?).ok();
    }
    let (_, after) = text
        .strip_prefix("INFO [-] ")?
        .split_once(" listening on 0.0.0.0:")?;
    after.split(' ').next()?.parse().ok()
}

/// What the watcher, the connections and the main loop share.
struct Shared {
    state: Mutex<State>,
    caps: Caps,
    /// Connections accepted and not yet closed (the accepting thread alone adds to it).
    open: AtomicUsize,
    /// Connections refused past the cap whose requests are being drained.
    answering: AtomicUsize,
    /// Notified when no connection is [`State::waiting`] any more (as the tool stops).
    answered: Condvar,
}

#[derive(Default)]
struct State {
    /// Changes seen (counted).
    edits: u64,
    /// The highest sync file seen.
    synced: u64,
    /// The changes up to this one are built, or failed to build; `None` before the first build
    /// ends.
    resolved: Option<u64>,
    /// The port of the process serving now, on loopback.
    upstream: Option<u16>,
    /// A process is starting: a connection with no process to go to waits for it.
    starting: bool,
    /// The tool is stopping: held connections are answered 503.
    stopping: bool,
    /// The connections waiting for their sync file's event, by its number: each is woken by
    /// its own (not every connection by every event).
    sync_waiters: BTreeMap<u64, Thread>,
    /// Connections held for a build (at most [`Caps::held`]).
    held: usize,
    /// Connections not yet passed on nor answered (waiting for their sync file, held, or being
    /// answered by the tool).
    waiting: usize,
    /// Closed and replaced whenever where a held connection goes may have changed.
    wake: Option<Wake>,
}

/// A broadcast to the held connections: each polls `read` (beside its client's socket); closing
/// `_write` wakes them all at once.
struct Wake {
    read: Arc<PipeReader>,
    _write: PipeWriter,
}

impl Wake {
    /// A new pipe; `None` when there is no descriptor for one (the held connections then look
    /// every [`WAKE_FALLBACK`]).
    fn new() -> Option<Wake> {
        let (read, write) = std::io::pipe().ok()?;
        Some(Wake {
            read: Arc::new(read),
            _write: write,
        })
    }
}

/// Where a connection goes.
#[derive(Debug, PartialEq)]
enum Route {
    To(u16),
    /// No process serves, and none is coming: the reason is the last status line.
    Nowhere,
    Stopping,
    /// It would be held, and [`Caps::held`] are held already.
    TooManyHeld,
    /// Held for [`Caps::hold`] already.
    TimedOut,
    /// Its client hung up while it was held.
    HungUp,
}

impl State {
    /// Where a connection that needs the changes up to `need` goes now, if it need not wait.
    fn route(&self, need: u64) -> Option<Route> {
        if self.stopping {
            return Some(Route::Stopping);
        }
        if self.resolved.is_some_and(|r| r >= need) {
            if let Some(port) = self.upstream {
                return Some(Route::To(port));
            }
            if !self.starting {
                return Some(Route::Nowhere);
            }
        }
        None
    }

    /// What a held connection's route depends on.
    fn routing(&self) -> (Option<u64>, Option<u16>, bool, bool) {
        (self.resolved, self.upstream, self.starting, self.stopping)
    }

    /// Wakes the connections waiting for sync files seen by now (all of them as the tool
    /// stops): the first in order, as many as are released.
    fn release_synced(&mut self) {
        while let Some(waiter) = self.sync_waiters.first_entry() {
            if !self.stopping && *waiter.key() > self.synced {
                return;
            }
            waiter.remove().unpark();
        }
    }
}

/// Counts a connection as waiting (for its route, or its answer's delivery), until dropped.
struct Waiting<'a>(&'a Shared);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.waiting -= 1;
        if st.waiting == 0 {
            self.0.answered.notify_all();
        }
    }
}

/// Counts an open connection, until dropped.
struct Open(Arc<Shared>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    fn new(caps: Caps) -> Shared {
        Shared {
            state: Mutex::new(State {
                wake: Wake::new(),
                ..State::default()
            }),
            caps,
            open: AtomicUsize::new(0),
            answering: AtomicUsize::new(0),
            answered: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the state and wakes whom it concerns: the held connections if where they go
    /// may have changed (once each, per change), the connections whose sync files are seen.
    fn update(&self, f: impl FnOnce(&mut State)) {
        let mut st = self.lock();
        let before = st.routing();
        f(&mut st);
        if st.routing() != before {
            // Dropping the old pipe's writing end wakes every connection polling it.
            st.wake = Wake::new();
        }
        st.release_synced();
    }

    fn waiting(&self) -> Waiting<'_> {
        self.lock().waiting += 1;
        Waiting(self)
    }

    /// Waits, at most `limit`, until no connection waits for its route or its answer's delivery
    /// (they are answered 503 as the tool stops, and the answers read before it exits).
    fn wait_answered(&self, limit: Duration) {
        let end = Instant::now() + limit;
        let mut st = self.lock();
        while st.waiting > 0 {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            st = self
                .answered
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The changes a connection that opened now must be served with: all seen once this
    /// connection's sync file is (see the module's documentation).
    fn sync(&self, sync: Option<&SyncDir>) -> u64 {
        match sync.and_then(SyncDir::mark) {
            Some(token) => self.wait_synced(token, SYNC_LIMIT).1,
            None => self.lock().edits,
        }
    }

    /// Waits at most `limit` for sync file `token`'s event: whether it came (or the tool
    /// stops), and the changes seen by then.
    fn wait_synced(&self, token: u64, limit: Duration) -> (bool, u64) {
        let end = Instant::now() + limit;
        let mut st = self.lock();
        loop {
            if st.synced >= token || st.stopping {
                st.sync_waiters.remove(&token);
                return (true, st.edits);
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                st.sync_waiters.remove(&token);
                return (false, st.edits);
            }
            st.sync_waiters.insert(token, std::thread::current());
            drop(st);
            std::thread::park_timeout(left);
            st = self.lock();
        }
    }

    /// Waits until the changes up to `need` are built (or failed to), then says where the
    /// connection goes. While it waits, it is held: at most [`Caps::held`] at once, until
    /// `until`, and only while its client is there.
    fn route(&self, need: u64, client: &TcpStream, until: Instant) -> Route {
        let mut held = false;
        let mut watch_client = true;
        let route = loop {
            let wake = {
                let mut st = self.lock();
                if let Some(route) = st.route(need) {
                    break route;
                }
                if !held {
                    if st.held >= self.caps.held {
                        break Route::TooManyHeld;
                    }
                    st.held += 1;
                    held = true;
                }
                st.wake.as_ref().map(|w| Arc::clone(&w.read))
            };
            match wait_held(client, wake.as_deref(), until, &mut watch_client) {
                Woken::Changed => {}
                Woken::HungUp => break Route::HungUp,
                Woken::TimedOut => break Route::TimedOut,
            }
        };
        if held {
            self.lock().held -= 1;
        }
        route
    }
}

/// Why a held connection woke.
enum Woken {
    /// Where it goes may have changed (or nothing did): look again.
    Changed,
    HungUp,
    TimedOut,
}

/// Waits until `wake` is closed (where a held connection goes may have changed), its client
/// hangs up, or `until`. The hang-up is seen on Linux by `POLLRDHUP` (the client sent its
/// FIN: the connection is dropped, as nginx drops one, also when a request came before it);
/// elsewhere only before a request comes (a read of nothing), as a request must stay unread
/// until the connection is routed.
fn wait_held(
    client: &TcpStream,
    wake: Option<&PipeReader>,
    until: Instant,
    watch_client: &mut bool,
) -> Woken {
    let now = Instant::now();
    if now >= until {
        return Woken::TimedOut;
    }
    let mut left = until - now;
    if wake.is_none() {
        left = left.min(WAKE_FALLBACK);
    }
    #[cfg(target_os = "linux")]
    let client_events = libc::POLLRDHUP;
    #[cfg(not(target_os = "linux"))]
    let client_events = libc::POLLIN;
    let mut fds = [
        libc::pollfd {
            fd: client.as_raw_fd(),
            events: if *watch_client { client_events } else { 0 },
            revents: 0,
        },
        libc::pollfd {
            fd: wake.map_or(-1, |w| w.as_raw_fd()),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // Rounded up: a poll that ends before `until` only looks again.
    let ms = libc::c_int::try_from(left.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX);
    // SAFETY: poll reads and writes `fds`, two valid pollfds (a negative fd is skipped).
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if n <= 0 {
        // Timed out (`until` is checked again), or a signal.
        return Woken::Changed;
    }
    let client_revents = fds[0].revents;
    if client_revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        return Woken::HungUp;
    }
    #[cfg(target_os = "linux")]
    if client_revents & libc::POLLRDHUP != 0 {
        return Woken::HungUp;
    }
    #[cfg(not(target_os = "linux"))]
    if client_revents & libc::POLLIN != 0 {
        let mut byte = 0u8;
        // SAFETY: recv writes at most one byte into `byte`.
        let got = unsafe {
            libc::recv(
                client.as_raw_fd(),
                (&raw mut byte).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        match got {
            0 => return Woken::HungUp,
            // A request: left for the function; hang-ups are not seen from here on.
            1.. => *watch_client = false,
            _ => {}
        }
    }
    Woken::Changed
}

/// The directory of the sync files, `<target>/scf/watch-<pid>`, watched with the package.
struct SyncDir {
    dir: PathBuf,
    next: AtomicU64,
}

impl SyncDir {
    fn new(target: &Path) -> Option<SyncDir> {
        let scf = target.join("scf");
        remove_stale(&scf);
        let dir = scf.join(format!("watch-{}", std::process::id()));
        let made = std::fs::create_dir_all(&dir).and_then(|()| dir.canonicalize());
        match made {
            Ok(dir) => Some(SyncDir {
                dir,
                next: AtomicU64::new(0),
            }),
            Err(e) => {
                eprintln!(
                    "cargo scf watch: cannot create {} ({e}): a change saved just before a \
                     request may miss it",
                    dir.display()
                );
                None
            }
        }
    }

    /// Creates (and removes) a new sync file; its number.
    fn mark(&self) -> Option<u64> {
        let token = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let path = self.dir.join(token.to_string());
        std::fs::File::create_new(&path).ok()?;
        let _ = std::fs::remove_file(&path);
        Some(token)
    }

    /// The highest number given to a sync file so far.
    fn issued(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes the sync directories (`watch-<pid>` in `scf`) of tools that are gone: killed, they
/// could not remove their own.
fn remove_stale(scf: &Path) {
    let Ok(entries) = std::fs::read_dir(scf) else {
        return;
    };
    for entry in entries.flatten() {
        let pid = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("watch-"))
            .and_then(|p| p.parse::<libc::pid_t>().ok())
            .filter(|&p| p > 0);
        if let Some(pid) = pid
            && !alive(pid)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether process `pid` exists (as far as this process can tell: one it may not signal does).
fn alive(pid: libc::pid_t) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Which paths are the function's sources (anything in the package but build output, version
/// control, editor settings and editors' temporary files).
#[derive(Clone)]
struct Filter {
    dir: PathBuf,
    /// Build output: `<package>/target` and the target directory.
    output: Vec<PathBuf>,
}

impl Filter {
    fn new(dir: &Path, target: &Path) -> Filter {
        let mut output = vec![dir.join("target")];
        output.extend(target.canonicalize().ok());
        Filter {
            dir: dir.to_path_buf(),
            output,
        }
    }

    fn relevant(&self, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.dir) else {
            return false;
        };
        if rel.as_os_str().is_empty() || self.output.iter().any(|o| path.starts_with(o)) {
            return false;
        }
        let ignored_dir = rel.components().any(|c| match c {
            Component::Normal(n) => IGNORED_DIRS.iter().any(|d| n == *d),
            _ => false,
        });
        !ignored_dir
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_none_or(|n| !is_temporary(n))
    }
}

/// An editor's temporary or backup file: vim's swap files and write test (`4913`), emacs's
/// lock and autosave files, backups (`~`), JetBrains' safe-write files, macOS's `.DS_Store`.
fn is_temporary(name: &str) -> bool {
    name.ends_with('~')
        || name.starts_with(".#")
        || (name.len() > 1 && name.starts_with('#') && name.ends_with('#'))
        || name == "4913"
        || name == ".DS_Store"
        || name.contains("___jb_")
        || [".swp", ".swo", ".swx", ".tmp"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// Whether an event of this kind can change what cargo builds: a file created, written,
/// renamed or removed. Opening, reading and closing a file (notify reports inotify's
/// `IN_OPEN`, `IN_CLOSE_*` as accesses; cargo and editors make plenty) are not, nor a change
/// of metadata alone (`touch`, `chmod`).
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(m) => !matches!(m, ModifyKind::Metadata(_)),
        // A backend that does not say what happened: to be sure.
        EventKind::Any => true,
        EventKind::Access(_) | EventKind::Other => false,
    }
}

/// The watcher's callback: a change to a source counts (and goes to the main loop); a sync
/// file's event releases the connection waiting for it. Reads and opens are not changes. When
/// events were lost (the kernel's queue overflowed: notify's `need_rescan`) or the watcher
/// failed, something may have changed: that counts as a change, built to be sure, and every
/// connection waiting for its sync file is released to that build.
fn on_file_event(
    event: notify::Result<notify::Event>,
    filter: &Filter,
    sync: Option<&SyncDir>,
    shared: &Shared,
    tx: &Sender<Event>,
) {
    let event = match event {
        Ok(e) if e.need_rescan() => {
            return lost(
                "events were lost (the watcher's queue overflowed)",
                sync,
                shared,
                tx,
            );
        }
        Ok(e) => e,
        Err(e) => return lost(&e.to_string(), sync, shared, tx),
    };
    if !is_change(&event.kind) {
        return;
    }
    let mut changed = None;
    let mut synced = None;
    for path in &event.paths {
        if sync.is_some_and(|s| path.parent() == Some(s.dir.as_path())) {
            let token = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u64>().ok());
            synced = synced.max(token);
        } else if filter.relevant(path) {
            // The last: a rename's paths are (from, to), and an editor's temporary file
            // renamed over the source is named for the source.
            changed = Some(path.clone());
        }
    }
    if changed.is_none() && synced.is_none() {
        return;
    }
    shared.update(|s| {
        if changed.is_some() {
            s.edits += 1;
        }
        if let Some(t) = synced {
            s.synced = s.synced.max(t);
        }
    });
    if let Some(path) = changed {
        let _ = tx.send(Event::Changed(Ok(path)));
    }
}

/// Events may have been lost (`why`): a change, and every sync file made so far is taken as
/// seen (its event may be among the lost).
fn lost(why: &str, sync: Option<&SyncDir>, shared: &Shared, tx: &Sender<Event>) {
    let issued = sync.map_or(0, SyncDir::issued);
    shared.update(|s| {
        s.edits += 1;
        s.synced = s.synced.max(issued);
    });
    let _ = tx.send(Event::Changed(Err(why.to_owned())));
}

/// Accepts connections and hands each to a thread of its own, at most [`Caps::connections`]
/// at once: past it, a connection is answered `503` at once.
fn accept(listener: &TcpListener, shared: &Arc<Shared>, sync: Option<&Arc<SyncDir>>) {
    loop {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            // Out of descriptors or memory for a moment: the connection waits in the backlog.
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let accepted = Instant::now();
        // Only this thread adds to `open`: the check and the count cannot race.
        if shared.open.load(Ordering::Relaxed) >= shared.caps.connections {
            let why = format!(
                "as many connections are open as it takes at once ({}): try again when one \
                 closes",
                shared.caps.connections
            );
            refuse_now(client, shared, &why);
            continue;
        }
        shared.open.fetch_add(1, Ordering::Relaxed);
        let open = Open(Arc::clone(shared));
        let sync = sync.cloned();
        // A thread that cannot be made drops the connection (closed) and its count.
        let _ = std::thread::Builder::new()
            .name("connection".into())
            .stack_size(CONNECTION_STACK)
            .spawn(move || {
                proxy(client, accepted, &open.0, sync.as_deref());
                drop(open);
            });
    }
}

/// Answers a connection past the cap `503` at once, from the accepting thread; its request is
/// then drained by a thread of its own while fewer than [`MAX_ANSWERING`] are, or it is closed.
fn refuse_now(client: TcpStream, shared: &Arc<Shared>, why: &str) {
    // A new connection's send buffer takes the answer whole: this does not block.
    let _ = client.set_nonblocking(true);
    write_answer(&client, 503, why);
    if shared.answering.fetch_add(1, Ordering::Relaxed) >= MAX_ANSWERING {
        shared.answering.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let answering = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("refusal".into())
        .stack_size(CONNECTION_STACK)
        .spawn(move || {
            let _ = client.set_nonblocking(false);
            drain(client);
            answering.answering.fetch_sub(1, Ordering::Relaxed);
        });
    if spawned.is_err() {
        shared.answering.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One connection: routed to the build of every change made before it opened, then copied
/// both ways as bytes arrive; or answered by the tool, saying why not.
fn proxy(client: TcpStream, accepted: Instant, shared: &Shared, sync: Option<&SyncDir>) {
    let waiting = shared.waiting();
    let need = shared.sync(sync);
    let (status, why) = match shared.route(need, &client, accepted + shared.caps.hold) {
        Route::To(port) => match TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
            Ok(server) => {
                drop(waiting);
                return splice(client, server);
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => (
                503,
                format!("the tool is out of file descriptors ({e}): try again"),
            ),
            Err(e) => (
                502,
                format!("the function's process refused the connection ({e})"),
            ),
        },
        Route::Nowhere => (
            502,
            "no build of the function is serving: see the build's errors".into(),
        ),
        Route::Stopping => (503, "it is stopping".into()),
        Route::TooManyHeld => (
            503,
            format!(
                "it holds as many connections as it may while a build runs ({}): try again \
                 when the build serves",
                shared.caps.held
            ),
        ),
        Route::TimedOut => (
            504,
            format!(
                "the connection was held for {}, the most it holds one, and the build it waits \
                 for is still under way: try again when it serves",
                humantime::format_duration(shared.caps.hold)
            ),
        ),
        Route::HungUp => return,
    };
    write_answer(&client, status, &why);
    // Read so that the close does not reset the answer away (the tool waits for this as it
    // stops, within ANSWER_LIMIT).
    drain(client);
    drop(waiting);
}

/// Writes an answer of the tool's own (JSON, as scf-lean's errors), `Connection: close`.
fn write_answer(mut client: &TcpStream, status: u16, why: &str) {
    let reason = match status {
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    let body = serde_json::json!({
        "errorCode": status,
        "errorMessage": format!("cargo scf watch: {why}"),
    })
    .to_string();
    let retry = if status == 503 {
        "Retry-After: 1\r\n"
    } else {
        ""
    };
    let _ = write!(
        client,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         {retry}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.shutdown(Shutdown::Write);
}

/// Reads what the client sent (within [`DRAIN_LIMIT`]) so that closing does not reset the
/// answer written away, then closes.
fn drain(mut client: TcpStream) {
    let _ = client.set_read_timeout(Some(DRAIN_LIMIT));
    let mut sink = [0u8; 4096];
    let end = Instant::now() + DRAIN_LIMIT;
    while Instant::now() < end && matches!(client.read(&mut sink), Ok(n) if n > 0) {}
}

/// Copies bytes both ways until the function's side ends: each read is written at once (no
/// buffering: streams and Server-Sent Events pass as they are produced), a client's half-close
/// is passed on, and when the function closes the client's side closes too. One socket each
/// (`&TcpStream` reads and writes), shared by the two directions' threads: two descriptors a
/// connection.
fn splice(client: TcpStream, server: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client, server) = (Arc::new(client), Arc::new(server));
    let up = {
        let (client, server) = (Arc::clone(&client), Arc::clone(&server));
        std::thread::Builder::new()
            .name("connection up".into())
            .stack_size(CONNECTION_STACK)
            .spawn(move || match std::io::copy(&mut &*client, &mut &*server) {
                // The client is done sending: so is the function's side.
                Ok(_) => {
                    let _ = server.shutdown(Shutdown::Write);
                }
                Err(_) => {
                    let _ = server.shutdown(Shutdown::Both);
                    let _ = client.shutdown(Shutdown::Both);
                }
            })
    };
    // No thread for the other direction: both closed (dropped).
    let Ok(up) = up else { return };
    let _ = std::io::copy(&mut &*server, &mut &*client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    let _ = up.join();
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, Flag, MetadataKind};
    use notify::event::{RemoveKind, RenameMode};

    use super::*;

    /// A reader that gives at most `step` bytes a read.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// `input` through [`pass_output`], read `step` bytes at a time: the pieces passed on, and
    /// the port found.
    fn passed(input: &[u8], step: usize) -> (Vec<Vec<u8>>, Option<u16>) {
        let mut pieces = Vec::new();
        let port = std::cell::Cell::new(None);
        pass_output(
            Trickle(input, step),
            |b: &[u8]| pieces.push(b.to_vec()),
            Some(|p| port.set(Some(p))),
        );
        (pieces, port.get())
    }

    const STARTUP: &[u8] =
        b"INFO [-] f 0.1.0 (x) on scf-lean 0.1.0 (y) listening on 0.0.0.0:4321 in 9 us\n";

    #[test]
    fn test_pass_output_passes_a_long_line_in_pieces_of_at_most_the_chunk() {
        let mut input = STARTUP.to_vec();
        input.extend(std::iter::repeat_n(b'x', 3 * OUTPUT_CHUNK + 10));
        input.extend_from_slice(b"\nlast line, unended");
        for step in [1, 1000, OUTPUT_CHUNK, 4 * OUTPUT_CHUNK] {
            let (pieces, port) = passed(&input, step);
            assert_eq!(pieces.concat(), input, "bytes unchanged ({step})");
            assert!(pieces.iter().all(|p| p.len() <= OUTPUT_CHUNK), "{step}");
            assert!(pieces.len() >= 4, "the long line in pieces ({step})");
            assert_eq!(port, Some(4321), "{step}");
        }
    }

    #[test]
    fn test_pass_output_looks_for_the_start_up_line_only_in_the_first_bytes() {
        // Lines of 10 bytes before it: starting within the first STARTUP_SCAN bytes, found;
        // starting past them, not looked at.
        let lines = |n: usize| b"123456789\n".repeat(n);
        let mut near = lines(STARTUP_SCAN / 10);
        near.extend_from_slice(STARTUP);
        assert_eq!(passed(&near, 4096).1, Some(4321));
        let mut far = lines(STARTUP_SCAN / 10 + 1);
        far.extend_from_slice(STARTUP);
        assert_eq!(passed(&far, 4096).1, None);
        // The end of a line passed on in pieces is not a start-up line.
        let mut tail = vec![b'x'; OUTPUT_CHUNK];
        tail.extend_from_slice(STARTUP);
        assert_eq!(passed(&tail, 4096).1, None);
    }

    fn test_caps(held: usize) -> Caps {
        Caps {
            connections: 8,
            held,
            hold: Duration::from_secs(3600),
            lowered_by: None,
        }
    }

    #[test]
    fn test_caps_fit_the_descriptor_limit_and_the_variables() {
        let none = |_: &str| None;
        let c = Caps::with(1 << 20, none);
        assert_eq!(
            (c.connections, c.held, c.hold),
            (MAX_CONNECTIONS, MAX_HELD, HOLD_LIMIT)
        );
        assert_eq!(c.lowered_by, None);
        // 1,024 descriptors: two a connection, beside the reserve and the refusals drained.
        let c = Caps::with(1024, none);
        assert_eq!(c.connections, (1024 - 128 - 64) / 2);
        assert_eq!(c.lowered_by, Some(1024));
        assert!(2 * c.connections as u64 + FD_RESERVE + MAX_ANSWERING as u64 <= 1024);
        assert_eq!(Caps::with(10, none).connections, 1);
        let c = Caps::with(1 << 20, |name| match name {
            MAX_CONNECTIONS_VAR => Some(3),
            MAX_HELD_VAR => Some(9),
            HOLD_LIMIT_VAR => Some(250),
            _ => None,
        });
        assert_eq!(
            (c.connections, c.held, c.hold),
            (3, 3, Duration::from_millis(250))
        );
        assert_eq!(c.lowered_by, None);
    }

    /// A connected pair on loopback: (the client's end, the tool's end).
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        (client, l.accept().unwrap().0)
    }

    /// Waits (bounded) until `f` holds of the state.
    fn until(shared: &Shared, f: impl Fn(&State) -> bool) {
        let end = Instant::now() + Duration::from_secs(60);
        while !f(&shared.lock()) {
            assert!(Instant::now() < end, "the state never came");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn test_a_held_connection_goes_when_built_and_is_released_when_its_client_hangs_up() {
        let shared = Arc::new(Shared::new(test_caps(1)));
        let far = Instant::now() + Duration::from_secs(3600);
        // Routed when the build serves: the state's change wakes it.
        let (client, conn) = pair();
        let held = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || shared.route(1, &conn, far))
        };
        until(&shared, |s| s.held == 1);
        // One held already: the next is refused at once.
        let (_c2, conn2) = pair();
        assert_eq!(shared.route(1, &conn2, far), Route::TooManyHeld);
        shared.update(|s| {
            s.resolved = Some(1);
            s.upstream = Some(4321);
        });
        assert_eq!(held.join().unwrap(), Route::To(4321));
        assert_eq!(shared.lock().held, 0);
        drop(client);

        // A client that hangs up (before its request, or on Linux after it too) frees its
        // place.
        let requests: &[bool] = if cfg!(target_os = "linux") {
            &[false, true]
        } else {
            &[false]
        };
        for &request in requests {
            let (mut client, conn) = pair();
            if request {
                client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            }
            let held = {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || shared.route(2, &conn, far))
            };
            until(&shared, |s| s.held == 1);
            drop(client);
            assert_eq!(held.join().unwrap(), Route::HungUp, "request: {request}");
            assert_eq!(shared.lock().held, 0);
        }

        // Past its hold limit: timed out.
        let (_client, conn) = pair();
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(shared.route(2, &conn, soon), Route::TimedOut);

        // As the tool stops, held connections are told.
        let (_client, conn) = pair();
        let held = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || shared.route(2, &conn, far))
        };
        until(&shared, |s| s.held == 1);
        shared.update(|s| s.stopping = true);
        assert_eq!(held.join().unwrap(), Route::Stopping);
    }

    /// A temporary directory with a sync directory in it, and what the watcher's callback
    /// needs.
    fn callback_parts() -> (tempfile::TempDir, SyncDir, Filter, Shared) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let sync = SyncDir::new(&dir.join("target")).unwrap();
        let filter = Filter::new(&dir, &dir.join("target"));
        (tmp, sync, filter, Shared::new(test_caps(8)))
    }

    #[test]
    fn test_each_sync_file_wakes_its_own_connection() {
        let (_tmp, sync, filter, shared) = callback_parts();
        let shared = Arc::new(shared);
        let (tx, _rx) = mpsc::channel();
        let (one, two) = (sync.mark().unwrap(), sync.mark().unwrap());
        let waiter = |token| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || shared.wait_synced(token, Duration::from_secs(60)))
        };
        let (w1, w2) = (waiter(one), waiter(two));
        until(&shared, |s| s.sync_waiters.len() == 2);
        let seen = |token: u64| {
            let e = notify::Event::new(EventKind::Create(CreateKind::File))
                .add_path(sync.dir.join(token.to_string()));
            on_file_event(Ok(e), &filter, Some(&sync), &shared, &tx);
        };
        seen(one);
        assert_eq!(w1.join().unwrap(), (true, 0));
        assert!(
            shared.lock().sync_waiters.contains_key(&two),
            "the other waits on"
        );
        seen(two);
        assert_eq!(w2.join().unwrap(), (true, 0));
    }

    #[test]
    fn test_lost_events_are_a_change_and_release_every_waiting_connection() {
        let (tmp, sync, filter, shared) = callback_parts();
        let shared = Arc::new(shared);
        let sync = Arc::new(sync);
        let (tx, rx) = mpsc::channel();
        // A connection whose sync file's event was among the lost.
        let token = sync.mark().unwrap();
        let waiter = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || shared.wait_synced(token, Duration::from_secs(60)))
        };
        // notify's event for inotify's IN_Q_OVERFLOW.
        let rescan = notify::Event::new(EventKind::Other).set_flag(Flag::Rescan);
        on_file_event(Ok(rescan), &filter, Some(&sync), &shared, &tx);
        // Released by it (not by the time limit), to a build of it.
        assert_eq!(waiter.join().unwrap(), (true, 1));
        assert!(matches!(rx.try_recv(), Ok(Event::Changed(Err(why))) if why.contains("lost")));

        // Opening, reading, closing and metadata are not changes; writes, creations, renames
        // and removals are.
        let src = tmp.path().canonicalize().unwrap().join("src/main.rs");
        let not = [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Other,
        ];
        for kind in not {
            let e = notify::Event::new(kind).add_path(src.clone());
            on_file_event(Ok(e), &filter, Some(&sync), &shared, &tx);
            assert!(rx.try_recv().is_err(), "{kind:?}");
        }
        let yes = [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Remove(RemoveKind::File),
        ];
        for kind in yes {
            let e = notify::Event::new(kind).add_path(src.clone());
            on_file_event(Ok(e), &filter, Some(&sync), &shared, &tx);
            assert!(
                matches!(rx.try_recv(), Ok(Event::Changed(Ok(p))) if p == src),
                "{kind:?}"
            );
        }
        assert_eq!(shared.lock().edits, 1 + 4);
    }

    #[test]
    fn test_stale_sync_directories_of_gone_tools_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let mut exited = std::process::Command::new("true").spawn().unwrap();
        exited.wait().unwrap();
        let gone = tmp.path().join(format!("watch-{}", exited.id()));
        let mine = tmp.path().join(format!("watch-{}", std::process::id()));
        let other = tmp.path().join("watch-x");
        for d in [&gone, &mine, &other] {
            std::fs::create_dir_all(d.join("7")).unwrap();
        }
        remove_stale(tmp.path());
        assert!(!gone.exists());
        assert!(mine.exists() && other.exists());
    }

    #[test]
    fn test_startup_port_reads_text_and_json_lines() {
        let text = b"INFO [-] hello-fn 0.1.0 (unknown) on scf-lean 0.1.0 (abc) listening on \
                     0.0.0.0:41234 in 51 us (process CPU since start: 300 us)\n";
        assert_eq!(startup_port(text), Some(41234));
        let json = br#"{"level":"INFO","time":"t","requestId":null,"msg":"listening","version":"0.1.0","commit":"x","port":9000,"startupUs":3}"#;
        assert_eq!(startup_port(json), Some(9000));
        // A function's own line is not the start-up line.
        assert_eq!(
            startup_port(b"INFO [r-1] listening on 0.0.0.0:1 in\n"),
            None
        );
        assert_eq!(startup_port(br#"{"msg":"listening"}"#), None);
        assert_eq!(startup_port(b"\xff\n"), None);
    }

    #[test]
    fn test_filter_leaves_out_build_output_version_control_and_editor_files() {
        let f = Filter::new(Path::new("/p"), Path::new("/elsewhere/target"));
        for yes in [
            "/p/src/main.rs",
            "/p/Cargo.toml",
            "/p/build.rs",
            "/p/.cargo/config.toml",
        ] {
            assert!(f.relevant(Path::new(yes)), "{yes}");
        }
        for no in [
            "/p",
            "/q/src/main.rs",
            "/p/target/debug/x",
            "/p/.git/index",
            "/p/src/.main.rs.swp",
            "/p/src/main.rs~",
            "/p/src/4913",
            "/p/src/.#main.rs",
            "/p/src/#main.rs#",
            "/p/src/main.rs___jb_tmp___",
        ] {
            assert!(!f.relevant(Path::new(no)), "{no}");
        }
    }
}
