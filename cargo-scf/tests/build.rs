//! `cargo scf new` then `cargo scf build`, as on a host whose C compiler cannot link for the
//! target (a Mac's `cc`, or any Linux without musl-gcc): the function builds, static, where
//! cargo puts it, and serves.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The repository (scf-lean's clone) the new function depends on.
fn scf_lean() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn tool() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cargo-scf"));
    c.arg("scf");
    c
}

/// A directory whose `cc` and `musl-gcc` refuse every link or compile for the musl target and
/// pass anything else to the host's `cc` (build scripts are host programs).
fn refusing_cc(dir: &Path) -> PathBuf {
    let bin = dir.join("refusing-cc");
    std::fs::create_dir_all(&bin).unwrap();
    let script = "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in *x86_64-unknown-linux-musl*|*musl*) \
                  echo 'cc: cannot build for x86_64-unknown-linux-musl here' >&2; exit 1;; esac; done\n\
                  exec /usr/bin/cc \"$@\"\n";
    for name in ["cc", "musl-gcc", "x86_64-linux-musl-gcc"] {
        let p = bin.join(name);
        std::fs::write(&p, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// PATH with `first` in front and no zig or clang (so that nothing but rust-lld can link).
fn path_with(first: &Path) -> std::ffi::OsString {
    let mut dirs = vec![first.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

/// `cargo scf build` in `dir` with `path` as PATH, into `target` (default: the project's own),
/// with nothing of this environment choosing the linker, the C compiler or the flags; it must
/// succeed.
fn scf_build(dir: &Path, path: std::ffi::OsString, target: Option<&Path>) -> std::process::Output {
    let mut c = tool();
    c.current_dir(dir)
        .arg("build")
        .env("PATH", path)
        .env_remove("CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER")
        .env_remove("CC_x86_64_unknown_linux_musl")
        .env_remove("RUSTFLAGS");
    match target {
        Some(t) => c.env("CARGO_TARGET_DIR", t),
        None => c.env_remove("CARGO_TARGET_DIR"),
    };
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "cargo scf build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Kills and reaps the child on every path.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn test_new_function_builds_static_with_rust_lld_when_cc_refuses_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let bin_dir = refusing_cc(tmp.path());
    // The stand-in refuses the target and passes the rest.
    let refused = Command::new(bin_dir.join("cc"))
        .args(["--target=x86_64-unknown-linux-musl", "-c", "x.c"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let host = Command::new(bin_dir.join("cc"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        host.status.success(),
        "the stand-in passes host work to /usr/bin/cc"
    );

    let out = tool()
        .current_dir(tmp.path())
        .args(["new", "hello-fn", "--vcs", "none", "--scf-lean"])
        .arg(scf_lean())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let project = tmp.path().join("hello-fn");

    let out = scf_build(&project, path_with(&bin_dir), None);
    let expected = project.join("target/x86_64-unknown-linux-musl/release/hello-fn");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().last(),
        Some(expected.to_str().unwrap()),
        "its last line is the binary"
    );

    let elf = std::fs::read(&expected).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 62, "x86-64");
    assert_eq!(
        u16::from_le_bytes([elf[16], elf[17]]),
        2,
        "ET_EXEC: static, not PIE"
    );
    let types = program_header_types(&elf);
    assert!(!types.contains(&3), "no PT_INTERP: {types:?}");
    assert!(!types.contains(&2), "no PT_DYNAMIC: {types:?}");

    // It serves an event, as SCF sends it.
    let child = Command::new(&expected)
        .env("PORT", "0")
        .env("SCF_LEAN_LOG_LEVEL", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let port = startup_port(&mut child.0);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = std::fs::read(project.join("events/timer.json")).unwrap();
    write!(
        s,
        "POST /event-invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Scf-Request-Id: r-1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""trigger":"EveryDay""#), "{answer}");
}

/// The `p_type` of each program header of a 64-bit little-endian ELF file.
fn program_header_types(elf: &[u8]) -> Vec<u32> {
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54), u16_at(56));
    (0..phnum)
        .map(|i| {
            let o = phoff + i * phentsize;
            u32::from_le_bytes(elf[o..o + 4].try_into().unwrap())
        })
        .collect()
}

/// The port of the start-up line (`... listening on 0.0.0.0:PORT ...`), read with a bound.
fn startup_port(child: &mut Child) -> u16 {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let _ = tx.send(first);
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a start-up line within 20 s");
    line.split([' ', '"', ','])
        .find_map(|w| w.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()))
        .unwrap_or_else(|| panic!("no port in the start-up line: {line}"))
}

/// A directory holding only what a build needs (cargo, rustc, rustup, git, the host's
/// assembler and linker for build scripts) plus the refusing `cc`, and `extra` programs: a
/// PATH on which no musl gcc is found, as on a Mac.
fn curated_path(dir: &Path, extra: &[&str]) -> std::ffi::OsString {
    let bin = refusing_cc(dir);
    for f in ["musl-gcc", "x86_64-linux-musl-gcc"] {
        std::fs::remove_file(bin.join(f)).unwrap();
    }
    let host = std::env::var_os("PATH").unwrap_or_default();
    for name in ["cargo", "rustc", "rustup", "git", "as", "ld", "sh"]
        .iter()
        .chain(extra)
    {
        if let Some(p) = std::env::split_paths(&host)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
        {
            std::os::unix::fs::symlink(&p, bin.join(name)).unwrap();
        }
    }
    bin.into_os_string()
}

fn on_path(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(name).is_file())
}

/// The outbound HTTPS example (rustls on ring, whose C and assembly need a C compiler for the
/// target), built by `cargo scf build` on a PATH with no musl gcc and `programs` on it: the
/// tool finds `programs[0]` and gives it to cc-rs. Skipped when it is not installed, unless
/// `require` (a variable) is set.
fn outbound_builds_with(programs: &[&str], require: &str) {
    if !on_path(programs[0]) {
        assert!(
            std::env::var_os(require).is_none(),
            "{require} is set and {} is not on PATH",
            programs[0]
        );
        eprintln!(
            "skipped: no {} on PATH ({require}=1 makes it fail)",
            programs[0]
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = curated_path(tmp.path(), programs);
    let out = scf_build(
        &scf_lean().join("examples/outbound"),
        path,
        Some(&tmp.path().join("target")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("compiles with {}", programs[0])),
        "{stderr}"
    );
    let bin = tmp
        .path()
        .join("target/x86_64-unknown-linux-musl/release/outbound");
    let elf = std::fs::read(&bin).unwrap();
    assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 62, "x86-64");
    assert!(
        !program_header_types(&elf).contains(&3),
        "static: no PT_INTERP"
    );
    let version = Command::new(&bin).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("outbound "));
}

/// zig, the way on a Mac: it brings musl's headers, which ring's x86-64 code needs.
#[test]
fn test_outbound_example_builds_with_zig_when_no_musl_gcc_is_there() {
    outbound_builds_with(&["zig"], "SCF_LEAN_REQUIRE_ZIG");
}

/// clang, where the host has C headers (a Linux host without musl-gcc).
#[test]
fn test_outbound_example_builds_with_clang_when_no_musl_gcc_is_there() {
    outbound_builds_with(&["clang", "llvm-ar"], "SCF_LEAN_REQUIRE_CLANG");
}

/// Without any C compiler for the target, a crate with C inside fails to build, and the error
/// says what to install.
#[test]
fn test_c_code_without_a_compiler_for_the_target_says_what_to_install() {
    let tmp = tempfile::tempdir().unwrap();
    let path = curated_path(tmp.path(), &[]);
    let out = tool()
        .current_dir(scf_lean().join("examples/outbound"))
        .arg("build")
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", tmp.path().join("target"))
        .env_remove("CC_x86_64_unknown_linux_musl")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("install zig, clang or a musl cross gcc"),
        "{stderr}"
    );
}

/// A toolchain without the target's standard library: the tool says it adds it, and asks
/// rustup for exactly that target, before it builds.
#[test]
fn test_a_missing_target_is_added_with_rustup_and_said() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = tmp.path().join("rustup.log");
    let sysroot = tmp.path().join("sysroot");
    std::fs::create_dir_all(&sysroot).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let host = std::env::var_os("PATH").unwrap_or_default();
    let rustc = std::env::split_paths(&host)
        .map(|d| d.join("rustc"))
        .find(|p| p.is_file())
        .expect("rustc on PATH");
    let scripts = [
        // A rustc whose sysroot has no target libraries (the real one for everything else).
        (
            "rustc",
            format!(
                "#!/bin/sh\n[ \"$1\" = --print ] && [ \"$2\" = sysroot ] && {{ echo {}; exit 0; }}\nexec {} \"$@\"\n",
                sysroot.display(),
                rustc.display()
            ),
        ),
        // A rustup that records what it is asked.
        (
            "rustup",
            format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
        ),
        // A cargo that builds nothing (the build is not what this test is about).
        (
            "cargo",
            format!("#!/bin/sh\n[ \"$1\" = metadata ] && exec {cargo} \"$@\"\nexit 0\n"),
        ),
    ];
    for (name, text) in scripts {
        let p = bin.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = tool()
        .current_dir(scf_lean())
        .args(["build", "--manifest-path"])
        .arg(scf_lean().join("Cargo.toml"))
        .env("PATH", path_with(&bin))
        .env("RUSTC", bin.join("rustc"))
        .env_remove("RUSTC_WRAPPER")
        .env("CARGO_TARGET_DIR", tmp.path().join("target"))
        .env("CARGO", bin.join("cargo"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("adding the x86_64-unknown-linux-musl target"),
        "{stderr}"
    );
    let asked = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(asked.trim(), "target add x86_64-unknown-linux-musl");
    // The fake cargo built nothing: the tool says so rather than printing a path.
    assert!(!out.status.success());
    assert!(stderr.contains("cargo built no"), "{stderr}");
}

/// Names that cargo or a registry would refuse, and a directory already there, are refused
/// with a reason and nothing written.
#[test]
fn test_new_refuses_bad_names_and_an_existing_directory() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, why) in [
        ("My-Fn", "lowercase"),
        ("1fn", "starting with a letter"),
        ("a b", "cannot name a function"),
        ("../up", "cannot name a function"),
        ("test", "built-in crate"),
        ("fn", "Rust keyword"),
    ] {
        let out = tool()
            .current_dir(tmp.path())
            .args(["new", name])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} accepted");
        assert!(stderr.contains(why), "{name}: {stderr}");
    }
    // Where scf-lean comes from goes into Cargo.toml as a TOML string: nothing may break out.
    let out = tool()
        .current_dir(tmp.path())
        .args([
            "new",
            "quoted",
            "--scf-lean",
            "https://example.invalid/x\" evil = \"1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot go in Cargo.toml"));
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing written"
    );
    std::fs::create_dir(tmp.path().join("taken")).unwrap();
    let out = tool()
        .current_dir(tmp.path())
        .args(["new", "taken"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("taken already exists"));
}
