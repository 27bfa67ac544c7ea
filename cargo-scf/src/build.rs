//! `cargo scf build`: the function's binary for SCF, from any host.
//!
//! SCF runs linux/amd64 images, so the binary is a static x86-64 musl executable. Rust compiles
//! for that target from any host once rustup has its standard library (added here when
//! missing), and rustup's own `rust-lld`, shipped with every toolchain, links it with the musl
//! start files and libc that the standard library brings: no C cross-toolchain, zig or
//! container engine. The project's `.cargo/config.toml` names that linker already (the
//! template's does); this command sets it for projects whose config does not.
//!
//! Crates with C or assembly inside (`ring`, `zstd-sys`, `libsqlite3-sys`...) compile it with a
//! C compiler for the target. cc-rs looks for `x86_64-linux-musl-gcc` or `musl-gcc`; when
//! neither is there this command offers it the first it finds of `zig` (`zig cc -target
//! x86_64-linux-musl`, which brings musl's headers: the way on a Mac) and `clang` (which cc-rs
//! drives with `--target`; it brings no libc headers, so it serves where the host has some).
//! Pure-Rust crates need none of them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::project::Project;

/// The target, as cargo's environment variables spell it.
const TARGET_ENV: &str = "X86_64_UNKNOWN_LINUX_MUSL";

/// Build the function for SCF: a static x86-64 musl executable, release profile.
#[derive(clap::Args)]
pub struct Args {
    /// The function's Cargo.toml (default: the package cargo finds here).
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Arguments for `cargo build` (features, --locked, ...), after `--`.
    #[arg(last = true, value_name = "CARGO ARGS")]
    pub cargo_args: Vec<OsString>,
}

/// `cargo scf build`: builds the function and prints where its binary is.
pub fn run(args: Args) -> Result<PathBuf> {
    let bin = build(&args)?;
    println!("{}", bin.display());
    Ok(bin)
}

/// Builds the function and returns where its binary is (progress on stderr).
pub fn build(args: &Args) -> Result<PathBuf> {
    let project = Project::find(args.manifest_path.as_deref())?;
    ensure_target(&project.dir)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(&project.dir)
        .args(["build", "--release", "--target", scf_lean::image::TARGET]);
    if let Some(m) = &args.manifest_path {
        c.arg("--manifest-path").arg(m);
    }
    c.args(&args.cargo_args);
    let linker = format!("CARGO_TARGET_{TARGET_ENV}_LINKER");
    if std::env::var_os(&linker).is_none() {
        c.env(&linker, "rust-lld");
    }
    if let Some(cc) = c_compiler(&project.target_directory)? {
        eprintln!(
            "cargo scf: C code for the target, if any, compiles with {}",
            cc.describe
        );
        for (k, v) in cc.env {
            c.env(k, v);
        }
    }
    let status = c.status().context("run cargo build")?;
    if !status.success() {
        bail!(
            "cargo build failed (above). A crate with C inside needs a C compiler for x86_64 \
             Linux musl: install zig, clang or a musl cross gcc (x86_64-linux-musl-gcc), or set \
             CC_x86_64_unknown_linux_musl"
        );
    }
    let bin = project.binary();
    let size = std::fs::metadata(&bin)
        .with_context(|| format!("cargo built no {}", bin.display()))?
        .len();
    eprintln!("cargo scf: built {} ({size} bytes)", bin.display());
    Ok(bin)
}

/// Adds the target's standard library with rustup when the toolchain lacks it, and says so.
fn ensure_target(dir: &Path) -> Result<()> {
    let target = scf_lean::image::TARGET;
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .current_dir(dir)
        .args(["--print", "sysroot"])
        .output()
        .context("run rustc (is Rust installed?)")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot
        .join("lib/rustlib")
        .join(target)
        .join("lib")
        .is_dir()
    {
        return Ok(());
    }
    eprintln!(
        "cargo scf: adding the {target} target to the toolchain (rustup target add {target}), once"
    );
    let status = Command::new("rustup")
        .current_dir(dir)
        .args(["target", "add", target])
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(_) => bail!("rustup target add {target} failed (above)"),
        Err(_) => bail!(
            "the toolchain has no {target} standard library and rustup is not here to add it: \
             install Rust with rustup (https://rustup.rs), or add the target by your toolchain's means"
        ),
    }
}

/// A C compiler for the target, as cc-rs's environment variables.
struct CCompiler {
    describe: String,
    env: Vec<(String, OsString)>,
}

/// The C compiler offered to cc-rs: none when the environment names one already or when cc-rs
/// finds a musl gcc by itself; else zig, else clang, else none.
fn c_compiler(target_dir: &Path) -> Result<Option<CCompiler>> {
    let cc_var = "CC_x86_64_unknown_linux_musl";
    if std::env::var_os(cc_var).is_some() || std::env::var_os("TARGET_CC").is_some() {
        return Ok(None);
    }
    if on_path("x86_64-linux-musl-gcc").is_some()
        || (host_is_linux_x86_64() && on_path("musl-gcc").is_some())
    {
        return Ok(None);
    }
    if let Some(zig) = on_path("zig") {
        // cc-rs runs one program: a two-line wrapper for each of `zig cc` and `zig ar`.
        let dir = target_dir.join("scf").join("zig");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let cc = wrapper(&dir, "cc", &zig, "cc -target x86_64-linux-musl")?;
        let ar = wrapper(&dir, "ar", &zig, "ar")?;
        return Ok(Some(CCompiler {
            describe: format!("zig ({})", zig.display()),
            env: vec![
                (cc_var.into(), cc.into()),
                ("AR_x86_64_unknown_linux_musl".into(), ar.into()),
            ],
        }));
    }
    if let Some(clang) = on_path("clang") {
        let mut env = vec![(cc_var.to_owned(), clang.clone().into_os_string())];
        if let Some(ar) = on_path("llvm-ar") {
            env.push(("AR_x86_64_unknown_linux_musl".into(), ar.into()));
        }
        return Ok(Some(CCompiler {
            describe: format!("clang ({})", clang.display()),
            env,
        }));
    }
    Ok(None)
}

fn host_is_linux_x86_64() -> bool {
    cfg!(all(target_os = "linux", target_arch = "x86_64"))
}

/// A program's path if it is on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A shell script running `program words "$@"`, without the `--target=` cc-rs adds when it
/// takes the program for clang: zig names targets its own way (`x86_64-linux-musl`), and
/// `words` give it.
fn wrapper(dir: &Path, name: &str, program: &Path, words: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    let text = format!(
        "#!/bin/sh\n\
         for a do shift; case \"$a\" in --target=*) ;; *) set -- \"$@\" \"$a\" ;; esac; done\n\
         exec '{}' {words} \"$@\"\n",
        program.display()
    );
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(path)
}
