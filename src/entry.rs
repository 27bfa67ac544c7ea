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
use crate::server::Server;
use crate::sys::{self, Args};
use crate::{Function, platform, version};

/// Defines the process entry for a function, without std's runtime set-up: the fastest start.
///
/// ```ignore
/// #![cfg_attr(not(test), no_main)]
/// scf_lean::main!(MyFunction);
/// ```
///
/// It expands to C's `main` (`#[unsafe(no_mangle)] extern "C" fn main`), which calls [`start`]:
/// the same as `fn main() -> ExitCode { scf_lean::run(MyFunction) }`, 11 system calls and
/// 28-36 µs sooner on a cold start in the benchmark runs (`fn-main` in bench/REPORT.md). The
/// crate needs `#![no_main]` (outside `cfg(test)`, so that `cargo test` keeps its own `main`).
/// What std's set-up would have done and this does not: install a handler that prints "has
/// overflowed its stack" (an overflow still ends the process, by SIGSEGV) and fill
/// `std::env::args` on musl (use [`Args`] if you need the arguments; `std::env::var` works as
/// usual).
#[macro_export]
macro_rules! main {
    ($function:expr) => {
        /// The process entry: C's `main`, calling `scf_lean::start`.
        #[cfg(not(test))]
        #[unsafe(no_mangle)]
        extern "C" fn main(
            argc: ::std::ffi::c_int,
            argv: *const *const ::std::ffi::c_char,
        ) -> ::std::ffi::c_int {
            // SAFETY: these are the arguments the C runtime passes to `main`.
            let args = unsafe { $crate::Args::new(argc, argv) };
            $crate::start(args, $function)
        }
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
/// [`main!`](crate::main!) does the same from C's `main`, without std's runtime set-up.
pub fn run<F: Function>(f: F) -> ExitCode {
    let started = Instant::now();
    let arg = std::env::args_os().nth(1);
    ExitCode::from(run_from(f, started, arg.as_deref().map(OsStrExt::as_bytes)))
}

/// The entry [`main!`](crate::main!) expands to: [`run`] for a process started without std's
/// runtime set-up. It does the two parts of that set-up a server needs — descriptors 0–2 open
/// (on `/dev/null` if they were closed), `SIGPIPE` ignored — and skips the rest (the
/// stack-overflow handler's alternate stack and guard page, the main thread's name): 11 system
/// calls, 28-36 µs of a cold start in the benchmark runs (bench/REPORT.md, `fn-main`). Returns
/// the process exit code.
pub fn start<F: Function>(args: Args, f: F) -> c_int {
    let started = Instant::now();
    if !sys::std_fds_open() {
        return 1;
    }
    sys::ignore_sigpipe();
    c_int::from(run_from(f, started, args.get(1)))
}

/// [`run`] after the arguments are read: `arg` is the first one.
fn run_from<F: Function>(f: F, started: Instant, arg: Option<&[u8]>) -> u8 {
    if let Some(arg) = arg {
        return cli(arg);
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            fail(&format!("bad setting: {e}"));
            return 2;
        }
    };
    let port = config.port;
    let mut server = match Server::bind(config) {
        Ok(s) => s,
        Err(e) => {
            fail(&format!("cannot listen on 0.0.0.0:{port}: {e}"));
            return 1;
        }
    };
    server.log_startup(started.elapsed(), sys::process_cpu_time());
    if let Err(e) = server.handle_signals() {
        fail(&format!("cannot handle signals: {e}"));
        return 1;
    }
    server.serve_code(f)
}

/// One start-up error line on stderr, in a single write.
fn fail(msg: &str) {
    let line = format!("scf-lean: {msg}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

/// `--version`, `--help`, or an unknown argument: the exit code.
fn cli(arg: &[u8]) -> u8 {
    if arg == b"--version" || arg == b"-V" {
        println!("scf-lean {} ({})", version::VERSION, version::COMMIT);
        return 0;
    }
    if arg == b"--help" || arg == b"-h" {
        print!("{}", help());
        return 0;
    }
    fail(&format!(
        "unknown argument {:?}; try --help",
        String::from_utf8_lossy(arg)
    ));
    2
}

/// What the platform is for, the usage, and one line per setting of [`config::SETTINGS`].
fn help() -> String {
    let mut s = format!(
        "scf-lean {} ({})\n{}\nUsage: scf-lean [--help | --version]\n\n\
         Environment (defaults in brackets):\n",
        version::VERSION,
        version::COMMIT,
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
        let h = help();
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
