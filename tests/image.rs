//! The FROM scratch image, end to end: the static musl binary, `Dockerfile.musl` (the
//! template's Dockerfile), and the container run the way SCF runs it (read-only root, /tmp
//! writable, 1024 descriptors and processes), for scf-lean's own echo, stable and tiny, through
//! the harness function authors use (`scf_lean::testing::image`). A function built from the
//! template is checked by its own `tests/image.rs` (`.ci/template` runs it).
//!
//! Needs podman (run as `podman --runtime runc`), skopeo, tar and the stable
//! `x86_64-unknown-linux-musl` target. Without them it prints `SKIP: ...` and passes, unless
//! `SCF_LEAN_REQUIRE_IMAGE_TEST=1` is set (CI), which turns every skip into a failure.
//! With nightly, rust-src and nightly's musl target it also checks the tiny build
//! (`bench/build-tiny.sh`); `SCF_LEAN_IMAGE_TINY=0` leaves that out.
//!
//! Binaries go to ./target, where `Dockerfile.musl` expects them. Containers and images are
//! removed at the end, also when a check fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use scf_lean::testing::SECRETS;
use scf_lean::testing::image::{Image, TARGET};
use serde_json::Value;

/// The instructions of a Dockerfile: its lines less comments and blank ones.
fn instructions(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// `docker build -f Dockerfile.musl .` at the root, with no arguments, builds this repository's
/// echo; and `Dockerfile.musl` is the template's Dockerfile, instruction for instruction, but
/// for that default.
#[test]
fn test_dockerfile_musl_is_the_templates_for_the_repositorys_binary() {
    let root_file = instructions(&root().join("Dockerfile.musl"));
    assert!(
        root_file.contains(&format!("ARG BINARY=target/{TARGET}/release/scf-lean")),
        "{root_file:#?}"
    );
    assert!(root_file.contains(&"ARG TITLE=scf-lean".to_owned()));
    let template: Vec<String> = instructions(&root().join("template/Dockerfile"))
        .iter()
        .map(|l| l.replace("my-function", "scf-lean"))
        .collect();
    assert_eq!(root_file, template);
    // The root's build context lets that binary through.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(
        ignore
            .lines()
            .any(|l| l == format!("!target/{TARGET}/release/scf-lean"))
    );
}

/// The template's Dockerfile says what `scf_lean::image` says (the description `cargo scf
/// image` writes from): the binary's path, the entrypoint, the user, the port, the labels.
#[test]
fn test_the_templates_dockerfile_follows_the_image_description() {
    use scf_lean::image;
    let lines = instructions(&root().join("template/Dockerfile"));
    let has = |l: String| {
        assert!(
            lines.contains(&l),
            "template/Dockerfile lacks `{l}`:\n{lines:#?}"
        )
    };
    has("FROM scratch".into());
    has(format!("ARG BINARY={}", image::binary("my-function")));
    has("ARG TITLE=my-function".into());
    has(format!("ARG DESCRIPTION=\"{}\"", image::DESCRIPTION));
    has(format!("ARG SOURCE={}", image::SOURCE));
    has(format!("COPY ${{BINARY}} {}", image::ENTRYPOINT));
    has(format!("USER {}", image::USER));
    has(format!("EXPOSE {}", image::PORT));
    has(format!("ENTRYPOINT [\"{}\"]", image::ENTRYPOINT));
    // The labels, in the description's order, each from its ARG or as written.
    let text = std::fs::read_to_string(root().join("template/Dockerfile")).unwrap();
    let mut at = 0;
    for (key, _) in image::labels("${TITLE}", "${VERSION}") {
        let found = text[at..]
            .find(&format!("{key}="))
            .unwrap_or_else(|| panic!("no label {key}"));
        at += found;
    }
    assert!(text.contains(&format!(
        "org.opencontainers.image.licenses=\"{}\"",
        image::LICENSES
    )));
    for (key, value) in [
        ("org.opencontainers.image.title", "${TITLE}"),
        ("org.opencontainers.image.description", "${DESCRIPTION}"),
        ("org.opencontainers.image.source", "${SOURCE}"),
        ("org.opencontainers.image.version", "${VERSION}"),
    ] {
        assert!(text.contains(&format!("{key}=\"{value}\"")), "{key}");
    }
}

/// The compressed image (gzip layer + config + manifest) must not exceed it.
const MAX_IMAGE_BYTES: u64 = 1024 * 1024;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command; panics with its output when it fails.
fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn works(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `Some(reason)` when something the test needs is missing.
fn missing_tool() -> Option<String> {
    for (tool, arg) in [
        ("podman", "--version"),
        ("skopeo", "--version"),
        ("tar", "--version"),
    ] {
        if !works(tool, &[arg]) {
            return Some(format!("{tool} is not installed"));
        }
    }
    let targets = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .map(|s| Path::new(&s).join("lib/rustlib").join(TARGET).exists());
    if targets != Some(true) {
        return Some(format!(
            "the {TARGET} target is not installed (rustup target add {TARGET})"
        ));
    }
    None
}

/// `cargo build` of a static musl binary, from the repository root so that
/// `.cargo/config.toml` applies, into `target_dir`.
fn cargo_build(manifest: &Path, target_dir: &Path, tiny: bool) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = if tiny {
        let mut c = Command::new(root().join("bench/build-tiny.sh"));
        // The nightly cargo of the script, not the stable one running this test.
        c.env_remove("CARGO")
            .env_remove("RUSTC")
            .env_remove("RUSTUP_TOOLCHAIN");
        c
    } else {
        let mut c = Command::new(cargo);
        c.args(["build", "--release", "--target", TARGET]);
        c
    };
    c.current_dir(root())
        .arg("--manifest-path")
        .arg(manifest)
        // The echo only: the workspace's other member is the host tool.
        .args(["-p", "scf-lean"])
        .arg("--target-dir")
        .arg(target_dir)
        // The image recipe is .cargo/config.toml's: flags from the environment would replace it.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR");
    run(&mut c);
}

/// Reads the ELF program headers: the binary must be a static, non-PIE executable
/// (type EXEC, no PT_INTERP, no PT_DYNAMIC).
fn check_static(bin: &Path) {
    let elf = std::fs::read(bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    assert_eq!(&elf[..4], b"\x7fELF", "{}: not ELF", bin.display());
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    assert_eq!(u16_at(16), 2, "{}: not ET_EXEC (a PIE?)", bin.display());
    let (phoff, phentsize, phnum) = (u64_at(32) as usize, u16_at(54) as usize, u16_at(56));
    for i in 0..phnum as usize {
        let p_type = u32_at(phoff + i * phentsize);
        assert!(p_type != 3, "{}: has PT_INTERP", bin.display());
        assert!(p_type != 2, "{}: has PT_DYNAMIC", bin.display());
    }
    // The same with binutils' eyes, when it is installed.
    if let Ok(o) = Command::new("readelf").arg("-lW").arg(bin).output() {
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && text.contains("LOAD"),
            "readelf: {text}"
        );
        assert!(!text.contains("INTERP"), "readelf shows INTERP:\n{text}");
        assert!(!text.contains("DYNAMIC"), "readelf shows DYNAMIC:\n{text}");
    }
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// The images built, with their sizes, for the summary line.
struct Built {
    name: String,
    binary_bytes: u64,
    compressed_bytes: u64,
}

/// Builds the image of `binary` (a path relative to the repository root) with the harness,
/// checks its shape and its compressed size.
fn build_image(binary: &str) -> (Image, Built) {
    let t = Instant::now();
    let image = Image::package(root(), "Dockerfile.musl", binary, "scf-lean")
        .unwrap_or_else(|why| panic!("{why}"));
    let tag = image.tag().to_owned();
    eprintln!("  image build {tag}: {:?}", t.elapsed());

    let info = &json(image.inspect().as_bytes())[0];
    let layers = info["RootFS"]["Layers"].as_array().expect("RootFS.Layers");
    assert_eq!(layers.len(), 1, "one layer: {layers:?}");
    let config = &info["Config"];
    assert_eq!(config["User"], "10001:10001");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/function"]));
    assert!(config["ExposedPorts"].get("9000/tcp").is_some(), "{config}");
    for label in ["title", "description", "source", "licenses", "version"] {
        let key = format!("org.opencontainers.image.{label}");
        let v = config["Labels"][&key].as_str().unwrap_or("");
        assert!(!v.is_empty(), "label {key} missing: {config}");
    }
    assert_eq!(
        config["Labels"]["org.opencontainers.image.title"],
        "scf-lean"
    );
    assert_eq!(info["Architecture"], "amd64");

    // The compressed image as a registry stores it: gzip layer + config + manifest.
    let dir = std::env::temp_dir().join(format!("scf-lean-oci-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    run(Command::new("skopeo")
        .args(["copy", "-q", "--dest-compress"])
        .arg(format!("containers-storage:{tag}"))
        .arg(format!("oci:{}", dir.display())));
    let mut compressed = 0;
    let mut blobs = Vec::new();
    for e in std::fs::read_dir(dir.join("blobs/sha256")).expect("OCI blobs") {
        let e = e.unwrap();
        compressed += e.metadata().unwrap().len();
        blobs.push(e.path());
    }
    // The layer holds the binary and nothing else.
    let layer = blobs.iter().find_map(|b| {
        let out = Command::new("tar").arg("-tzf").arg(b).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(blobs.len(), 3, "manifest, config and one layer: {blobs:?}");
    let layer = layer.expect("a gzip tar layer");
    let entries: Vec<&str> = layer.lines().map(|l| l.trim_start_matches("./")).collect();
    assert_eq!(entries, ["function"], "the layer holds only the binary");

    let binary_bytes = std::fs::metadata(root().join(binary)).unwrap().len();
    eprintln!(
        "  {tag}: binary {binary_bytes} B, compressed image {compressed} B (limit {MAX_IMAGE_BYTES})"
    );
    assert!(
        compressed <= MAX_IMAGE_BYTES,
        "{tag}: the compressed image is {compressed} bytes, over 1 MiB"
    );
    let built = Built {
        name: tag,
        binary_bytes,
        compressed_bytes: compressed,
    };
    (image, built)
}

/// scf-lean's own echo: --help and --version, the event and its context, the HTTP echo, the
/// stop on SIGTERM and the logs.
fn check_echo(image: &Image) {
    let help = image.run(&["--help"]);
    assert!(help.contains("Usage: scf-lean"), "--help: {help}");
    let version = image.run(&["--version"]);
    assert!(version.starts_with("scf-lean "), "--version: {version}");

    let container = image.start();
    let t = Instant::now();
    let event =
        br#"{"Type":"timer","TriggerName":"EveryDay","Time":"2019-02-21T11:49:00Z","Message":"m"}"#;
    let r = container.event_with(
        event,
        &[
            ("X-Scf-Request-Id", "req-image-1"),
            ("X-Scf-Name", "image-test"),
        ],
    );
    eprintln!("  first answer {:?} after `run`", t.elapsed());
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = r.json();
    assert_eq!(v["event"], json(event));
    assert_eq!(v["context"]["request_id"], "req-image-1");
    assert_eq!(v["context"]["function_name"], "image-test");
    r.assert_no_secrets();

    let r = container.request("GET", "/some/path?x=1", scf_lean::testing::SCF_CONTEXT, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = r.json();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/some/path");
    assert_eq!(v["query"], "x=1");
    r.assert_no_secrets();

    // Exit code 0: the server stopped on the SIGTERM itself (the engine's SIGKILL, 5 s later,
    // would make it 137). How long `stop` takes is the engine's and the machine's: printed.
    let (code, took) = container.stop();
    assert_eq!(code, 0, "exit code after SIGTERM");
    eprintln!("  stopped in {took:?}, exit code 0");
    // stdout and stderr are the function's logs: the access line carries the request id.
    let logs = container.logs();
    assert!(logs.contains("req-image-1"), "logs:\n{logs}");
    for secret in SECRETS {
        assert!(!logs.contains(secret), "logs:\n{logs}");
    }
}

/// A line on stderr that the test harness does not capture: a skip or the sizes show in
/// `cargo test`'s output even when the test passes.
fn shout(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn tiny_toolchain() -> Result<(), String> {
    if std::env::var("SCF_LEAN_IMAGE_TINY").as_deref() == Ok("0") {
        return Err("SCF_LEAN_IMAGE_TINY=0".into());
    }
    let sysroot = Command::new("rustc")
        .args(["+nightly", "--print", "sysroot"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .ok_or("no nightly toolchain")?;
    if !sysroot.join("lib/rustlib/src/rust/library").exists() {
        return Err("no rust-src for nightly".into());
    }
    if !sysroot.join("lib/rustlib").join(TARGET).exists() {
        return Err(format!("no {TARGET} target for nightly"));
    }
    Ok(())
}

#[test]
fn test_scratch_image_runs_like_scf() {
    if let Some(why) = missing_tool() {
        let msg = format!("SKIP test_scratch_image_runs_like_scf: {why}");
        if std::env::var("SCF_LEAN_REQUIRE_IMAGE_TEST").as_deref() == Ok("1") {
            panic!("{msg} (SCF_LEAN_REQUIRE_IMAGE_TEST=1)");
        }
        shout(&msg);
        return;
    }
    let started = Instant::now();
    let mut built = Vec::new();

    // 1. scf-lean's own binary: the stable build.
    let t = Instant::now();
    cargo_build(&root().join("Cargo.toml"), &root().join("target"), false);
    let bin = format!("target/{TARGET}/release/scf-lean");
    check_static(&root().join(&bin));
    eprintln!("  cargo build (stable, musl): {:?}", t.elapsed());
    let (image, b) = build_image(&bin);
    built.push(b);
    check_echo(&image);
    drop(image);

    // 2. The tiny build (nightly), when that toolchain is here.
    match tiny_toolchain() {
        Ok(()) => {
            let t = Instant::now();
            cargo_build(&root().join("Cargo.toml"), &root().join("target"), true);
            let bin = format!("target/{TARGET}/tiny/scf-lean");
            check_static(&root().join(&bin));
            eprintln!("  bench/build-tiny.sh: {:?}", t.elapsed());
            let (image, b) = build_image(&bin);
            built.push(b);
            check_echo(&image);
        }
        Err(why) => shout(&format!("SKIP the tiny build's image: {why}")),
    }

    for b in &built {
        shout(&format!(
            "image {}: binary {} B, compressed {} B",
            b.name, b.binary_bytes, b.compressed_bytes
        ));
    }
    shout(&format!("image test took {:?}", started.elapsed()));
}
