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
//!
//! Watched: the package's directory, recursively, except `target/` (and the target directory
//! wherever it is), `.git`, `.hg`, `.svn`, `.jj`, `.idea`, `.vscode` and editors' temporary
//! files (`*~`, `.*.swp`, `.#*`, `#*#`, `4913`, `*.tmp`, JetBrains' `___jb_*`). Path
//! dependencies outside it are not watched.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::{ChildStdout, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
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
/// 502 away.
const DRAIN_LIMIT: Duration = Duration::from_secs(1);

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

    let shared = Arc::new(Shared::default());
    let sync = SyncDir::new(&project.target_directory);
    let filter = Filter::new(&dir, &project.target_directory);
    let mut watcher = {
        let (shared, tx) = (Arc::clone(&shared), tx.clone());
        let sync_dir = sync.as_ref().map(|s| s.dir.clone());
        let filter = filter.clone();
        notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
            on_file_event(e, &filter, sync_dir.as_deref(), &shared, &tx);
        })
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
            Ok(()) => Some(Arc::new(s)),
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
        // Build at once.
        pending: Some(Pending {
            last: Instant::now() - DEBOUNCE,
            paths: None,
        }),
        serving: None,
        starting: None,
        stopping: Vec::new(),
        builds: 0,
        next_id: 0,
        said_conditions: false,
        shutting_down: false,
    };
    let result = w.run(&rx);
    if let Some(s) = sync {
        s.remove();
    }
    result
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

/// Changes seen and not yet built.
struct Pending {
    /// When the last one came.
    last: Instant,
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
    pending: Option<Pending>,
    serving: Option<Instance>,
    starting: Option<Starting>,
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
                    .is_some_and(|p| p.last.elapsed() >= DEBOUNCE)
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

    /// The next moment something is due: a build after the quiet time, a process that must be
    /// listening or gone by then.
    fn next_deadline(&self) -> Option<Instant> {
        let debounce = self
            .pending
            .as_ref()
            .filter(|_| self.building.is_none() && !self.shutting_down)
            .map(|p| p.last + DEBOUNCE);
        let starting = self.starting.as_ref().map(|s| s.deadline);
        let stopping = self.stopping.iter().map(|(_, at)| *at).min();
        [debounce, starting, stopping].into_iter().flatten().min()
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
            // A second signal: on to every process still there (scf-lean exits at once).
            for (i, _) in &self.stopping {
                i.proc.signal(forwarded);
            }
            return;
        }
        self.shutting_down = true;
        eprintln!("cargo scf watch: stopping ({})", run::signal_name(sig));
        self.shared.update(|s| s.stopping = true);
        if let Some((cargo, ..)) = &self.building {
            cargo.signal(libc::SIGTERM);
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
        let p = self.pending.get_or_insert(Pending {
            last: Instant::now(),
            paths: None,
        });
        p.last = Instant::now();
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
        if !path.is_dir() {
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
        match paths {
            Some((first, last)) => {
                let path = if first.exists() || !last.exists() {
                    first
                } else {
                    last
                };
                eprintln!(
                    "cargo scf watch: {} changed: building…",
                    run::relative(&path, &self.dir).display()
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
        let port = if self.quiet {
            match free_port() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("cargo scf watch: {e:#}: {}", self.keeps_serving());
                    self.resolve(covers);
                    return;
                }
            }
        } else {
            0
        };
        let started = match self
            .function
            .spawn(&binary, &Mode::Web(port), Stdio::piped())
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cargo scf watch: {e:#}: {}", self.keeps_serving());
                self.resolve(covers);
                return;
            }
        };
        if !self.said_conditions {
            self.said_conditions = true;
            eprintln!(
                "cargo scf watch: the function runs as on SCF: {}",
                started.conditions
            );
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
        self.shared.update(|s| s.starting = true);
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
        self.shared.update(|s| {
            s.upstream = Some(port);
            s.starting = false;
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
            self.shared.update(|st| st.starting = false);
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
        if served >= RESTART_AFTER && self.starting.is_none() {
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

    /// Deadlines passed: a process that did not listen in time, or did not stop.
    fn on_time(&mut self) {
        let now = Instant::now();
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

/// Copies the function's stdout to the tool's, line by line, and sends the port of its
/// start-up line when it comes (if `tx`).
fn forward_output(stdout: ChildStdout, id: u64, mut tx: Option<Sender<Event>>) {
    let mut r = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&line);
            let _ = out.flush();
        }
        if let Some(port) = tx.as_ref().and_then(|_| startup_port(&line))
            && let Some(tx) = tx.take()
        {
            let _ = tx.send(Event::Ready { id, port });
        }
    }
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
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
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
    /// The tool is stopping: held connections are closed.
    stopping: bool,
}

/// Where a connection goes.
enum Route {
    To(u16),
    /// No process serves, and none is coming: the reason is the last status line.
    Nowhere,
    Stopping,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    /// The changes a connection that opened now must be served with: all seen once this
    /// connection's sync file is (see the module's documentation).
    fn sync(&self, sync: Option<&SyncDir>) -> u64 {
        let token = sync.and_then(SyncDir::mark);
        let mut st = self.lock();
        if let Some(token) = token {
            let end = Instant::now() + SYNC_LIMIT;
            while st.synced < token && !st.stopping {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                st = self
                    .changed
                    .wait_timeout(st, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        st.edits
    }

    /// Waits until the changes up to `need` are built (or failed to), then says where the
    /// connection goes.
    fn route(&self, need: u64) -> Route {
        let mut st = self.lock();
        loop {
            if st.stopping {
                return Route::Stopping;
            }
            if st.resolved.is_some_and(|r| r >= need) {
                if let Some(port) = st.upstream {
                    return Route::To(port);
                }
                if !st.starting {
                    return Route::Nowhere;
                }
            }
            st = self
                .changed
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// The directory of the sync files, `<target>/scf/watch-<pid>`, watched with the package.
struct SyncDir {
    dir: PathBuf,
    next: AtomicU64,
}

impl SyncDir {
    fn new(target: &Path) -> Option<SyncDir> {
        let dir = target
            .join("scf")
            .join(format!("watch-{}", std::process::id()));
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
        let token = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let path = self.dir.join(token.to_string());
        std::fs::File::create_new(&path).ok()?;
        let _ = std::fs::remove_file(&path);
        Some(token)
    }

    fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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

/// The watcher's callback: a change to a source counts (and goes to the main loop); a sync
/// file's event releases the connections waiting for it. Reads and opens are not changes.
fn on_file_event(
    event: notify::Result<notify::Event>,
    filter: &Filter,
    sync_dir: Option<&Path>,
    shared: &Shared,
    tx: &Sender<Event>,
) {
    let event = match event {
        Ok(e) => e,
        Err(e) => {
            shared.update(|s| s.edits += 1);
            let _ = tx.send(Event::Changed(Err(e.to_string())));
            return;
        }
    };
    if matches!(event.kind, EventKind::Access(_)) {
        return;
    }
    let mut changed = None;
    let mut synced = None;
    for path in &event.paths {
        if sync_dir.is_some_and(|d| path.parent() == Some(d)) {
            let token = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u64>().ok());
            synced = synced.max(token);
        } else if changed.is_none() && filter.relevant(path) {
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

/// Accepts connections and hands each to a thread of its own.
fn accept(listener: &TcpListener, shared: &Arc<Shared>, sync: Option<&Arc<SyncDir>>) {
    loop {
        match listener.accept() {
            Ok((client, _)) => {
                let (shared, sync) = (Arc::clone(shared), sync.cloned());
                let _ = std::thread::Builder::new()
                    .name("connection".into())
                    .spawn(move || proxy(client, &shared, sync.as_deref()));
            }
            // Out of descriptors or memory for a moment: the connection waits in the backlog.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// One connection: routed to the build of every change made before it opened, then copied
/// both ways as bytes arrive.
fn proxy(client: TcpStream, shared: &Shared, sync: Option<&SyncDir>) {
    let need = shared.sync(sync);
    let port = match shared.route(need) {
        Route::To(port) => port,
        Route::Nowhere => {
            return refuse(
                client,
                "no build of the function is serving: see the build's errors",
            );
        }
        Route::Stopping => return,
    };
    match TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
        Ok(server) => splice(client, server),
        Err(e) => refuse(
            client,
            &format!("the function's process refused the connection ({e})"),
        ),
    }
}

/// Answers a 502 of the tool's own (JSON, as scf-lean's errors), then closes.
fn refuse(mut client: TcpStream, why: &str) {
    let body = serde_json::json!({
        "errorCode": 502,
        "errorMessage": format!("cargo scf watch: {why}"),
    })
    .to_string();
    let _ = write!(
        client,
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.shutdown(Shutdown::Write);
    // Read what the client sent (within a bound) so that closing does not reset the answer.
    let _ = client.set_read_timeout(Some(DRAIN_LIMIT));
    let mut sink = [0u8; 4096];
    let end = Instant::now() + DRAIN_LIMIT;
    while Instant::now() < end && matches!(client.read(&mut sink), Ok(n) if n > 0) {}
}

/// Copies bytes both ways until the function's side ends: each read is written at once (no
/// buffering: streams and Server-Sent Events pass as they are produced), a client's half-close
/// is passed on, and when the function closes the client's side closes too.
fn splice(client: TcpStream, server: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(mut from_client), Ok(mut to_server)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = std::thread::Builder::new()
        .name("connection up".into())
        .spawn(
            move || match std::io::copy(&mut from_client, &mut to_server) {
                // The client is done sending: so is the function's side.
                Ok(_) => {
                    let _ = to_server.shutdown(Shutdown::Write);
                }
                Err(_) => {
                    let _ = to_server.shutdown(Shutdown::Both);
                    let _ = from_client.shutdown(Shutdown::Both);
                }
            },
        );
    let (mut from_server, mut to_client) = (server, client);
    let _ = std::io::copy(&mut from_server, &mut to_client);
    let _ = to_client.shutdown(Shutdown::Both);
    let _ = from_server.shutdown(Shutdown::Both);
    if let Ok(up) = up {
        let _ = up.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
