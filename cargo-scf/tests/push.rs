//! `cargo scf push` against a real registry on loopback: the CNCF distribution registry
//! (Debian's `docker-registry`), one per test, started with a configuration written by the
//! test (see `common/registry.rs`).
//!
//! - plain HTTP with `--insecure`: the push, the same push again (every blob skipped, the same
//!   digest), the registry's manifest byte for byte, skopeo's view of the digest, a layout
//!   written by skopeo (OCI); and without `--insecure`, a clear refusal;
//! - htpasswd over TLS from a CA made here (`--ca-file`): credentials from the environment,
//!   Docker's config (an `auths` key in URL form, a credential helper), podman's auth file;
//!   a wrong password, no password, no `--ca-file`: clear failures;
//! - the token protocol, with a token server made here: one token per push, a wrong password;
//! - the image `cargo scf image` makes of scf-lean's echo, pushed, pulled by podman and run as
//!   SCF runs it (read-only root, /tmp, 1,024 descriptors and processes), answering an event;
//! - bad input: references, layouts, an unreachable registry.
//!
//! No password, `auth` string or token ever appears in what the command prints, on any path.
//!
//! Needs `docker-registry` (Debian package `docker-registry`); skopeo and podman (with runc)
//! and the x86_64-unknown-linux-musl target for the parts that use them. Without them a test
//! prints `SKIP: ...` and passes, unless `SCF_LEAN_REQUIRE_IMAGE_TEST=1` (CI), which turns a
//! skip into a failure. Nothing leaves loopback.

#[path = "common/registry.rs"]
mod registry;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use registry::{Auth, Format, Registry, TestCa, TokenServer, works, write_layout};
use serde_json::{Value, json};

/// How long one run of the command may take.
const RUN: Duration = Duration::from_secs(60);
/// How long an external tool (skopeo, podman, cargo build) may take.
const TOOL: Duration = Duration::from_secs(300);

/// Whether a missing tool fails the test instead of skipping it.
fn required() -> bool {
    std::env::var("SCF_LEAN_REQUIRE_IMAGE_TEST").is_ok_and(|v| v == "1")
}

/// Skips (or, when required, fails) for `reason`.
fn skip(reason: &str) {
    assert!(!required(), "SCF_LEAN_REQUIRE_IMAGE_TEST=1 and {reason}");
    eprintln!("SKIP: {reason}");
}

/// The registry program, or a skip.
fn registry_program() -> Option<&'static str> {
    let p = registry::registry_program();
    if p.is_none() {
        skip("docker-registry is not installed (apt-get install docker-registry)");
    }
    p
}

/// A finished command: its exit status and output.
struct Run {
    /// Whether it exited with 0.
    ok: bool,
    /// Its standard output.
    stdout: String,
    /// Its standard error.
    stderr: String,
}

impl Run {
    /// Both outputs, for messages and secret checks.
    fn all(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }

    /// The last line of stdout.
    fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }

    /// Asserts that none of `secrets` shows in its output.
    fn assert_hides(&self, secrets: &[&str]) {
        for s in secrets {
            assert!(
                !self.stdout.contains(s) && !self.stderr.contains(s),
                "a secret ({} characters) is in the output:\n{}",
                s.len(),
                self.all()
            );
        }
    }
}

/// Runs `cmd` to its end, or kills it after `limit` and panics.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Run {
    let shown = format!("{cmd:?}");
    try_run(cmd, limit).unwrap_or_else(|| panic!("{shown} did not finish within {limit:?}"))
}

/// Runs `cmd` to its end; `None` when it had to be killed after `limit` (or did not start).
fn try_run(cmd: &mut Command, limit: Duration) -> Option<Run> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let reader = |mut p: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = p.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().ok()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Some(Run {
        ok: status.success(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Runs a tool, panicking with its output when it fails.
fn tool(cmd: &mut Command) -> Run {
    let shown = format!("{cmd:?}");
    let r = run_bounded(cmd, TOOL);
    assert!(r.ok, "{shown} failed:\n{}", r.all());
    r
}

/// `cargo-scf scf push ARGS` with `home` as HOME and nothing of this machine's credentials or
/// proxies in its environment, plus `env`.
fn push(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cargo-scf"));
    c.args(["scf", "push"]).args(args).env("HOME", home);
    for var in [
        "SCF_REGISTRY_USERNAME",
        "SCF_REGISTRY_PASSWORD",
        "DOCKER_CONFIG",
        "REGISTRY_AUTH_FILE",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
    ] {
        c.env_remove(var);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    run_bounded(&mut c, RUN)
}

/// Asserts a successful push of `layout` that printed `ref@digest` last.
fn assert_pushed(r: &Run, reference: &str, digest: &str) {
    assert!(r.ok, "the push failed:\n{}", r.all());
    assert_eq!(
        r.last_line(),
        format!("{reference}@{digest}"),
        "{}",
        r.all()
    );
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.all());
}

/// The manifest the registry serves for `repo:tag` (over HTTPS trusting `ca`, if given): its
/// bytes, content type and digest header.
fn fetch_manifest(
    base: &str,
    repo: &str,
    tag: &str,
    auth: Option<&str>,
    ca: Option<&str>,
) -> (Vec<u8>, String, String) {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)));
    if let Some(pem) = ca {
        let cert = ureq::tls::Certificate::from_pem(pem.as_bytes()).unwrap();
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
                .build(),
        );
    }
    let agent = ureq::Agent::new_with_config(config.build());
    let mut req = agent.get(format!("{base}/v2/{repo}/manifests/{tag}")).header(
        "Accept",
        "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
    );
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let mut resp = req.call().expect("GET the manifest");
    assert_eq!(resp.status(), 200, "GET the manifest");
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (ct, digest) = (header("content-type"), header("docker-content-digest"));
    let body = resp.body_mut().read_to_vec().unwrap();
    (body, ct, digest)
}

/// `skopeo inspect`'s digest of a pushed image (`None`, skipped, without skopeo).
fn skopeo_digest(image: &str) -> Option<String> {
    if !works("skopeo") {
        skip("skopeo is not installed");
        return None;
    }
    let r = tool(
        Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--retry-times", "0"])
            .arg(format!("docker://{image}")),
    );
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    Some(v["Digest"].as_str().unwrap().to_owned())
}

/// Plain HTTP with `--insecure`: the push prints `REF@digest`, a second push skips both
/// blobs and prints the same digest, the registry serves the layout's manifest bytes with
/// their media type, skopeo sees the digest, a skopeo-written OCI layout pushes too; without
/// `--insecure` the push fails and says why.
#[test]
fn test_plain_http_push_again_skips_blobs_and_skopeo_sees_the_digest() {
    let Some(program) = registry_program() else {
        return;
    };
    let reg = Registry::start(program, None, &Auth::None);
    let home = tempfile::tempdir().unwrap();
    let layout = tempfile::tempdir().unwrap();
    let image = write_layout(layout.path(), Format::Docker, b"plain http\n");
    let reference = format!("{}/test/plain:v1", reg.host());
    let dir = layout.path().to_str().unwrap();

    let first = push(
        home.path(),
        &["--insecure", "--layout", dir, &reference],
        &[],
    );
    assert_pushed(&first, &reference, &image.digest);
    assert_eq!(
        first.stderr.matches("uploaded").count(),
        2,
        "{}",
        first.all()
    );
    assert!(
        first.stderr.contains("no authentication asked"),
        "{}",
        first.all()
    );

    // Again: the registry has both blobs; the same digest.
    let again = push(
        home.path(),
        &["--insecure", "--layout", dir, &reference],
        &[],
    );
    assert_pushed(&again, &reference, &image.digest);
    assert_eq!(
        again.stderr.matches("skipped").count(),
        2,
        "{}",
        again.all()
    );
    assert!(!again.stderr.contains("uploaded"), "{}", again.all());

    // The registry holds the layout's manifest byte for byte, with its media type.
    let base = format!("http://{}", reg.host());
    let (bytes, content_type, digest) = fetch_manifest(&base, "test/plain", "v1", None, None);
    assert_eq!(bytes, image.manifest);
    assert_eq!(content_type, image.media_type);
    assert_eq!(digest, image.digest);

    // Without --insecure, HTTPS to a plain-HTTP registry: refused, saying why.
    let tls = push(home.path(), &["--layout", dir, &reference], &[]);
    assert!(!tls.ok, "{}", tls.all());
    assert!(tls.stdout.is_empty(), "{}", tls.all());
    assert!(
        tls.stderr
            .contains("does not speak TLS: a plain-HTTP registry?")
            && tls.stderr.contains("--insecure"),
        "{}",
        tls.all()
    );

    // skopeo reads what was pushed; the layout skopeo writes of it (converted to OCI) pushes
    // too.
    if let Some(d) = skopeo_digest(&reference) {
        assert_eq!(d, image.digest);
        let converted = tempfile::tempdir().unwrap();
        tool(
            Command::new("skopeo")
                .args([
                    "copy",
                    "--quiet",
                    "--src-tls-verify=false",
                    "--format",
                    "oci",
                ])
                .arg(format!("docker://{reference}"))
                .arg(format!("oci:{}:converted", converted.path().display())),
        );
        let oci_ref = format!("{}/test/plain:oci", reg.host());
        let r = push(
            home.path(),
            &[
                "--insecure",
                "--layout",
                converted.path().to_str().unwrap(),
                &oci_ref,
            ],
            &[],
        );
        assert!(r.ok, "{}", r.all());
        assert!(r.stderr.contains("OCI manifest"), "{}", r.all());
        let printed = r.last_line().rsplit_once('@').unwrap().1.to_owned();
        assert_ne!(
            printed, image.digest,
            "a converted manifest has a digest of its own"
        );
        assert_eq!(skopeo_digest(&oci_ref).unwrap(), printed);
        let (_, content_type, _) = fetch_manifest(&base, "test/plain", "oci", None, None);
        assert_eq!(content_type, "application/vnd.oci.image.manifest.v1+json");
    }
}

/// htpasswd over TLS from a private CA given with `--ca-file`: credentials from the
/// environment, Docker's `auths` (a URL-form key), a credential helper, podman's auth file (a
/// namespace key); a wrong password, half of the environment's pair, none at all and no
/// `--ca-file` each fail with a clear message; no secret is ever printed.
#[test]
fn test_basic_auth_over_tls_with_credentials_from_each_source() {
    let Some(program) = registry_program() else {
        return;
    };
    let ca = TestCa::new();
    let user = "scf-pusher";
    let password = "Pw-3c7e91d0a4b5-secret";
    let reg = Registry::start(
        program,
        Some((&ca.cert_pem, &ca.key_pem)),
        &Auth::Htpasswd {
            user: user.into(),
            password: password.into(),
        },
    );
    let auth_b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let secrets = [password, auth_b64.as_str()];
    let home = tempfile::tempdir().unwrap();
    let ca_file = home.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let ca_file = ca_file.to_str().unwrap();
    let layout = tempfile::tempdir().unwrap();
    let image = write_layout(layout.path(), Format::Oci, b"basic over tls\n");
    let dir = layout.path().to_str().unwrap();
    let host = reg.host();
    let env_creds = [
        ("SCF_REGISTRY_USERNAME", user),
        ("SCF_REGISTRY_PASSWORD", password),
    ];

    // 1. The environment.
    let reference = format!("{host}/ns/from-env:1");
    let r = push(
        home.path(),
        &["--ca-file", ca_file, "--layout", dir, &reference],
        &env_creds,
    );
    assert_pushed(&r, &reference, &image.digest);
    assert!(
        r.stderr
            .contains("over HTTPS: basic authentication, credentials from $SCF_REGISTRY_USERNAME"),
        "{}",
        r.all()
    );
    r.assert_hides(&secrets);
    let (bytes, ct, _) = fetch_manifest(
        &format!("https://{host}"),
        "ns/from-env",
        "1",
        Some(&format!("Basic {auth_b64}")),
        Some(&ca.ca_pem),
    );
    assert_eq!(
        (bytes, ct.as_str()),
        (image.manifest.clone(), image.media_type)
    );

    // 2. Docker's config, under a key in URL form (`docker login https://HOST` writes it so).
    let docker = home.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        json!({"auths": {format!("https://{host}/v1/"): {"auth": auth_b64}}}).to_string(),
    )
    .unwrap();
    let reference = format!("{host}/ns/from-docker:1");
    let r = push(
        home.path(),
        &["--ca-file", ca_file, "--layout", dir, &reference],
        &[("DOCKER_CONFIG", docker.to_str().unwrap())],
    );
    assert_pushed(&r, &reference, &image.digest);
    assert!(
        r.stderr.contains("config.json (auths.\"https://"),
        "{}",
        r.all()
    );
    r.assert_hides(&secrets);

    // 3. Docker's config naming a credential helper for the host.
    let helper_home = tempfile::tempdir().unwrap();
    let bin = registry::credential_helper(helper_home.path(), "scftest", &host, user, password);
    std::fs::create_dir_all(helper_home.path().join(".docker")).unwrap();
    std::fs::write(
        helper_home.path().join(".docker/config.json"),
        json!({"auths": {}, "credHelpers": {host.clone(): "scftest"}}).to_string(),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let reference = format!("{host}/ns/from-helper:1");
    let r = push(
        helper_home.path(),
        &["--ca-file", ca_file, "--layout", dir, &reference],
        &[("PATH", &path)],
    );
    assert_pushed(&r, &reference, &image.digest);
    assert!(
        r.stderr
            .contains("docker-credential-scftest (credHelpers in"),
        "{}",
        r.all()
    );
    r.assert_hides(&secrets);

    // 4. podman's auth file, under the namespace's key.
    let auth_file = home.path().join("auth.json");
    std::fs::write(
        &auth_file,
        json!({"auths": {format!("{host}/ns"): {"auth": auth_b64}}}).to_string(),
    )
    .unwrap();
    let reference = format!("{host}/ns/from-podman:1");
    let r = push(
        home.path(),
        &["--ca-file", ca_file, "--layout", dir, &reference],
        &[("REGISTRY_AUTH_FILE", auth_file.to_str().unwrap())],
    );
    assert_pushed(&r, &reference, &image.digest);
    assert!(
        r.stderr
            .contains(&format!("auth.json (auths.\"{host}/ns\")")),
        "{}",
        r.all()
    );
    r.assert_hides(&secrets);

    // A wrong password: refused, with the registry's own message; no secret shown.
    let wrong = "Wrong-9f8e7d6c5b4a";
    let r = push(
        home.path(),
        &[
            "--ca-file",
            ca_file,
            "--layout",
            dir,
            &format!("{host}/ns/wrong:1"),
        ],
        &[
            ("SCF_REGISTRY_USERNAME", user),
            ("SCF_REGISTRY_PASSWORD", wrong),
        ],
    );
    assert!(!r.ok && r.stdout.is_empty(), "{}", r.all());
    assert!(
        r.stderr
            .contains("refused the credentials from $SCF_REGISTRY_USERNAME")
            && r.stderr.contains("UNAUTHORIZED"),
        "{}",
        r.all()
    );
    let wrong_b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{wrong}"));
    r.assert_hides(&[wrong, &wrong_b64, password, &auth_b64]);

    // Half of the environment's pair: said, not guessed.
    let r = push(
        home.path(),
        &[
            "--ca-file",
            ca_file,
            "--layout",
            dir,
            &format!("{host}/ns/half:1"),
        ],
        &[("SCF_REGISTRY_PASSWORD", password)],
    );
    assert!(!r.ok, "{}", r.all());
    assert!(
        r.stderr
            .contains("SCF_REGISTRY_PASSWORD is set but SCF_REGISTRY_USERNAME is not"),
        "{}",
        r.all()
    );
    r.assert_hides(&secrets);

    // No credentials at all: says how to give them.
    let r = push(
        home.path(),
        &[
            "--ca-file",
            ca_file,
            "--layout",
            dir,
            &format!("{host}/ns/none:1"),
        ],
        &[],
    );
    assert!(!r.ok, "{}", r.all());
    assert!(
        r.stderr.contains("asks for credentials") && r.stderr.contains("SCF_REGISTRY_PASSWORD"),
        "{}",
        r.all()
    );

    // Without --ca-file the private CA is not trusted: said, with the way out.
    let r = push(
        home.path(),
        &["--layout", dir, &format!("{host}/ns/no-ca:1")],
        &env_creds,
    );
    assert!(!r.ok, "{}", r.all());
    assert!(
        r.stderr.contains("TLS with 127.0.0.1") && r.stderr.contains("--ca-file"),
        "{}",
        r.all()
    );
    r.assert_hides(&secrets);

    // The registry saw what the pushes sent; the secrets are not in this test's output either.
    assert!(!reg.log().is_empty());
}

/// The token protocol: one token per push, asked with the credentials for the repository's
/// pull and push, accepted by the registry; a wrong password and no credentials fail clearly;
/// neither the password nor any token is printed.
#[test]
fn test_token_auth_one_token_per_push_and_a_wrong_password() {
    let Some(program) = registry_program() else {
        return;
    };
    let user = "token-user";
    let password = "Tok-Pw-5a6b7c8d9e0f";
    let issuer = TokenServer::start(user, password);
    let reg = Registry::start(program, None, &Auth::Token(issuer.config()));
    let home = tempfile::tempdir().unwrap();
    let layout = tempfile::tempdir().unwrap();
    let image = write_layout(layout.path(), Format::Docker, b"token\n");
    let dir = layout.path().to_str().unwrap();
    let reference = format!("{}/team/token-fn:2024", reg.host());
    let env_creds = [
        ("SCF_REGISTRY_USERNAME", user),
        ("SCF_REGISTRY_PASSWORD", password),
    ];
    let auth_b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));

    let r = push(
        home.path(),
        &["--insecure", "--layout", dir, &reference],
        &env_creds,
    );
    assert_pushed(&r, &reference, &image.digest);
    assert!(
        r.stderr.contains(&format!("token from {}", issuer.realm)),
        "{}",
        r.all()
    );
    {
        let seen = issuer.requests.lock().unwrap();
        assert_eq!(seen.len(), 1, "one token for the whole push: {seen:?}");
        assert_eq!(seen[0].credentials, Some(true));
        assert_eq!(seen[0].service.as_deref(), Some(issuer.service.as_str()));
        assert!(
            seen[0]
                .scopes
                .contains(&"repository:team/token-fn:pull,push".to_owned()),
            "{seen:?}"
        );
    }
    let tokens = issuer.issued.lock().unwrap().clone();
    let mut secrets: Vec<&str> = vec![password, &auth_b64];
    secrets.extend(tokens.iter().map(String::as_str));
    r.assert_hides(&secrets);

    // Again, with a new token: both blobs skipped.
    let r = push(
        home.path(),
        &["--insecure", "--layout", dir, &reference],
        &env_creds,
    );
    assert_pushed(&r, &reference, &image.digest);
    assert_eq!(r.stderr.matches("skipped").count(), 2, "{}", r.all());
    let tokens = issuer.issued.lock().unwrap().clone();
    assert_eq!(tokens.len(), 2);
    let mut secrets: Vec<&str> = vec![password, &auth_b64];
    secrets.extend(tokens.iter().map(String::as_str));
    r.assert_hides(&secrets);

    // The token the registry accepts is what reads the manifest back.
    let (bytes, _, digest) = fetch_manifest(
        &format!("http://{}", reg.host()),
        "team/token-fn",
        "2024",
        Some(&format!("Bearer {}", tokens[1])),
        None,
    );
    assert_eq!(
        (bytes, digest),
        (image.manifest.clone(), image.digest.clone())
    );

    // A wrong password: the token server refuses it, and the message says so.
    let wrong = "Nope-0a1b2c3d4e5f";
    let r = push(
        home.path(),
        &["--insecure", "--layout", dir, &reference],
        &[
            ("SCF_REGISTRY_USERNAME", user),
            ("SCF_REGISTRY_PASSWORD", wrong),
        ],
    );
    assert!(!r.ok && r.stdout.is_empty(), "{}", r.all());
    assert!(
        r.stderr.contains("token server") && r.stderr.contains("refused the credentials"),
        "{}",
        r.all()
    );
    assert!(
        r.stderr.contains("wrong username or password"),
        "{}",
        r.all()
    );
    let wrong_b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{wrong}"));
    let mut all_secrets: Vec<&str> = vec![wrong, &wrong_b64];
    all_secrets.extend(secrets);
    r.assert_hides(&all_secrets);

    // No credentials: an anonymous token is refused; the message says how to log in.
    let r = push(
        home.path(),
        &["--insecure", "--layout", dir, &reference],
        &[],
    );
    assert!(!r.ok, "{}", r.all());
    assert!(r.stderr.contains("docker login"), "{}", r.all());
}

/// Bad references, a missing or damaged layout, an index of two images, a `--ca-file` of no
/// certificate, an unreachable registry: each a one-line error, nothing on stdout, no panic.
#[test]
fn test_bad_input_fails_clearly() {
    let home = tempfile::tempdir().unwrap();
    let layout = tempfile::tempdir().unwrap();
    let image = write_layout(layout.path(), Format::Docker, b"bad input\n");
    let dir = layout.path().to_str().unwrap();
    let fails = |args: &[&str], expected: &str| {
        let r = push(home.path(), args, &[]);
        assert!(!r.ok && r.stdout.is_empty(), "{args:?}:\n{}", r.all());
        assert!(
            r.stderr.contains(expected),
            "{args:?}: expected {expected:?}:\n{}",
            r.all()
        );
        assert!(!r.stderr.contains("panicked"), "{}", r.all());
    };
    fails(&["--layout", dir, "ns/fn:v1"], "names no registry");
    fails(
        &["--layout", dir, "http://127.0.0.1:5000/fn:v1"],
        "drop the http://",
    );
    fails(
        &["--layout", dir, "127.0.0.1:5000/NS/fn"],
        "must be lowercase",
    );
    fails(
        &[
            "--layout",
            dir,
            &format!("127.0.0.1:5000/ns/fn@{}", image.digest),
        ],
        "a push goes to a tag",
    );
    fails(
        &["--layout", dir, "127.0.0.1:5000/ns/fn:"],
        "tag after `:` is empty",
    );
    // Nothing listens on port 1 of loopback.
    fails(
        &["--insecure", "--layout", dir, "127.0.0.1:1/ns/fn"],
        "cannot connect to 127.0.0.1:1",
    );
    let missing = home.path().join("nothing-here");
    fails(
        &["--layout", missing.to_str().unwrap(), "127.0.0.1:1/ns/fn"],
        "write it with `cargo scf image` first",
    );
    // A damaged layout: a blob one byte short, then missing; a manifest that is not its digest.
    let layer = layout
        .path()
        .join("blobs/sha256")
        .join(&image.blobs[0][7..]);
    let bytes = std::fs::read(&layer).unwrap();
    std::fs::write(&layer, &bytes[1..]).unwrap();
    fails(
        &["--insecure", "--layout", dir, "127.0.0.1:1/ns/fn"],
        "the manifest says",
    );
    std::fs::remove_file(&layer).unwrap();
    fails(
        &["--insecure", "--layout", dir, "127.0.0.1:1/ns/fn"],
        "is not in the layout",
    );
    let manifest = layout.path().join("blobs/sha256").join(&image.digest[7..]);
    let mut m = std::fs::read(&manifest).unwrap();
    m[0] = b' ';
    std::fs::write(&manifest, m).unwrap();
    fails(
        &["--insecure", "--layout", dir, "127.0.0.1:1/ns/fn"],
        "does not have the digest",
    );
    // An index of two images.
    let two = tempfile::tempdir().unwrap();
    write_layout(two.path(), Format::Oci, b"one\n");
    let index: Value =
        serde_json::from_slice(&std::fs::read(two.path().join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"][0].clone();
    let index = json!({"schemaVersion": 2, "manifests": [entry.clone(), entry]});
    std::fs::write(two.path().join("index.json"), index.to_string()).unwrap();
    fails(
        &[
            "--insecure",
            "--layout",
            two.path().to_str().unwrap(),
            "127.0.0.1:1/ns/fn",
        ],
        "names 2 images",
    );
    // A --ca-file that holds no certificate.
    let not_pem = home.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let good = tempfile::tempdir().unwrap();
    write_layout(good.path(), Format::Oci, b"good\n");
    fails(
        &[
            "--ca-file",
            not_pem.to_str().unwrap(),
            "--layout",
            good.path().to_str().unwrap(),
            "127.0.0.1:1/ns/fn",
        ],
        "no certificate in it",
    );
}

/// The repository's root (the workspace).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A container, removed when dropped.
struct Container(
    /// Its ID.
    String,
);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = try_run(
            Command::new("podman").args(["--runtime", "runc", "rm", "-f", "-t", "0", &self.0]),
            TOOL,
        );
    }
}

/// An image in podman's store, removed when dropped.
struct PulledImage(
    /// Its reference.
    String,
);

impl Drop for PulledImage {
    fn drop(&mut self) {
        let _ = try_run(
            Command::new("podman").args(["--runtime", "runc", "rmi", "-f", &self.0]),
            TOOL,
        );
    }
}

/// scf-lean's echo, imaged by `cargo scf image` and pushed: podman pulls it by tag and by the
/// printed `REF@digest` (the digest podman sees is the one printed), runs it as SCF does, and
/// it answers an event with 200.
#[test]
fn test_pushed_image_is_pulled_by_podman_and_runs_as_scf_runs_it() {
    let Some(program) = registry_program() else {
        return;
    };
    if !works("podman") || !works("runc") {
        return skip("podman or runc is not installed");
    }
    let sysroot = run_bounded(Command::new("rustc").args(["--print", "sysroot"]), TOOL);
    let target = "x86_64-unknown-linux-musl";
    if !Path::new(sysroot.stdout.trim())
        .join("lib/rustlib")
        .join(target)
        .exists()
    {
        return skip("the x86_64-unknown-linux-musl target is not installed");
    }
    // scf-lean's echo, the reference function, built as the image test builds it.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    tool(
        Command::new(cargo)
            .current_dir(workspace())
            .args(["build", "--release", "--target", target, "-p", "scf-lean"])
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR"),
    );
    let binary = workspace()
        .join("target")
        .join(target)
        .join("release/scf-lean");
    // Its image, by `cargo scf image`.
    let layout = tempfile::tempdir().unwrap();
    tool(
        Command::new(env!("CARGO_BIN_EXE_cargo-scf"))
            .current_dir(workspace())
            .args(["scf", "image", "--binary"])
            .arg(&binary)
            .arg("--oci-dir")
            .arg(layout.path())
            .args(["--tag", "scf-lean:push-test"]),
    );
    let reg = Registry::start(program, None, &Auth::None);
    let home = tempfile::tempdir().unwrap();
    let reference = format!("{}/scf/echo:{}", reg.host(), std::process::id());
    let r = push(
        home.path(),
        &[
            "--insecure",
            "--layout",
            layout.path().to_str().unwrap(),
            &reference,
        ],
        &[],
    );
    assert!(r.ok, "{}", r.all());
    eprint!("{}", r.stderr);
    let image_uri = r.last_line().to_owned();
    let digest = image_uri.rsplit_once('@').unwrap().1.to_owned();
    assert!(
        image_uri.starts_with(&format!("{reference}@sha256:")),
        "{}",
        r.all()
    );

    // podman pulls it by the ImageUri SCF would be given (tag and digest).
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.args(["--runtime", "runc"]).args(args);
        c
    };
    let _pulled = PulledImage(reference.clone());
    tool(&mut podman(&[
        "pull",
        "-q",
        "--tls-verify=false",
        &reference,
    ]));
    let _pulled_by_digest = PulledImage(image_uri.clone());
    tool(&mut podman(&[
        "pull",
        "-q",
        "--tls-verify=false",
        &image_uri,
    ]));
    let inspected = tool(&mut podman(&[
        "image",
        "inspect",
        "--format",
        "{{.Digest}}",
        &reference,
    ]));
    assert_eq!(inspected.stdout.trim(), digest);

    // Run as SCF runs it; an event answered 200.
    let mut run = vec!["run", "-d"];
    run.extend_from_slice(scf_lean::testing::image::SCF_LIKE);
    run.extend_from_slice(&["-p", "127.0.0.1::9000", &reference]);
    let started = tool(&mut podman(&run));
    let container = Container(started.stdout.trim().to_owned());
    let port = tool(&mut podman(&["port", &container.0, "9000/tcp"]));
    let addr: std::net::SocketAddr = port
        .stdout
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in `podman port`: {}", port.stdout));
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(5)))
            .build(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, body) = loop {
        // The port is published before the function listens.
        match agent
            .post(format!("http://{addr}/event-invoke"))
            .header("Content-Type", "application/json")
            .header("X-Scf-Request-Id", "push-test-1")
            .send(r#"{"Type":"timer"}"#)
        {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                break (status, resp.body_mut().read_to_string().unwrap_or_default());
            }
            Err(e) if Instant::now() > deadline => panic!("no answer from the container: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["event"]["Type"], "timer", "{body}");
    eprintln!("{image_uri}: pulled by podman, run as SCF runs it, event answered 200");
    drop(container);
}

/// A registry that answers too much, asks for an unknown scheme, points credentials or uploads
/// at plain HTTP elsewhere, omits the upload's Location, stores the manifest under another
/// digest, redirects forever, or sends terminal escapes: a clear error, escaped, no panic.
#[test]
fn test_a_broken_or_hostile_registry_gets_a_clear_error() {
    use registry::{Reply, Scripted};
    let home = tempfile::tempdir().unwrap();
    let layout = tempfile::tempdir().unwrap();
    let image = write_layout(layout.path(), Format::Docker, b"hostile\n");
    let dir = layout.path().to_str().unwrap().to_owned();
    let reply = |status: u16, headers: &[(&str, &str)], body: &[u8]| -> Reply {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (status, headers, body.to_vec())
    };
    let fails = |server: &Scripted, expected: &[&str]| {
        let reference = format!("{}/ns/fn:1", server.addr);
        let r = push(
            home.path(),
            &["--insecure", "--layout", &dir, &reference],
            &[],
        );
        assert!(!r.ok && r.stdout.is_empty(), "{}", r.all());
        for e in expected {
            assert!(r.stderr.contains(e), "expected {e:?}:\n{}", r.all());
        }
        assert!(!r.stderr.contains("panicked"), "{}", r.all());
        assert!(
            !r.stderr.contains('\x1b'),
            "a raw escape reached the terminal:\n{}",
            r.all()
        );
        eprintln!("{}", r.stderr.lines().last().unwrap_or(""));
    };

    // An error answer of 1 MiB: read up to the cap only.
    let big = Scripted::start(move |_, _| reply(500, &[], &vec![b'x'; 1 << 20]));
    fails(&big, &["with more than 65536 bytes"]);
    // An authentication scheme no registry client speaks.
    let negotiate =
        Scripted::start(move |_, _| reply(401, &[("WWW-Authenticate", "Negotiate")], b""));
    fails(
        &negotiate,
        &["neither basic nor a bearer token", "Negotiate"],
    );
    // A token realm on another host in plain HTTP: never asked (credentials would go there).
    let realm = Scripted::start(move |_, _| {
        reply(
            401,
            &[(
                "WWW-Authenticate",
                r#"Bearer realm="http://127.0.0.2:9/token",service="x""#,
            )],
            b"",
        )
    });
    fails(
        &realm,
        &[
            "refusing the plain-HTTP URL http://127.0.0.2:9/token",
            "registry's host",
        ],
    );
    // An upload started without a Location, then one sent to another host in plain HTTP.
    let upload = |location: Option<&'static str>| {
        move |method: &str, path: &str| -> Reply {
            match (method, path) {
                ("GET", "/v2/") => reply(200, &[], b"{}"),
                ("HEAD", _) => reply(404, &[], b""),
                ("POST", _) => match location {
                    Some(l) => reply(202, &[("Location", l)], b""),
                    None => reply(202, &[], b""),
                },
                _ => reply(500, &[], b"unexpected"),
            }
        }
    };
    fails(
        &Scripted::start(upload(None)),
        &["started an upload without a Location"],
    );
    fails(
        &Scripted::start(upload(Some("http://127.0.0.2:1/upload?x=1"))),
        &["refusing the plain-HTTP URL http://127.0.0.2:1/upload"],
    );
    // Blobs accepted, the manifest stored under another digest: a push that did not happen.
    let other = format!("sha256:{}", "0".repeat(64));
    let lying = Scripted::start(move |method, path| match (method, path) {
        ("GET", "/v2/") => reply(200, &[], b"{}"),
        ("HEAD", p) if p.contains("/blobs/") => reply(200, &[], b""),
        ("PUT", p) if p.contains("/manifests/") => {
            reply(201, &[("Docker-Content-Digest", other.as_str())], b"")
        }
        _ => reply(500, &[], b"unexpected"),
    });
    fails(
        &lying,
        &["stored the manifest under another digest", &image.digest],
    );
    // A redirect loop.
    let looping = Scripted::start(move |_, _| reply(302, &[("Location", "/v2/")], b""));
    fails(&looping, &["more than 5 redirects"]);
    // A registry's error message with terminal escapes: shown escaped.
    let escapes = Scripted::start(move |_, _| {
        reply(
            400,
            &[("Content-Type", "application/json")],
            br#"{"errors":[{"code":"DENIED","message":"\u001b[2Jgone"}]}"#,
        )
    });
    fails(&escapes, &["HTTP 400", "DENIED: \\u{1b}[2Jgone"]);
}
