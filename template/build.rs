//! Build script: the git commit your function is built from, for `--version` and the start-up
//! line (`SCF_LEAN_FUNCTION_COMMIT`; set it yourself when building outside a git checkout), and
//! for the static musl build the link arguments scf-lean recommends: its start-up and request
//! code first in the binary and 64 KiB-aligned segments, so that they map as one window (less
//! memory, a faster cold start; scf-lean's bench/REPORT.md has the figures).

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SCF_LEAN_FUNCTION_COMMIT");
    if env::var_os("SCF_LEAN_FUNCTION_COMMIT").is_none() {
        let head = Path::new(".git").join("HEAD");
        if head.exists() {
            println!("cargo:rerun-if-changed={}", head.display());
            println!("cargo:rerun-if-changed=.git/refs/heads");
        }
        let commit = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|c| !c.is_empty());
        if let Some(c) = commit {
            println!("cargo:rustc-env=SCF_LEAN_FUNCTION_COMMIT={c}");
        }
    }
    if env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-musl") {
        println!("cargo:rerun-if-env-changed=DEP_SCF_LEAN_LINK_ARGS");
        for arg in env::var("DEP_SCF_LEAN_LINK_ARGS")
            .unwrap_or_default()
            .split('\u{1f}')
        {
            if !arg.is_empty() {
                println!("cargo:rustc-link-arg-bins={arg}");
            }
        }
    }
}
