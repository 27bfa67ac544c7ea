//! The few system calls std does not offer, and so the crate's only `unsafe`, each block with
//! its `SAFETY` note:
//!
//! - SIGTERM and SIGINT as readiness events: a `signalfd` in the same `epoll` set as the
//!   sockets, so shutdown is handled inside the loop, with no handler and no extra thread. The
//!   two signals are blocked for the calling thread (the loop's), then read from the descriptor.
//! - The CPU time the process has used since it was forked, for the start-up line: as long as
//!   nothing blocks before `listen`, it is the time from process start to listening, kernel
//!   `execve` work and page faults included.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// A non-blocking descriptor that reads SIGTERM and SIGINT.
pub(crate) struct Signals {
    fd: OwnedFd,
}

impl Signals {
    /// Blocks SIGTERM and SIGINT on this thread and opens the descriptor that receives them.
    pub fn new() -> io::Result<Signals> {
        // SAFETY: `sigset_t` is a plain bit set; all-zero is a valid value, and sigemptyset
        // initialises it properly before any other use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, exclusively borrowed sigset_t; SIGTERM and SIGINT are valid
        // signal numbers, so these calls cannot fail.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
        }
        // SAFETY: `set` is initialised; a null old-set pointer is allowed.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: -1 asks for a new descriptor; `set` is initialised; the flags are valid.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: signalfd returned a new descriptor that nothing else owns.
        Ok(Signals {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The next pending signal number, or `None` when none is pending.
    pub fn next(&self) -> Option<i32> {
        // A signalfd_siginfo is 128 bytes; ssi_signo is its first u32.
        let mut info = [0u8; 128];
        loop {
            // SAFETY: `info` is a writable buffer of exactly the length given.
            let n =
                unsafe { libc::read(self.fd.as_raw_fd(), info.as_mut_ptr().cast(), info.len()) };
            if n == info.len() as isize {
                let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
                return i32::try_from(signo).ok();
            }
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return None;
        }
    }
}

impl Source for Signals {
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
