//! The FROM scratch image, end to end: the static musl binary, `Dockerfile.musl`, and the
//! container run the way SCF runs it (read-only root, /tmp writable, 1024 descriptors and
//! processes), for scf-lean's own binary and for the example function in `examples/base-image`.
//!
//! Needs podman (run as `podman --runtime runc`), skopeo, tar and the stable
//! `x86_64-unknown-linux-musl` target. Without them it prints `SKIP: ...` and passes, unless
//! `SCF_LEAN_REQUIRE_IMAGE_TEST=1` is set (CI), which turns every skip into a failure.
//! With nightly, rust-src and nightly's musl target it also checks the tiny build
//! (`bench/build-tiny.sh`); `SCF_LEAN_IMAGE_TINY=0` leaves that out.
//!
//! Binaries go to ./target and examples/base-image/target, where `Dockerfile.musl` expects them.
//! Containers and images are removed at the end, also when a check fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const TARGET: &str = "x86_64-unknown-linux-musl";
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

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).trim().to_owned()
}

fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc"]);
    c
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

/// Removes what the test created, also when it panics.
#[derive(Default)]
struct Cleanup {
    containers: Vec<String>,
    images: Vec<String>,
    dirs: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = podman().args(["rm", "-f", "-t", "0", c]).output();
        }
        for i in &self.images {
            let _ = podman().args(["rmi", "-f", i]).output();
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One HTTP/1.1 exchange with `Connection: close`: (status, body). Retries until the server
/// in the container answers (the port is forwarded before the process listens).
fn http(port: u16, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match try_http(port, head, body) {
            Ok(r) => return r,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("no answer on 127.0.0.1:{port}: {e}"),
        }
    }
}

fn try_http(port: u16, head: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("{head}Host: 127.0.0.1\r\nConnection: close\r\n");
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no complete response head"))?;
    let status = std::str::from_utf8(&resp[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    Ok((status, resp[end + 4..].to_vec()))
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

const SCF_HEADERS: &str = "X-Scf-Request-Id: req-image-1\r\nX-Scf-Memory: 128\r\n\
    X-Scf-Timeout: 3000\r\nX-Scf-Version: $LATEST\r\nX-Scf-Name: image-test\r\n\
    X-Scf-Namespace: default\r\nX-Scf-Region: ap-guangzhou\r\nX-Scf-Appid: 1250000000\r\n\
    X-Scf-Uin: 100000000001\r\nX-Scf-Secret-Id: AKIDsecretid\r\n\
    X-Scf-Secret-Key: secretkeyvalue\r\nX-Scf-Session-Token: sessiontokenvalue\r\n";

/// The images built, with their sizes, for the summary line.
struct Built {
    name: String,
    binary_bytes: u64,
    compressed_bytes: u64,
}

/// Builds the image of `binary` (a path relative to the repository root), checks its shape and
/// compressed size.
fn build_image(clean: &mut Cleanup, tag: &str, binary: &str) -> Built {
    let t = Instant::now();
    run(podman()
        .current_dir(root())
        .args(["build", "-q", "-f", "Dockerfile.musl", "-t", tag])
        .arg(format!("--build-arg=BINARY={binary}"))
        .arg("."));
    clean.images.push(tag.to_owned());
    eprintln!("  podman build {tag}: {:?}", t.elapsed());

    let inspect = stdout(podman().args(["image", "inspect", tag]));
    let info = &json(inspect.as_bytes())[0];
    let layers = info["RootFS"]["Layers"].as_array().expect("RootFS.Layers");
    assert_eq!(layers.len(), 1, "one layer: {layers:?}");
    let config = &info["Config"];
    assert_eq!(config["User"], "10001:10001");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/scf-lean"]));
    assert!(config["ExposedPorts"].get("9000/tcp").is_some(), "{config}");
    for label in ["title", "description", "source", "licenses", "version"] {
        let key = format!("org.opencontainers.image.{label}");
        let v = config["Labels"][&key].as_str().unwrap_or("");
        assert!(!v.is_empty(), "label {key} missing: {config}");
    }
    assert_eq!(info["Architecture"], "amd64");

    // The compressed image as a registry stores it: gzip layer + config + manifest.
    let safe: String = tag
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = std::env::temp_dir().join(format!("scf-lean-oci-{safe}"));
    let _ = std::fs::remove_dir_all(&dir);
    clean.dirs.push(dir.clone());
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
    assert_eq!(blobs.len(), 3, "manifest, config and one layer: {blobs:?}");
    // The layer holds the binary and nothing else.
    let layer = blobs
        .iter()
        .find_map(|b| {
            let out = Command::new("tar").arg("-tzf").arg(b).output().ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .expect("a gzip tar layer");
    let entries: Vec<&str> = layer.lines().map(|l| l.trim_start_matches("./")).collect();
    assert_eq!(entries, ["scf-lean"], "the layer holds only the binary");

    let binary_bytes = std::fs::metadata(root().join(binary)).unwrap().len();
    eprintln!(
        "  {tag}: binary {binary_bytes} B, compressed image {compressed} B (limit {MAX_IMAGE_BYTES})"
    );
    assert!(
        compressed <= MAX_IMAGE_BYTES,
        "{tag}: the compressed image is {compressed} bytes, over 1 MiB"
    );
    Built {
        name: tag.to_owned(),
        binary_bytes,
        compressed_bytes: compressed,
    }
}

/// SCF's sandbox: read-only root, only /tmp writable, 1024 descriptors and processes.
const SCF_LIKE: &[&str] = &[
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// Starts the image as SCF would; returns (container id, host port).
fn start(clean: &mut Cleanup, tag: &str) -> (String, u16) {
    let port = free_port();
    let id = stdout(podman().args(["run", "-d"]).args(SCF_LIKE).args([
        "-p",
        &format!("127.0.0.1:{port}:9000"),
        tag,
    ]));
    clean.containers.push(id.clone());
    (id, port)
}

/// `podman stop -t 5` must end it within 2 s, with exit code 0.
fn stop(id: &str) {
    let t = Instant::now();
    run(podman().args(["stop", "-t", "5", id]));
    let took = t.elapsed();
    let code = stdout(podman().args(["inspect", "--format", "{{.State.ExitCode}}", id]));
    assert_eq!(code, "0", "exit code after SIGTERM");
    assert!(took < Duration::from_secs(2), "podman stop took {took:?}");
    eprintln!("  stopped in {took:?}, exit code 0");
}

/// scf-lean's own echo: the event, the context, the HTTP echo, --help and --version.
fn check_echo(clean: &mut Cleanup, tag: &str) {
    let help = stdout(
        podman()
            .args(["run", "--rm"])
            .args(SCF_LIKE)
            .args([tag, "--help"]),
    );
    assert!(help.contains("Usage: scf-lean"), "--help: {help}");
    let version = stdout(
        podman()
            .args(["run", "--rm"])
            .args(SCF_LIKE)
            .args([tag, "--version"]),
    );
    assert!(version.starts_with("scf-lean "), "--version: {version}");

    let (id, port) = start(clean, tag);
    let t = Instant::now();
    let event =
        br#"{"Type":"timer","TriggerName":"EveryDay","Time":"2019-02-21T11:49:00Z","Message":"m"}"#;
    let head =
        format!("POST /event-invoke HTTP/1.1\r\nContent-Type: application/json\r\n{SCF_HEADERS}");
    let (status, body) = http(port, &head, event);
    eprintln!("  first answer {:?} after `podman run`", t.elapsed());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v = json(&body);
    assert_eq!(v["event"], json(event));
    assert_eq!(v["context"]["request_id"], "req-image-1");
    assert_eq!(v["context"]["function_name"], "image-test");
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.contains("secret") && !text.contains("sessiontoken"),
        "{text}"
    );

    let (status, body) = http(
        port,
        &format!("GET /some/path?x=1 HTTP/1.1\r\n{SCF_HEADERS}"),
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v = json(&body);
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/some/path");
    assert_eq!(v["query"], "x=1");
    assert!(!String::from_utf8_lossy(&body).contains("secret"));

    stop(&id);
    // stdout and stderr are the function's logs: the access line carries the request id.
    let logs = run(podman().args(["logs", &id]));
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    assert!(logs.contains("req-image-1"), "logs:\n{logs}");
    assert!(!logs.contains("secret"), "logs:\n{logs}");
}

/// The example function of examples/base-image.
fn check_example(clean: &mut Cleanup, tag: &str) {
    let (id, port) = start(clean, tag);
    let head = format!("POST /event-invoke HTTP/1.1\r\n{SCF_HEADERS}");
    let (status, body) = http(port, &head, br#"{"name":"Ada"}"#);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v = json(&body);
    assert_eq!(v["greeting"], "hello, Ada");
    assert_eq!(v["request_id"], "req-image-1");
    let (status, body) = http(port, "GET /hello?name=Bo HTTP/1.1\r\n", b"");
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["greeting"], "hello, Bo");
    assert_eq!(v["invocations"], 2, "state kept between invocations");
    stop(&id);
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
    let mut clean = Cleanup::default();
    let tag_of = |name: &str| format!("localhost/scf-lean-test-{name}:{}", std::process::id());
    let mut built = Vec::new();

    // 1. scf-lean's own binary: the stable build.
    let t = Instant::now();
    cargo_build(&root().join("Cargo.toml"), &root().join("target"), false);
    let bin = format!("target/{TARGET}/release/scf-lean");
    check_static(&root().join(&bin));
    eprintln!("  cargo build (stable, musl): {:?}", t.elapsed());
    let tag = tag_of("stable");
    built.push(build_image(&mut clean, &tag, &bin));
    check_echo(&mut clean, &tag);

    // 2. The example function, packaged by the same Dockerfile.
    let t = Instant::now();
    let example = root().join("examples/base-image");
    cargo_build(&example.join("Cargo.toml"), &example.join("target"), false);
    let bin = format!("examples/base-image/target/{TARGET}/release/hello-scf");
    check_static(&root().join(&bin));
    eprintln!("  cargo build (example, musl): {:?}", t.elapsed());
    let tag = tag_of("example");
    built.push(build_image(&mut clean, &tag, &bin));
    check_example(&mut clean, &tag);

    // 3. The tiny build (nightly), when that toolchain is here.
    match tiny_toolchain() {
        Ok(()) => {
            let t = Instant::now();
            cargo_build(&root().join("Cargo.toml"), &root().join("target"), true);
            let bin = format!("target/{TARGET}/tiny/scf-lean");
            check_static(&root().join(&bin));
            eprintln!("  bench/build-tiny.sh: {:?}", t.elapsed());
            let tag = tag_of("tiny");
            built.push(build_image(&mut clean, &tag, &bin));
            check_echo(&mut clean, &tag);
        }
        Err(why) => shout(&format!("SKIP the tiny build's image: {why}")),
    }

    drop(clean);
    for b in &built {
        shout(&format!(
            "image {}: binary {} B, compressed {} B",
            b.name, b.binary_bytes, b.compressed_bytes
        ));
    }
    shout(&format!("image test took {:?}", started.elapsed()));
}
