//! `cargo scf image`: the function's image, written without a container engine or daemon.
//!
//! The image is what the template's `Dockerfile` builds, and nothing more: `FROM scratch`, one
//! gzip layer holding one regular file, the static x86-64 musl executable at
//! [`scf_lean::image::ENTRYPOINT`] (mode [`scf_lean::image::MODE`], owned by root), and a config
//! with the Dockerfile's entrypoint, numeric user, exposed port and labels, for `linux/amd64`.
//! Its manifest is Docker v2 schema 2 by default, OCI 1.0 with `--format oci`: SCF takes both,
//! and gzip layers only.
//!
//! It is reproducible, bit for bit: the same binary gives the same manifest digest, on any host,
//! at any time. The tar header is fixed (ustar, uid and gid 0, no user or group names, one
//! mtime), gzip's header has no timestamp and a fixed OS byte, the compression level is fixed
//! and its implementation pure Rust (pinned by `Cargo.lock`), and every JSON document is
//! serialized from structs and ordered maps. The one time in the image, the layer's mtime and
//! the config's `created`, is `SOURCE_DATE_EPOCH` when set, else the commit time of the
//! project's `HEAD`, else the Unix epoch. So a digest can be checked by building it again, and
//! an unchanged function pushed again is the same image: nothing to upload, nothing for SCF to
//! fetch anew.
//!
//! It is written as an OCI image layout (a directory: `oci-layout`, `index.json`,
//! `blobs/sha256/…`), which `cargo scf push`, `skopeo` and `podman` read, or as a `docker save`
//! archive (`manifest.json`, the config, the layer), which `docker load` and `podman load` take.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail, ensure};
use flate2::{Compression, GzBuilder};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use scf_lean::image as spec;

use crate::project::Project;

/// Docker v2 schema 2: the manifest's media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker v2 schema 2: the config's media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker v2 schema 2: a gzip layer's media type.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// OCI 1.0: the manifest's media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI 1.0: the config's media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI 1.0: a gzip layer's media type.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI 1.0: an index's media type (a layout's `index.json`).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The annotation that names a manifest in a layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The latest time the image can carry: 9999-12-31T23:59:59Z.
const MAX_EPOCH: u64 = 253_402_300_799;

/// Write the function's FROM scratch image, without a container engine.
///
/// An OCI layout (default: target/scf/image, where `cargo scf push` reads it), a Docker
/// archive, or both; reproducible, dated by SOURCE_DATE_EPOCH, else the commit time of HEAD,
/// else 1970. Prints the manifest digest last.
#[derive(clap::Args)]
pub struct Args {
    /// The executable to put in the image (default: the release build of `cargo scf build`,
    /// target/x86_64-unknown-linux-musl/release/NAME).
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Write the OCI image layout into DIR (default: target/scf/image, where `cargo scf push`
    /// reads it); always written, with or without --docker-archive.
    #[arg(long, value_name = "DIR")]
    pub oci_dir: Option<PathBuf>,
    /// Also write a `docker save` archive to FILE, for `docker load -i` or `podman load -i`.
    #[arg(long, value_name = "FILE")]
    pub docker_archive: Option<PathBuf>,
    /// The image's name: the archive's RepoTags and the layout's ref.name (default: NAME:VERSION).
    #[arg(long, value_name = "NAME[:TAG]")]
    pub tag: Option<String>,
    /// The manifest's media types: Docker v2 schema 2 or OCI 1.0.
    #[arg(long, value_enum, default_value_t = Format::Docker)]
    pub format: Format,
    /// The function's Cargo.toml (default: the package of the current directory).
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
}

/// The media types of the manifest, config and layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Docker v2 schema 2 (`application/vnd.docker.distribution.manifest.v2+json`).
    Docker,
    /// OCI 1.0 (`application/vnd.oci.image.manifest.v1+json`).
    Oci,
}

impl Format {
    /// The media types (manifest, config, layer).
    fn media_types(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Format::Docker => (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER),
            Format::Oci => (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER),
        }
    }

    /// A person's name for it.
    fn describe(self) -> &'static str {
        match self {
            Format::Docker => "Docker v2s2",
            Format::Oci => "OCI 1.0",
        }
    }
}

/// Content-addressed bytes: a manifest, a config or a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// What the bytes are, as a descriptor and a registry name it.
    pub media_type: String,
    /// `sha256:<64 hex digits>` of the bytes.
    pub digest: String,
    /// The bytes.
    pub data: Vec<u8>,
}

impl Blob {
    /// The blob of `data`, its digest computed.
    pub fn new(media_type: &str, data: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_owned(),
            digest: sha256(&data),
            data,
        }
    }

    /// The digest's hex digits (the file name under `blobs/sha256/`).
    pub fn hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }

    /// The blob's descriptor: media type, size, digest.
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            size: self.data.len() as u64,
            digest: self.digest.clone(),
            platform: None,
            annotations: None,
        }
    }
}

/// An image: its manifest and the blobs the manifest names. A registry takes the config and
/// the layers first, then the manifest; the manifest's digest is the image's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The manifest (Docker v2 schema 2 or OCI 1.0); its digest is the image's.
    pub manifest: Blob,
    /// The config: platform, entrypoint, user, port, labels, the layers' diff IDs.
    pub config: Blob,
    /// The layers, gzip tars, bottom first ([`build`] makes exactly one).
    pub layers: Vec<Blob>,
}

impl Image {
    /// The blobs the manifest refers to, in upload order: the config, then the layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(&self.layers)
    }

    /// The manifest's format, from its media type.
    pub fn format(&self) -> Option<Format> {
        match self.manifest.media_type.as_str() {
            DOCKER_MANIFEST => Some(Format::Docker),
            OCI_MANIFEST => Some(Format::Oci),
            _ => None,
        }
    }
}

/// A descriptor: a blob named by digest, with its media type and size.
#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    size: u64,
    digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
}

/// A descriptor's platform (in `index.json`).
#[derive(Serialize, Clone, Debug)]
struct Platform {
    architecture: String,
    os: String,
}

/// An image manifest (Docker v2 schema 2 and OCI 1.0 share the shape).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// A layout's `index.json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: Option<String>,
    manifests: Vec<Descriptor>,
}

/// The image config (the keys are the ones Docker and OCI define, in a fixed order).
#[derive(Serialize)]
struct Config<'a> {
    created: &'a str,
    architecture: &'static str,
    os: &'static str,
    config: RunConfig<'a>,
    rootfs: RootFs,
    history: [History<'a>; 1],
}

/// What the container runs: the Dockerfile's USER, EXPOSE, ENTRYPOINT and LABEL.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig<'a> {
    user: &'static str,
    exposed_ports: BTreeMap<String, Empty>,
    entrypoint: [&'static str; 1],
    labels: BTreeMap<&'static str, &'a str>,
}

/// `{}`, the value of an exposed port.
#[derive(Serialize)]
struct Empty {}

/// The layers by the digests of their uncompressed tars.
#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

/// How a layer was made.
#[derive(Serialize)]
struct History<'a> {
    created: &'a str,
    created_by: String,
    comment: &'static str,
}

/// One image of a `docker save` archive's `manifest.json`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveEntry<'a> {
    config: String,
    repo_tags: [&'a str; 1],
    layers: Vec<String>,
}

/// Builds the image of `binary` (a static x86-64 executable, see [`check_binary`]) for the
/// function `name` at `version`, dated `epoch` (seconds since 1970, see [`source_date_epoch`]).
/// The same arguments give the same bytes, so the same manifest digest.
pub fn build(
    binary: &[u8],
    name: &str,
    version: &str,
    epoch: u64,
    format: Format,
) -> Result<Image> {
    ensure!(
        epoch <= MAX_EPOCH,
        "the image's time {epoch} is after the year 9999"
    );
    let (manifest_type, config_type, layer_type) = format.media_types();
    let tar = layer_tar(binary, epoch).context("write the layer's tar")?;
    let diff_id = sha256(&tar);
    let layer = Blob::new(layer_type, gzip(&tar).context("compress the layer")?);

    let created = rfc3339(epoch);
    let entry = spec::ENTRYPOINT.trim_start_matches('/');
    let config = Config {
        created: &created,
        architecture: spec::ARCHITECTURE,
        os: spec::OS,
        config: RunConfig {
            user: spec::USER,
            exposed_ports: BTreeMap::from([(format!("{}/tcp", spec::PORT), Empty {})]),
            entrypoint: [spec::ENTRYPOINT],
            labels: spec::labels(name, version).into_iter().collect(),
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: vec![diff_id],
        },
        history: [History {
            created: &created,
            created_by: format!("COPY {entry} {}", spec::ENTRYPOINT),
            comment: "cargo scf image",
        }],
    };
    let config = Blob::new(config_type, serde_json::to_vec(&config)?);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(manifest_type.to_owned()),
        config: config.descriptor(),
        layers: vec![layer.descriptor()],
    };
    let manifest = Blob::new(manifest_type, serde_json::to_vec(&manifest)?);
    Ok(Image {
        manifest,
        config,
        layers: vec![layer],
    })
}

/// The layer's tar: one regular file at the entrypoint, mode [`spec::MODE`], root's, `mtime`.
fn layer_tar(binary: &[u8], mtime: u64) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::with_capacity(binary.len() + 2048));
    append(
        &mut tar,
        spec::ENTRYPOINT.trim_start_matches('/'),
        binary,
        spec::MODE,
        mtime,
    )?;
    Ok(tar.into_inner()?)
}

/// Appends a regular file to a tar with a fixed header: ustar, uid and gid 0, no names.
fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    data: &[u8],
    mode: u32,
    mtime: u64,
) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header.set_username("")?;
    header.set_groupname("")?;
    header.set_device_major(0)?;
    header.set_device_minor(0)?;
    tar.append_data(&mut header, path, data)
        .with_context(|| format!("add {path} to a tar"))
}

/// gzip at the best level, with no file name, no timestamp and the OS byte "unknown" (255):
/// the bytes depend on the input alone.
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::with_capacity(data.len() / 2), Compression::best());
    gz.write_all(data)?;
    Ok(gz.finish()?)
}

/// `sha256:` and the hex digits of the SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> String {
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in Sha256::digest(data) {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `epoch` (seconds since 1970, at most [`MAX_EPOCH`]) as RFC 3339 UTC:
/// `1970-01-01T00:00:00Z`.
pub fn rfc3339(epoch: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch.min(MAX_EPOCH));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The image's time, in seconds since 1970: `SOURCE_DATE_EPOCH` if set (an error if it is not
/// a number), else the commit time of `HEAD` in `project` (`git log -1 --format=%ct`), else 0.
pub fn source_date_epoch(project: &Path) -> Result<u64> {
    if let Some(v) = std::env::var_os("SOURCE_DATE_EPOCH").filter(|v| !v.is_empty()) {
        let v = v.to_string_lossy();
        let epoch: u64 = v.trim().parse().with_context(|| {
            format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds since 1970")
        })?;
        ensure!(
            epoch <= MAX_EPOCH,
            "SOURCE_DATE_EPOCH={epoch} is after the year 9999"
        );
        return Ok(epoch);
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(project)
        .args(["log", "-1", "--format=%ct"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    Ok(match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .ok()
            .filter(|&t| t <= MAX_EPOCH)
            .unwrap_or(0),
        _ => 0,
    })
}

/// Checks that `data` is what SCF can run from a `FROM scratch` image: an x86-64 ELF
/// executable, 64-bit little-endian, statically linked (no interpreter). The error says what
/// it is instead.
pub fn check_binary(data: &[u8]) -> Result<()> {
    const BUILD: &str = "build it with `cargo scf build` (static x86-64 musl)";
    let u16_at = |at: usize| {
        data.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        data.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        data.get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    if !data.starts_with(b"\x7fELF") {
        let what = match data.get(..4) {
            Some(
                [0xcf, 0xfa, 0xed, 0xfe] | [0xce, 0xfa, 0xed, 0xfe] | [0xca, 0xfe, 0xba, 0xbe],
            ) => "a macOS (Mach-O) executable",
            Some([b'M', b'Z', ..]) => "a Windows (PE) executable",
            Some([b'#', b'!', ..]) => "a script",
            _ if data.is_empty() => "an empty file",
            _ => "not an executable (no ELF header)",
        };
        bail!("it is {what}, and SCF runs Linux x86-64 (ELF) executables: {BUILD}");
    }
    ensure!(
        data.get(4) == Some(&2) && data.get(5) == Some(&1),
        "it is a 32-bit or big-endian ELF, and SCF runs 64-bit x86-64 executables: {BUILD}"
    );
    let machine = u16_at(18).context("it is a truncated ELF file (no header)")?;
    if machine != 62 {
        let arch = match machine {
            183 => "aarch64 (ARM64)",
            40 => "32-bit ARM",
            3 => "32-bit x86",
            243 => "RISC-V",
            8 => "MIPS",
            21 => "PowerPC 64",
            22 => "s390x",
            _ => "another machine",
        };
        bail!(
            "it is an ELF executable for {arch} (e_machine {machine}), and SCF runs x86-64 (amd64): {BUILD}"
        );
    }
    let kind = u16_at(16).unwrap_or(0);
    ensure!(
        kind == 2 || kind == 3,
        "it is an x86-64 ELF object file or core dump (e_type {kind}), not an executable: {BUILD}"
    );
    // A dynamically linked executable names its loader (PT_INTERP), which a scratch image lacks.
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54), u16_at(56));
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        bail!("it is a truncated ELF file (no program headers): {BUILD}");
    };
    for i in 0..u64::from(phnum) {
        let at = phoff
            .checked_add(i * u64::from(phentsize))
            .and_then(|a| usize::try_from(a).ok())
            .context("it is a malformed ELF file (program headers out of range)")?;
        let p_type = u32_at(at).context("it is a truncated ELF file (program headers)")?;
        if p_type == 3 {
            let interp = u64_at(at + 8)
                .zip(u64_at(at + 32))
                .and_then(|(off, len)| {
                    let off = usize::try_from(off).ok()?;
                    data.get(off..off.checked_add(usize::try_from(len).ok()?)?)
                })
                .map(|b| String::from_utf8_lossy(b).trim_end_matches('\0').to_owned())
                .unwrap_or_else(|| "a dynamic loader".to_owned());
            bail!(
                "it is dynamically linked (it needs {interp}), and a FROM scratch image has no \
                 loader or libc: {BUILD}"
            );
        }
    }
    Ok(())
}

/// Where `cargo scf image` writes the OCI layout by default, and `cargo scf push` reads it:
/// `<target_directory>/scf/image`.
pub fn default_layout_dir(target_directory: &Path) -> PathBuf {
    target_directory.join("scf").join("image")
}

/// The default name of the function's image: `NAME:VERSION`, the name in lowercase and a
/// version's `+` (build metadata, not allowed in a tag) as `_`.
pub fn default_tag(name: &str, version: &str) -> String {
    format!(
        "{}:{}",
        name.to_ascii_lowercase(),
        version.replace('+', "_")
    )
}

/// Checks an image name as `docker load` and `podman load` take it, `[HOST[:PORT]/]PATH[:TAG]`,
/// and gives it a tag (`latest`) if it has none.
pub fn normalize_tag(reference: &str) -> Result<String> {
    let bad = |why: &str| anyhow::anyhow!("the image name {reference:?} is not valid: {why}");
    if reference.contains('@') {
        return Err(bad("a digest (@sha256:...) cannot be a name"));
    }
    let (repo, tag) = match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (reference, None),
    };
    let mut parts: Vec<&str> = repo.split('/').collect();
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        let ok = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        if !ok || host.is_empty() {
            return Err(bad("the registry host is not a host name"));
        }
    }
    for part in &parts {
        if !path_component(part) {
            return Err(bad(
                "each part of the path is lowercase letters and digits, separated by `.`, `_`, `__` or dashes",
            ));
        }
    }
    let tag = tag.unwrap_or("latest");
    let tag_ok = (1..=128).contains(&tag.len())
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !tag_ok {
        return Err(bad(
            "a tag is up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`",
        ));
    }
    Ok(format!("{repo}:{tag}"))
}

/// A path component of an image name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

/// Writes `image` as an OCI image layout in `dir`: `oci-layout`, `index.json` (listing the one
/// manifest, named `tag` by its `org.opencontainers.image.ref.name` annotation) and
/// `blobs/sha256/<hex>`. `dir` is created if missing; if it is a layout already, it is replaced
/// (blobs no longer listed are removed); any other non-empty directory is refused.
pub fn write_oci_layout(image: &Image, dir: &Path, tag: &str) -> Result<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() && !dir.join("oci-layout").is_file() {
                bail!(
                    "{} is not empty and not an OCI image layout: choose a new or empty directory",
                    dir.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("read the directory {}", dir.display())),
    }
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).with_context(|| format!("create {}", blobs.display()))?;
    let ours: Vec<&Blob> = image.blobs().chain([&image.manifest]).collect();
    for blob in &ours {
        write_atomic(&blobs.join(blob.hex()), &blob.data)?;
    }
    write_atomic(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let mut descriptor = image.manifest.descriptor();
    descriptor.platform = Some(Platform {
        architecture: spec::ARCHITECTURE.to_owned(),
        os: spec::OS.to_owned(),
    });
    descriptor.annotations = Some(BTreeMap::from([(REF_NAME.to_owned(), tag.to_owned())]));
    let index = Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_owned()),
        manifests: vec![descriptor],
    };
    write_atomic(&dir.join("index.json"), &serde_json::to_vec(&index)?)?;
    // What the index no longer lists: an earlier image's blobs, an interrupted write's files.
    for entry in fs::read_dir(&blobs).with_context(|| format!("read {}", blobs.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if !ours.iter().any(|b| name.to_str() == Some(b.hex())) {
            let path = entry.path();
            fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// Writes `image` as a `docker save` archive at `file`: `manifest.json` (the config, the image
/// named `tag`, the layers), the config as `<hex>.json` and each gzip layer as `<hex>.tar.gz`.
/// `docker load` and `podman load` take it. The tar's headers are fixed, as the layer's.
pub fn write_docker_archive(image: &Image, file: &Path, tag: &str, mtime: u64) -> Result<()> {
    let config_name = format!("{}.json", image.config.hex());
    let layer_names: Vec<String> = image
        .layers
        .iter()
        .map(|l| format!("{}.tar.gz", l.hex()))
        .collect();
    let manifest = [ArchiveEntry {
        config: config_name.clone(),
        repo_tags: [tag],
        layers: layer_names.clone(),
    }];
    let mut tar = tar::Builder::new(Vec::new());
    append(&mut tar, &config_name, &image.config.data, 0o644, mtime)?;
    for (name, layer) in layer_names.iter().zip(&image.layers) {
        append(&mut tar, name, &layer.data, 0o644, mtime)?;
    }
    append(
        &mut tar,
        "manifest.json",
        &serde_json::to_vec(&manifest)?,
        0o644,
        mtime,
    )?;
    write_atomic(file, &tar.into_inner()?)
}

/// Writes `data` to `path` through a temporary file beside it, renamed into place.
fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let name = path.file_name().context("a file name")?.to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = fs::write(&tmp, data).and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.with_context(|| format!("write {}", path.display()))
}

/// `n` bytes for a person: `266.3 KiB (272,681 bytes)`.
fn human(n: u64) -> String {
    let plain = n.to_string();
    let mut digits = String::with_capacity(plain.len() * 4 / 3);
    for (i, c) in plain.chars().enumerate() {
        if i > 0 && (plain.len() - i).is_multiple_of(3) {
            digits.push(',');
        }
        digits.push(c);
    }
    match n {
        0..1024 => format!("{digits} bytes"),
        1024..1_048_576 => format!("{:.1} KiB ({digits} bytes)", n as f64 / 1024.0),
        _ => format!("{:.1} MiB ({digits} bytes)", n as f64 / 1_048_576.0),
    }
}

/// `cargo scf image`: writes the image and prints what it wrote, the digest last.
pub fn run(args: Args) -> Result<()> {
    let written = write(&args)?;
    println!("{}", written.summary);
    println!("{}", written.places.join(", "));
    println!("{}", written.digest);
    Ok(())
}

/// What [`write()`] wrote.
pub struct Written {
    /// `TAG (FORMAT, DATE): one gzip layer of SIZE`.
    pub summary: String,
    /// Where it went: the OCI layout, and the archive if asked for.
    pub places: Vec<String>,
    /// The OCI layout's directory.
    pub layout: PathBuf,
    /// The manifest's digest, `sha256:…`: what a push of it prints, and what SCF pins.
    pub digest: String,
}

/// Writes the function's image as `args` say; prints nothing.
pub fn write(args: &Args) -> Result<Written> {
    let pkg = Project::find(args.manifest_path.as_deref())?;
    let binary_path = args.binary.clone().unwrap_or_else(|| pkg.binary());
    let binary = match fs::read(&binary_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if args.binary.is_some() {
                bail!("{} does not exist", binary_path.display());
            }
            bail!(
                "{} does not exist: build the function first with `cargo scf build`",
                binary_path.display()
            );
        }
        Err(e) => return Err(e).with_context(|| format!("read {}", binary_path.display())),
    };
    check_binary(&binary)
        .with_context(|| format!("{} cannot be the function", binary_path.display()))?;
    let tag = match &args.tag {
        Some(t) => normalize_tag(t)?,
        None => normalize_tag(&default_tag(&pkg.name, &pkg.version))
            .context("the package's name makes no image name: give one with --tag")?,
    };
    let epoch = source_date_epoch(&pkg.dir)?;
    let image = build(&binary, &pkg.name, &pkg.version, epoch, args.format)?;

    let mut written = Vec::new();
    // The layout is always written (where `cargo scf push` reads it, and checks it, unless
    // told), so that an archive written alone never leaves an older image there to push.
    let dir = args
        .oci_dir
        .clone()
        .unwrap_or_else(|| default_layout_dir(&pkg.target_directory));
    write_oci_layout(&image, &dir, &tag)
        .with_context(|| format!("write the OCI layout {}", dir.display()))?;
    written.push(format!("OCI layout {}", dir.display()));
    if let Some(file) = &args.docker_archive {
        write_docker_archive(&image, file, &tag, epoch)
            .with_context(|| format!("write the Docker archive {}", file.display()))?;
        written.push(format!("Docker archive {}", file.display()));
    }
    let layer: u64 = image.layers.iter().map(|l| l.data.len() as u64).sum();
    let format = image.format().unwrap_or(args.format).describe();
    Ok(Written {
        summary: format!(
            "{tag} ({format}, {}): one gzip layer of {}",
            rfc3339(epoch),
            human(layer)
        ),
        places: written,
        layout: dir,
        digest: image.manifest.digest.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_765_039_090), "2025-12-06T16:38:10Z");
        assert_eq!(rfc3339(MAX_EPOCH), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn sizes() {
        assert_eq!(human(155), "155 bytes");
        assert_eq!(human(272_681), "266.3 KiB (272,681 bytes)");
        assert_eq!(human(1_234_567), "1.2 MiB (1,234,567 bytes)");
    }

    #[test]
    fn tags() {
        assert_eq!(default_tag("My_Fn", "1.0.0+b1"), "my_fn:1.0.0_b1");
        assert_eq!(normalize_tag("my-fn").unwrap(), "my-fn:latest");
        assert_eq!(
            normalize_tag("localhost:5000/a/b--c:v1.2").unwrap(),
            "localhost:5000/a/b--c:v1.2"
        );
        for bad in [
            "My-fn:1",
            "fn:-x",
            "fn@sha256:00",
            "-fn",
            "a/b_:1",
            "a:b:c",
            "",
        ] {
            assert!(normalize_tag(bad).is_err(), "{bad}");
        }
    }
}
