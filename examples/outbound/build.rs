//! Build script, as the template's: the git commit for `--version` and the start-up line
//! (`SCF_LEAN_FUNCTION_COMMIT`, or set it yourself), and for the static musl build the link
//! arguments scf-lean passes on (its start-up and request code first, 64 KiB-aligned segments).
//! Unlike the template's, the repository's git directory is found by asking git, since this
//! project sits two levels inside it.

use std::env;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SCF_LEAN_FUNCTION_COMMIT");
    if env::var_os("SCF_LEAN_FUNCTION_COMMIT").is_none() {
        for path in ["HEAD", "refs/heads"] {
            if let Some(p) = git(&["rev-parse", "--git-path", path]) {
                println!("cargo:rerun-if-changed={p}");
            }
        }
        if let Some(c) = git(&["rev-parse", "--short=12", "HEAD"]) {
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
