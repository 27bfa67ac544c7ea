//! The function's image, built and run as SCF runs it: a static musl binary in a `FROM scratch`
//! image, started with a read-only root filesystem, `/tmp` writable and SCF's limits of 1,024
//! descriptors and processes, invoked over a published loopback port.
//!
//! ```no_run
//! use scf_lean::testing::image::Image;
//!
//! let image = Image::build(".").unwrap(); // cargo build (musl), then podman or docker build
//! assert!(image.run(&["--version"]).starts_with("my-function "));
//! let container = image.start();
//! let r = container.event(r#"{"Type":"timer"}"#);
//! assert_eq!(r.status, 200);
//! let (code, _took) = container.stop(); // SIGTERM, as the platform sends it
//! assert_eq!(code, 0);
//! ```
//!
//! The container engine is podman (with `--runtime runc` when runc is installed: crun fails on
//! some hosts' cgroups) or docker, whichever is found first; `SCF_LEAN_ENGINE` names another
//! command (`docker`, `podman --runtime crun`). Images and containers are removed when dropped,
//! also when a test panics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{TestResponse, event_headers, send};

/// The target of the static build.
pub use crate::image::TARGET;

/// How SCF runs an image: read-only root, only `/tmp` writable, 1,024 descriptors and processes.
pub const SCF_LIKE: &[&str] = &[
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// How long a started container may take to answer its first request.
const READY: Duration = Duration::from_secs(20);

/// The container engine's command line: the program and its first arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Engine(Vec<String>);

impl Engine {
    /// `SCF_LEAN_ENGINE` if set, else podman (with runc when installed), else docker; `None`
    /// when there is none.
    pub fn find() -> Option<Engine> {
        if let Ok(e) = std::env::var("SCF_LEAN_ENGINE") {
            let words: Vec<String> = e.split_whitespace().map(str::to_owned).collect();
            return (!words.is_empty()).then_some(Engine(words));
        }
        if works("podman", &["--version"]) {
            let mut words = vec!["podman".to_owned()];
            if works("runc", &["--version"]) {
                words.extend(["--runtime".to_owned(), "runc".to_owned()]);
            }
            return Some(Engine(words));
        }
        works("docker", &["--version"]).then(|| Engine(vec!["docker".to_owned()]))
    }

    /// A command of the engine.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.0[0]);
        c.args(&self.0[1..]);
        c
    }
}

/// A built image, removed when dropped.
#[derive(Debug)]
pub struct Image {
    engine: Engine,
    tag: String,
    /// The binary in it.
    pub binary: PathBuf,
}

impl Image {
    /// Builds the function in `dir` (its `Cargo.toml`, `Dockerfile` and `target/`): `cargo
    /// build --release --target x86_64-unknown-linux-musl`, then [`Image::package`] of the
    /// binary named after the package.
    ///
    /// # Errors
    /// What is missing to build it: the engine, or the musl target.
    ///
    /// # Panics
    /// When a build fails: the message holds its output.
    pub fn build(dir: impl AsRef<Path>) -> Result<Image, String> {
        let dir = dir.as_ref();
        Engine::find().ok_or("no container engine (podman or docker)")?;
        if !musl_target_installed() {
            return Err(format!(
                "the {TARGET} target is not installed (rustup target add {TARGET})"
            ));
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        run(Command::new(cargo)
            .current_dir(dir)
            .args(["build", "--release", "--target", TARGET])
            // The recipe is .cargo/config.toml's: flags from the environment would replace it,
            // and the Dockerfile looks for the binary under ./target.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR"));
        let name = package_name(dir)?;
        // No build arguments: the image is built as `docker build .` builds it, so a Dockerfile
        // that names another binary fails here, not on the first deploy.
        let wanted = format!("target/{TARGET}/release/{name}");
        let named = default_binary(&dir.join("Dockerfile"))?;
        if named != wanted {
            return Err(format!(
                "the Dockerfile copies {named}, but this package's binary is {wanted}: \
                 set BINARY (and TITLE) there"
            ));
        }
        Image::engine_build(dir, "Dockerfile", &name, &[])
    }

    /// Builds the image of a binary already built: the engine's `build` in `dir` with this
    /// Dockerfile, `BINARY` (a path relative to `dir`) and `TITLE` as build arguments.
    ///
    /// # Errors
    /// When there is no container engine.
    ///
    /// # Panics
    /// When the build fails: the message holds its output.
    pub fn package(
        dir: impl AsRef<Path>,
        dockerfile: &str,
        binary: &str,
        title: &str,
    ) -> Result<Image, String> {
        let args = [format!("BINARY={binary}"), format!("TITLE={title}")];
        Image::engine_build(dir.as_ref(), dockerfile, title, &args)
    }

    /// The engine's `build` in `dir` with this Dockerfile and these `--build-arg`s; the binary
    /// is the `BINARY` argument, or the Dockerfile's default.
    fn engine_build(
        dir: &Path,
        dockerfile: &str,
        title: &str,
        args: &[String],
    ) -> Result<Image, String> {
        let engine = Engine::find().ok_or("no container engine (podman or docker)")?;
        let binary = match args.iter().find_map(|a| a.strip_prefix("BINARY=")) {
            Some(b) => b.to_owned(),
            None => default_binary(&dir.join(dockerfile))?,
        };
        let safe: String = binary
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let tag = format!("localhost/{title}-test:{}-{safe}", std::process::id());
        let tag: String = tag.chars().take(120).collect();
        let mut cmd = engine.command();
        // Without the layer cache: buildah (podman 4) reuses a cached `LABEL` layer whatever
        // value its build argument has now, and a FROM scratch image takes no time to build.
        cmd.current_dir(dir)
            .args(["build", "-q", "--no-cache", "-f", dockerfile, "-t", &tag]);
        if engine.0.first().is_some_and(|c| c.ends_with("podman")) {
            // Nor an intermediate image per instruction, which `rmi` of the tag leaves behind.
            cmd.arg("--layers=false");
        }
        for a in args {
            cmd.arg(format!("--build-arg={a}"));
        }
        run(cmd.arg("."));
        Ok(Image {
            engine,
            tag,
            binary: dir.join(binary),
        })
    }

    /// The engine's `image inspect` of it, as JSON text.
    ///
    /// # Panics
    /// When the engine fails.
    pub fn inspect(&self) -> String {
        let out = run(self.engine.command().args(["image", "inspect", &self.tag]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The image's tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Runs the image as SCF would, with these arguments, to its end; its standard output.
    ///
    /// # Panics
    /// When it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = run(self
            .engine
            .command()
            .args(["run", "--rm"])
            .args(SCF_LIKE)
            .arg(&self.tag)
            .args(args));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts the image as SCF would, its port 9000 published on a loopback port the engine
    /// picks (and names: [`Container::addr`]), so that containers started at the same time,
    /// by tests running at once, never share one.
    ///
    /// # Panics
    /// When the engine cannot start it, or does not say which port it published.
    pub fn start(&self) -> Container {
        let out = run(self
            .engine
            .command()
            .args(["run", "-d"])
            .args(SCF_LIKE)
            .args([
                "-p",
                &format!("127.0.0.1::{}", crate::image::PORT),
                &self.tag,
            ]));
        let mut container = Container {
            engine: self.engine.clone(),
            id: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            requests: std::cell::Cell::new(0),
        };
        // Asked once it is in a value that removes it when dropped, a panic here included.
        container.addr = container.published(crate::image::PORT);
        container
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = self
            .engine
            .command()
            .args(["rmi", "-f", &self.tag])
            .output();
    }
}

/// A running container, removed when dropped.
#[derive(Debug)]
pub struct Container {
    engine: Engine,
    id: String,
    addr: SocketAddr,
    requests: std::cell::Cell<u64>,
}

impl Container {
    /// The loopback address its port 9000 is published on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The host address the engine published the container's TCP `port` on: `port <id>
    /// <port>/tcp` answers `127.0.0.1:41235` (a line per address; the first is taken).
    fn published(&self, port: u16) -> SocketAddr {
        let out = run(self
            .engine
            .command()
            .args(["port", &self.id, &format!("{port}/tcp")]));
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no address in `port {port}/tcp`: {text:?}"))
    }

    /// Invokes the event handler as SCF does (see [`TestServer::event`](super::TestServer::event));
    /// waits for the server to listen first.
    ///
    /// # Panics
    /// When no answer comes within 20 s.
    pub fn event(&self, event: impl AsRef<[u8]>) -> TestResponse {
        self.event_with(event, &[])
    }

    /// [`Container::event`] with these headers as well (or instead of the context's).
    ///
    /// # Panics
    /// As [`Container::event`].
    pub fn event_with(&self, event: impl AsRef<[u8]>, headers: &[(&str, &str)]) -> TestResponse {
        let id = format!("image-request-{}", self.requests.get() + 1);
        self.request("POST", "/event-invoke", &event_headers(&id, headers), event)
    }

    /// Any request (see [`TestServer::request`](super::TestServer::request)); waits for the
    /// server to listen first.
    ///
    /// # Panics
    /// As [`Container::event`].
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: impl AsRef<[u8]>,
    ) -> TestResponse {
        self.requests.set(self.requests.get() + 1);
        let deadline = Instant::now() + READY;
        loop {
            // The port is published before the process in the container listens.
            match send(self.addr, method, target, headers, body.as_ref()) {
                Ok(r) => return r,
                Err(e) if Instant::now() > deadline => {
                    panic!("{method} {target}: no answer from the container: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Stops it as the platform does (SIGTERM, then SIGKILL after 5 s): its exit code and how
    /// long the stop took.
    ///
    /// # Panics
    /// When the engine fails.
    pub fn stop(&self) -> (i32, Duration) {
        let t = Instant::now();
        run(self.engine.command().args(["stop", "-t", "5", &self.id]));
        let took = t.elapsed();
        let out = run(self.engine.command().args([
            "inspect",
            "--format",
            "{{.State.ExitCode}}",
            &self.id,
        ]));
        let code = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(-1);
        (code, took)
    }

    /// What it wrote on stdout and stderr (the function's logs on SCF).
    ///
    /// # Panics
    /// When the engine fails.
    pub fn logs(&self) -> String {
        let out = run(self.engine.command().args(["logs", &self.id]));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self
            .engine
            .command()
            .args(["rm", "-f", "-t", "0", &self.id])
            .output();
    }
}

fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn musl_target_installed() -> bool {
    Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .is_some_and(|s| s.join("lib/rustlib").join(TARGET).exists())
}

/// The default of `ARG BINARY=` in a Dockerfile.
fn default_binary(dockerfile: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(dockerfile)
        .map_err(|e| format!("{}: {e}", dockerfile.display()))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("ARG BINARY="))
        .map(|b| b.trim().to_owned())
        .ok_or_else(|| format!("{}: no ARG BINARY=", dockerfile.display()))
}

/// The `name` of `[package]` in `dir/Cargo.toml`.
fn package_name(dir: &Path) -> Result<String, String> {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
        .map_err(|e| format!("{}: {e}", dir.join("Cargo.toml").display()))?;
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if let Some(v) = line.strip_prefix("name").map(str::trim_start) {
            if in_package {
                if let Some(v) = v.strip_prefix('=') {
                    return Ok(v.trim().trim_matches('"').to_owned());
                }
            }
        }
    }
    Err("no [package] name in Cargo.toml".into())
}

/// Runs a command to its end; panics with its output when it fails.
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
