//! `cargo scf deploy`: the function on SCF, created or updated on its image, and Active.
//!
//! 1. The image: `--image REF:TAG@sha256:…` as given, or else the function is built, its image
//!    written and pushed to `--repository` (the steps of `build`, `image` and `push`), and the
//!    digest that push prints is the one SCF pins.
//! 2. `GetFunction` says whether the function exists: absent, `CreateFunction` (an event, web
//!    or job function on that image, with its memory, timeout, environment and concurrency);
//!    present, `UpdateFunctionCode` with the new image, then `UpdateFunctionConfiguration` when
//!    any setting was given.
//! 3. `GetFunction` again until the status is `Active`: a `…Failed` status ends the command
//!    with SCF's reasons in plain words and a non-zero exit.
//!
//! Settings come from the flags, else the `[package.metadata.scf]` table of the function's
//! `Cargo.toml`, else SCF's defaults. `--dry-run` prints every call as HTTP/1.1, signed, and
//! sends none; the secret key is never in it, the secret id only masked, the token hidden.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::cloud::{self, ApiError, Client, Credentials, Endpoint};
use crate::project::Project;
use crate::push::Reference;

/// SCF's memory sizes: 64 MB, or 128 MB to 3,072 MB in steps of 128 MB.
pub const MEMORY_MB: (u32, u32, u32) = (128, 3072, 128);
/// SCF's execution time limit, seconds.
pub const TIMEOUT_S: (u32, u32) = (1, 900);
/// A web function's concurrent requests per instance.
pub const CONCURRENCY: (u32, u32) = (2, 100);
/// How long `deploy` waits for `Active` unless told (`--wait`).
pub const DEFAULT_WAIT_S: u64 = 600;
/// The first pause between two `GetFunction`s; it doubles up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(250);
/// The longest pause between two `GetFunction`s.
const POLL_MAX: Duration = Duration::from_secs(3);
/// The most of a string from the API that is shown, in characters.
const MAX_SHOWN: usize = 300;
/// The most of a failed status's reasons that are shown.
const MAX_REASONS: usize = 5;
/// `GetFunction`s that may fail in a row (the network, the API's throttling) while waiting.
const POLL_RETRIES: u32 = 3;
/// The longest `--wait`, seconds (a day).
const MAX_WAIT_S: u64 = 86_400;
/// The namespace every account has.
const DEFAULT_NAMESPACE: &str = "default";

/// Create or update the function on SCF from its image, and wait until it is Active.
///
/// Without --image it builds the function, writes its image and pushes it to --repository
/// first, as `cargo scf build`, `image` and `push` do.
#[derive(clap::Args)]
#[command(after_help = "\
Settings: the flags, else [package.metadata.scf] in the function's Cargo.toml, e.g.

  [package.metadata.scf]
  function = \"my-fn\"            # default: the package name
  region = \"ap-guangzhou\"
  namespace = \"default\"
  type = \"web\"                  # event (default), web or job
  memory = 256                  # MB: 64, or 128 to 3072 in steps of 128
  timeout = 10                  # seconds, 1 to 900
  concurrency = 10              # web functions: requests per instance, 2 to 100
  repository = \"ccr.ccs.tencentyun.com/my-namespace/my-fn\"
  registry-id = \"tcr-xxxxxxxx\"  # a TCR enterprise instance's id
  accelerate = true             # SCF's image acceleration
  [package.metadata.scf.env]
  SCF_LEAN_LOG_FORMAT = \"json\"

Credentials: TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY (and
TENCENTCLOUD_SESSION_TOKEN for temporary ones), else tccli's ~/.tccli/PROFILE.credential
(PROFILE: $TCCLI_PROFILE, default `default`). Region: --region, TENCENTCLOUD_REGION, the table,
tccli's profile. The secret key and token are never printed; the secret id only masked.")]
pub struct Args {
    /// The function's name (default: the table's `function`, else the package name).
    #[arg(long, value_name = "NAME")]
    pub function: Option<String>,
    /// The region, e.g. ap-guangzhou (default: $TENCENTCLOUD_REGION, the table, tccli's).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// The namespace (default: `default`).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// The image to deploy, with its digest: REGISTRY/NAMESPACE/NAME:TAG@sha256:DIGEST, as
    /// `cargo scf push` prints it. Without it the function is built and pushed first.
    #[arg(long, value_name = "REF@DIGEST")]
    pub image: Option<String>,
    /// Where to push the image built here: REGISTRY/NAMESPACE/NAME (TAG: --tag).
    #[arg(long, value_name = "REPOSITORY", conflicts_with = "image")]
    pub repository: Option<String>,
    /// The tag to push the image built here to (default: the package version).
    #[arg(long, value_name = "TAG", conflicts_with = "image")]
    pub tag: Option<String>,
    /// The function's type when it is created: event (triggers, POST /event-invoke), web
    /// (HTTP requests passed through) or job (runs once per event, no port). Default: event.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub kind: Option<Kind>,
    /// Memory per instance, MB: 64, or 128 to 3072 in steps of 128 (SCF's default: 128).
    #[arg(long, value_name = "MB")]
    pub memory: Option<u32>,
    /// The time limit of one invocation, seconds, 1 to 900 (SCF's default: 3).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u32>,
    /// An environment variable, KEY=VALUE; repeat for more. Given (here or in the table), the
    /// function's environment becomes exactly these.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A web function's concurrent requests per instance, 2 to 100; also sets
    /// SCF_LEAN_CONCURRENCY in its environment.
    #[arg(long, value_name = "N")]
    pub concurrency: Option<u32>,
    /// The registry's type: personal (ccr.ccs.tencentyun.com) or enterprise
    /// (*.tencentcloudcr.com, with --registry-id). Default: from the image's host.
    #[arg(long, value_enum, value_name = "TYPE")]
    pub image_type: Option<ImageType>,
    /// The TCR enterprise instance's id (tcr-…), which SCF needs to pull from it.
    #[arg(long, value_name = "ID")]
    pub registry_id: Option<String>,
    /// Turn on SCF's image acceleration (ContainerImageAccelerate).
    #[arg(long)]
    pub accelerate: bool,
    /// How long to wait for Active, seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_WAIT_S,
          value_parser = clap::value_parser!(u64).range(1..=MAX_WAIT_S))]
    pub wait: u64,
    /// Print every call as HTTP/1.1, signed, and send none (the image is built and written,
    /// not pushed: its digest is known without).
    #[arg(long)]
    pub dry_run: bool,
    /// The API's endpoint (default: the public one, scf.tencentcloudapi.com over HTTPS); plain
    /// HTTP only on loopback, for a local stand-in.
    #[arg(long, value_name = "URL", env = "TENCENTCLOUD_SCF_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Push over plain HTTP (a loopback registry only; see `cargo scf push --help`).
    #[arg(long)]
    pub insecure: bool,
    /// Trust this CA for the registry too (PEM).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// The function's Cargo.toml (default: the package cargo finds here).
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Arguments for `cargo build` (features, --locked, ...), after `--`.
    #[arg(last = true, value_name = "CARGO ARGS")]
    pub cargo_args: Vec<std::ffi::OsString>,
}

/// The function's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Event-triggered: `POST /event-invoke` on port 9000.
    Event,
    /// HTTP-triggered: requests passed through on port 9000.
    Web,
    /// A job: the event in `SCF_CUSTOM_CONTAINER_EVENT`, no port, the exit code the result.
    Job,
}

impl Kind {
    /// `Type` in the API.
    fn api_type(self) -> &'static str {
        match self {
            Kind::Web => "HTTP",
            Kind::Event | Kind::Job => "Event",
        }
    }

    /// `ImagePort`: 9000, or -1 for a job.
    fn image_port(self) -> i64 {
        match self {
            Kind::Job => -1,
            Kind::Event | Kind::Web => 9000,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Event => "an event function",
            Kind::Web => "a web function",
            Kind::Job => "a job function",
        }
    }
}

/// The registry's edition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageType {
    /// TCR personal edition.
    Personal,
    /// A TCR enterprise instance.
    Enterprise,
}

/// `[package.metadata.scf]`.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Table {
    function: Option<String>,
    region: Option<String>,
    namespace: Option<String>,
    #[serde(rename = "type")]
    kind: Option<Kind>,
    memory: Option<u32>,
    timeout: Option<u32>,
    concurrency: Option<u32>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    repository: Option<String>,
    registry_id: Option<String>,
    image_type: Option<ImageType>,
    accelerate: Option<bool>,
}

/// What the deployment is, every source resolved and checked.
#[derive(Debug)]
struct Plan {
    function: String,
    region: String,
    namespace: String,
    /// The type asked for, if any (an existing function keeps its own).
    kind: Option<Kind>,
    memory: Option<u32>,
    timeout: Option<u32>,
    concurrency: Option<u32>,
    /// The environment to set, if any was given.
    env: Option<BTreeMap<String, String>>,
    image_type: Option<ImageType>,
    registry_id: Option<String>,
    accelerate: bool,
}

/// `cargo scf deploy`.
pub fn run(args: Args) -> Result<()> {
    let project = match Project::find(args.manifest_path.as_deref()) {
        Ok(p) => Some(p),
        // With --image and --function, no project is needed.
        Err(_) if args.image.is_some() && args.function.is_some() => None,
        Err(e) => return Err(e),
    };
    let table = match &project {
        Some(p) => table(p)?,
        None => Table::default(),
    };
    let plan = plan(&args, &table, project.as_ref())?;
    let endpoint = match &args.endpoint {
        Some(url) => Endpoint::parse(url)?,
        None => Endpoint::scf(),
    };
    let credentials = Credentials::lookup()?;
    eprintln!(
        "cargo scf: {} in {} (namespace {}), as {} ({})",
        plan.function,
        plan.region,
        plan.namespace,
        credentials.masked_id(),
        credentials.source
    );
    let image = image(&args, &table, project.as_ref())?;
    let image_type = match plan.image_type {
        Some(t) => t,
        None if image.host.ends_with(".tencentcloudcr.com") => ImageType::Enterprise,
        None => ImageType::Personal,
    };
    ensure!(
        image_type == ImageType::Personal || plan.registry_id.is_some(),
        "{} is a TCR enterprise instance: give its instance id with --registry-id tcr-… (or \
         registry-id in [package.metadata.scf]); SCF pulls with it",
        image.host
    );
    if !is_tcr(&image.host) && !crate::push::is_loopback(image.host.split(':').next().unwrap_or(""))
    {
        eprintln!(
            "warning: {} is not Tencent Container Registry (ccr.ccs.tencentyun.com, or an \
             enterprise instance's *.tencentcloudcr.com): SCF pulls images from TCR only",
            image.host
        );
    }
    let client = Client::new(endpoint, &plan.region, credentials);
    let deploy = Deploy {
        client,
        plan,
        image,
        image_type,
        wait: Duration::from_secs(args.wait),
    };
    if args.dry_run {
        deploy.dry_run();
        return Ok(());
    }
    deploy.run()
}

/// The `[package.metadata.scf]` table, checked.
fn table(project: &Project) -> Result<Table> {
    let Some(v) = project.metadata.get("scf") else {
        return Ok(Table::default());
    };
    serde_json::from_value(v.clone()).map_err(|e| {
        anyhow::anyhow!(
            "[package.metadata.scf] in {}: {e}",
            project.dir.join("Cargo.toml").display()
        )
    })
}

/// Resolves and checks every setting.
fn plan(args: &Args, table: &Table, project: Option<&Project>) -> Result<Plan> {
    let function = args
        .function
        .clone()
        .or_else(|| table.function.clone())
        .or_else(|| project.map(|p| p.name.clone()))
        .context("give the function's name with --function")?;
    check_function_name(&function).map_err(|e| {
        anyhow::anyhow!(
            "{e}: give another with --function NAME (or function = \"NAME\" in \
             [package.metadata.scf])"
        )
    })?;
    let region = args
        .region
        .clone()
        .or_else(|| {
            std::env::var(cloud::ENV_REGION)
                .ok()
                .filter(|r| !r.is_empty())
        })
        .or_else(|| table.region.clone())
        .or_else(cloud::tccli_region)
        .context(
            "give the region with --region (e.g. ap-guangzhou), TENCENTCLOUD_REGION or region \
             in [package.metadata.scf]",
        )?;
    ensure!(
        !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        "--region {region:?}: a region is like ap-guangzhou"
    );
    let namespace = args
        .namespace
        .clone()
        .or_else(|| table.namespace.clone())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    ensure!(
        !namespace.is_empty()
            && namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "namespace {namespace:?}: letters, digits, - and _ only"
    );
    // Where a setting came from, for its error.
    let from = |flag: bool, name: &str| {
        if flag {
            format!("--{name}")
        } else {
            format!("{name} in [package.metadata.scf]")
        }
    };
    let kind = args.kind.or(table.kind);
    let memory = args.memory.or(table.memory);
    if let Some(m) = memory {
        let (lo, hi, step) = MEMORY_MB;
        ensure!(
            m == 64 || (lo..=hi).contains(&m) && m % step == 0,
            "memory {m} MB ({}): SCF takes 64, or {lo} to {hi} in steps of {step}",
            from(args.memory.is_some(), "memory")
        );
    }
    let timeout = args.timeout.or(table.timeout);
    if let Some(t) = timeout {
        let (lo, hi) = TIMEOUT_S;
        ensure!(
            (lo..=hi).contains(&t),
            "timeout {t} s ({}): SCF takes {lo} to {hi} seconds",
            from(args.timeout.is_some(), "timeout")
        );
    }
    let concurrency = args.concurrency.or(table.concurrency);
    if let Some(c) = concurrency {
        let (lo, hi) = CONCURRENCY;
        let source = from(args.concurrency.is_some(), "concurrency");
        ensure!(
            (lo..=hi).contains(&c),
            "concurrency {c} ({source}): a web function takes {lo} to {hi} requests per instance"
        );
        ensure!(
            matches!(kind, None | Some(Kind::Web)),
            "concurrency ({source}) is for web functions (--type web): SCF gives event and job \
             functions one event per instance"
        );
    }
    let mut env: Option<BTreeMap<String, String>> =
        (!table.env.is_empty()).then(|| table.env.clone());
    for kv in &args.env {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--env {kv:?}: give KEY=VALUE"))?;
        env.get_or_insert_with(BTreeMap::new)
            .insert(k.to_owned(), v.to_owned());
    }
    if let Some(c) = concurrency {
        env.get_or_insert_with(BTreeMap::new)
            .insert("SCF_LEAN_CONCURRENCY".to_owned(), c.to_string());
    }
    if let Some(env) = &env {
        for (k, v) in env {
            ensure!(
                !k.is_empty()
                    && !k.as_bytes()[0].is_ascii_digit()
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "environment variable {k:?}: letters, digits and _, not starting with a digit"
            );
            ensure!(
                !v.is_empty(),
                "environment variable {k}: SCF takes no empty value"
            );
        }
    }
    Ok(Plan {
        function,
        region,
        namespace,
        kind,
        memory,
        timeout,
        concurrency,
        env,
        image_type: args.image_type.or(table.image_type),
        registry_id: args
            .registry_id
            .clone()
            .or_else(|| table.registry_id.clone()),
        accelerate: args.accelerate || table.accelerate.unwrap_or(false),
    })
}

/// SCF's rule: 2 to 60 letters, digits, `-` and `_`, a letter first, not ending in `-` or `_`.
fn check_function_name(name: &str) -> Result<()> {
    let b = name.as_bytes();
    ensure!(
        (2..=60).contains(&b.len())
            && b[0].is_ascii_alphabetic()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
            && !matches!(b[b.len() - 1], b'-' | b'_'),
        "function name {name:?}: SCF takes 2 to 60 letters, digits, - and _, starting with a \
         letter and not ending in - or _"
    );
    Ok(())
}

/// The image SCF will pull: `REF:TAG@sha256:…`.
#[derive(Debug)]
struct Image {
    /// The registry's host.
    host: String,
    /// `host/repository:tag@sha256:…`.
    uri: String,
}

/// `--image` checked, or the function built, written and pushed (written only, on a dry run).
fn image(args: &Args, table: &Table, project: Option<&Project>) -> Result<Image> {
    if let Some(given) = &args.image {
        return pinned(given);
    }
    let project = project.context("no --image, and no function's project here to build")?;
    let repository = args
        .repository
        .clone()
        .or_else(|| table.repository.clone())
        .context(
            "give the image to deploy with --image REF:TAG@sha256:…, or where to push the one \
             built here with --repository REGISTRY/NAMESPACE/NAME (or repository in \
             [package.metadata.scf]), e.g. ccr.ccs.tencentyun.com/my-namespace/my-fn",
        )?;
    let tag = match &args.tag {
        Some(t) => t.clone(),
        None => crate::image::default_tag(&project.name, &project.version)
            .split_once(':')
            .map(|(_, t)| t.to_owned())
            .unwrap_or_default(),
    };
    ensure!(
        !repository.contains('@') && !last_part(&repository).contains(':'),
        "--repository {repository}: give it without a tag or digest (the tag is --tag)"
    );
    let reference = Reference::parse(&format!("{repository}:{tag}"))?;
    let manifest = args
        .manifest_path
        .clone()
        .or_else(|| Some(project.dir.join("Cargo.toml")));
    let binary = crate::build::build(&crate::build::Args {
        manifest_path: manifest.clone(),
        cargo_args: args.cargo_args.clone(),
    })?;
    let written = crate::image::write(&crate::image::Args {
        binary: Some(binary),
        oci_dir: None,
        docker_archive: None,
        tag: None,
        format: crate::image::Format::Docker,
        manifest_path: manifest,
    })?;
    eprintln!("cargo scf: image {}", written.summary);
    let uri = if args.dry_run {
        eprintln!(
            "cargo scf: dry run: would push {} to {reference}",
            written.layout.display()
        );
        format!("{reference}@{}", written.digest)
    } else {
        crate::push::push(
            &reference,
            &written.layout,
            args.insecure,
            args.ca_file.as_deref(),
        )?
    };
    Ok(Image {
        host: reference.host.clone(),
        uri,
    })
}

/// Whether `host` is Tencent Container Registry's: the personal edition's, or an enterprise
/// instance's.
fn is_tcr(host: &str) -> bool {
    let host = host.split(':').next().unwrap_or(host);
    host.ends_with(".tencentyun.com") || host.ends_with(".tencentcloudcr.com")
}

/// The last `/` part of a reference.
fn last_part(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// `REF:TAG@sha256:HEX` checked: a tag (never SCF's `latest` by default) and a digest.
fn pinned(given: &str) -> Result<Image> {
    let (name, digest) = given.split_once('@').with_context(|| {
        format!(
            "--image {given}: give it with its digest, REF:TAG@sha256:…, as `cargo scf push` \
             prints it (SCF pins the digest)"
        )
    })?;
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    ensure!(
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "--image {given}: the digest must be sha256: and 64 lower-case hex digits"
    );
    ensure!(
        last_part(name).contains(':'),
        "--image {given}: name a tag before the digest (REF:TAG@sha256:…); SCF's ImageUri has both"
    );
    let reference = Reference::parse(name)?;
    Ok(Image {
        host: reference.host.clone(),
        uri: format!("{reference}@{digest}"),
    })
}

/// What SCF says of the function.
#[derive(Debug, Default)]
struct Status {
    status: String,
    desc: String,
    reasons: Vec<(String, String)>,
    kind: String,
}

impl Status {
    /// What `GetFunction` answered (already scrubbed of the secrets by the client), every
    /// string made printable and bounded: a server's text never reaches the terminal raw.
    fn from(v: &Value) -> Status {
        let text = |v: &Value, k: &str, max: usize| {
            crate::auth::printable(v.get(k).and_then(Value::as_str).unwrap_or(""), max)
        };
        let s = |k: &str| text(v, k, MAX_SHOWN);
        let reasons = v
            .get("StatusReasons")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .take(MAX_REASONS)
                    .map(|r| {
                        (
                            text(r, "ErrorCode", 100),
                            text(r, "ErrorMessage", MAX_SHOWN),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Status {
            status: s("Status"),
            desc: s("StatusDesc"),
            reasons,
            kind: s("Type"),
        }
    }

    fn failed(&self) -> bool {
        self.status.ends_with("Failed") || self.status.ends_with("Fail")
    }
}

struct Deploy {
    client: Client,
    plan: Plan,
    image: Image,
    image_type: ImageType,
    wait: Duration,
}

impl Deploy {
    fn named(&self) -> Value {
        json!({"FunctionName": self.plan.function, "Namespace": self.plan.namespace})
    }

    fn image_config(&self, kind: Kind) -> Value {
        let mut c = json!({
            "ImageType": match self.image_type {
                ImageType::Personal => "personal",
                ImageType::Enterprise => "enterprise",
            },
            "ImageUri": self.image.uri,
            "ImagePort": kind.image_port(),
            "ContainerImageAccelerate": self.plan.accelerate,
        });
        if let Some(id) = &self.plan.registry_id {
            c["RegistryId"] = json!(id);
        }
        c
    }

    /// The settings both creation and configuration take.
    fn settings(&self, into: &mut Value) {
        if let Some(m) = self.plan.memory {
            into["MemorySize"] = json!(m);
        }
        if let Some(t) = self.plan.timeout {
            into["Timeout"] = json!(t);
        }
        if let Some(env) = &self.plan.env {
            into["Environment"] = json!({"Variables": env
                .iter()
                .map(|(k, v)| json!({"Key": k, "Value": v}))
                .collect::<Vec<_>>()});
        }
        if let Some(c) = self.plan.concurrency {
            into["InstanceConcurrencyConfig"] =
                json!({"DynamicEnabled": "FALSE", "MaxConcurrency": c});
        }
    }

    fn create_params(&self) -> Value {
        let kind = self.plan.kind.unwrap_or(Kind::Event);
        let mut p = self.named();
        p["Type"] = json!(kind.api_type());
        p["Runtime"] = json!("CustomImage");
        p["Code"] = json!({"ImageConfig": self.image_config(kind)});
        self.settings(&mut p);
        p
    }

    fn update_code_params(&self, kind: Kind) -> Value {
        let mut p = self.named();
        p["Code"] = json!({"ImageConfig": self.image_config(kind)});
        p
    }

    fn configuration_params(&self) -> Option<Value> {
        let mut p = self.named();
        self.settings(&mut p);
        (p.as_object().map_or(0, |o| o.len()) > 2).then_some(p)
    }

    /// Prints every call it would make, signed, and makes none.
    fn dry_run(&self) {
        let show = |note: &str, action: &str, params: &Value| {
            eprintln!("cargo scf: dry run: {note}");
            print!("{}", self.client.sign_now(action, params).to_http());
            println!();
        };
        eprintln!(
            "cargo scf: dry run: nothing is sent; the secret id is masked and the token hidden, \
             the secret key is in no request"
        );
        show("whether the function exists", "GetFunction", &self.named());
        show(
            "if it does not: create it",
            "CreateFunction",
            &self.create_params(),
        );
        let kind = self.plan.kind.unwrap_or(Kind::Event);
        show(
            "if it does: its new image",
            "UpdateFunctionCode",
            &self.update_code_params(kind),
        );
        if let Some(p) = self.configuration_params() {
            show(
                "then its settings, once Active",
                "UpdateFunctionConfiguration",
                &p,
            );
        }
        show(
            "then its status, until Active",
            "GetFunction",
            &self.named(),
        );
    }

    fn run(&self) -> Result<()> {
        let started = Instant::now();
        let name = &self.plan.function;
        match self.get()? {
            None => {
                let kind = self.plan.kind.unwrap_or(Kind::Event);
                eprintln!(
                    "cargo scf: creating {name}, {}, on {}",
                    kind.describe(),
                    self.image.uri
                );
                self.client.call("CreateFunction", &self.create_params())?;
                self.until_active("created")?;
            }
            Some(found) => {
                let existing = if found.kind == "HTTP" {
                    Kind::Web
                } else {
                    Kind::Event
                };
                if let Some(k) = self.plan.kind
                    && k.api_type() != existing.api_type()
                {
                    bail!(
                        "{name} exists as {}, and SCF cannot change a function's type to {}: \
                         deploy under another --function, or delete it first",
                        existing.describe(),
                        k.describe()
                    );
                }
                if existing == Kind::Event && self.plan.concurrency.is_some() {
                    bail!("{name} is an event function: concurrency is for web functions");
                }
                if found.status != "Active" {
                    eprintln!(
                        "cargo scf: {name} is {}: waiting until it is Active",
                        found.status
                    );
                    self.until_active("ready")?;
                }
                let kind = self.plan.kind.unwrap_or(existing);
                eprintln!("cargo scf: updating {name} to {}", self.image.uri);
                self.client
                    .call("UpdateFunctionCode", &self.update_code_params(kind))?;
                self.until_active("updated")?;
                if let Some(p) = self.configuration_params() {
                    eprintln!("cargo scf: setting {name}'s configuration");
                    self.client.call("UpdateFunctionConfiguration", &p)?;
                    self.until_active("configured")?;
                }
            }
        }
        println!(
            "{name} is Active in {} (namespace {}) on {} ({:.1} s)",
            self.plan.region,
            self.plan.namespace,
            self.image.uri,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The function's status, or None when it does not exist.
    fn get(&self) -> Result<Option<Status>> {
        match self.client.call("GetFunction", &self.named()) {
            Ok(v) => Ok(Some(Status::from(&v))),
            Err(e) => match e.downcast_ref::<ApiError>() {
                Some(api) if api.code.starts_with("ResourceNotFound.Function") => Ok(None),
                _ => Err(e),
            },
        }
    }

    /// Polls until `Active`; a failed status is an error with SCF's reasons.
    fn until_active(&self, what: &str) -> Result<()> {
        let name = &self.plan.function;
        let deadline = Instant::now() + self.wait;
        let mut pause = POLL_FIRST;
        let mut last = String::new();
        let mut failures = 0;
        loop {
            let s = match self.get() {
                Ok(Some(s)) => s,
                Ok(None) => bail!("{name} is gone: GetFunction says it does not exist"),
                // A call that failed on the way (not an answer of the API's) is tried again.
                Err(e) if e.downcast_ref::<ApiError>().is_none() && failures < POLL_RETRIES => {
                    failures += 1;
                    eprintln!("cargo scf: {e:#}: trying again");
                    std::thread::sleep(pause);
                    continue;
                }
                Err(e) => return Err(e),
            };
            failures = 0;
            if s.status != last {
                eprintln!(
                    "cargo scf: {name}: {}{}",
                    s.status,
                    if s.desc.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", s.desc)
                    }
                );
                last.clone_from(&s.status);
            }
            if s.status == "Active" {
                return Ok(());
            }
            if s.failed() {
                bail!("{}", failure(name, &s, &self.plan.region));
            }
            if s.status.starts_with("Delet") {
                bail!(
                    "{name} is {}: it is being deleted; deploy again once it is gone",
                    s.status
                );
            }
            if Instant::now() + pause > deadline {
                bail!(
                    "{name} is still {} after {} s, not {what}: see it in the console \
                     (https://console.cloud.tencent.com/scf), or wait longer with --wait",
                    s.status,
                    self.wait.as_secs()
                );
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(POLL_MAX);
        }
    }
}

/// A failed status in plain words: what SCF says, and what usually causes it.
fn failure(name: &str, s: &Status, region: &str) -> String {
    let mut out = format!(
        "SCF could not make {name} Active: its status is {}",
        s.status
    );
    if !s.desc.is_empty() {
        out.push_str(&format!(" ({})", s.desc));
    }
    for (code, message) in &s.reasons {
        out.push_str(&format!("\n  reason: {code}: {message}"));
    }
    let all = format!(
        "{} {} {}",
        s.desc,
        s.reasons
            .iter()
            .map(|r| format!("{} {}", r.0, r.1))
            .collect::<Vec<_>>()
            .join(" "),
        s.status
    )
    .to_ascii_lowercase();
    if all.contains("pull") || all.contains("image") && all.contains("not found") {
        out.push_str(&format!(
            "\n  SCF could not pull the image: it must be in TCR in {region}, pushed (the digest \
             exists), and SCF's role (SCF_QcsRole) must be allowed to pull from its repository"
        ));
    } else if all.contains("init") || all.contains("port") || all.contains("listen") {
        out.push_str(
            "\n  the image started but did not answer on 0.0.0.0:9000 in time (or exited): run it \
             as SCF does with `cargo scf run`, and check its start-up line",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names() {
        for ok in ["ab", "my-fn", "a_1-b", &"a".repeat(60)] {
            check_function_name(ok).unwrap();
        }
        for bad in ["a", "1ab", "ab-", "ab_", "a b", "é-fn", &"a".repeat(61), ""] {
            assert!(check_function_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pinned_images() {
        let d = "a".repeat(64);
        let i = pinned(&format!("ccr.ccs.tencentyun.com/ns/fn:v1@sha256:{d}")).unwrap();
        assert_eq!(i.host, "ccr.ccs.tencentyun.com");
        assert_eq!(i.uri, format!("ccr.ccs.tencentyun.com/ns/fn:v1@sha256:{d}"));
        for bad in [
            "ccr.ccs.tencentyun.com/ns/fn:v1".to_owned(),
            format!("ccr.ccs.tencentyun.com/ns/fn@sha256:{d}"),
            "ccr.ccs.tencentyun.com/ns/fn:v1@sha256:abc".to_owned(),
            format!("ccr.ccs.tencentyun.com/ns/fn:v1@sha256:{}", "A".repeat(64)),
        ] {
            assert!(pinned(&bad).is_err(), "{bad}");
        }
    }
}
