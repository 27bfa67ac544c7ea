//! `cargo scf deploy` against a stand-in for SCF's API on loopback (`tests/tc3/scf_api.py`):
//! a server that checks every request's TC3-HMAC-SHA256 signature by the API 3.0 document's
//! algorithm (written in Python from the document, sharing nothing with the tool), the common
//! headers, the parameters SCF checks, and answers as the API documents, its error shape
//! included. Functions there go Creating/Updating → Active, or fail with StatusReasons.
//!
//! - a web function created with its settings, then updated, each time waited for until Active;
//! - settings from `[package.metadata.scf]`; an unknown key refused;
//! - temporary credentials: the token sent, from the environment and from tccli's file;
//! - the API's errors in plain words (a wrong key, an unknown id); a failed status with SCF's
//!   reasons; a function that never becomes Active, given up on after `--wait`;
//! - `--dry-run`: every call printed as HTTP/1.1, signed (the stand-in verifies the printed
//!   signatures), nothing sent;
//! - every limit at its edges (memory, timeout, concurrency, the function's name, the image);
//! - without `--image`: a function built, its image written and pushed to a real registry on
//!   loopback (Debian's docker-registry), and that digest deployed.
//!
//! No secret key, token or full secret id ever appears in what the command prints, on any path.

#[path = "common/registry.rs"]
mod registry;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ID: &str = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE";
const KEY: &str = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";
const TOKEN: &str = "a-temporary-session-token-0123456789";
/// How long one run of the command may take.
const RUN: Duration = Duration::from_secs(120);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tc3/scf_api.py")
}

/// The stand-in API, killed when dropped.
struct Api {
    child: Child,
    url: String,
    log: tempfile::NamedTempFile,
}

impl Api {
    fn start(token: Option<&str>) -> Api {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut c = Command::new("python3");
        c.arg(script())
            .args(["--secret-id", ID, "--secret-key", KEY, "--log"])
            .arg(log.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(t) = token {
            c.args(["--token", t]);
        }
        let mut child = c.spawn().expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("the stand-in API did not start: {line:?}")
            })
            .to_owned();
        Api {
            child,
            url: format!("http://{addr}"),
            log,
        }
    }

    /// The calls that passed the signature check: (action, params, token sent).
    fn calls(&self) -> Vec<(String, Value, bool)> {
        std::fs::read_to_string(self.log.path())
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["action"].as_str().unwrap().to_owned(),
                    v["params"].clone(),
                    v["token"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    fn actions(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.0).collect()
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// `cargo scf deploy ARGS` in `dir`, with credentials `env` (and none of the caller's).
fn deploy(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cargo-scf"));
    c.current_dir(dir).arg("scf").arg("deploy").args(args);
    for k in [
        "TENCENTCLOUD_SECRET_ID",
        "TENCENTCLOUD_SECRET_KEY",
        "TENCENTCLOUD_SESSION_TOKEN",
        "TENCENTCLOUD_REGION",
        "TENCENTCLOUD_SCF_ENDPOINT",
        "TCCLI_PROFILE",
    ] {
        c.env_remove(k);
    }
    // tccli's files are looked for under HOME: the test's directory. Cargo and rustup keep
    // theirs.
    if let Some(home) = std::env::var_os("HOME") {
        let home = PathBuf::from(home);
        if std::env::var_os("CARGO_HOME").is_none() {
            c.env("CARGO_HOME", home.join(".cargo"));
        }
        if std::env::var_os("RUSTUP_HOME").is_none() {
            c.env("RUSTUP_HOME", home.join(".rustup"));
        }
    }
    c.env("HOME", dir);
    c.envs(env.iter().copied());
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, RUN);
    // Whatever happened, no secret was printed, in any case.
    let all = out.all().to_ascii_lowercase();
    for s in [KEY, TOKEN, ID] {
        assert!(
            !all.contains(&s.to_ascii_lowercase()),
            "a secret ({s}) was printed:\n{}",
            out.all()
        );
    }
    out
}

fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    use std::io::Read as _;
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let a = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let b = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the command ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        code: status.code(),
        stdout: a.join().unwrap(),
        stderr: b.join().unwrap(),
    }
}

fn creds() -> Vec<(&'static str, &'static str)> {
    vec![
        ("TENCENTCLOUD_SECRET_ID", ID),
        ("TENCENTCLOUD_SECRET_KEY", KEY),
    ]
}

fn digest(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

fn image(tag: &str) -> String {
    format!(
        "ccr.ccs.tencentyun.com/ns/my-fn:{tag}@sha256:{}",
        digest('a')
    )
}

fn ok(out: &Output) {
    assert_eq!(out.code, Some(0), "{}", out.all());
}

fn refused(out: &Output, needle: &str) {
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(
        out.stderr.contains(needle),
        "wanted {needle:?} in:\n{}",
        out.stderr
    );
}

#[test]
fn creates_a_web_function_then_updates_it_waiting_until_active() {
    let api = Api::start(None);
    let dir = tempfile::tempdir().unwrap();
    let first = image("v1");
    let out = deploy(
        dir.path(),
        &[
            "--function",
            "my-fn",
            "--region",
            "ap-shanghai",
            "--image",
            &first,
            "--endpoint",
            &api.url,
            "--type",
            "web",
            "--memory",
            "256",
            "--timeout",
            "30",
            "--env",
            "GREETING=hi there",
            "--env",
            "MODE=prod",
            "--concurrency",
            "10",
            "--accelerate",
        ],
        &creds(),
    );
    ok(&out);
    assert!(
        out.stdout.starts_with(&format!(
            "my-fn is Active in ap-shanghai (namespace default) on {first}"
        )),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("my-fn: Creating"), "{}", out.stderr);
    let calls = api.calls();
    assert_eq!(calls[0].0, "GetFunction");
    let (action, create, _) = &calls[1];
    assert_eq!(action, "CreateFunction");
    assert_eq!(
        create,
        &json!({
            "FunctionName": "my-fn", "Namespace": "default", "Type": "HTTP",
            "Runtime": "CustomImage", "MemorySize": 256, "Timeout": 30,
            "Environment": {"Variables": [
                {"Key": "GREETING", "Value": "hi there"}, {"Key": "MODE", "Value": "prod"},
                {"Key": "SCF_LEAN_CONCURRENCY", "Value": "10"}]},
            "InstanceConcurrencyConfig": {"DynamicEnabled": "FALSE", "MaxConcurrency": 10},
            "Code": {"ImageConfig": {"ImageType": "personal", "ImageUri": first,
                "ImagePort": 9000, "ContainerImageAccelerate": true}},
        })
    );
    // Polled until Active: the stand-in says Creating twice first.
    assert!(calls[2..].iter().all(|c| c.0 == "GetFunction"));
    assert!(calls.len() >= 5, "{calls:?}");

    // Again, with a new image and memory: the code, then the configuration.
    let second = image("v2");
    let before = calls.len();
    let out = deploy(
        dir.path(),
        &[
            "--function",
            "my-fn",
            "--region",
            "ap-shanghai",
            "--image",
            &second,
            "--endpoint",
            &api.url,
            "--memory",
            "512",
        ],
        &creds(),
    );
    ok(&out);
    assert!(out.stdout.contains(&second), "{}", out.stdout);
    let calls = api.calls();
    let actions: Vec<&str> = calls[before..]
        .iter()
        .map(|c| c.0.as_str())
        .filter(|a| *a != "GetFunction")
        .collect();
    assert_eq!(
        actions,
        ["UpdateFunctionCode", "UpdateFunctionConfiguration"]
    );
    let code = &calls
        .iter()
        .find(|c| c.0 == "UpdateFunctionCode")
        .unwrap()
        .1;
    assert_eq!(code["Code"]["ImageConfig"]["ImageUri"], json!(second));
    assert_eq!(code["Code"]["ImageConfig"]["ImagePort"], json!(9000));
    let conf = &calls
        .iter()
        .find(|c| c.0 == "UpdateFunctionConfiguration")
        .unwrap()
        .1;
    assert_eq!(
        conf,
        &json!({"FunctionName": "my-fn", "Namespace": "default", "MemorySize": 512})
    );

    // SCF cannot change a function's type: said before anything is changed.
    let before = api.calls().len();
    let out = deploy(
        dir.path(),
        &[
            "--function",
            "my-fn",
            "--region",
            "ap-shanghai",
            "--image",
            &second,
            "--endpoint",
            &api.url,
            "--type",
            "event",
        ],
        &creds(),
    );
    refused(&out, "cannot change a function's type");
    assert_eq!(api.actions()[before..], ["GetFunction"]);
}

/// A project with `[package.metadata.scf]`; cargo metadata reads it, nothing is built.
fn project(dir: &Path, table: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"table-fn\"\nversion = \"0.3.0\"\nedition = \"2021\"\n\n\
             [package.metadata.scf]\n{table}\n\n[workspace]\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
}

#[test]
fn settings_come_from_the_package_metadata_table() {
    let api = Api::start(None);
    let dir = tempfile::tempdir().unwrap();
    project(
        dir.path(),
        "region = \"ap-beijing\"\nnamespace = \"team\"\ntype = \"job\"\nmemory = 64\ntimeout = 900\n\
         registry-id = \"tcr-abc123\"\n[package.metadata.scf.env]\nRUST_LOG = \"info\"",
    );
    let img = format!(
        "team.tencentcloudcr.com/ns/table-fn:1@sha256:{}",
        digest('b')
    );
    let out = deploy(
        dir.path(),
        &["--image", &img, "--endpoint", &api.url],
        &creds(),
    );
    ok(&out);
    assert!(
        out.stdout
            .starts_with("table-fn is Active in ap-beijing (namespace team)"),
        "{}",
        out.stdout
    );
    let calls = api.calls();
    let create = &calls.iter().find(|c| c.0 == "CreateFunction").unwrap().1;
    assert_eq!(
        create,
        &json!({
            "FunctionName": "table-fn", "Namespace": "team", "Type": "Event",
            "Runtime": "CustomImage", "MemorySize": 64, "Timeout": 900,
            "Environment": {"Variables": [{"Key": "RUST_LOG", "Value": "info"}]},
            "Code": {"ImageConfig": {"ImageType": "enterprise", "RegistryId": "tcr-abc123",
                "ImageUri": img, "ImagePort": -1, "ContainerImageAccelerate": false}},
        })
    );
    // The flags win over the table.
    let out = deploy(
        dir.path(),
        &[
            "--image",
            &img,
            "--endpoint",
            &api.url,
            "--region",
            "ap-chengdu",
            "--dry-run",
        ],
        &creds(),
    );
    ok(&out);
    assert!(
        out.stdout.contains("X-TC-Region: ap-chengdu\r\n"),
        "{}",
        out.stdout
    );

    // A key the table does not have, and an enterprise image without its registry's id.
    project(dir.path(), "memroy = 256");
    let out = deploy(
        dir.path(),
        &[
            "--image",
            &img,
            "--endpoint",
            &api.url,
            "--region",
            "ap-beijing",
        ],
        &creds(),
    );
    refused(&out, "[package.metadata.scf]");
    assert!(out.stderr.contains("memroy"), "{}", out.stderr);
    project(dir.path(), "region = \"ap-beijing\"");
    let out = deploy(
        dir.path(),
        &["--image", &img, "--endpoint", &api.url],
        &creds(),
    );
    refused(&out, "--registry-id");
    // A setting's error says where it came from.
    project(dir.path(), "region = \"ap-beijing\"\nmemory = 200");
    let out = deploy(dir.path(), &["--image", &img, "--dry-run"], &creds());
    refused(&out, "memory 200 MB (memory in [package.metadata.scf])");
    let out = deploy(
        dir.path(),
        &["--image", &img, "--dry-run", "--memory", "100"],
        &creds(),
    );
    refused(&out, "memory 100 MB (--memory)");
}

#[test]
fn temporary_credentials_send_their_token_from_the_environment_or_tccli() {
    let api = Api::start(Some(TOKEN));
    let dir = tempfile::tempdir().unwrap();
    let img = image("t1");
    let args = [
        "--function",
        "tok-fn",
        "--region",
        "ap-guangzhou",
        "--image",
        &img,
        "--endpoint",
        &api.url,
    ];
    // Without the token the stand-in refuses, as the API does.
    let out = deploy(dir.path(), &args, &creds());
    refused(&out, "AuthFailure.TokenFailure");
    let mut env = creds();
    env.push(("TENCENTCLOUD_SESSION_TOKEN", TOKEN));
    ok(&deploy(dir.path(), &args, &env));
    assert!(api.calls().iter().all(|c| c.2));

    // tccli's credential file (HOME is the test's directory), and its profile's region.
    let tccli = dir.path().join(".tccli");
    std::fs::create_dir_all(&tccli).unwrap();
    std::fs::write(
        tccli.join("work.credential"),
        json!({"secretId": ID, "secretKey": KEY, "token": TOKEN}).to_string(),
    )
    .unwrap();
    std::fs::write(
        tccli.join("work.configure"),
        r#"{"_sys_param": {"region": "ap-nanjing", "output": "json"}}"#,
    )
    .unwrap();
    let out = deploy(
        dir.path(),
        &[
            "--function",
            "tok-fn",
            "--image",
            &img,
            "--endpoint",
            &api.url,
        ],
        &[("TCCLI_PROFILE", "work")],
    );
    ok(&out);
    assert!(out.stdout.contains("in ap-nanjing"), "{}", out.stdout);
    assert!(out.stderr.contains("work.credential"), "{}", out.stderr);
    // No credentials at all: what to do.
    let out = deploy(dir.path(), &args, &[]);
    refused(
        &out,
        "no Tencent Cloud credentials: set TENCENTCLOUD_SECRET_ID",
    );
    let out = deploy(dir.path(), &args, &[("TENCENTCLOUD_SECRET_ID", ID)]);
    refused(&out, "TENCENTCLOUD_SECRET_KEY is not");
}

#[test]
fn api_errors_and_failed_statuses_are_said_plainly() {
    let api = Api::start(None);
    let dir = tempfile::tempdir().unwrap();
    let img = image("e1");
    let base = [
        "--function",
        "err-fn",
        "--region",
        "ap-guangzhou",
        "--endpoint",
        &api.url,
    ];
    let with = |extra: &[&'static str], img: &str| -> Vec<String> {
        base.iter()
            .chain(extra)
            .map(|s| s.to_string())
            .chain(["--image".to_owned(), img.to_owned()])
            .collect()
    };
    let run = |args: Vec<String>, env: &[(&str, &str)]| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        deploy(dir.path(), &a, env)
    };
    // A wrong key: the API's code, its message, what to do, the request id.
    let out = run(
        with(&[], &img),
        &[
            ("TENCENTCLOUD_SECRET_ID", ID),
            ("TENCENTCLOUD_SECRET_KEY", "not-the-key-at-all"),
        ],
    );
    refused(&out, "GetFunction failed: AuthFailure.SignatureFailure");
    assert!(
        out.stderr.contains("the secret key does not match"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("(request id "), "{}", out.stderr);
    // An unknown id.
    let out = run(
        with(&[], &img),
        &[
            ("TENCENTCLOUD_SECRET_ID", "AKIDnot0the0one0at0all0here"),
            ("TENCENTCLOUD_SECRET_KEY", KEY),
        ],
    );
    refused(&out, "AuthFailure.SecretIdNotFound");
    // SCF cannot pull the image: its status and reasons, and what usually causes it.
    let pull = format!(
        "ccr.ccs.tencentyun.com/ns/pull-fails:1@sha256:{}",
        digest('c')
    );
    let out = run(with(&[], &pull), &creds());
    refused(&out, "its status is CreateFailed (pull image failed)");
    assert!(
        out.stderr
            .contains("reason: PullImageFailed: failed to pull image"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("SCF_QcsRole"), "{}", out.stderr);
    // Never Active: given up on after --wait.
    let never = format!(
        "ccr.ccs.tencentyun.com/ns/never-ready:1@sha256:{}",
        digest('d')
    );
    let args: Vec<String> = [
        "--function",
        "slow-fn",
        "--region",
        "ap-guangzhou",
        "--endpoint",
        &api.url,
        "--wait",
        "1",
        "--image",
        &never,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let t = Instant::now();
    let out = run(args, &creds());
    refused(&out, "slow-fn is still Creating after 1 s");
    assert!(t.elapsed() < Duration::from_secs(30));
    // Nothing answers at the endpoint.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = deploy(
        dir.path(),
        &[
            "--function",
            "err-fn",
            "--region",
            "ap-guangzhou",
            "--endpoint",
            &url,
            "--image",
            &img,
        ],
        &creds(),
    );
    refused(&out, "GetFunction: cannot reach");
}

#[test]
fn dry_run_prints_signed_requests_and_sends_nothing() {
    let api = Api::start(None);
    let dir = tempfile::tempdir().unwrap();
    let img = image("d1");
    let mut env = creds();
    env.push(("TENCENTCLOUD_SESSION_TOKEN", TOKEN));
    let out = deploy(
        dir.path(),
        &[
            "--function",
            "dry-fn",
            "--region",
            "ap-guangzhou",
            "--image",
            &img,
            "--endpoint",
            &api.url,
            "--type",
            "web",
            "--memory",
            "1024",
            "--dry-run",
        ],
        &env,
    );
    ok(&out);
    assert!(
        api.actions().is_empty(),
        "a dry run sent {:?}",
        api.actions()
    );
    let requests: Vec<&str> = out.stdout.split("POST / HTTP/1.1\r\n").skip(1).collect();
    let actions: Vec<&str> = requests
        .iter()
        .map(|r| {
            r.split("X-TC-Action: ")
                .nth(1)
                .unwrap()
                .split("\r\n")
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        actions,
        [
            "GetFunction",
            "CreateFunction",
            "UpdateFunctionCode",
            "UpdateFunctionConfiguration",
            "GetFunction"
        ]
    );
    for r in &requests {
        assert!(r.contains("Credential=AKID…MPLE/"), "{r}");
        assert!(
            r.contains("X-TC-Token: <temporary credentials' token, not shown>\r\n"),
            "{r}"
        );
        let body = r.split("\r\n\r\n").nth(1).unwrap().trim_end();
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["FunctionName"], json!("dry-fn"));
    }
    assert!(
        out.stdout.contains(r#""MemorySize":1024"#),
        "{}",
        out.stdout
    );
    // The printed requests are signed: the stand-in verifies each with the key.
    let verify = |key: &str| {
        let mut c = Command::new("python3")
            .arg(script())
            .args(["--verify", "--secret-key", key])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        c.stdin
            .take()
            .unwrap()
            .write_all(out.stdout.as_bytes())
            .unwrap();
        wait_bounded(c, RUN)
    };
    let good = verify(KEY);
    assert_eq!(good.stdout.trim(), "verified 5", "{}", good.all());
    let bad = verify("another-key");
    assert_ne!(bad.code, Some(0));
    assert!(bad.stderr.contains("SignatureFailure"), "{}", bad.all());
}

#[test]
fn every_limit_is_checked_at_its_edges() {
    let dir = tempfile::tempdir().unwrap();
    let img = image("l1");
    let dry = |extra: &[&str]| {
        let mut a = vec![
            "--function",
            "lim-fn",
            "--region",
            "ap-guangzhou",
            "--image",
            &img,
            "--dry-run",
        ];
        a.extend_from_slice(extra);
        deploy(dir.path(), &a, &creds())
    };
    for good in [
        &["--memory", "64"][..],
        &["--memory", "128"],
        &["--memory", "3072"],
        &["--timeout", "1"],
        &["--timeout", "900"],
        &["--type", "web", "--concurrency", "2"],
        &["--type", "web", "--concurrency", "100"],
        &["--env", "A_1=x=y"],
    ] {
        ok(&dry(good));
    }
    for (bad, says) in [
        (&["--memory", "65"][..], "memory 65 MB"),
        (&["--memory", "3200"], "memory 3200 MB"),
        (&["--memory", "200"], "in steps of 128"),
        (&["--timeout", "0"], "timeout 0 s"),
        (&["--timeout", "901"], "timeout 901 s"),
        (&["--type", "web", "--concurrency", "1"], "concurrency 1"),
        (
            &["--type", "web", "--concurrency", "101"],
            "concurrency 101",
        ),
        (
            &["--type", "event", "--concurrency", "5"],
            "for web functions",
        ),
        (
            &["--type", "job", "--concurrency", "5"],
            "event and job functions one event",
        ),
        (&["--env", "NOVALUE"], "give KEY=VALUE"),
        (&["--env", "1A=x"], "not starting with a digit"),
        (&["--env", "A="], "no empty value"),
    ] {
        refused(&dry(bad), says);
    }
    let out = deploy(
        dir.path(),
        &[
            "--function",
            "lim-fn",
            "--region",
            "ap guangzhou",
            "--image",
            &img,
            "--dry-run",
        ],
        &creds(),
    );
    refused(&out, "a region is like");
    for (name, says) in [
        ("a", "2 to 60"),
        ("1fn", "starting with a letter"),
        ("fn-", "not ending"),
    ] {
        let out = deploy(
            dir.path(),
            &[
                "--function",
                name,
                "--region",
                "x",
                "--image",
                &img,
                "--dry-run",
            ],
            &creds(),
        );
        refused(&out, says);
    }
    let sixty = format!("f{}", "n".repeat(59));
    ok(&deploy(
        dir.path(),
        &[
            "--function",
            &sixty,
            "--region",
            "ap-guangzhou",
            "--image",
            &img,
            "--dry-run",
        ],
        &creds(),
    ));
    for (bad, says) in [
        (
            "ccr.ccs.tencentyun.com/ns/fn:v1".to_owned(),
            "with its digest",
        ),
        (
            format!("ccr.ccs.tencentyun.com/ns/fn@sha256:{}", digest('e')),
            "name a tag",
        ),
        (
            "ccr.ccs.tencentyun.com/ns/fn:v1@sha256:1234".to_owned(),
            "64 lower-case hex",
        ),
    ] {
        let out = deploy(
            dir.path(),
            &[
                "--function",
                "lim-fn",
                "--region",
                "ap-guangzhou",
                "--image",
                &bad,
                "--dry-run",
            ],
            &creds(),
        );
        refused(&out, says);
    }
    // An image SCF cannot pull: said, not refused (a private mirror of TCR may be meant).
    let hub = format!("docker.io/library/lim-fn:1@sha256:{}", digest('f'));
    let out = deploy(
        dir.path(),
        &[
            "--function",
            "lim-fn",
            "--region",
            "ap-guangzhou",
            "--image",
            &hub,
            "--dry-run",
        ],
        &creds(),
    );
    ok(&out);
    assert!(
        out.stderr
            .contains("docker.io is not Tencent Container Registry"),
        "{}",
        out.stderr
    );
    let out = deploy(
        dir.path(),
        &[
            "--function",
            "lim-fn",
            "--region",
            "ap-guangzhou",
            "--image",
            &img,
            "--endpoint",
            "http://example.com",
        ],
        &creds(),
    );
    refused(&out, "loopback address only");
}

/// Without `--image`: built (a tiny function, for the musl target), written, pushed to a real
/// registry on loopback, and that digest deployed.
#[test]
fn without_an_image_it_builds_writes_and_pushes_first() {
    let Some(program) = registry::registry_program() else {
        assert!(
            std::env::var("SCF_LEAN_REQUIRE_IMAGE_TEST").map_or(true, |v| v != "1"),
            "SCF_LEAN_REQUIRE_IMAGE_TEST=1 and docker-registry is not installed"
        );
        eprintln!("SKIP: docker-registry is not installed (apt-get install docker-registry)");
        return;
    };
    let reg = registry::Registry::start(program, None, &registry::Auth::None);
    let api = Api::start(None);
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), "region = \"ap-guangzhou\"\ntype = \"web\"");
    let repository = format!("{}/ns/table-fn", reg.host());
    let out = deploy(
        dir.path(),
        &[
            "--repository",
            &repository,
            "--insecure",
            "--endpoint",
            &api.url,
        ],
        &creds(),
    );
    ok(&out);
    let create = api
        .calls()
        .into_iter()
        .find(|c| c.0 == "CreateFunction")
        .unwrap()
        .1;
    let uri = create["Code"]["ImageConfig"]["ImageUri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        uri.starts_with(&format!("{repository}:0.3.0@sha256:")),
        "{uri}"
    );
    // The registry has that manifest under that tag.
    let digest = uri.rsplit('@').next().unwrap();
    let manifest = manifest_digest(&format!(
        "http://{}/v2/ns/table-fn/manifests/0.3.0",
        reg.host()
    ));
    assert_eq!(manifest, digest, "{}", out.all());
    assert!(out.stdout.contains(&uri), "{}", out.stdout);
}

/// The `Docker-Content-Digest` a registry answers for a manifest.
fn manifest_digest(url: &str) -> String {
    let mut s =
        std::net::TcpStream::connect(url.trim_start_matches("http://").split('/').next().unwrap())
            .unwrap();
    use std::io::{Read as _, Write as _};
    let path = format!(
        "/{}",
        url.trim_start_matches("http://").split_once('/').unwrap().1
    );
    write!(
        s,
        "HEAD {path} HTTP/1.1\r\nHost: x\r\nAccept: application/vnd.docker.distribution.manifest.v2+json\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("docker-content-digest")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no digest in {text}"))
}

/// A hostile stand-in: answers each call with what `answer(action, n)` gives (n counts the
/// calls), or drops the connection when it gives `None`. Stops with the test.
struct Hostile {
    url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Hostile {
    fn start(answer: impl Fn(&str, usize) -> Option<String> + Send + 'static) -> Hostile {
        use std::io::{Read as _, Write as _};
        use std::sync::atomic::Ordering;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stopped.load(Ordering::SeqCst) {
                let Ok((mut c, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                c.set_nonblocking(false).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut req = Vec::new();
                let mut b = [0u8; 4096];
                // The head, then the body by its length.
                let (head_end, len) = loop {
                    let Ok(k) = c.read(&mut b) else { break (0, 0) };
                    if k == 0 {
                        break (0, 0);
                    }
                    req.extend_from_slice(&b[..k]);
                    if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&req[..i]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while head_end > 0 && req.len() < head_end + len {
                    let Ok(k) = c.read(&mut b) else { break };
                    if k == 0 {
                        break;
                    }
                    req.extend_from_slice(&b[..k]);
                }
                let head = String::from_utf8_lossy(&req).to_string();
                let action = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("x-tc-action: ")
                            .or(l.strip_prefix("X-TC-Action: "))
                    })
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                n += 1;
                if let Some(body) = answer(&action, n) {
                    let _ = write!(
                        c,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            }
        });
        Hostile { url, stop }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What a hostile API answers is never shown raw: the secrets it quotes back (in any case,
/// in any field: status, reasons, the request id, a message cut short) are redacted, control
/// characters escaped, long texts bounded; a call that fails on the way while waiting is tried
/// again.
#[test]
fn a_hostile_api_never_gets_a_secret_or_an_escape_printed() {
    let dir = tempfile::tempdir().unwrap();
    let img = image("h1");
    let mut env = creds();
    env.push(("TENCENTCLOUD_SESSION_TOKEN", TOKEN));
    let quoted = format!(
        "{KEY} {} {TOKEN} {}",
        KEY.to_ascii_lowercase(),
        ID.to_ascii_uppercase()
    );
    let reason = format!("{quoted} {}", "x".repeat(100_000));
    let api = Hostile::start(move |action, n| {
        match (action, n) {
        ("GetFunction", 1) => Some(
            json!({"Response": {"Error": {"Code": "ResourceNotFound.Function", "Message": "none"},
                "RequestId": format!("req-{KEY}")}})
            .to_string(),
        ),
        ("CreateFunction", _) => Some(json!({"Response": {"RequestId": "r"}}).to_string()),
        // A call dropped on the way while waiting: tried again.
        ("GetFunction", 3) => None,
        ("GetFunction", 4) => Some(
            json!({"Response": {"Status": "Creating\u{1b}[2J\u{1b}]0;pwned\u{7}",
                "StatusDesc": format!("desc {quoted} \u{1b}[31mRED"), "Type": "Event", "RequestId": "r"}})
            .to_string(),
        ),
        _ => Some(
            json!({"Response": {"Status": "CreateFailed", "StatusDesc": quoted,
                "StatusReasons": vec![json!({"ErrorCode": "PullImageFailed", "ErrorMessage": reason}); 20],
                "Type": "Event", "RequestId": format!("req-{TOKEN}")}})
            .to_string(),
        ),
    }
    });
    let out = deploy(
        dir.path(),
        &[
            "--function",
            "h-fn",
            "--region",
            "ap-guangzhou",
            "--image",
            &img,
            "--endpoint",
            &api.url,
        ],
        &env,
    );
    refused(&out, "its status is CreateFailed");
    assert!(out.stderr.contains("trying again"), "{}", out.stderr);
    assert!(out.stderr.contains("<redacted>"), "{}", out.stderr);
    assert!(
        !out.all().contains('\u{1b}') && !out.all().contains('\u{7}'),
        "{}",
        out.all()
    );
    assert!(out.stderr.contains("\\u{1b}[2J"), "{}", out.stderr);
    // Five reasons at most, each cut to 300 characters.
    assert!(out.stderr.len() < 8_000, "{} bytes", out.stderr.len());

    // A body that is not the API's JSON, whose secret crosses the cut at 300 characters.
    let body = format!("{}{KEY}", "x".repeat(300 - KEY.len() + 1));
    let api = Hostile::start(move |_, _| Some(body.clone()));
    let out = deploy(
        dir.path(),
        &[
            "--function",
            "h-fn",
            "--region",
            "ap-guangzhou",
            "--image",
            &img,
            "--endpoint",
            &api.url,
        ],
        &env,
    );
    refused(&out, "not the API's JSON");
    assert!(!out.stderr.contains(&KEY[..8]), "{}", out.stderr);

    // --wait is bounded: 1 s to a day.
    for bad in ["0", "86401", "18446744073709551615"] {
        let out = deploy(
            dir.path(),
            &[
                "--function",
                "h-fn",
                "--region",
                "x",
                "--image",
                &img,
                "--wait",
                bad,
            ],
            &env,
        );
        assert_eq!(out.code, Some(2), "{}", out.all());
        assert!(out.stderr.contains("--wait"), "{}", out.stderr);
    }
}
