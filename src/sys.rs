//! The few system calls std does not offer, and so the crate's only `unsafe`, each block with
//! its `SAFETY` note:
//!
//! - SIGTERM and SIGINT caught by a handler that does three async-signal-safe things: the
//!   first signal wakes the loop through an `eventfd` in its `epoll` set (shutdown is handled
//!   there) and arms a timer for the end of the grace period, whose `SIGALRM` ends the process
//!   even while a call or `init` holds the loop; a second signal ends it at once with 128 + its
//!   number. No thread watches for them.
//! - The CPU time the process has used since it was forked, for the start-up line: as long as
//!   nothing blocks before `listen`, it is the time from process start to listening, kernel
//!   `execve` work and page faults included.
//! - The environment read in place, in one pass: `std::env::var` copies each value it finds
//!   and scans the whole environment once per name.
//! - The process start without std's runtime set-up (`scf_lean::main!`, a constructor that
//!   runs before `main`): the arguments where the C library or the kernel left them,
//!   descriptors 0–2 open, and `SIGPIPE` ignored.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int};

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// An `eventfd`: another thread (or a signal handler) wakes the loop by writing to it, the
/// loop clears it by reading. In the loop's `epoll` set like a socket.
pub(crate) struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    #[inline]
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd with valid flags returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: eventfd returned a new descriptor that nothing else owns.
        Ok(EventFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Wakes whoever waits for it (async-signal-safe: one `write`).
    pub fn notify(&self) {
        notify_raw(self.fd.as_raw_fd());
    }

    /// Reads the count back to zero.
    pub fn clear(&self) {
        let mut count = [0u8; 8];
        // SAFETY: `count` is a writable buffer of the 8 bytes an eventfd read takes.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
    }
}

/// One `write` of 1 to an eventfd.
fn notify_raw(fd: c_int) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: `one` is 8 readable bytes, what an eventfd write takes.
    let _ = unsafe { libc::write(fd, one.as_ptr().cast(), 8) };
}

impl Source for EventFd {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        SourceFd(&self.fd.as_raw_fd()).register(r, t, i)
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        SourceFd(&self.fd.as_raw_fd()).reregister(r, t, i)
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        SourceFd(&self.fd.as_raw_fd()).deregister(r)
    }
}

/// SIGTERM and SIGINT, caught; the loop watches the `eventfd` the handler writes to.
pub(crate) struct Signals {
    wake: EventFd,
}

/// The `eventfd` the handler writes to; -1 until [`Signals::new`].
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// The first signal's number, until the loop takes it; 0 for none.
static FIRST: AtomicI32 = AtomicI32::new(0);
/// A signal has arrived: the next one exits at once.
static SEEN: AtomicBool = AtomicBool::new(false);
/// When the grace timer fires after the first signal, in microseconds.
static GRACE_US: AtomicU64 = AtomicU64::new(0);
/// The log's format for the handler's own lines: JSON when set.
static JSON: AtomicBool = AtomicBool::new(false);

/// How long past the grace period the timer waits for the loop to end the process itself (with
/// its last lines) before it does, in ms.
const GRACE_BACKSTOP_MS: u64 = 100;

impl Signals {
    /// Opens the `eventfd` and installs the handler of SIGTERM and SIGINT (the grace timer's,
    /// SIGALRM's, with the first signal).
    pub fn new(grace: Duration, json: bool) -> io::Result<Signals> {
        let wake = EventFd::new()?;
        let ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX / 4000);
        GRACE_US.store(
            (ms.min(u64::MAX / 4000) + GRACE_BACKSTOP_MS) * 1000,
            Ordering::Relaxed,
        );
        JSON.store(json, Ordering::Relaxed);
        WAKE_FD.store(wake.fd.as_raw_fd(), Ordering::Release);
        for signo in [libc::SIGTERM, libc::SIGINT] {
            if !catch(signo, on_signal) {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Signals { wake })
    }

    /// The first signal's number, once, when it has arrived.
    pub fn next(&self) -> Option<i32> {
        self.wake.clear();
        match FIRST.swap(0, Ordering::AcqRel) {
            0 => None,
            signo => Some(signo),
        }
    }
}

impl Drop for Signals {
    /// The server is done: the handler wakes nothing any more, and a grace timer armed is off
    /// (the process ends by itself, or goes on without this server).
    fn drop(&mut self) {
        released();
    }
}

/// What [`Signals`]' drop does. Out of line: the start that installs them does not carry it.
#[cold]
#[inline(never)]
fn released() {
    WAKE_FD.store(-1, Ordering::Release);
    if SEEN.load(Ordering::Acquire) {
        set_timer(0);
    }
}

/// Installs `handler` for `signo` (`SA_RESTART`); whether it could. Async-signal-safe.
#[inline(never)]
fn catch(signo: c_int, handler: extern "C" fn(c_int)) -> bool {
    // SAFETY: an all-zero sigaction is valid (empty mask, no flags) before it is set.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler as usize;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa` is initialised and the handler only makes async-signal-safe calls.
    unsafe { libc::sigaction(signo, &sa, std::ptr::null_mut()) == 0 }
}

/// Arms `ITIMER_REAL` to fire once after `us` microseconds (0 disarms it).
fn set_timer(us: u64) {
    let t = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: (us / 1_000_000) as _,
            tv_usec: (us % 1_000_000) as _,
        },
    };
    // SAFETY: `t` is a valid itimerval; a null old value is allowed. setitimer is a plain
    // system call, safe in a signal handler.
    unsafe { libc::setitimer(libc::ITIMER_REAL, &t, std::ptr::null_mut()) };
}

/// Writes a fixed line to stderr from a handler, if it goes at once ([`handler_write`]).
fn handler_line(text: &[u8], json: &[u8]) {
    let line = if JSON.load(Ordering::Relaxed) {
        json
    } else {
        text
    };
    handler_write(line);
}

/// SIGTERM or SIGINT: the first wakes the loop and arms the grace timer; a second ends the
/// process at once with 128 + its number.
extern "C" fn on_signal(signo: c_int) {
    if SEEN.swap(true, Ordering::AcqRel) {
        handler_line(
            b"INFO [-] second signal: exiting at once\n",
            b"{\"level\":\"INFO\",\"msg\":\"second signal: exiting at once\"}\n",
        );
        // SAFETY: _exit is async-signal-safe and ends the process.
        unsafe { libc::_exit(128 + signo) };
    }
    FIRST.store(signo, Ordering::Release);
    // The grace timer's handler, installed now (sigaction is async-signal-safe): a process
    // that is never signalled never sets it up.
    catch(libc::SIGALRM, on_alarm);
    set_timer(GRACE_US.load(Ordering::Relaxed));
    let fd = WAKE_FD.load(Ordering::Acquire);
    if fd >= 0 {
        notify_raw(fd);
    }
}

/// The grace period is over and the loop has not ended the process (a call or `init` holds
/// it): it ends now.
extern "C" fn on_alarm(_: c_int) {
    handler_line(
        b"ERROR [-] shutdown grace period over with work in flight: exiting\n",
        b"{\"level\":\"ERROR\",\"msg\":\"shutdown grace period over with work in flight: exiting\"}\n",
    );
    // SAFETY: _exit is async-signal-safe and ends the process.
    unsafe { libc::_exit(0) };
}

impl Source for Signals {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.wake.register(r, t, i)
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.wake.reregister(r, t, i)
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        self.wake.deregister(r)
    }
}

/// CPU time used by the process so far (user + system), `None` if the clock is unavailable.
pub(crate) fn process_cpu_time() -> Option<Duration> {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, exclusively borrowed timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    let secs = u64::try_from(t.tv_sec).ok()?;
    let nanos = u32::try_from(t.tv_nsec).ok()?;
    (rc == 0).then(|| Duration::new(secs, nanos))
}

unsafe extern "C" {
    /// The C library's environment: `NAME=value` strings, ending with a null pointer.
    static environ: *const *const c_char;
}

/// Calls `f(name, value)` for every `NAME=value` entry of the environment whose name `wanted`
/// accepts, in order, reading the strings in place: no copy, no allocation, and only the names
/// are scanned unless wanted (the values, `PATH` and the like, can be long).
///
/// Like every reader of the environment, it must not run while another thread changes it
/// (`std::env::set_var` is `unsafe` for that reason); scf-lean calls it before serving.
pub(crate) fn for_each_env(mut wanted: impl FnMut(&[u8]) -> bool, mut f: impl FnMut(&[u8], &[u8])) {
    // SAFETY: `environ` is set by the C runtime before `main` and is either null or a
    // null-terminated array of pointers to NUL-terminated strings, which nothing changes while
    // this runs (see above).
    unsafe { scan_env(environ, &mut wanted, &mut f) }
}

/// [`for_each_env`] over any `envp`.
///
/// # Safety
/// `envp` is null or a null-terminated array of pointers to NUL-terminated strings, valid and
/// unchanged for the duration of the call.
/// One copy of the scan for every caller (`dyn`): it runs at start, where code size is paid in
/// page faults.
#[inline(never)]
unsafe fn scan_env(
    envp: *const *const c_char,
    wanted: &mut dyn FnMut(&[u8]) -> bool,
    f: &mut dyn FnMut(&[u8], &[u8]),
) {
    if envp.is_null() {
        return;
    }
    let mut p = envp;
    // SAFETY: per the contract, every pointer up to the null one is a NUL-terminated string.
    // Every read below stays within one such string: the name scan stops at '=' or at the NUL,
    // and the value starts after the '='. The slices given to `f` do not escape the call.
    unsafe {
        while !(*p).is_null() {
            let entry = (*p).cast::<u8>();
            let mut n = 0;
            while *entry.add(n) != b'=' && *entry.add(n) != 0 {
                n += 1;
            }
            if *entry.add(n) == b'=' {
                let name = std::slice::from_raw_parts(entry, n);
                if wanted(name) {
                    f(name, CStr::from_ptr(entry.add(n + 1).cast()).to_bytes());
                }
            }
            p = p.add(1);
        }
    }
}

/// The process arguments as C's `main` receives them.
#[derive(Clone, Copy)]
pub struct Args {
    argc: usize,
    argv: *const *const c_char,
}

impl Args {
    /// # Safety
    /// `argv` must point to `argc` pointers to NUL-terminated strings (then a null pointer), valid
    /// for the life of the process: the arguments C's `main` receives.
    pub unsafe fn new(argc: c_int, argv: *const *const c_char) -> Args {
        Args {
            argc: usize::try_from(argc).unwrap_or(0),
            argv,
        }
    }

    /// The arguments of a process served from the constructor [`main!`](crate::main!)
    /// registers. glibc calls constructors with `argc` and `argv`; musl calls them with none,
    /// and the arguments are found where the kernel put them: on the initial stack, right below
    /// the environment.
    ///
    /// # Safety
    /// Called from a constructor the C runtime runs before `main`; on glibc, `argc` and `argv`
    /// are the ones it passed. On musl they are ignored, and nothing may have replaced
    /// `environ` yet (only an earlier constructor calling `setenv` could).
    pub unsafe fn at_start(argc: c_int, argv: *const *const c_char) -> Args {
        #[cfg(target_env = "musl")]
        {
            let _ = (argc, argv);
            // SAFETY: the caller's contract.
            unsafe { args_below_environ() }
        }
        #[cfg(not(target_env = "musl"))]
        // SAFETY: the caller's contract: glibc's arguments to `main`.
        unsafe {
            Args::new(argc, argv)
        }
    }

    /// Argument `i` (0 is the program), if there is one.
    pub fn get(&self, i: usize) -> Option<&'static [u8]> {
        if i >= self.argc || self.argv.is_null() {
            return None;
        }
        // SAFETY: `i < argc` and `argv` holds `argc` valid string pointers for the life of the
        // process (the contract of `Args::new`).
        unsafe {
            let s = *self.argv.add(i);
            (!s.is_null()).then(|| CStr::from_ptr(s).to_bytes())
        }
    }
}

/// The arguments on the initial stack, found from `environ` (x86-64 System V ABI §3.4.1, the
/// initial process stack: `argc`, `argv[0..argc]`, a null pointer, then `envp`). Walking down
/// from `envp[-2]`, the first slot whose value is the number of slots walked is `argc`: every
/// slot before it holds a string pointer, and no pointer is that small (page 0 is never mapped).
///
/// # Safety
/// `environ` is still the `envp` the kernel passed (before `main`, unless a constructor called
/// `setenv`).
#[cfg(target_env = "musl")]
unsafe fn args_below_environ() -> Args {
    // SAFETY: per the contract, `environ` points into the initial stack, just above argv and
    // argc; every slot read here lies between `environ` and `argc`, so is mapped.
    unsafe {
        let envp = environ.cast::<usize>();
        if envp.is_null() {
            return Args {
                argc: 0,
                argv: std::ptr::null(),
            };
        }
        let mut k = 0;
        while *envp.sub(2 + k) != k {
            k += 1;
        }
        Args {
            argc: k,
            argv: envp.sub(1 + k).cast(),
        }
    }
}

/// Ends the process with C's `exit`, for the constructor [`main!`](crate::main!) registers:
/// std's own `exit` would also flush std's stdout buffer, which holds nothing here (every log
/// line goes out whole, ending in a newline), and links std's runtime clean-up for that.
#[doc(hidden)]
pub fn exit(code: c_int) -> ! {
    // SAFETY: exit runs the C library's atexit handlers and ends the process; no Rust frame
    // above it is left to unwind or drop anything that matters.
    unsafe { libc::exit(code) }
}

/// The memory limit of the process's cgroup in bytes (v2 `memory.max`, else v1
/// `memory.limit_in_bytes`), if one is set. Three system calls a file, into a stack buffer.
pub(crate) fn cgroup_memory_limit() -> Option<usize> {
    let read = |path: &CStr| -> Option<usize> {
        let mut buf = [0u8; 32];
        // SAFETY: a NUL-terminated path; the flags are valid.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `buf` is writable for its length; `fd` was just opened and is closed once.
        let n = unsafe {
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            libc::close(fd);
            n
        };
        memory_limit(buf.get(..usize::try_from(n).ok()?)?)
    };
    read(c"/sys/fs/cgroup/memory.max")
        .or_else(|| read(c"/sys/fs/cgroup/memory/memory.limit_in_bytes"))
}

/// A cgroup memory limit file's text: digits and a newline. "max" (v2) and a number near 2^63
/// (what v1 writes) mean no limit.
fn memory_limit(text: &[u8]) -> Option<usize> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 || text.get(digits).is_some_and(|&b| b != b'\n') {
        return None;
    }
    let n = text[..digits]
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    usize::try_from(n).ok().filter(|&n| (n as u64) < 1 << 60)
}

/// Whether a write to `fd` would take at least `PIPE_BUF` bytes without blocking: `poll` with
/// a zero timeout. For a pipe (how SCF collects the logs) it means a free buffer slot, so a
/// write of up to [`PIPE_BUF`] bytes then returns at once; files and terminals are always
/// writable.
pub(crate) fn writable(fd: c_int) -> bool {
    ready_now(fd, libc::POLLOUT)
}

/// Whether a listening socket has a connection waiting to be accepted (`POLLIN` on a listener:
/// its accept queue is not empty).
pub(crate) fn connection_waiting(fd: c_int) -> bool {
    ready_now(fd, libc::POLLIN)
}

/// `poll` of one descriptor for `events`, with a zero timeout.
fn ready_now(fd: c_int, events: libc::c_short) -> bool {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd; a zero timeout does not block.
    let rc = unsafe { libc::poll(&mut p, 1, 0) };
    rc == 1 && p.revents & events != 0
}

/// Bytes a pipe takes at once when [`writable`] says so.
pub(crate) const PIPE_BUF: usize = libc::PIPE_BUF;

/// How log lines reach stdout (index 0) and stderr (1) without ever blocking: [`LOG_UNKNOWN`]
/// until first written, then a descriptor shifted left by 1 with its way in the low bit.
static LOG_OUT: [AtomicI32; 2] = [AtomicI32::new(LOG_UNKNOWN), AtomicI32::new(LOG_UNKNOWN)];
const LOG_UNKNOWN: i32 = -1;
/// A description of our own, opened with `O_NONBLOCK` on the same pipe or terminal: a write
/// that would wait fails with `EAGAIN` instead, whoever else writes to the pipe.
const WAY_OWN: i32 = 0;
/// A file (which takes every write at once), a socket, or a pipe `/proc` could not open
/// again: `poll`, then a write of at most [`PIPE_BUF`] bytes.
const WAY_POLL: i32 = 1;

/// Writes a piece of `buf` to `fd` (at most [`PIPE_BUF`] bytes when that is all it is sure to
/// take), or fails with `WouldBlock`: never waits. stdout and stderr, when they are pipes (as
/// SCF's log pipes are) or terminals, are written through a description of their own with
/// `O_NONBLOCK` (opened once, the first time: `lseek` and an `open` of `/proc/self/fd/N`), so
/// that a write never waits even when other threads or processes write to the same pipe: a
/// `poll` that says there is room promises nothing once another thread has taken it, and
/// `O_NONBLOCK` on the shared description would change how every other writer writes.
pub(crate) fn log_write(fd: c_int, buf: &[u8]) -> io::Result<usize> {
    let mut way = (fd << 1) | WAY_POLL;
    if let 1 | 2 = fd {
        let slot = &LOG_OUT[(fd - 1) as usize];
        way = slot.load(Ordering::Acquire);
        if way == LOG_UNKNOWN {
            way = log_way(fd, slot);
        }
    }
    let to = way >> 1;
    if way & 1 == WAY_POLL {
        if !writable(to) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        return write(to, &buf[..buf.len().min(PIPE_BUF)]);
    }
    write(to, buf)
}

/// Finds the way to write stdout's (1) or stderr's (2) log lines, the first time, and keeps
/// it in `slot`.
#[cold]
#[inline(never)]
fn log_way(fd: c_int, slot: &AtomicI32) -> i32 {
    let mut way = (fd << 1) | WAY_POLL;
    // A file has an offset a description of our own would not share: only what cannot seek
    // (a pipe, a terminal, a socket, whose `open` fails) is opened again. (`lseek` rather than
    // `fstat`: a system call without musl's `fstatat` and `statx` code on the request path.)
    // SAFETY: lseek with a valid whence only reads the descriptor's offset.
    if unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) } < 0 {
        let path = if fd == 1 {
            c"/proc/self/fd/1"
        } else {
            c"/proc/self/fd/2"
        };
        let flags = libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
        // SAFETY: a NUL-terminated path; the flags are valid.
        let own = unsafe { libc::open(path.as_ptr(), flags) };
        if own >= 0 {
            way = (own << 1) | WAY_OWN;
        }
    }
    // Two threads that look at once both open one; the later one's stays (one descriptor more,
    // once), each writes through its own.
    slot.store(way, Ordering::Release);
    way
}

/// A signal handler's line on stderr: written only if it goes at once (async-signal-safe: an
/// atomic load, `write`, `poll`), so that a full log pipe never keeps the process from ending.
fn handler_write(line: &[u8]) {
    let way = LOG_OUT[1].load(Ordering::Acquire);
    let (to, own) = if way == LOG_UNKNOWN {
        (2, false)
    } else {
        (way >> 1, way & 1 == WAY_OWN)
    };
    if own || writable(to) {
        // SAFETY: `line` is a static buffer valid for its length; write is async-signal-safe.
        unsafe { libc::write(to, line.as_ptr().cast(), line.len().min(PIPE_BUF)) };
    }
}

/// Waits until `fd` has room for a write (`poll` without a timeout): for a thread of its own,
/// never the loop's.
pub(crate) fn wait_writable(fd: c_int) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd.
    unsafe { libc::poll(&mut p, 1, -1) };
}

/// One `write(2)` of `buf` to `fd`.
pub(crate) fn write(fd: c_int, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the duration of the call.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Writes all of `buf` to `fd`, blocking as the descriptor does.
///
/// # Errors
/// The write's error (a broken pipe, a closed descriptor), or `WriteZero`.
pub(crate) fn write_all(fd: c_int, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `fd` is `/dev/null` opened for reading and writing: what std's runtime, and
/// [`std_fds_open`], put in place of a standard descriptor that was closed when the process
/// started. (A shell's `>/dev/null` opens it write-only.)
pub(crate) fn reopened_on_dev_null(fd: c_int) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    let mut null = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat and stat write one `stat` each into the memory passed, which is read only
    // when they succeed; the path is a NUL-terminated literal. fcntl(F_GETFL) reads nothing.
    unsafe {
        if libc::fstat(fd, st.as_mut_ptr()) != 0
            || libc::stat(c"/dev/null".as_ptr(), null.as_mut_ptr()) != 0
        {
            return false;
        }
        let (st, null) = (st.assume_init(), null.assume_init());
        st.st_mode & libc::S_IFMT == libc::S_IFCHR
            && st.st_rdev == null.st_rdev
            && libc::fcntl(fd, libc::F_GETFL) & libc::O_ACCMODE == libc::O_RDWR
    }
}

/// What the process says on stderr when it dies of SIGSEGV or SIGBUS, before it dies of it.
const FATAL: &[u8] =
    b"fatal: SIGSEGV or SIGBUS: the stack overflowed (deep recursion?) or memory was \
accessed out of bounds; the process ends\n";

/// Says [`FATAL`] on stderr when the process dies of SIGSEGV or SIGBUS, as std's runtime does for a
/// stack overflow: a handler on an alternate stack (a 64 KiB mapping), so that it runs even when
/// the main stack is what overflowed. It then lets the signal kill the process as before
/// (exit status 128 + 11). Four system calls: the server makes them the first time its loop is
/// idle (or after its first request, if that comes first), off the cold start's path.
pub(crate) fn report_fatal_signals() {
    const ALT_STACK: usize = 64 * 1024;
    // SAFETY: a private anonymous mapping; checked for failure before use.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            ALT_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return;
    }
    let ss = libc::stack_t {
        ss_sp: stack,
        ss_flags: 0,
        ss_size: ALT_STACK,
    };
    // SAFETY: `ss` describes the mapping above, which is never unmapped.
    if unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) } != 0 {
        return;
    }
    // SAFETY: all-zero is a valid sigaction; the fields set below are the ones that matter.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_fatal_signal as extern "C" fn(libc::c_int) as usize;
    // SA_RESETHAND: the default action is back once the handler returns, so the faulting
    // instruction, run again, ends the process with the signal.
    sa.sa_flags = libc::SA_ONSTACK | libc::SA_RESETHAND;
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: `sa` is initialised; a null old action is allowed.
        unsafe {
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The handler: its line if it goes at once (async-signal-safe), and back.
extern "C" fn on_fatal_signal(_sig: libc::c_int) {
    handler_write(FATAL);
}

/// On glibc, makes freed memory go back to the system: allocations of 128 KiB or more (the
/// read buffers of large requests, large answers) get their own mappings, unmapped when freed.
/// glibc's own rule raises that threshold as such blocks are freed, after which a burst of
/// large requests leaves its memory in the heap for good (3 GB of RSS after an attack, with no
/// connection left). musl returns large blocks by itself. No system call.
pub(crate) fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any large allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
    }
}

/// Allocations of at least this many bytes get mappings of their own on glibc
/// ([`return_freed_memory`]); smaller ones come from the heap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: usize = 128 * 1024;

/// On glibc, gives the free pages inside the heap back to the system (`malloc_trim`) when
/// requests made to give way under memory pressure freed their read buffers (below the mapping
/// threshold, so in the heap) for an allocation of `size` bytes that will not reuse them: one
/// with a mapping of its own. A smaller one takes the freed heap memory, and a trim would cost
/// a walk of the heap (under a churn of evictions it doubled the server's CPU). musl gives
/// freed memory back by itself.
pub(crate) fn trim_heap_for(size: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if size >= MMAP_THRESHOLD {
        // SAFETY: malloc_trim only returns free memory to the system.
        unsafe {
            libc::malloc_trim(0);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = size;
}

/// Ignores `SIGPIPE`, as std's runtime does before `main`: a write to a socket the peer has
/// closed then fails with `EPIPE` instead of killing the process.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE; `signal` has no other effect.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Makes sure descriptors 0, 1 and 2 are open, as std's runtime does before `main`: if one is
/// closed, the next socket would take its number and log lines would go to a client. A closed
/// one is opened on `/dev/null`, read-write as std opens it ([`reopened_on_dev_null`] tells it
/// later); false if that fails. One `poll` when all three are open.
pub(crate) fn std_fds_open() -> bool {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    loop {
        // SAFETY: `fds` is a valid array of three pollfd; a zero timeout does not block.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
        if rc >= 0 {
            break;
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // No way to tell (std then checks each with fcntl); carry on as std does on error.
            return true;
        }
    }
    for p in fds {
        if p.revents & libc::POLLNVAL != 0 {
            // SAFETY: the path is a NUL-terminated literal; open returns the lowest free
            // descriptor, which is `p.fd` since the ones below it are open.
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if fd != p.fd {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_memory_limit_text() {
        assert_eq!(memory_limit(b"134217728\n"), Some(134_217_728));
        assert_eq!(memory_limit(b"67108864"), Some(67_108_864));
        assert_eq!(memory_limit(b"max\n"), None);
        assert_eq!(memory_limit(b"9223372036854771712\n"), None, "v1: no limit");
        assert_eq!(memory_limit(b"99999999999999999999\n"), None, "20 digits");
        assert_eq!(memory_limit(b""), None);
        assert_eq!(memory_limit(b"12k\n"), None);
        assert_eq!(memory_limit(b"-1\n"), None);
    }

    #[test]
    fn test_env_scan_reads_names_and_values_in_place() {
        let entries: [&CStr; 7] = [
            c"PATH=/usr/bin:/bin",
            c"PORT=9000",
            c"NOEQUALS",
            c"SCF_LEAN_X=a=b",
            c"SCF_LEAN_EMPTY=",
            c"=nameless",
            c"PORT=1",
        ];
        let mut envp: Vec<*const c_char> = entries.iter().map(|e| e.as_ptr()).collect();
        envp.push(std::ptr::null());
        let mut seen = Vec::new();
        let mut asked = Vec::new();
        // SAFETY: a null-terminated array of pointers to the C strings above, alive and
        // unchanged throughout.
        unsafe {
            scan_env(
                envp.as_ptr(),
                &mut |name| {
                    asked.push(name.to_vec());
                    name != b"PATH"
                },
                &mut |n, v| seen.push((n.to_vec(), v.to_vec())),
            );
        }
        let pair = |n: &str, v: &str| (n.as_bytes().to_vec(), v.as_bytes().to_vec());
        assert_eq!(
            seen,
            [
                pair("PORT", "9000"),
                pair("SCF_LEAN_X", "a=b"),
                pair("SCF_LEAN_EMPTY", ""),
                pair("", "nameless"),
                pair("PORT", "1"),
            ]
        );
        // An entry without '=' is no variable; every other name is offered in order.
        assert_eq!(asked.len(), 6);
        // SAFETY: a null `envp` is allowed.
        unsafe {
            scan_env(std::ptr::null(), &mut |_| true, &mut |_, _| {
                panic!("no entries")
            })
        };
    }
}
