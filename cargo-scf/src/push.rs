//! `cargo scf push REF`: the function's image, an OCI image layout on disk, pushed to a
//! container registry (TCR, or any registry that speaks the OCI distribution API), and the
//! pushed manifest's digest printed as `REF@sha256:…`, what SCF's `ImageUri` takes.
//!
//! The layout is read as any tool writes one (`cargo scf image`, `skopeo copy … oci:DIR`):
//! `oci-layout`, `index.json` naming one single-platform manifest, `blobs/sha256/<hex>`. The
//! manifest, Docker v2 schema 2 or OCI, is sent byte for byte with its own media type, never
//! re-serialized, so the digest the registry stores is the one computed from the file (and
//! the registry's `Docker-Content-Digest` is checked against it).
//!
//! The protocol, as `docker push` speaks it:
//! 1. `GET /v2/`: the registry's authentication challenge, if any. Anonymous; HTTP basic; or
//!    the token protocol (`WWW-Authenticate: Bearer realm=…,service=…`: a token from the realm
//!    for `repository:<name>:pull,push`, kept for the run). Credentials: see [`crate::auth`].
//! 2. For each layer and the config: `HEAD /v2/<name>/blobs/<digest>`, skipped when the
//!    registry has it; else `POST /v2/<name>/blobs/uploads/`, then one `PUT <Location>` with
//!    `digest=` and the whole blob (a monolithic upload).
//! 3. `PUT /v2/<name>/manifests/<tag>`.
//!
//! Transport: HTTPS with the web PKI's roots (rustls, Mozilla's roots built in, so the same on
//! every host), plus the CA of `--ca-file`; plain HTTP only with `--insecure`, and then only to
//! the registry's own host (a token realm or an upload URL elsewhere must be HTTPS). Every
//! request has timeouts, every response body is read up to a cap, and a registry's answer is
//! shown escaped and cut short: a hostile or broken registry gets an error, never a panic or a
//! hang.
//!
//! Progress goes to stderr; the one line on stdout is the pushed reference with its digest.
//! No password, token or `Authorization` header is ever printed: they are held as
//! [`Secret`]s, and any text a registry sends back is scrubbed of them before it is shown.

use std::fmt;
use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use ureq::http::{self, Uri};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};

use crate::auth::{self, Challenge, Credentials, Secret, json_where, printable};

/// The manifest media type of Docker v2 schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The manifest media type of OCI 1.0.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media types of a multi-platform index: refused (SCF runs one linux/amd64 image).
const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
/// The annotation that names an image in a layout's `index.json`.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The largest manifest or `index.json` read (the distribution registry's own limit).
const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// The most of a registry's error answer that is read.
const MAX_ERROR_BODY: u64 = 64 * 1024;
/// The most of a token server's answer that is read.
const MAX_TOKEN_BODY: u64 = 1024 * 1024;
/// Redirects followed for a `GET` or `HEAD`.
const MAX_REDIRECTS: usize = 5;
/// Connecting, TLS included; and resolving the host name.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest a read or a write may wait for the peer (a stalled transfer).
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest an exchange without a large body may take.
const SHORT_CALL: Duration = Duration::from_secs(120);
/// The longest a blob upload may take, whatever its size.
const UPLOAD_CALL: Duration = Duration::from_secs(3600);

/// Push the function's image to a registry (TCR or any OCI registry), print REF@sha256:DIGEST.
///
/// Pushes the OCI layout that `cargo scf image` writes (or any layout of one single-platform
/// image, such as `skopeo copy … oci:DIR` writes), its manifest byte for byte, and prints
/// REF@sha256:DIGEST, what SCF's ImageUri takes.
#[derive(clap::Args)]
#[command(after_help = "\
Credentials, the first found for the registry's host wins:
  1. SCF_REGISTRY_USERNAME and SCF_REGISTRY_PASSWORD (both), e.g. in CI;
  2. Docker's config, $DOCKER_CONFIG/config.json or ~/.docker/config.json, as `docker login`
     writes it: credHelpers, credsStore (docker-credential-*), auths;
  3. podman's auth file, as `podman login` writes it: $REGISTRY_AUTH_FILE, else
     $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json.
None found: anonymous. A password or token is never printed.

Progress goes to stderr; stdout's last line is REGISTRY/NAME:TAG@sha256:DIGEST.")]
pub struct Args {
    /// Where to push: REGISTRY/NAMESPACE/NAME:TAG, or without :TAG for latest, e.g.
    /// ccr.ccs.tencentyun.com/NAMESPACE/NAME:TAG (TCR personal),
    /// NAME.tencentcloudcr.com/NAMESPACE/NAME:TAG (TCR enterprise), 127.0.0.1:5000/NAME:TAG.
    #[arg(value_name = "REF")]
    reference: String,
    /// The OCI image layout to push (default: scf/image in the target directory, where `cargo
    /// scf image` writes it: target/scf/image unless CARGO_TARGET_DIR says otherwise).
    #[arg(long, value_name = "DIR")]
    layout: Option<PathBuf>,
    /// Speak plain HTTP, without TLS, to the registry's host (and to no other): meant for a
    /// loopback or test registry such as 127.0.0.1:5000, never across a network.
    #[arg(long)]
    insecure: bool,
    /// Trust this CA as well as the web PKI's roots (PEM, one or more certificates): for a
    /// registry whose certificate a private CA issued.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
}

/// Pushes the layout and prints `REF@sha256:…` on stdout.
pub fn run(args: Args) -> Result<()> {
    let reference = Reference::parse(&args.reference)?;
    let dir = match &args.layout {
        Some(d) => d.clone(),
        None => default_layout()?,
    };
    let pinned = push(&reference, &dir, args.insecure, args.ca_file.as_deref())?;
    println!("{pinned}");
    Ok(())
}

/// Pushes the image layout `dir` to `reference` and returns `REF@sha256:…` (progress on
/// stderr).
pub fn push(
    reference: &Reference,
    dir: &Path,
    insecure: bool,
    ca_file: Option<&Path>,
) -> Result<String> {
    let image = Layout::read(dir)?;
    let total: u64 = image.blobs.iter().map(|b| b.size).sum();
    eprintln!(
        "Pushing {} to {reference}: {} manifest {}, {} blob{} ({})",
        dir.display(),
        image.format(),
        image.digest.short(),
        image.blobs.len(),
        if image.blobs.len() == 1 { "" } else { "s" },
        human(total)
    );
    if let Some(w) = &image.warning {
        eprintln!("warning: {w}");
    }
    let mut client = Client::new(reference, insecure, ca_file)?;
    client.ping()?;
    for blob in &image.blobs {
        client.push_blob(blob)?;
    }
    client.push_manifest(&image)?;
    Ok(format!("{reference}@{}", image.digest))
}

/// The layout's default place, where `cargo scf image` writes it:
/// `<target_directory>/scf/image` of the function's package here.
fn default_layout() -> Result<PathBuf> {
    let project = crate::project::Project::find(None)
        .context("no --layout given, and no function's project here to find its image")?;
    let dir = crate::image::default_layout_dir(&project.target_directory);
    // An image older than the binary is not what the author just built: say so rather than
    // push it.
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let binary = project.binary();
    if let (Some(b), Some(i)) = (modified(&binary), modified(&dir.join("index.json")))
        && b > i
    {
        bail!(
            "{} is newer than the image at {}: write the image again with `cargo scf image` \
             (or give --layout DIR to push that one)",
            binary.display(),
            dir.display()
        );
    }
    Ok(dir)
}

/// An image reference to push to: `HOST[:PORT]/PATH:TAG`, checked against Docker's grammar
/// (distribution's `reference` package).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The registry: a host name or IP address, and a port if given.
    pub host: String,
    /// The repository, e.g. `ns/my-function`.
    pub repository: String,
    /// The tag (`latest` when none was given).
    pub tag: String,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.host, self.repository, self.tag)
    }
}

impl Reference {
    /// Parses `REGISTRY/PATH[:TAG]`. The registry must be named (a first part with a `.` or
    /// a `:`, or `localhost`): without one the image would go to Docker Hub, which SCF does
    /// not deploy from. A digest (`@sha256:…`) is refused: a push goes to a tag.
    pub fn parse(input: &str) -> Result<Reference> {
        let bad = |why: &str| anyhow!("the image reference {input:?} is not valid: {why}");
        if input.is_empty() {
            bail!("the image reference is empty: give REGISTRY/NAMESPACE/NAME[:TAG]");
        }
        if let Some((scheme, _)) = input.split_once("://") {
            return Err(bad(&format!(
                "drop the {scheme}:// (a reference is REGISTRY/NAMESPACE/NAME[:TAG], e.g. \
                 127.0.0.1:5000/my-fn:v1; --insecure chooses plain HTTP)"
            )));
        }
        if input.contains('@') {
            return Err(bad(
                "it names a digest (@…), and a push goes to a tag: give \
                 REGISTRY/NAMESPACE/NAME[:TAG] (the digest is what the push prints)",
            ));
        }
        let (name, tag) = match input.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t)),
            _ => (input, None),
        };
        if let Some(t) = tag {
            if t.is_empty() {
                return Err(bad("the tag after `:` is empty"));
            }
            if !valid_tag(t) {
                return Err(bad(
                    "a tag is at most 128 letters, digits, `_`, `.` and `-`, not starting \
                     with `.` or `-`",
                ));
            }
        }
        let Some((host, path)) = name.split_once('/') else {
            return Err(bad(
                "it names no registry: give REGISTRY/NAMESPACE/NAME[:TAG], e.g. \
                 ccr.ccs.tencentyun.com/NAMESPACE/NAME:TAG",
            ));
        };
        let is_registry = host.contains(['.', ':'])
            || host == "localhost"
            || host.chars().any(|c| c.is_ascii_uppercase());
        if !is_registry {
            return Err(bad(&format!(
                "it names no registry ({host:?} is a namespace, and the image would go to \
                 Docker Hub): give REGISTRY/NAMESPACE/NAME[:TAG], e.g. \
                 ccr.ccs.tencentyun.com/{name}:TAG"
            )));
        }
        if let Err(why) = valid_host(host) {
            return Err(bad(&why));
        }
        for part in path.split('/') {
            if part.is_empty() {
                return Err(bad(
                    "the repository path has an empty part (`//` or a `/` at an end)",
                ));
            }
            if part.chars().any(|c| c.is_ascii_uppercase()) {
                return Err(bad("the repository path must be lowercase"));
            }
            if !path_component(part) {
                return Err(bad(&format!(
                    "{part:?}: each part of the repository path is lowercase letters and \
                     digits, separated by one `.`, one or two `_`, or dashes"
                )));
            }
        }
        if name.len() > 255 {
            return Err(bad("the name is longer than 255 characters"));
        }
        Ok(Reference {
            host: host.to_owned(),
            repository: path.to_owned(),
            tag: tag.unwrap_or("latest").to_owned(),
        })
    }

    /// The registry's host name or IP address, without the port (`[::1]` keeps its brackets).
    pub fn hostname(&self) -> &str {
        if self.host.starts_with('[') {
            return self
                .host
                .split_once(']')
                .map_or(&self.host, |(h, _)| &self.host[..h.len() + 1]);
        }
        self.host.split(':').next().unwrap_or(&self.host)
    }
}

/// A tag: `[\w][\w.-]{0,127}`.
fn valid_tag(t: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    t.len() <= 128
        && t.chars().next().is_some_and(word)
        && t.chars().all(|c| word(c) || c == '.' || c == '-')
}

/// A registry: `domain-component('.' domain-component)*` or `[IPv6]`, then `:port`.
fn valid_host(host: &str) -> Result<(), String> {
    let (name, port) = if let Some(bracketed) = host.strip_prefix('[') {
        let Some((v6, rest)) = bracketed.split_once(']') else {
            return Err("an IPv6 address must be closed with `]`".into());
        };
        if v6.is_empty() || !v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(format!("[{v6}] is not an IPv6 address"));
        }
        match rest {
            "" => (None, None),
            r => match r.strip_prefix(':') {
                Some(p) => (None, Some(p)),
                None => return Err("after an IPv6 address's `]`, only `:PORT`".into()),
            },
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(p) = port
        && (!p.chars().all(|c| c.is_ascii_digit()) || !matches!(p.parse::<u16>(), Ok(1..)))
    {
        return Err(format!(
            "the registry's port {p:?} is not a port number (1-65535)"
        ));
    }
    if let Some(n) = name {
        let component = |c: &str| {
            !c.is_empty()
                && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        };
        if !n.split('.').all(component) {
            return Err(format!(
                "the registry {n:?} is not a host name (letters, digits and `-`, in parts \
                 separated by `.`)"
            ));
        }
    }
    Ok(())
}

/// A repository path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// A content digest, `sha256:` and 64 lowercase hex digits (checked: it also names a file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest(String);

impl Digest {
    /// Checks a digest from a layout or a registry.
    fn parse(s: &str) -> Result<Digest> {
        let Some(hex) = s.strip_prefix("sha256:") else {
            bail!(
                "the digest {:?} is not sha256 (the one algorithm pushed)",
                printable(s, 100)
            );
        };
        ensure!(
            hex.len() == 64 && hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
            "the digest {:?} is not sha256: and 64 lowercase hex digits",
            printable(s, 100)
        );
        Ok(Digest(s.to_owned()))
    }

    /// The digest of bytes.
    fn of(data: &[u8]) -> Digest {
        Digest(format!("sha256:{:x}", Sha256::digest(data)))
    }

    /// The hex digits: the blob's file name.
    fn hex(&self) -> &str {
        &self.0[7..]
    }

    /// `sha256:` and the first 12 hex digits, for progress lines.
    fn short(&self) -> &str {
        &self.0[..19]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A blob of the image to upload: a layer or the config, in the layout's `blobs/`.
#[derive(Debug)]
pub struct Blob {
    /// `layer` or `config`.
    what: &'static str,
    /// Its digest.
    digest: Digest,
    /// Its size in bytes, as the manifest says and the file is.
    size: u64,
    /// Its file.
    path: PathBuf,
}

/// The image of an OCI layout: its manifest, exactly as stored, and the blobs it names.
#[derive(Debug)]
pub struct Layout {
    /// The manifest's bytes, sent as they are.
    manifest: Vec<u8>,
    /// The manifest's media type (Docker v2 schema 2 or OCI).
    media_type: String,
    /// The manifest's digest: the image's.
    digest: Digest,
    /// The layers, then the config.
    blobs: Vec<Blob>,
    /// Something worth a warning (an image for another platform than SCF's).
    warning: Option<String>,
}

/// A descriptor: a blob named by digest, with its media type and size.
#[derive(Deserialize)]
struct Descriptor {
    /// What the blob is (absent in some layouts).
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    /// `sha256:<hex>`.
    digest: String,
    /// Its size in bytes.
    size: u64,
    /// `org.opencontainers.image.ref.name`, among others.
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// A layout's `index.json`.
#[derive(Deserialize)]
struct Index {
    /// The images of the layout.
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// An image manifest, or what claims to be one (an index has `manifests`, no `config`).
#[derive(Deserialize)]
struct Manifest {
    /// 2 for both formats.
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<u64>,
    /// The manifest's own media type (an OCI manifest may leave it out).
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    /// The config blob.
    #[serde(default)]
    config: Option<Descriptor>,
    /// The layer blobs, bottom first.
    #[serde(default)]
    layers: Vec<Descriptor>,
    /// Only in an index: what makes one recognisable.
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

/// The platform in an image config.
#[derive(Deserialize)]
struct Platform {
    /// Go's name of the CPU architecture (`amd64`).
    #[serde(default)]
    architecture: String,
    /// The operating system (`linux`).
    #[serde(default)]
    os: String,
}

impl Layout {
    /// Reads the OCI image layout in `dir`, checking what a registry would refuse first: one
    /// image, a manifest of a known type with its digest and size right, every blob there with
    /// the size the manifest gives.
    pub fn read(dir: &Path) -> Result<Layout> {
        let marker = dir.join("oci-layout");
        if !marker.exists() {
            if !dir.exists() {
                bail!(
                    "no image at {}: write it with `cargo scf image` first, or give --layout DIR",
                    dir.display()
                );
            }
            bail!(
                "{} is not an OCI image layout (no oci-layout file)",
                dir.display()
            );
        }
        let index_bytes = read_capped(&dir.join("index.json"), MAX_MANIFEST_BYTES)?;
        let index: Index = serde_json::from_slice(&index_bytes).map_err(|e| {
            anyhow!(
                "{} is not an OCI index: {}",
                dir.join("index.json").display(),
                json_where(&e)
            )
        })?;
        let entry = match index.manifests.as_slice() {
            [one] => one,
            [] => bail!("{}/index.json names no image", dir.display()),
            many => {
                let names: Vec<String> = many
                    .iter()
                    .map(|m| {
                        m.annotations
                            .get(REF_NAME)
                            .map_or_else(|| m.digest.clone(), |n| printable(n, 80))
                    })
                    .collect();
                bail!(
                    "{}/index.json names {} images ({}): a push takes a layout of one",
                    dir.display(),
                    many.len(),
                    names.join(", ")
                )
            }
        };
        if let Some(t) = entry.media_type.as_deref()
            && INDEX_TYPES.contains(&t)
        {
            bail!(
                "the layout's image is a multi-platform index ({t}): SCF runs one \
                 linux/amd64 image; copy that one platform's manifest into a layout"
            );
        }
        let digest = Digest::parse(&entry.digest).context("index.json's manifest")?;
        let path = dir.join("blobs").join("sha256").join(digest.hex());
        let manifest = read_capped(&path, MAX_MANIFEST_BYTES)?;
        ensure!(
            manifest.len() as u64 == entry.size,
            "the manifest {} is {} bytes, index.json says {}",
            path.display(),
            manifest.len(),
            entry.size
        );
        ensure!(
            Digest::of(&manifest) == digest,
            "the manifest {} does not have the digest index.json gives ({digest})",
            path.display()
        );
        let parsed: Manifest = serde_json::from_slice(&manifest).map_err(|e| {
            anyhow!(
                "the manifest {} is not JSON: {}",
                path.display(),
                json_where(&e)
            )
        })?;
        if parsed.manifests.is_some() {
            bail!(
                "the layout's image is a multi-platform index: SCF runs one linux/amd64 image; \
                 copy that one platform's manifest into a layout"
            );
        }
        let media_type = match (parsed.media_type.as_deref(), entry.media_type.as_deref()) {
            (Some(m), Some(d)) if m != d => bail!(
                "the manifest's mediaType ({}) is not the one index.json gives ({})",
                printable(m, 100),
                printable(d, 100)
            ),
            (Some(m), _) | (None, Some(m)) => m.to_owned(),
            // Neither says: an OCI manifest may leave it out; its config's type tells.
            (None, None) => match parsed.config.as_ref().and_then(|c| c.media_type.as_deref()) {
                Some("application/vnd.docker.container.image.v1+json") => DOCKER_MANIFEST.into(),
                _ => OCI_MANIFEST.into(),
            },
        };
        ensure!(
            media_type == DOCKER_MANIFEST || media_type == OCI_MANIFEST,
            "the manifest's media type {} is neither Docker v2 schema 2 ({DOCKER_MANIFEST}) \
             nor OCI ({OCI_MANIFEST})",
            printable(&media_type, 100)
        );
        ensure!(
            parsed.schema_version == Some(2),
            "the manifest {} is not schemaVersion 2",
            path.display()
        );
        let config = parsed
            .config
            .with_context(|| format!("the manifest {} names no config", path.display()))?;
        let mut blobs = Vec::new();
        for (what, d) in parsed
            .layers
            .iter()
            .map(|l| ("layer", l))
            .chain([("config", &config)])
        {
            let digest =
                Digest::parse(&d.digest).with_context(|| format!("the manifest's {what}"))?;
            let path = dir.join("blobs").join("sha256").join(digest.hex());
            let size = std::fs::metadata(&path)
                .with_context(|| {
                    format!(
                        "the {what} {digest} is not in the layout ({})",
                        path.display()
                    )
                })?
                .len();
            ensure!(
                size == d.size,
                "the {what} {} is {size} bytes, the manifest says {}",
                path.display(),
                d.size
            );
            if !blobs.iter().any(|b: &Blob| b.digest == digest) {
                blobs.push(Blob {
                    what,
                    digest,
                    size,
                    path,
                });
            }
        }
        let config_path = dir
            .join("blobs")
            .join("sha256")
            .join(Digest::parse(&config.digest)?.hex());
        let warning =
            serde_json::from_slice::<Platform>(&read_capped(&config_path, MAX_MANIFEST_BYTES)?)
                .ok()
                .filter(|p| (p.os.as_str(), p.architecture.as_str()) != ("linux", "amd64"))
                .map(|p| {
                    format!(
                        "the image is for {}/{}; SCF runs linux/amd64 images",
                        printable(&p.os, 40),
                        printable(&p.architecture, 40)
                    )
                });
        Ok(Layout {
            manifest,
            media_type,
            digest,
            blobs,
            warning,
        })
    }

    /// The manifest's format, for people.
    fn format(&self) -> &'static str {
        if self.media_type == DOCKER_MANIFEST {
            "Docker v2 schema 2"
        } else {
            "OCI"
        }
    }
}

/// Reads a whole file of at most `max` bytes.
fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>> {
    let f = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut data = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut data)
        .with_context(|| format!("read {}", path.display()))?;
    ensure!(
        data.len() as u64 <= max,
        "{} is larger than {max} bytes",
        path.display()
    );
    Ok(data)
}

/// The SHA-256 digest of a file, read in pieces.
fn file_digest(path: &Path) -> Result<Digest> {
    let mut f = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Digest(format!("sha256:{:x}", h.finalize())))
}

/// `scheme://host[:port]`, lowercased, with the default port made explicit: what decides
/// whether a URL may have the registry's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    /// `http` or `https`.
    scheme: String,
    /// The host, lowercased (`[::1]` with brackets).
    host: String,
    /// The port.
    port: u16,
}

impl Origin {
    /// The origin of an absolute `http` or `https` URL.
    fn of(url: &str) -> Result<Origin> {
        let uri: Uri = url
            .parse()
            .map_err(|_| anyhow!("{:?} is not a URL", printable(url, 200)))?;
        let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
        let port = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => bail!("{:?} is not an http(s) URL", printable(url, 200)),
        };
        let host = uri
            .host()
            .with_context(|| format!("{:?} has no host", printable(url, 200)))?
            .to_ascii_lowercase();
        Ok(Origin {
            scheme,
            host,
            port: uri.port_u16().unwrap_or(port),
        })
    }
}

/// What a request sends.
enum Payload<'a> {
    /// Nothing (`GET`, `HEAD`).
    None,
    /// Bytes, with their content type.
    Bytes(&'a [u8], &'a str),
    /// A file of this size, as `application/octet-stream`.
    File(&'a Path, u64),
}

/// The parts of a registry's answer that a push reads.
struct Answer {
    /// The status code.
    status: u16,
    /// `Location`.
    location: Option<String>,
    /// `Docker-Content-Digest`.
    digest: Option<String>,
    /// Every `WWW-Authenticate`.
    challenges: Vec<Challenge>,
    /// The body, read up to a cap (only for the answers whose body is used).
    body: Vec<u8>,
    /// The URL the answer came from, after redirects.
    url: String,
}

/// The registry's errors body: `{"errors":[{"code","message","detail"}]}`.
#[derive(Deserialize)]
struct Errors {
    /// The errors, most often one.
    errors: Vec<ErrorEntry>,
}

/// One of a registry's errors.
#[derive(Deserialize)]
struct ErrorEntry {
    /// A constant such as `UNAUTHORIZED`, `DENIED`, `BLOB_UNKNOWN`.
    #[serde(default)]
    code: String,
    /// What a person reads.
    #[serde(default)]
    message: String,
}

/// A token server's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    /// The token (the token protocol's name).
    #[serde(default)]
    token: Option<String>,
    /// The token (OAuth 2's name, which some servers use instead).
    #[serde(default)]
    access_token: Option<String>,
}

/// How the registry is being authenticated to.
enum Auth {
    /// No `Authorization` header.
    Anonymous,
    /// HTTP basic, with these credentials.
    Basic(Credentials),
    /// A bearer token, from the realm, with these credentials if any.
    Bearer {
        /// The `Authorization` header value.
        header: Secret,
        /// The credentials the token was asked with.
        credentials: Option<Credentials>,
    },
}

/// A registry's HTTP API for one repository, with its authentication.
struct Client {
    /// The HTTP agent (connection pool, TLS, timeouts).
    agent: ureq::Agent,
    /// Where to push.
    reference: Reference,
    /// `https://host[:port]` (`http://` with `--insecure`).
    base: String,
    /// The registry's origin: only it gets the registry's `Authorization`.
    origin: Origin,
    /// Whether plain HTTP to the registry's host is allowed.
    insecure: bool,
    /// The credentials, once looked up (`Some(None)`: there are none).
    credentials: Option<Option<Credentials>>,
    /// The current authentication.
    auth: Auth,
    /// Every secret in play, scrubbed from whatever a server sends back before it is shown.
    secrets: Vec<Secret>,
}

impl Client {
    /// An agent for the registry: rustls with the web PKI's roots and `ca_file`'s, timeouts,
    /// no automatic redirects (they are followed here, checked).
    fn new(reference: &Reference, insecure: bool, ca_file: Option<&Path>) -> Result<Client> {
        let roots = match ca_file {
            None => RootCerts::WebPki,
            Some(path) => {
                let pem = read_capped(path, MAX_MANIFEST_BYTES)
                    .with_context(|| format!("--ca-file {}", path.display()))?;
                let mut certs: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                    .iter()
                    .map(|c| Certificate::from_der(c.as_ref()))
                    .collect();
                let before = certs.len();
                for item in ureq::tls::parse_pem(&pem) {
                    match item {
                        Ok(PemItem::Certificate(c)) => certs.push(c.to_owned()),
                        Ok(_) => {}
                        Err(e) => bail!("--ca-file {}: not PEM: {e}", path.display()),
                    }
                }
                ensure!(
                    certs.len() > before,
                    "--ca-file {}: no certificate in it (PEM, -----BEGIN CERTIFICATE-----)",
                    path.display()
                );
                RootCerts::new_with_certs(&certs)
            }
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(roots)
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("cargo-scf/", env!("CARGO_PKG_VERSION")))
            .timeout_resolve(Some(CONNECT_TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(STALL_TIMEOUT))
            .timeout_per_write(Some(STALL_TIMEOUT))
            .timeout_per_call(Some(UPLOAD_CALL))
            .build();
        let agent = ureq::Agent::new_with_config(config);
        if insecure && !is_loopback(reference.hostname()) {
            eprintln!(
                "warning: --insecure to {}, not a loopback address: what goes there in plain \
                 HTTP, credentials and tokens included, can be read and changed on the way",
                reference.host
            );
        }
        let scheme = if insecure { "http" } else { "https" };
        let base = format!("{scheme}://{}", reference.host);
        let origin = Origin::of(&base)?;
        Ok(Client {
            agent,
            reference: reference.clone(),
            base,
            origin,
            insecure,
            credentials: None,
            auth: Auth::Anonymous,
            secrets: Vec::new(),
        })
    }

    /// The registry's credentials, looked up once.
    fn credentials(&mut self) -> Result<Option<Credentials>> {
        if self.credentials.is_none() {
            let found = auth::lookup(&self.reference.host, &self.reference.repository)?;
            if let Some(c) = &found {
                self.secrets.extend(c.secrets());
            }
            self.credentials = Some(found);
        }
        Ok(self.credentials.clone().flatten())
    }

    /// `GET /v2/`: whether the registry is there, and how it wants to be authenticated to.
    fn ping(&mut self) -> Result<()> {
        let url = format!("{}/v2/", self.base);
        let a = self.exchange("GET", &url, &Payload::None, false)?;
        match a.status {
            200..=299 => {
                let how = if self.insecure {
                    "plain HTTP (--insecure)"
                } else {
                    "HTTPS"
                };
                eprintln!(
                    "  registry {} over {how}: no authentication asked",
                    self.reference.host
                );
                Ok(())
            }
            401 => {
                self.authenticate(&a)?;
                // Checked at once, so that a wrong password fails before any upload.
                let b = self.exchange("GET", &url, &Payload::None, false)?;
                match b.status {
                    200..=299 => Ok(()),
                    401 => Err(self.refused(&b)),
                    _ => Err(self.unexpected("GET /v2/", &b)),
                }
            }
            404 => bail!(
                "{} has no registry API at /v2/ (HTTP 404): is it a container registry?",
                self.reference.host
            ),
            _ => Err(self.unexpected("GET /v2/", &a)),
        }
    }

    /// Authenticates after a 401 with these challenges: a token for the bearer protocol, the
    /// credentials for basic.
    fn authenticate(&mut self, a: &Answer) -> Result<()> {
        let bearer = a.challenges.iter().find_map(|c| match c {
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => Some((realm.clone(), service.clone(), scope.clone())),
            _ => None,
        });
        let how = if self.insecure {
            "plain HTTP (--insecure)"
        } else {
            "HTTPS"
        };
        if let Some((realm, service, scope)) = bearer {
            let credentials = self.credentials()?;
            let token = self.token(
                &realm,
                service.as_deref(),
                scope.as_deref(),
                credentials.as_ref(),
            )?;
            let header = Secret::new(format!("Bearer {}", token.expose()));
            self.secrets.push(token);
            eprintln!(
                "  registry {} over {how}: token from {}, {}",
                self.reference.host,
                printable(&realm, 200),
                match &credentials {
                    Some(c) => format!("credentials from {}", c.source),
                    None => "anonymous (no credentials found)".into(),
                }
            );
            self.auth = Auth::Bearer {
                header,
                credentials,
            };
            return Ok(());
        }
        if a.challenges.contains(&Challenge::Basic) {
            let Some(c) = self.credentials()? else {
                bail!("{}", self.no_credentials(a));
            };
            eprintln!(
                "  registry {} over {how}: basic authentication, credentials from {}",
                self.reference.host, c.source
            );
            self.auth = Auth::Basic(c);
            return Ok(());
        }
        let schemes: Vec<String> = a
            .challenges
            .iter()
            .map(|c| match c {
                Challenge::Other(s) => printable(s, 40),
                _ => String::new(),
            })
            .collect();
        bail!(
            "{} asks for an authentication that is neither basic nor a bearer token ({}): \
             not supported",
            self.reference.host,
            if schemes.is_empty() {
                "no WWW-Authenticate".into()
            } else {
                schemes.join(", ")
            }
        )
    }

    /// A token from the token server at `realm` for this repository's pull and push (and the
    /// challenge's scope, if it names another).
    fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        challenge_scope: Option<&str>,
        credentials: Option<&Credentials>,
    ) -> Result<Secret> {
        let realm_origin = Origin::of(realm)
            .with_context(|| format!("the token realm of {}", self.reference.host))?;
        let scope = format!("repository:{}:pull,push", self.reference.repository);
        let mut url = realm.to_owned();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        let mut param = |name: &str, value: &str| {
            url.push(sep);
            url.push_str(name);
            url.push('=');
            url.push_str(&percent_encoding::utf8_percent_encode(value, QUERY).to_string());
            sep = '&';
        };
        if let Some(s) = service {
            param("service", s);
        }
        param("scope", &scope);
        if let Some(s) = challenge_scope.filter(|s| *s != scope) {
            param("scope", s);
        }
        let auth = credentials.map(|c| (realm_origin.clone(), c.basic()));
        let a = self.send(
            "GET",
            &url,
            &Payload::None,
            auth.as_ref(),
            MAX_TOKEN_BODY,
            true,
        )?;
        match a.status {
            200 => {}
            401 | 403 => {
                let why = self.message(&a);
                return Err(match credentials {
                    Some(c) => anyhow!(
                        "the token server {} refused the credentials from {} (user {:?}): HTTP {}{why}",
                        printable(realm, 200),
                        c.source,
                        c.username,
                        a.status
                    ),
                    None => anyhow!(
                        "the token server {} refused an anonymous token: HTTP {}{why}; {}",
                        printable(realm, 200),
                        a.status,
                        how_to_log_in(&self.reference.host)
                    ),
                });
            }
            _ => {
                return Err(anyhow!(
                    "the token server {} answered HTTP {}{}",
                    printable(realm, 200),
                    a.status,
                    self.message(&a)
                ));
            }
        }
        let t: TokenAnswer = serde_json::from_slice(&a.body).map_err(|e| {
            anyhow!(
                "the token server {} answered no token JSON: {}",
                printable(realm, 200),
                json_where(&e)
            )
        })?;
        let token = t
            .token
            .filter(|t| !t.is_empty())
            .or(t.access_token.filter(|t| !t.is_empty()))
            .with_context(|| {
                format!(
                    "the token server {} answered no token",
                    printable(realm, 200)
                )
            })?;
        ensure!(
            token.bytes().all(|c| c.is_ascii_graphic()),
            "the token server {} answered a token that cannot go in a header",
            printable(realm, 200)
        );
        Ok(Secret::new(token))
    }

    /// Uploads a blob unless the registry has it.
    fn push_blob(&mut self, blob: &Blob) -> Result<()> {
        let name = self.reference.repository.clone();
        let url = format!("{}/v2/{name}/blobs/{}", self.base, blob.digest);
        let a = self.exchange("HEAD", &url, &Payload::None, true)?;
        match a.status {
            200 => {
                eprintln!(
                    "  {:<8} {}  {:>10}  already in the registry: skipped",
                    blob.what,
                    blob.digest.short(),
                    human(blob.size)
                );
                return Ok(());
            }
            404 => {}
            _ => {
                return Err(
                    self.unexpected(&format!("HEAD of the {} {}", blob.what, blob.digest), &a)
                );
            }
        }
        let actual = file_digest(&blob.path)?;
        ensure!(
            actual == blob.digest,
            "the {} {} does not have its digest: the layout is damaged",
            blob.what,
            blob.path.display()
        );
        let start = format!("{}/v2/{name}/blobs/uploads/", self.base);
        let a = self.exchange(
            "POST",
            &start,
            &Payload::Bytes(&[], "application/octet-stream"),
            true,
        )?;
        if a.status != 202 {
            return Err(self.unexpected(
                &format!("starting the upload of the {} {}", blob.what, blob.digest),
                &a,
            ));
        }
        let location = a.location.as_deref().with_context(|| {
            format!(
                "{} started an upload without a Location",
                self.reference.host
            )
        })?;
        let target = with_query(
            &resolve(&a.url, location)?,
            "digest",
            blob.digest.to_string().as_str(),
        );
        let a = self.exchange("PUT", &target, &Payload::File(&blob.path, blob.size), true)?;
        if a.status != 201 {
            return Err(
                self.unexpected(&format!("uploading the {} {}", blob.what, blob.digest), &a)
            );
        }
        if let Some(d) = &a.digest {
            ensure!(
                *d == blob.digest.0,
                "{} stored the {} {} under another digest ({})",
                self.reference.host,
                blob.what,
                blob.digest,
                printable(d, 100)
            );
        }
        eprintln!(
            "  {:<8} {}  {:>10}  uploaded",
            blob.what,
            blob.digest.short(),
            human(blob.size)
        );
        Ok(())
    }

    /// Puts the manifest under the tag, its bytes as they are; checks the registry's digest.
    fn push_manifest(&mut self, image: &Layout) -> Result<()> {
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.base, self.reference.repository, self.reference.tag
        );
        let a = self.exchange(
            "PUT",
            &url,
            &Payload::Bytes(&image.manifest, &image.media_type),
            true,
        )?;
        if a.status != 201 {
            return Err(self.unexpected("putting the manifest", &a));
        }
        match &a.digest {
            Some(d) if *d == image.digest.0 => {}
            Some(d) => bail!(
                "{} stored the manifest under another digest ({}) than its own ({})",
                self.reference.host,
                printable(d, 100),
                image.digest
            ),
            None => eprintln!(
                "warning: {} did not say the manifest's digest (Docker-Content-Digest)",
                self.reference.host
            ),
        }
        eprintln!(
            "  {:<8} {}  {:>10}  pushed as {}:{}",
            "manifest",
            image.digest.short(),
            human(image.manifest.len() as u64),
            self.reference.repository,
            self.reference.tag
        );
        Ok(())
    }

    /// A request to the registry with its authentication; after a 401, authenticates again
    /// (a token may have expired, or a scope changed) and tries once more. `retry` says
    /// whether a 401 leads to that (not for the first `GET /v2/`, which learns the challenge).
    fn exchange(
        &mut self,
        method: &str,
        url: &str,
        payload: &Payload,
        retry: bool,
    ) -> Result<Answer> {
        let auth = self.header().map(|h| (self.origin.clone(), h));
        let a = self.send(method, url, payload, auth.as_ref(), MAX_ERROR_BODY, false)?;
        if a.status != 401 || !retry {
            return Ok(a);
        }
        match &self.auth {
            Auth::Anonymous => self.authenticate(&a)?,
            Auth::Basic(_) => return Err(self.refused(&a)),
            Auth::Bearer { .. } => {
                // A fresh token once: if the new one is refused too, the account lacks access.
                self.authenticate(&a)?;
            }
        }
        let auth = self.header().map(|h| (self.origin.clone(), h));
        let b = self.send(method, url, payload, auth.as_ref(), MAX_ERROR_BODY, false)?;
        if b.status == 401 {
            return Err(self.refused(&b));
        }
        Ok(b)
    }

    /// The current `Authorization` header for the registry.
    fn header(&self) -> Option<Secret> {
        match &self.auth {
            Auth::Anonymous => None,
            Auth::Basic(c) => Some(c.basic()),
            Auth::Bearer { header, .. } => Some(header.clone()),
        }
    }

    /// A request without a large body, bounded by [`SHORT_CALL`] as a whole.
    fn run_short<B: ureq::AsSendBody>(
        &self,
        r: http::Request<B>,
    ) -> Result<http::Response<ureq::Body>, ureq::Error> {
        let r = self
            .agent
            .configure_request(r)
            .timeout_per_call(Some(SHORT_CALL))
            .build();
        self.agent.run(r)
    }

    /// One HTTP exchange (with the redirects of a `GET` or `HEAD`, checked): `auth` goes only
    /// to its origin. The body is read, up to `cap`, for a token answer (`want_body`) or an
    /// error (status 400 and up).
    fn send(
        &self,
        method: &str,
        url: &str,
        payload: &Payload,
        auth: Option<&(Origin, Secret)>,
        cap: u64,
        want_body: bool,
    ) -> Result<Answer> {
        let mut url = url.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            let origin = self.allowed(&url)?;
            let mut req = http::Request::builder()
                .method(method)
                .uri(&url)
                .header("Accept", "application/json");
            if let Some((o, secret)) = auth
                && *o == origin
            {
                let mut value = http::HeaderValue::from_str(secret.expose())
                    .map_err(|_| anyhow!("the credentials cannot go in an HTTP header"))?;
                value.set_sensitive(true);
                req = req.header("Authorization", value);
            }
            let bad =
                |e: http::Error| anyhow!("the request {method} {}: {e}", printable(&url, 200));
            let result = match payload {
                Payload::None => self.run_short(req.body(()).map_err(bad)?),
                Payload::Bytes(data, content_type) => self.run_short(
                    req.header("Content-Type", *content_type)
                        .header("Content-Length", data.len())
                        .body(*data)
                        .map_err(bad)?,
                ),
                Payload::File(path, size) => {
                    let file =
                        File::open(path).with_context(|| format!("open {}", path.display()))?;
                    let r = req
                        .header("Content-Type", "application/octet-stream")
                        .header("Content-Length", *size)
                        .body(ureq::SendBody::from_owned_reader(file))
                        .map_err(bad)?;
                    self.agent.run(r)
                }
            };
            let mut response = result.map_err(|e| self.transport_error(&url, e))?;
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let location = header("location");
            if matches!(status, 301 | 302 | 303 | 307 | 308)
                && matches!(method, "GET" | "HEAD")
                && let Some(l) = &location
            {
                url = resolve(&url, l)?;
                continue;
            }
            let digest = header("docker-content-digest");
            let challenges = response
                .headers()
                .get_all("www-authenticate")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(auth::parse_challenges)
                .collect();
            let body = if method != "HEAD" && (want_body || status >= 400) {
                match response.body_mut().with_config().limit(cap).read_to_vec() {
                    Ok(b) => b,
                    Err(ureq::Error::BodyExceedsLimit(_)) => bail!(
                        "{} answered {method} {} with more than {cap} bytes",
                        self.reference.host,
                        printable(&url, 200)
                    ),
                    // An error's body that breaks off still leaves its status to report.
                    Err(_) if !want_body => Vec::new(),
                    Err(e) => return Err(self.transport_error(&url, e)),
                }
            } else {
                Vec::new()
            };
            return Ok(Answer {
                status,
                location,
                digest,
                challenges,
                body,
                url,
            });
        }
        bail!(
            "more than {MAX_REDIRECTS} redirects from {}",
            printable(&url, 200)
        )
    }

    /// The origin of `url`, if a request may go there: HTTPS anywhere; plain HTTP only with
    /// `--insecure`, and only to the registry's host.
    fn allowed(&self, url: &str) -> Result<Origin> {
        let o = Origin::of(url)?;
        if o.scheme == "http" {
            let registry = self.reference.hostname().to_ascii_lowercase();
            if !self.insecure {
                bail!(
                    "refusing the plain-HTTP URL {}: plain HTTP only with --insecure, for a \
                     loopback or test registry",
                    printable(url, 200)
                );
            }
            if o.host != registry {
                bail!(
                    "refusing the plain-HTTP URL {}: --insecure allows plain HTTP to the \
                     registry's host ({registry}) only",
                    printable(url, 200)
                );
            }
        }
        Ok(o)
    }

    /// A transport failure, said plainly: the host, what failed, and what may help.
    fn transport_error(&self, url: &str, e: ureq::Error) -> anyhow::Error {
        let at = Origin::of(url).map_or_else(
            |_| printable(url, 200),
            |o| format!("{}:{}", o.host, o.port),
        );
        // rustls's error comes as it is, or inside an I/O error (from the TLS stream).
        let tls = match &e {
            ureq::Error::Rustls(r) => Some(r),
            ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
            _ => None,
        };
        if let Some(r) = tls {
            let hint = match r {
                rustls::Error::InvalidCertificate(_) => {
                    " (a certificate from a private CA? trust the CA with --ca-file PEM)"
                }
                rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                    return anyhow!(
                        "{at} does not speak TLS: a plain-HTTP registry? `--insecure` speaks \
                         plain HTTP, for a loopback or test registry (rustls: {})",
                        self.scrub(&r.to_string())
                    );
                }
                _ => "",
            };
            return anyhow!("TLS with {at} failed: {}{hint}", self.scrub(&r.to_string()));
        }
        let text = self.scrub(&e.to_string());
        match &e {
            ureq::Error::HostNotFound => anyhow!("cannot resolve the host of {at} (unknown host)"),
            ureq::Error::Timeout(t) => anyhow!("{at} did not answer in time ({t})"),
            ureq::Error::ConnectionFailed => anyhow!("cannot connect to {at}"),
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                anyhow!("cannot connect to {at}: connection refused")
            }
            ureq::Error::Tls(_) => anyhow!("TLS with {at} failed: {text}"),
            ureq::Error::Protocol(_) if url.starts_with("https:") => anyhow!(
                "{at} does not speak HTTPS as expected: {text} (a plain-HTTP registry? \
                 --insecure speaks plain HTTP, for a loopback or test registry)"
            ),
            _ => anyhow!("the request to {at} failed: {text}"),
        }
    }

    /// `text` with every secret in play replaced by `<redacted>`, then made printable.
    fn scrub(&self, text: &str) -> String {
        let secrets: Vec<&str> = self
            .secrets
            .iter()
            .map(Secret::expose)
            .filter(|s| s.chars().count() >= auth::MIN_SECRET)
            .collect();
        auth::redact(&printable(text, usize::MAX), &secrets, 400)
    }

    /// `: CODE: message` from a registry's error body, or its text; empty when it has none.
    fn message(&self, a: &Answer) -> String {
        if a.body.is_empty() {
            return String::new();
        }
        let text = match serde_json::from_slice::<Errors>(&a.body) {
            Ok(e) if !e.errors.is_empty() => e
                .errors
                .iter()
                .map(|x| match (x.code.is_empty(), x.message.is_empty()) {
                    (false, false) => format!("{}: {}", x.code, x.message),
                    (false, true) => x.code.clone(),
                    _ => x.message.clone(),
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => String::from_utf8_lossy(&a.body).trim().to_owned(),
        };
        if text.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.scrub(&text))
        }
    }

    /// The error for a 401 that authenticating did not cure.
    fn refused(&self, a: &Answer) -> anyhow::Error {
        let why = self.message(a);
        let who = match &self.auth {
            Auth::Basic(c) => Some(c),
            Auth::Bearer { credentials, .. } => credentials.as_ref(),
            Auth::Anonymous => None,
        };
        match who {
            Some(c) => anyhow!(
                "{} refused the credentials from {} (user {:?}): HTTP 401{why}; check the \
                 username and password (and the account's access to {})",
                self.reference.host,
                c.source,
                c.username,
                self.reference.repository
            ),
            None => anyhow!("{}", self.no_credentials(a)),
        }
    }

    /// The message for a registry that wants credentials when there are none.
    fn no_credentials(&self, a: &Answer) -> String {
        format!(
            "{} asks for credentials (HTTP 401{}) and none were found: {}",
            self.reference.host,
            self.message(a),
            how_to_log_in(&self.reference.host)
        )
    }

    /// The error for an answer a step did not expect.
    fn unexpected(&self, step: &str, a: &Answer) -> anyhow::Error {
        let hint = match a.status {
            403 => {
                "; the account may lack push access to this repository (or the namespace \
                    does not exist)"
            }
            _ => "",
        };
        anyhow!(
            "{} answered HTTP {} to {step}{}{hint}",
            self.reference.host,
            a.status,
            self.message(a)
        )
    }
}

/// The characters a query value keeps as they are: RFC 3986's unreserved ones.
const QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How to give credentials for `host`.
fn how_to_log_in(host: &str) -> String {
    format!(
        "set {} and {}, or `docker login {host}` (or `podman login {host}`)",
        auth::ENV_USERNAME,
        auth::ENV_PASSWORD
    )
}

/// Whether a host is a loopback address or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A `Location` resolved against the URL of the request that answered it: absolute as it is,
/// `//host/…` with the request's scheme, `/path` on the request's origin, or relative to the
/// request's path.
fn resolve(request_url: &str, location: &str) -> Result<String> {
    let l = location.trim();
    ensure!(
        !l.is_empty() && l.bytes().all(|c| c.is_ascii_graphic()),
        "a Location that is no URL: {:?}",
        printable(l, 200)
    );
    let lower = l.get(..8).map(str::to_ascii_lowercase).unwrap_or_default();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(l.to_owned());
    }
    let (scheme, rest) = request_url
        .split_once("://")
        .with_context(|| format!("{request_url} is not absolute"))?;
    if let Some(r) = l.strip_prefix("//") {
        return Ok(format!("{scheme}://{r}"));
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let origin = format!("{scheme}://{}", &rest[..authority_end]);
    if l.starts_with('/') {
        return Ok(format!("{origin}{l}"));
    }
    let path = rest[authority_end..].split('?').next().unwrap_or("");
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    Ok(format!("{origin}{dir}/{l}"))
}

/// `url` with `name=value` added to its query (after `?`, or `&` when it has one), without a
/// fragment.
fn with_query(url: &str, name: &str, value: &str) -> String {
    let url = url.split_once('#').map_or(url, |(u, _)| u);
    let sep = match url.find('?') {
        None => "?",
        Some(_) if url.ends_with(['?', '&']) => "",
        Some(_) => "&",
    };
    let value = percent_encoding::utf8_percent_encode(value, QUERY);
    format!("{url}{sep}{name}={value}")
}

/// A size for people: `532 B`, `266.0 KiB`, `1.3 MiB`.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> (String, String, String) {
        let r = Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e:#}"));
        (r.host, r.repository, r.tag)
    }

    fn err(s: &str) -> String {
        match Reference::parse(s) {
            Ok(r) => panic!("{s} parsed as {r:?}"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn references() {
        let t = |h: &str, r: &str, g: &str| (h.to_owned(), r.to_owned(), g.to_owned());
        assert_eq!(
            ok("ccr.ccs.tencentyun.com/ns/fn:v1"),
            t("ccr.ccs.tencentyun.com", "ns/fn", "v1")
        );
        assert_eq!(
            ok("my-tcr.tencentcloudcr.com/ns/my_fn"),
            t("my-tcr.tencentcloudcr.com", "ns/my_fn", "latest")
        );
        assert_eq!(
            ok("127.0.0.1:5000/fn:1.0"),
            t("127.0.0.1:5000", "fn", "1.0")
        );
        assert_eq!(
            ok("localhost:5000/a/b"),
            t("localhost:5000", "a/b", "latest")
        );
        assert_eq!(ok("localhost/a"), t("localhost", "a", "latest"));
        assert_eq!(
            ok("[::1]:5000/a__b/c-d--e:T_1"),
            t("[::1]:5000", "a__b/c-d--e", "T_1")
        );
        assert_eq!(
            Reference::parse("[::1]:5000/a").unwrap().hostname(),
            "[::1]"
        );
        assert_eq!(Reference::parse("h.io:5000/a").unwrap().hostname(), "h.io");
        assert_eq!(
            Reference::parse("h.io:5000/a").unwrap().to_string(),
            "h.io:5000/a:latest"
        );

        assert!(err("").contains("empty"));
        assert!(err("ns/fn:v1").contains("names no registry"));
        assert!(err("fn").contains("names no registry"));
        assert!(err("127.0.0.1:5000").contains("names no registry"));
        assert!(err("h.io/ns/Fn").contains("lowercase"));
        assert!(err("h.io/ns/fn:").contains("tag after `:` is empty"));
        assert!(err("h.io/ns/fn:-x").contains("a tag is"));
        assert!(err(&format!("h.io/fn:{}", "x".repeat(129))).contains("a tag is"));
        assert!(err("h.io/ns/fn@sha256:0123").contains("digest"));
        assert!(err("h.io/ns/fn:v1@sha256:0123").contains("digest"));
        assert!(err("h.io//fn").contains("empty part"));
        assert!(err("h.io/fn/").contains("empty part"));
        assert!(err("h.io/a..b").contains("each part"));
        assert!(err("h.io/a___b").contains("each part"));
        assert!(err("h.io/-a").contains("each part"));
        assert!(err("h.io:0/a").contains("port"));
        assert!(err("h.io:99999/a").contains("port"));
        assert!(err("h.io:/a").contains("port"));
        assert!(err("h_x.io/a").contains("host name"));
        assert!(err("-h.io/a").contains("host name"));
        assert!(err("[::1/a").contains("IPv6"));
        assert!(err(&format!("h.io/{}", "a/".repeat(130) + "a")).contains("255"));
    }

    #[test]
    fn locations() {
        let post = "https://r.io/v2/ns/fn/blobs/uploads/";
        assert_eq!(
            resolve(post, "/v2/ns/fn/blobs/uploads/u1?_state=x").unwrap(),
            "https://r.io/v2/ns/fn/blobs/uploads/u1?_state=x"
        );
        assert_eq!(
            resolve(post, "https://s3.example/up?sig=1").unwrap(),
            "https://s3.example/up?sig=1"
        );
        assert_eq!(resolve(post, "//cdn.r.io/u").unwrap(), "https://cdn.r.io/u");
        assert_eq!(
            resolve(post, "u2").unwrap(),
            "https://r.io/v2/ns/fn/blobs/uploads/u2"
        );
        assert_eq!(
            resolve("http://127.0.0.1:5000/v2/", "/v2/x").unwrap(),
            "http://127.0.0.1:5000/v2/x"
        );
        assert!(resolve(post, "").is_err());
        assert!(resolve(post, "/a b").is_err());
        assert_eq!(
            with_query("https://r.io/u?_state=x", "digest", "sha256:ab"),
            "https://r.io/u?_state=x&digest=sha256%3Aab"
        );
        assert_eq!(
            with_query("https://r.io/u", "digest", "sha256:ab"),
            "https://r.io/u?digest=sha256%3Aab"
        );
        assert_eq!(
            with_query("https://r.io/u?", "d", "1"),
            "https://r.io/u?d=1"
        );
    }

    #[test]
    fn origins() {
        let o = Origin::of("https://R.io/v2/").unwrap();
        assert_eq!(
            (o.scheme.as_str(), o.host.as_str(), o.port),
            ("https", "r.io", 443)
        );
        assert_eq!(Origin::of("http://127.0.0.1:5000/x").unwrap().port, 5000);
        // The same spelling as Reference::hostname, so that --insecure matches an IPv6 host.
        let v6 = Origin::of("http://[::1]:5000/v2/").unwrap();
        assert_eq!(
            v6.host,
            Reference::parse("[::1]:5000/a").unwrap().hostname()
        );
        assert!(Origin::of("ftp://r.io/").is_err());
        assert!(Origin::of("not a url").is_err());
        assert!(is_loopback("127.0.0.1") && is_loopback("[::1]") && is_loopback("LOCALHOST"));
        assert!(!is_loopback("10.0.0.1") && !is_loopback("r.io"));
    }

    #[test]
    fn sizes() {
        assert_eq!(human(532), "532 B");
        assert_eq!(human(272_544), "266.2 KiB");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
