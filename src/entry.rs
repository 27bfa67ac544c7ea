//! The process entry: [`run`] (from `fn main`), [`start`] and [`main!`](crate::main!) (from C's
//! `main`), `--help` and `--version`, and the one-line start-up failures.
//!
//! ```text
//! arguments → --help / --version (no port)
//!           → Config::from_env → Server::bind → start-up line → signals → Server::serve
//! ```
//!
//! Nothing slow happens before `listen`: the environment is read in place in one pass, and the
//! only formatting is on the failure paths.

use std::ffi::c_int;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::time::Instant;

use crate::config::{self, Config};
use crate::log::fail;
use crate::server::Server;
use crate::sys::{self, Args};
use crate::version::Identity;
use crate::{Function, platform};

/// Defines the process entry for a function: the fastest start, and no crate attribute needed.
///
/// ```ignore
/// scf_lean::main!(MyFunction);
/// ```
///
/// It registers a constructor (an `.init_array` entry) that the C runtime runs before `main`:
/// the function is served from there, and the process exits from there, so std's runtime
/// set-up before `main` never runs — its stack-overflow handler's alternate stack and guard
/// page and its signal queries: 11 system calls, 28-36 µs of a cold start in the benchmark runs
/// (`fn-main` in bench/REPORT.md). It also defines an empty `fn main` that never runs, so a
/// second `fn main` in the crate is a compile error (`the name main is defined multiple times`),
/// never a binary that serves nothing. In `cargo test` (`cfg(test)`) it does nothing.
///
/// The function's identity — its package name and version, and the git commit in
/// `SCF_LEAN_FUNCTION_COMMIT` at build time (the template's `build.rs` sets it) — is taken
/// from the crate that calls it ([`identity!`](crate::identity!)) for `--version` and the
/// start-up line.
///
/// What is not there without std's set-up: std's own handler that prints "has overflowed its
/// stack" — the server installs one of its own the first time its loop is idle, off the cold
/// start (on SCF before the first request), which prints `fatal: SIGSEGV or SIGBUS: the stack
/// overflowed …` — and, on musl, `std::env::args` (use [`run`] from your own `fn main` if you
/// need it). `std::env::var` works as usual.
/// `fn main() -> ExitCode { scf_lean::run_as(scf_lean::identity!(), MyFunction) }` does the
/// same the ordinary way, after std's set-up.
#[macro_export]
macro_rules! main {
    ($function:expr) => {
        /// Never runs: the function is served from `scf_lean::main!`'s constructor, which exits.
        #[allow(dead_code)]
        fn main() {}

        #[cfg(not(test))]
        const _: () = {
            extern "C" fn scf_lean_entry(
                argc: ::std::ffi::c_int,
                argv: *const *const ::std::ffi::c_char,
                _envp: *const *const ::std::ffi::c_char,
            ) {
                // SAFETY: the C runtime runs this constructor once, before `main`, with the
                // arguments of `main` on glibc and none on musl: `Args::at_start`'s contract.
                let args = unsafe { $crate::Args::at_start(argc, argv) };
                $crate::exit($crate::start(args, Some($crate::identity!()), $function))
            }
            #[used]
            #[unsafe(link_section = ".init_array")]
            static SCF_LEAN_ENTRY: extern "C" fn(
                ::std::ffi::c_int,
                *const *const ::std::ffi::c_char,
                *const *const ::std::ffi::c_char,
            ) = scf_lean_entry;
        };
    };
}

/// Runs `f` as this process's function: the whole life of an SCF image function.
///
/// Answers `--help` and `--version` without binding a port. Otherwise reads the configuration
/// from the environment, listens on `0.0.0.0:$PORT` (9000), logs the start-up line with the
/// µs from the start of `run` to listening, and serves until SIGTERM or SIGINT.
///
/// A bad setting or a port that cannot be bound prints one line on stderr and returns a
/// failure exit code (2 for a setting, 1 for the port).
///
/// [`main!`](crate::main!) does the same before std's runtime set-up, with the function's
/// [`Identity`]; [`run_as`] is `run` with it.
pub fn run<F: Function>(f: F) -> ExitCode {
    run_from(
        f,
        None,
        Instant::now(),
        std::env::args_os().nth(1).as_deref(),
    )
}

/// [`run`], with the function's identity (`scf_lean::run_as(scf_lean::identity!(), f)`) for
/// `--version` and the start-up line.
pub fn run_as<F: Function>(identity: Identity, f: F) -> ExitCode {
    run_from(
        f,
        Some(identity),
        Instant::now(),
        std::env::args_os().nth(1).as_deref(),
    )
}

fn run_from<F: Function>(
    f: F,
    identity: Option<Identity>,
    started: Instant,
    arg: Option<&std::ffi::OsStr>,
) -> ExitCode {
    ExitCode::from(serve_process(
        f,
        identity,
        started,
        arg.map(OsStrExt::as_bytes),
        false,
    ))
}

/// The entry [`main!`](crate::main!) expands to: [`run`] for a process started without std's
/// runtime set-up. It does the two parts of that set-up a server needs — descriptors 0–2 open
/// (on `/dev/null` if they were closed), `SIGPIPE` ignored — and skips the rest. Returns the
/// process exit code.
#[doc(hidden)]
pub fn start<F: Function>(args: Args, identity: Option<Identity>, f: F) -> c_int {
    let started = Instant::now();
    if !sys::std_fds_open() {
        return 1;
    }
    sys::ignore_sigpipe();
    c_int::from(serve_process(f, identity, started, args.get(1), true))
}

/// [`run`] after the arguments are read: `arg` is the first one.
/// `without_std_runtime`: started by [`main!`](crate::main!), so the server reports a fatal
/// signal (a stack overflow) itself, as std's runtime would.
fn serve_process<F: Function>(
    f: F,
    identity: Option<Identity>,
    started: Instant,
    arg: Option<&[u8]>,
    without_std_runtime: bool,
) -> u8 {
    if let Some(arg) = arg {
        return cli(arg, identity.as_ref());
    }
    sys::return_freed_memory();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return fail(identity.as_ref(), "bad setting", &e, 2),
    };
    if let Some(event) = platform::job_event() {
        return crate::job::run(f, &config, identity.as_ref(), &event);
    }
    let port = config.port;
    let mut server = match Server::bind(config) {
        Ok(s) => s,
        Err(e) => return fail(identity.as_ref(), &listen_on(port), &e, 1),
    };
    let (ready, cpu) = (started.elapsed(), sys::process_cpu_time());
    server.report_fatal_signals = without_std_runtime;
    if let Err(e) = server.handle_signals() {
        return fail(identity.as_ref(), "cannot handle signals", &e, 1);
    }
    // Once the start-up line is out, a SIGTERM is the server's to handle: whoever waits for
    // the line (a test, a supervisor) may stop it at once.
    server.log_startup(identity.as_ref(), ready, cpu);
    server.serve_code(f)
}

// The paths a start that serves does not take are functions of their own, out of line: the
// code of a cold start stays small and together (see src/hot-text.ld).

#[cold]
#[inline(never)]
fn listen_on(port: u16) -> String {
    format!("cannot listen on 0.0.0.0:{port}")
}

/// `--version`, `--help`, or an unknown argument: the exit code.
#[cold]
#[inline(never)]
fn cli(arg: &[u8], identity: Option<&Identity>) -> u8 {
    if arg == b"--version" || arg == b"-V" {
        let mut line = Vec::new();
        Identity::describe_into(identity, &mut line);
        line.push(b'\n');
        let _ = std::io::Write::write_all(&mut std::io::stdout(), &line);
        return 0;
    }
    if arg == b"--help" || arg == b"-h" {
        print!("{}", help(identity));
        return 0;
    }
    let arg = format!("{:?}", String::from_utf8_lossy(arg));
    fail(
        identity,
        "unknown argument",
        &format_args!("{arg}; try --help"),
        2,
    )
}

/// What the platform is for, the usage, and one line per setting of [`config::SETTINGS`].
fn help(identity: Option<&Identity>) -> String {
    let name = identity.map_or("scf-lean", |me| me.name);
    let mut me = Vec::new();
    Identity::describe_into(identity, &mut me);
    let mut s = format!(
        "{}\n{}\nUsage: {name} [--help | --version]\n\n\
         Environment (defaults in brackets):\n",
        String::from_utf8_lossy(&me),
        platform::HELP,
    );
    for row in config::SETTINGS {
        s.push_str(&format!(
            "  {:<32} {} [{}]\n",
            row.var, row.doc, row.default
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_help_lists_every_setting_with_its_default() {
        let h = help(None);
        assert!(
            h.contains("POST /event-invoke goes to the\nevent handler"),
            "{h}"
        );
        for row in config::SETTINGS {
            let line = h
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{} ", row.var)))
                .unwrap_or_else(|| panic!("no line for {}: {h}", row.var));
            assert!(line.ends_with(&format!("[{}]", row.default)), "{line}");
        }
    }
}
