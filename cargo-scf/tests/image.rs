//! `cargo scf image` on a small function project: the image's bytes (one gzip layer holding the
//! executable, the config the Dockerfile describes, the manifest), their reproducibility, the
//! binaries it refuses, and, when the tools are installed, skopeo reading the layout and the
//! archive and podman (or docker) loading and running the image.
//!
//! The project's "binary" is a hand-made static x86-64 ELF of 150 bytes: it exits with its user
//! id modulo 256, so running the image also checks the user it runs as (10001 gives 17).
//!
//! `SCF_LEAN_REQUIRE_IMAGE_TEST=1` turns a missing skopeo or container engine into a failure.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use scf_lean::image as spec;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// How long one run of `cargo scf image` may take (it runs `cargo metadata`).
const RUN: Duration = Duration::from_secs(60);
/// How long an external tool (skopeo, podman, git) may take.
const TOOL: Duration = Duration::from_secs(120);

/// A directory removed when dropped, also when a test panics.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "cargo-scf-image-{label}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd` to its end, or kills it after `limit` and panics.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} took longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().expect("read stdout"),
        stderr: err.join().expect("read stderr"),
    }
}

/// Whether `program --version` runs.
fn works(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a tool the interop tests need is there: if not, they are skipped with a reason,
/// or fail when `SCF_LEAN_REQUIRE_IMAGE_TEST=1`.
fn available(what: &str, found: bool) -> bool {
    if !found {
        if std::env::var("SCF_LEAN_REQUIRE_IMAGE_TEST").as_deref() == Ok("1") {
            panic!("{what} is not installed, and SCF_LEAN_REQUIRE_IMAGE_TEST=1");
        }
        eprintln!("skipped: {what} is not installed");
    }
    found
}

/// A static x86-64 Linux ELF executable for `machine` (62 is x86-64) that exits with its user
/// id modulo 256; with `interp`, it names a dynamic loader as a dynamically linked one does.
fn elf(machine: u16, interp: Option<&str>) -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    // mov eax, 102 (getuid); syscall; mov edi, eax; mov eax, 60 (exit); syscall
    let code = [
        0xb8, 102, 0, 0, 0, 0x0f, 0x05, 0x89, 0xc7, 0xb8, 60, 0, 0, 0, 0x0f, 0x05,
    ];
    let phnum: u16 = if interp.is_some() { 2 } else { 1 };
    let code_at = 64 + 56 * u64::from(phnum);
    let interp = interp
        .map(|s| format!("{s}\0").into_bytes())
        .unwrap_or_default();
    let len = code_at + code.len() as u64 + interp.len() as u64;
    let mut f = Vec::new();
    f.extend(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    f.extend(2u16.to_le_bytes()); // e_type: executable
    f.extend(machine.to_le_bytes());
    f.extend(1u32.to_le_bytes()); // e_version
    f.extend((BASE + code_at).to_le_bytes()); // e_entry
    f.extend(64u64.to_le_bytes()); // e_phoff
    f.extend(0u64.to_le_bytes()); // e_shoff
    f.extend(0u32.to_le_bytes()); // e_flags
    for half in [64u16, 56, phnum, 0, 0, 0] {
        f.extend(half.to_le_bytes()); // e_ehsize, e_phentsize, e_phnum, e_sh*
    }
    let mut phdr = |p_type: u32, flags: u32, offset: u64, size: u64| {
        f.extend(p_type.to_le_bytes());
        f.extend(flags.to_le_bytes());
        for v in [offset, BASE + offset, BASE + offset, size, size, 0x1000] {
            f.extend(v.to_le_bytes());
        }
    };
    phdr(1, 5, 0, len); // PT_LOAD, read + execute
    if !interp.is_empty() {
        phdr(3, 4, code_at + code.len() as u64, interp.len() as u64); // PT_INTERP
    }
    f.extend(code);
    f.extend(&interp);
    f
}

/// Writes a function project `name` in `root`, its release binary `binary` (if any) where
/// `cargo scf build` puts it; returns its directory.
fn project(root: &Path, name: &str, binary: Option<&[u8]>) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir_all(dir.join("src")).expect("create the project");
    fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.3.1\"\nedition = \"2021\"\n\n[workspace]\n"
        ),
    )
    .expect("write Cargo.toml");
    fs::write(dir.join("src/main.rs"), "fn main() {}\n").expect("write main.rs");
    if let Some(b) = binary {
        place(&dir.join("target"), name, b);
    }
    dir
}

/// Puts `binary` as the release build of `name` in the target directory `target`.
fn place(target: &Path, name: &str, binary: &[u8]) {
    let release = target.join(spec::TARGET).join("release");
    fs::create_dir_all(&release).expect("create target/");
    fs::write(release.join(name), binary).expect("write the binary");
}

/// `cargo scf image ARGS` in `dir`, with `env` (and no target directory or date from the
/// environment of the test).
fn scf(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-scf"));
    cmd.args(["scf", "image"]).args(args).current_dir(dir);
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "SOURCE_DATE_EPOCH",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    run_bounded(&mut cmd, RUN)
}

/// The manifest digest a successful run printed (its last line).
fn digest(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo scf image failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default().to_owned();
    assert!(
        last.starts_with("sha256:") && last.len() == 71,
        "no digest: {stdout}"
    );
    last
}

/// Asserts a run failed with a message holding `needle`, without a panic or a digest.
fn refused(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted; wanted {needle:?}");
    assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sha256:"));
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// Every file under `dir`, by path relative to it.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in fs::read_dir(dir).expect("read a directory") {
            let path = entry.expect("read a directory").path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let rel = path.strip_prefix(root).expect("under root").to_owned();
                files.insert(rel, fs::read(&path).expect("read a file"));
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

fn json_file(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A blob of the layout `dir`, checked against its digest.
fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let data = fs::read(dir.join("blobs/sha256").join(hex)).expect("read a blob");
    assert_eq!(sha256(&data), digest);
    data
}

/// The media types of a format: manifest, config, layer.
fn media_types(oci: bool) -> [&'static str; 3] {
    if oci {
        [
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ]
    } else {
        [
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ]
    }
}

/// Checks the gzip layer: a fixed gzip header, one tar entry `function` holding `binary`,
/// mode 0755, root's, dated `epoch`. Returns the uncompressed tar.
fn check_layer(layer: &[u8], binary: &[u8], epoch: u64) -> Vec<u8> {
    assert_eq!(
        &layer[..4],
        [0x1f, 0x8b, 8, 0],
        "gzip, deflate, no optional fields"
    );
    assert_eq!(&layer[4..8], [0, 0, 0, 0], "gzip mtime 0");
    assert_eq!(layer[9], 255, "gzip OS byte: unknown");
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(layer)
        .read_to_end(&mut tar)
        .expect("the layer is gzip");
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut entries = archive.entries().expect("the layer is a tar");
    let mut entry = entries.next().expect("one entry").expect("a tar entry");
    let header = entry.header().clone();
    assert_eq!(
        entry.path().expect("a path").to_str(),
        Some(spec::ENTRYPOINT.trim_start_matches('/'))
    );
    assert_eq!(header.entry_type(), tar::EntryType::Regular);
    assert_eq!(header.mode().expect("mode"), spec::MODE);
    assert_eq!(spec::MODE, 0o755);
    assert_eq!(header.uid().expect("uid"), 0);
    assert_eq!(header.gid().expect("gid"), 0);
    assert_eq!(header.mtime().expect("mtime"), epoch);
    assert_eq!(header.username_bytes().unwrap_or_default(), b"");
    assert_eq!(header.groupname_bytes().unwrap_or_default(), b"");
    let mut content = Vec::new();
    entry.read_to_end(&mut content).expect("read the entry");
    assert_eq!(content, binary);
    assert!(entries.next().is_none(), "exactly one entry");
    tar
}

/// Checks the OCI layout `dir` of the function `name` (version 0.3.1, `binary`, dated `epoch`,
/// named `tag`); returns the manifest digest.
fn check_layout(dir: &Path, name: &str, binary: &[u8], epoch: u64, tag: &str, oci: bool) -> String {
    let [manifest_type, config_type, layer_type] = media_types(oci);
    assert_eq!(
        json_file(&dir.join("oci-layout")),
        json!({"imageLayoutVersion": "1.0.0"})
    );
    let index = json_file(&dir.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1);
    let m = &manifests[0];
    assert_eq!(m["mediaType"], manifest_type);
    assert_eq!(m["annotations"]["org.opencontainers.image.ref.name"], tag);
    let digest = m["digest"].as_str().expect("a digest").to_owned();
    let manifest_bytes = blob(dir, &digest);
    assert_eq!(m["size"], manifest_bytes.len());

    // Every blob is named by its digest; the layout holds exactly the image's three.
    let blobs = tree(&dir.join("blobs/sha256"));
    for (name, data) in &blobs {
        assert_eq!(
            sha256(data),
            format!("sha256:{}", name.display()),
            "blob {name:?}"
        );
    }
    assert_eq!(blobs.len(), 3, "manifest, config, layer");

    let manifest: Value = serde_json::from_slice(&manifest_bytes).expect("the manifest is JSON");
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], manifest_type);
    assert_eq!(manifest["config"]["mediaType"], config_type);
    assert!(
        manifest.get("manifests").is_none(),
        "a manifest, not an index"
    );
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "one layer");
    assert_eq!(layers[0]["mediaType"], layer_type);
    let layer = blob(dir, layers[0]["digest"].as_str().expect("digest"));
    assert_eq!(layers[0]["size"], layer.len());
    let config_bytes = blob(dir, manifest["config"]["digest"].as_str().expect("digest"));
    assert_eq!(manifest["config"]["size"], config_bytes.len());

    let tar = check_layer(&layer, binary, epoch);
    let config: Value = serde_json::from_slice(&config_bytes).expect("the config is JSON");
    let created = if epoch == 0 {
        "1970-01-01T00:00:00Z"
    } else {
        "2023-11-14T22:13:20Z" // 1_700_000_000
    };
    let labels: serde_json::Map<String, Value> = spec::labels(name, "0.3.1")
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::from(v)))
        .collect();
    assert_eq!(
        config,
        json!({
            "created": created,
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "User": "10001:10001",
                "ExposedPorts": {"9000/tcp": {}},
                "Entrypoint": ["/function"],
                "Labels": labels,
            },
            "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]},
            "history": [{
                "created": created,
                "created_by": "COPY function /function",
                "comment": "cargo scf image",
            }],
        })
    );
    assert_eq!(
        (spec::ARCHITECTURE, spec::OS, spec::USER, spec::PORT),
        ("amd64", "linux", "10001:10001", 9000)
    );
    assert_eq!(labels["org.opencontainers.image.title"], name);
    digest
}

/// The entries of a `docker save` archive, by name.
fn archive(file: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = fs::read(file).expect("read the archive");
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut entries = BTreeMap::new();
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("an entry");
        let name = entry.path().expect("a path").display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read an entry");
        entries.insert(name, data);
    }
    entries
}

#[test]
fn the_image_is_what_the_dockerfile_describes() {
    let tmp = TempDir::new("layout");
    let binary = elf(62, None);
    let dir = project(&tmp.0, "layout-fn", Some(&binary));
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];

    let out = scf(&dir, &["--oci-dir", "docker"], &epoch);
    let d = digest(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("layout-fn:0.3.1"), "{stdout}");
    assert!(stdout.contains(" bytes"), "the layer's size: {stdout}");
    assert!(stdout.lines().count() <= 3, "short: {stdout}");
    let docker = check_layout(
        &dir.join("docker"),
        "layout-fn",
        &binary,
        1_700_000_000,
        "layout-fn:0.3.1",
        false,
    );
    assert_eq!(d, docker);

    let out = scf(&dir, &["--oci-dir", "oci", "--format", "oci"], &epoch);
    let oci = check_layout(
        &dir.join("oci"),
        "layout-fn",
        &binary,
        1_700_000_000,
        "layout-fn:0.3.1",
        true,
    );
    assert_eq!(digest(&out), oci);
    assert_ne!(docker, oci);

    // No SOURCE_DATE_EPOCH, no git repository: the Unix epoch.
    let out = scf(
        &dir,
        &["--oci-dir", "zero", "--tag", "example.com/team/fn:v1"],
        &[],
    );
    let zero = check_layout(
        &dir.join("zero"),
        "layout-fn",
        &binary,
        0,
        "example.com/team/fn:v1",
        false,
    );
    assert_eq!(digest(&out), zero);
}

#[test]
fn the_same_binary_gives_the_same_digest() {
    let tmp = TempDir::new("repro");
    let dir = project(&tmp.0, "repro-fn", Some(&elf(62, None)));
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];

    let a = digest(&scf(
        &dir,
        &["--oci-dir", "a", "--docker-archive", "a.tar"],
        &epoch,
    ));
    let b = digest(&scf(
        &dir,
        &["--oci-dir", "b", "--docker-archive", "b.tar"],
        &epoch,
    ));
    assert_eq!(a, b);
    assert_eq!(
        tree(&dir.join("a")),
        tree(&dir.join("b")),
        "the layouts, byte for byte"
    );
    assert_eq!(
        fs::read(dir.join("a.tar")).expect("a.tar"),
        fs::read(dir.join("b.tar")).expect("b.tar"),
        "the archives, byte for byte"
    );

    // Another time, another image.
    let later = digest(&scf(
        &dir,
        &["--oci-dir", "c"],
        &[("SOURCE_DATE_EPOCH", "1700000001")],
    ));
    assert_ne!(a, later);
    // Another binary, another image.
    let mut other = elf(62, None);
    other.push(0);
    place(&dir.join("target"), "repro-fn", &other);
    assert_ne!(a, digest(&scf(&dir, &["--oci-dir", "d"], &epoch)));

    // Without SOURCE_DATE_EPOCH: the commit time of HEAD.
    if !available("git", works("git")) {
        return;
    }
    let git = |args: &[&str]| {
        let out = run_bounded(
            Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .current_dir(&dir)
                .env("GIT_COMMITTER_DATE", "@1700000000 +0000")
                .env("GIT_AUTHOR_DATE", "@1600000000 +0000"),
            TOOL,
        );
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q"]);
    git(&["commit", "-q", "--allow-empty", "-m", "the function"]);
    let out = scf(&dir, &["--oci-dir", "e"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2023-11-14T22:13:20Z"));
    assert_eq!(
        digest(&out),
        digest(&scf(
            &dir,
            &["--oci-dir", "f"],
            &[("SOURCE_DATE_EPOCH", "1700000000")]
        )),
        "git's commit time is SOURCE_DATE_EPOCH's"
    );
}

#[test]
fn the_docker_archive_holds_the_same_blobs() {
    let tmp = TempDir::new("archive");
    let binary = elf(62, None);
    let dir = project(&tmp.0, "archive-fn", Some(&binary));
    let out = scf(
        &dir,
        &["--oci-dir", "oci", "--docker-archive", "fn.tar"],
        &[],
    );
    let d = digest(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("fn.tar") && stdout.contains("oci"),
        "{stdout}"
    );

    let layout = dir.join("oci");
    let manifest = json_file(
        &layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:")),
    );
    let config = manifest["config"]["digest"]
        .as_str()
        .expect("digest")
        .trim_start_matches("sha256:");
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .expect("digest")
        .trim_start_matches("sha256:");

    let entries = archive(&dir.join("fn.tar"));
    let config_name = format!("{config}.json");
    let layer_name = format!("{layer}.tar.gz");
    assert_eq!(
        entries.keys().collect::<Vec<_>>(),
        [&config_name, &layer_name, &"manifest.json".to_owned()]
    );
    let list: Value = serde_json::from_slice(&entries["manifest.json"]).expect("manifest.json");
    assert_eq!(
        list,
        json!([{"Config": config_name, "RepoTags": ["archive-fn:0.3.1"], "Layers": [layer_name]}])
    );
    assert_eq!(
        entries[&config_name],
        blob(&layout, &format!("sha256:{config}"))
    );
    assert_eq!(
        entries[&layer_name],
        blob(&layout, &format!("sha256:{layer}"))
    );
    check_layer(&entries[&layer_name], &binary, 0);

    // The archive alone: the layout is written too, where `cargo scf push` reads it, so that
    // no older image is left there.
    digest(&scf(
        &dir,
        &["--docker-archive", "only.tar", "--tag", "fn"],
        &[],
    ));
    assert!(dir.join("target/scf/image/index.json").exists());
    let list: Value = serde_json::from_slice(&archive(&dir.join("only.tar"))["manifest.json"])
        .expect("manifest.json");
    assert_eq!(list[0]["RepoTags"], json!(["fn:latest"]));

    refused(
        &scf(
            &dir,
            &["--docker-archive", "bad.tar", "--tag", "Bad Name"],
            &[],
        ),
        "is not valid",
    );
    assert!(!dir.join("bad.tar").exists());
}

#[test]
fn the_layout_goes_to_the_target_directory_by_default() {
    let tmp = TempDir::new("default");
    let dir = project(&tmp.0, "default-fn", Some(&elf(62, None)));
    let out = scf(&dir, &[], &[]);
    let d = digest(&out);
    let layout = dir.join("target/scf/image");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&layout.display().to_string()),
        "says where: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        check_layout(
            &layout,
            "default-fn",
            &elf(62, None),
            0,
            "default-fn:0.3.1",
            false
        ),
        d
    );

    // Written again for another binary: the earlier image's blobs are gone.
    let mut other = elf(62, None);
    other.extend([0; 8]);
    place(&dir.join("target"), "default-fn", &other);
    let d2 = digest(&scf(&dir, &[], &[]));
    assert_ne!(d, d2);
    assert_eq!(
        check_layout(&layout, "default-fn", &other, 0, "default-fn:0.3.1", false),
        d2
    );

    // CARGO_TARGET_DIR: the binary is read from it and the layout written into it.
    let elsewhere = tmp.0.join("elsewhere");
    place(&elsewhere, "default-fn", &elf(62, None));
    let target_dir = elsewhere.display().to_string();
    let out = scf(&dir, &[], &[("CARGO_TARGET_DIR", &target_dir)]);
    assert_eq!(digest(&out), d);
    assert!(elsewhere.join("scf/image/index.json").is_file());

    // From a subdirectory, and with --manifest-path from anywhere.
    assert_eq!(
        digest(&scf(&dir.join("src"), &["--oci-dir", "../sub"], &[])),
        d2
    );
    let manifest = dir.join("Cargo.toml").display().to_string();
    assert_eq!(
        digest(&scf(
            &tmp.0,
            &["--manifest-path", &manifest, "--oci-dir", "mp"],
            &[]
        )),
        d2
    );

    // A directory that is not a layout is not written into.
    fs::create_dir_all(dir.join("notes")).expect("mkdir");
    fs::write(dir.join("notes/todo.txt"), "keep").expect("write");
    refused(
        &scf(&dir, &["--oci-dir", "notes"], &[]),
        "not an OCI image layout",
    );
    assert_eq!(
        fs::read_to_string(dir.join("notes/todo.txt")).expect("kept"),
        "keep"
    );
}

#[test]
fn what_scf_cannot_run_is_refused() {
    let tmp = TempDir::new("refused");
    let dir = project(&tmp.0, "refused-fn", None);
    refused(&scf(&dir, &[], &[]), "cargo scf build");

    let mut mach_o = vec![0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1];
    mach_o.resize(4096, 0);
    let mut elf32 = elf(62, None);
    elf32[4] = 1;
    let cases: [(&str, Vec<u8>, &str); 6] = [
        ("aarch64", elf(183, None), "aarch64"),
        ("macos", mach_o, "macOS"),
        ("text", b"hello, world\n".to_vec(), "no ELF header"),
        ("empty", Vec::new(), "an empty file"),
        ("elf32", elf32, "32-bit"),
        (
            "dynamic",
            elf(62, Some("/lib64/ld-linux-x86-64.so.2")),
            "dynamically linked (it needs /lib64/ld-linux-x86-64.so.2)",
        ),
    ];
    for (name, bytes, needle) in cases {
        let path = dir.join(name);
        fs::write(&path, bytes).expect("write a binary");
        let layout = format!("{name}-layout");
        let out = scf(&dir, &["--binary", name, "--oci-dir", &layout], &[]);
        refused(&out, needle);
        refused(&out, &format!("{name} cannot be the function"));
        assert!(!dir.join(&layout).exists(), "nothing written for {name}");
    }
    refused(
        &scf(&dir, &["--binary", "nowhere"], &[]),
        "nowhere does not exist",
    );

    place(&dir.join("target"), "refused-fn", &elf(62, None));
    refused(
        &scf(&dir, &[], &[("SOURCE_DATE_EPOCH", "yesterday")]),
        "SOURCE_DATE_EPOCH",
    );
    refused(&scf(&tmp.0, &[], &[]), "cargo metadata");
}

/// The image loaded into a container engine, removed when dropped (also on a panic).
struct Loaded {
    engine: scf_lean::testing::image::Engine,
    tag: String,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        let _ = run_bounded(self.engine.command().args(["rmi", "-f", &self.tag]), TOOL);
    }
}

#[test]
fn skopeo_reads_the_layout_and_the_archive() {
    if !available("skopeo", works("skopeo")) {
        return;
    }
    let tmp = TempDir::new("skopeo");
    let dir = project(&tmp.0, "skopeo-fn", Some(&elf(62, None)));
    for format in ["docker", "oci"] {
        let (layout, file) = (format!("{format}-layout"), format!("{format}.tar"));
        let d = digest(&scf(
            &dir,
            &[
                "--format",
                format,
                "--oci-dir",
                &layout,
                "--docker-archive",
                &file,
            ],
            &[],
        ));
        for transport in [format!("oci:{layout}"), format!("docker-archive:{file}")] {
            let out = run_bounded(
                Command::new("skopeo")
                    .args(["inspect", &transport])
                    .current_dir(&dir),
                TOOL,
            );
            assert!(
                out.status.success(),
                "skopeo inspect {transport}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: Value = serde_json::from_slice(&out.stdout).expect("skopeo's JSON");
            assert_eq!(v["Architecture"], "amd64", "{transport}");
            assert_eq!(v["Os"], "linux", "{transport}");
            assert_eq!(v["Labels"]["org.opencontainers.image.title"], "skopeo-fn");
            assert_eq!(v["Created"], "1970-01-01T00:00:00Z");
            if transport.starts_with("oci:") {
                assert_eq!(v["Digest"], d, "skopeo sees the digest printed");
            }
        }
    }
}

#[test]
fn podman_loads_and_runs_the_archive() {
    let Some(engine) = scf_lean::testing::image::Engine::find() else {
        available("podman or docker", false);
        return;
    };
    let tmp = TempDir::new("load");
    let dir = project(&tmp.0, "load-fn", Some(&elf(62, None)));
    let tag = format!("localhost/scf-image-test-{}:t", std::process::id());
    digest(&scf(
        &dir,
        &["--docker-archive", "fn.tar", "--tag", &tag],
        &[],
    ));

    let loaded = Loaded {
        engine: engine.clone(),
        tag: tag.clone(),
    };
    let out = run_bounded(
        engine
            .command()
            .args(["load", "-i"])
            .arg(dir.join("fn.tar")),
        TOOL,
    );
    assert!(
        out.status.success(),
        "load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&tag), "loaded as {tag}: {said}");

    // It runs as SCF runs it, as 10001 (the program exits with its uid modulo 256).
    let out = run_bounded(
        engine
            .command()
            .args(["run", "--rm"])
            .args(scf_lean::testing::image::SCF_LIKE)
            .arg(&tag),
        TOOL,
    );
    assert_eq!(
        out.status.code(),
        Some(10001 % 256),
        "ran as user 10001: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(loaded);
}

/// `cargo scf push` with no `--layout` refuses an image older than the binary (rebuilt and not
/// imaged again), before it speaks to any registry.
#[test]
fn push_refuses_an_image_older_than_the_binary() {
    let tmp = TempDir::new("stale");
    let binary = elf(62, None);
    let dir = project(&tmp.0, "stale-fn", Some(&binary));
    digest(&scf(&dir, &[], &[]));
    // The binary rebuilt after the image: its time a minute later.
    let built = dir
        .join("target")
        .join(spec::TARGET)
        .join("release/stale-fn");
    fs::File::options()
        .write(true)
        .open(&built)
        .expect("open the binary")
        .set_modified(SystemTime::now() + Duration::from_secs(60))
        .expect("set its time");
    // Port 9 on loopback: nothing answers there; the refusal must come before any connection.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-scf"));
    cmd.args(["scf", "push", "--insecure", "127.0.0.1:9/stale-fn:v1"])
        .current_dir(&dir)
        .env_remove("CARGO_TARGET_DIR");
    let out = run_bounded(&mut cmd, RUN);
    refused(&out, "is newer than the image");
    refused(&out, "cargo scf image");
}
