//! `cargo scf invoke`: an event or an HTTP request sent to a function as SCF sends it, and the
//! answer shown.
//!
//! - An event goes as `POST /event-invoke` with the event as the body (the path of `--url`
//!   instead, when it has one); `--http METHOD PATH` sends a web function's request instead,
//!   what API Gateway passes through: that method and path, the data as the body if any.
//! - Either carries SCF's context headers: a fresh random version-4 `X-Scf-Request-Id`, the
//!   memory, timeout, version, name, namespace, region, appid and uin, fake credentials
//!   (`X-Scf-Secret-Id`, `X-Scf-Secret-Key`, `X-Scf-Session-Token`), and `X-Scf-Trigger-Src:
//!   timer` for a timer event. `-H 'Name: value'` replaces one or adds another.
//! - The event comes from a file, stdin (`-`), `--data`, or `--example NAME`: the sample event
//!   of each trigger in the repository's `events/`, built into the tool. At most 6 MB
//!   (6,000,000 bytes, SCF's limit on a synchronous request) is read; more is refused, unsent.
//! - Transport: ureq over plain HTTP or HTTPS (rustls with the web PKI's roots, built in), so a
//!   Function URL works as well as a function on this host. No proxy for a loopback address;
//!   otherwise the usual `HTTPS_PROXY`/`NO_PROXY` variables apply. No redirect is followed: a
//!   3xx is the function's answer.
//!
//! Output: the request line, then the answer's status, time and headers on stderr; the body on
//! stdout, as it arrives (a stream of Server-Sent Events shows event by event), byte for byte.
//! The value of a credential header (`X-Scf-Secret-*`, `X-Scf-Session-Token`, `Authorization`,
//! `Proxy-Authorization`) is never printed, whether sent or answered, and any text shown but the
//! body (a header's name as well as its value) has the values sent taken out, in any case: each
//! whole, and of an authorization the credentials after its scheme (`Bearer TOKEN`'s TOKEN;
//! Basic's `user:password` decoded, and the password; the signature and credential of a scheme
//! of parameters such as TC3-HMAC-SHA256), before a long value is cut, with a secret's beginning
//! left at the cut taken out too. Exit code: 0 for a 2xx answer, 1 for another status, 2 when
//! there is no answer (a bad argument, an event over 6 MB, nothing listening, a timeout, a cut
//! connection).

use std::fmt::Write as _;
use std::io::{self, IsTerminal as _, Read as _, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use base64::Engine as _;
use ureq::http::{self, Uri};
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};

use crate::auth::{MIN_SECRET, REDACTED, printable, redact};

/// Where `cargo scf run` and `cargo scf watch` serve the function, as SCF's port.
const DEFAULT_URL: &str = "http://127.0.0.1:9000";
/// Where SCF sends an event.
const EVENT_PATH: &str = "/event-invoke";
/// `X-Scf-Name` when there is no `--name` and no project here: the template's package name.
const DEFAULT_NAME: &str = "my-function";
/// `X-Scf-Appid`: an AppId-shaped placeholder (Tencent's own examples use 1250000000).
const APPID: &str = "1250000000";
/// `X-Scf-Uin`: a Uin-shaped placeholder.
const UIN: &str = "100000000001";
/// The fake credentials: shaped like temporary ones, good for nothing.
const FAKE_SECRET_ID: &str = "AKIDcargoscfinvokefakesecretid";
const FAKE_SECRET_KEY: &str = "cargo-scf-invoke-fake-secret-key";
const FAKE_SESSION_TOKEN: &str = "cargo-scf-invoke-fake-session-token";
/// How much longer than the function's timeout to wait for the whole answer.
const GRACE: Duration = Duration::from_secs(5);
/// Resolving the host and connecting, TLS included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// SCF's limit on a synchronous request (and answer): over it, the platform answers 406 itself.
/// No more of an event or body is read; more is refused.
const SYNC_LIMIT: usize = 6_000_000;
/// SCF's limit on an asynchronous event.
const ASYNC_LIMIT: usize = 128 * 1024;
/// Header values shown at most this long (characters).
const SHOWN_VALUE: usize = 400;
/// Header names shown at most this long (characters).
const SHOWN_NAME: usize = 100;

/// A trigger's sample event, built into the tool.
#[derive(Clone, Copy, Debug)]
pub struct Example {
    /// The name `--example` takes (`-` and `_` both accepted, in any case).
    pub name: &'static str,
    /// What the event is.
    pub about: &'static str,
    /// The event.
    pub json: &'static str,
}

/// The sample event of every trigger in `events/` (docs/EVENTS.md describes them).
pub const EXAMPLES: &[Example] = &[
    Example {
        name: "timer",
        about: "a timer trigger fired (sent with X-Scf-Trigger-Src: timer)",
        json: include_str!("../../events/timer.json"),
    },
    Example {
        name: "cos",
        about: "an object created in a COS bucket",
        json: include_str!("../../events/cos.json"),
    },
    Example {
        name: "ckafka",
        about: "two CKafka messages",
        json: include_str!("../../events/ckafka.json"),
    },
    Example {
        name: "cmq_topic",
        about: "a message of a CMQ topic",
        json: include_str!("../../events/cmq_topic.json"),
    },
    Example {
        name: "cmq_queue",
        about: "a message of a CMQ queue",
        json: include_str!("../../events/cmq_queue.json"),
    },
    Example {
        name: "cls",
        about: "CLS log records (Base64 of gzip)",
        json: include_str!("../../events/cls.json"),
    },
    Example {
        name: "clb",
        about: "an HTTP request passed on by CLB",
        json: include_str!("../../events/clb.json"),
    },
    Example {
        name: "apigw",
        about: "an API Gateway integration request",
        json: include_str!("../../events/apigw.json"),
    },
];

/// The sample named `name` (`cmq-topic`, `CMQ_TOPIC` and `cmq_topic` are the same).
pub fn example(name: &str) -> Option<&'static Example> {
    let want = name.trim().to_ascii_lowercase().replace('-', "_");
    EXAMPLES.iter().find(|e| e.name == want)
}

/// The samples, one a line: name and what it is.
fn example_list() -> String {
    let mut s = String::new();
    for e in EXAMPLES {
        let _ = writeln!(s, "  {:<10} {}", e.name, e.about);
    }
    s
}

/// Send the function an event or an HTTP request as SCF sends it, and show the answer.
///
/// An event goes as `POST /event-invoke`, the event as the body; `--http METHOD PATH` sends a
/// web function's request instead. Both carry SCF's context headers (X-Scf-*), fake
/// credentials included. The function must be running: `cargo scf run` or `cargo scf watch`
/// serve it on http://127.0.0.1:9000, the default --url.
#[derive(clap::Args)]
#[command(after_help = "\
The event: FILE, - (stdin), --data JSON, or --example NAME, a trigger's sample built in:
  timer, cos, ckafka, cmq_topic, cmq_queue, cls, clb, apigw (--example list says what each is).
  At most 6 MB (6000000 bytes, SCF's limit on a synchronous request); more is refused, unsent.

Headers sent, as SCF sends them (-H 'NAME: VALUE' replaces one, or adds one):
  X-Scf-Request-Id              a fresh random UUID (version 4)
  X-Scf-Memory, X-Scf-Timeout   --memory (128), --timeout (3000)
  X-Scf-Version                 $LATEST
  X-Scf-Name                    --name, else the package name of the project here, else my-function
  X-Scf-Namespace, X-Scf-Region --namespace (default), --region (ap-guangzhou)
  X-Scf-Appid, X-Scf-Uin        1250000000, 100000000001
  X-Scf-Secret-Id, X-Scf-Secret-Key, X-Scf-Session-Token
                                fake values (give real ones with -H); never printed
  X-Scf-Trigger-Src             timer, for a timer event (\"Type\": \"timer\", any case)
  Content-Type                  application/json; with --http, after the body, if there is one
  User-Agent                    cargo-scf/VERSION

Output: the request, the answer's status, time and headers on stderr; the body on stdout as it
arrives (| jq works). The credentials sent are never printed: not as a header's value, nor in
another header's name or value (in any case), the token after Authorization's scheme included.
Exit code: 0 for a 2xx answer, 1 for another status, 2 for no answer (a bad argument, an event
over 6 MB, nothing listening, a timeout, a connection cut).

Examples:
  cargo scf invoke --example timer
  cargo scf invoke events/cos.json --timeout 10000
  echo '{\"id\":7}' | cargo scf invoke -
  cargo scf invoke --http GET '/items?page=2' -H 'Accept: application/json'
  cargo scf invoke --http POST /orders --data '{\"qty\":1}' --port 9001
  cargo scf invoke --http GET / --url https://1250000000-abcd1234.ap-guangzhou.tencentscf.com")]
pub struct Args {
    /// The event: a file of JSON, or - to read it from stdin.
    #[arg(value_name = "FILE", conflicts_with_all = ["data", "example"])]
    file: Option<PathBuf>,
    /// The event (or with --http the body) given here, e.g. --data '{"id":7}'.
    #[arg(short, long, value_name = "JSON", conflicts_with = "example")]
    data: Option<String>,
    /// A trigger's sample event, built in: timer, cos, ckafka, cmq_topic, cmq_queue, cls, clb,
    /// apigw; `list` lists them.
    #[arg(long, value_name = "NAME")]
    example: Option<String>,
    /// Where the function answers: http://HOST:PORT or https://HOST (a Function URL). A path
    /// in it replaces /event-invoke; with --http it goes before PATH (an API Gateway stage).
    /// [default: http://127.0.0.1:9000]
    #[arg(long, value_name = "URL", conflicts_with = "port")]
    url: Option<String>,
    /// Short for --url http://127.0.0.1:PORT.
    #[arg(long, value_name = "PORT")]
    port: Option<u16>,
    /// Send a web function's request instead of an event: this method and path (with its
    /// query), e.g. --http GET '/items?page=2'; the data, if any, as its body.
    #[arg(long, num_args = 2, value_names = ["METHOD", "PATH"])]
    http: Option<Vec<String>>,
    /// A header to send as well, 'NAME: VALUE' (repeatable); one of the headers above by that
    /// name is replaced.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// X-Scf-Name, the function's name [default: the package name of the project here, else
    /// my-function].
    #[arg(long)]
    name: Option<String>,
    /// X-Scf-Memory: the instance's memory limit, in MB.
    #[arg(long, value_name = "MB", default_value_t = 128)]
    memory: u32,
    /// X-Scf-Timeout: the function's timeout, in ms. The answer is awaited that long plus 5 s.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 3000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    timeout: u64,
    /// X-Scf-Region.
    #[arg(long, default_value = "ap-guangzhou")]
    region: String,
    /// X-Scf-Namespace.
    #[arg(long, value_name = "NS", default_value = "default")]
    namespace: String,
    /// Show the request's headers too (a credential's value redacted).
    #[arg(short, long)]
    verbose: bool,
}

/// Sends the event or request and shows the answer; ends the process with exit code 1 for an
/// answer that is not 2xx, and 2 when there is none.
pub fn run(args: Args) -> Result<()> {
    let code = match invoke(&args) {
        Ok(Outcome::Listed) => 0,
        Ok(Outcome::Answered(status)) if (200..300).contains(&status) => 0,
        Ok(Outcome::Answered(_)) => 1,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    };
    let _ = io::stdout().flush();
    if code == 0 {
        Ok(())
    } else {
        std::process::exit(code)
    }
}

/// What came of a run.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// `--example list`: nothing was sent.
    Listed,
    /// The function answered with this status.
    Answered(u16),
}

fn invoke(args: &Args) -> Result<Outcome> {
    if args
        .example
        .as_deref()
        .is_some_and(|n| n.trim().eq_ignore_ascii_case("list"))
    {
        print!("{}", example_list());
        return Ok(Outcome::Listed);
    }
    let body = read_body(args, &mut io::stdin().lock())?;
    let name = match &args.name {
        Some(n) => n.clone(),
        None => {
            crate::project::Project::find(None).map_or_else(|_| DEFAULT_NAME.into(), |p| p.name)
        }
    };
    let request = Request::new(args, body, &name, &request_id())?;
    for w in request.warnings() {
        eprintln!("warning: {w}");
    }
    request.send(args.verbose)
}

/// The event or body from `FILE`, `-` (read from `stdin`), `--data` or `--example`; `None`
/// when none is given (an error for an event, no body for `--http`). At most [`SYNC_LIMIT`]
/// bytes of it: no more is read (`/dev/zero` is refused, not read to the end), and more is an
/// error.
fn read_body(args: &Args, stdin: &mut dyn io::Read) -> Result<Option<Vec<u8>>> {
    let what = if args.http.is_some() {
        "the body"
    } else {
        "the event"
    };
    if let Some(file) = &args.file {
        if file == Path::new("-") {
            if io::stdin().is_terminal() {
                eprintln!("Reading stdin (end it with Ctrl-D)");
            }
            let b = read_limited(stdin, &format!("{what} from stdin"))?;
            return Ok(Some(b));
        }
        let shown = printable(&file.display().to_string(), 200);
        let mut f = std::fs::File::open(file).with_context(|| format!("read {shown}"))?;
        let b = read_limited(&mut f, &format!("{what} in {shown}"))?;
        return Ok(Some(b));
    }
    if let Some(d) = &args.data {
        check_size(d.len(), &format!("{what} given with --data"))?;
        return Ok(Some(d.clone().into_bytes()));
    }
    if let Some(n) = &args.example {
        let e = example(n).ok_or_else(|| {
            anyhow!(
                "no sample event named {:?}; the samples are:\n{}",
                printable(n, 40),
                example_list().trim_end()
            )
        })?;
        return Ok(Some(e.json.as_bytes().to_vec()));
    }
    if args.http.is_some() {
        return Ok(None);
    }
    bail!(
        "no event to send: give a FILE of JSON, - to read it from stdin, --data JSON (--data \
         '{{}}' for an empty one) or --example NAME, one of: {}",
        EXAMPLES
            .iter()
            .map(|e| e.name)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// All of `from`, but no more than [`SYNC_LIMIT`] and one byte: more is refused.
fn read_limited(from: &mut dyn io::Read, what: &str) -> Result<Vec<u8>> {
    let mut b = Vec::new();
    io::Read::take(from, SYNC_LIMIT as u64 + 1)
        .read_to_end(&mut b)
        .with_context(|| format!("read {what}"))?;
    check_size(b.len(), what)?;
    Ok(b)
}

/// An error unless `len` bytes are within SCF's synchronous limit.
fn check_size(len: usize, what: &str) -> Result<()> {
    ensure!(
        len <= SYNC_LIMIT,
        "{what} is more than {SYNC_LIMIT} bytes (6 MB), SCF's limit on a synchronous request \
         (SCF answers a larger one with 406 itself): not sent"
    );
    Ok(())
}

/// Where to send: the URL taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    /// `http` or `https`.
    scheme: String,
    /// `host[:port]`, as given.
    authority: String,
    /// The host, without brackets around an IPv6 address.
    host: String,
    /// The path and query, `/` when the URL has none.
    path_and_query: String,
}

impl Target {
    /// `--url` (`http://` assumed when no scheme is given) or `--port`, else the default.
    fn parse(url: Option<&str>, port: Option<u16>) -> Result<Target> {
        let url = match (url, port) {
            (Some(u), _) => u.trim().to_owned(),
            (None, Some(p)) => format!("http://127.0.0.1:{p}"),
            (None, None) => DEFAULT_URL.to_owned(),
        };
        let full = if url.contains("://") {
            url.clone()
        } else {
            format!("http://{url}")
        };
        let bad = |why: &str| anyhow!("--url {}: {why}", printable(&without_userinfo(&url), 200));
        let uri: Uri = full
            .parse()
            .map_err(|e| bad(&format!("not a URL ({e}); e.g. http://127.0.0.1:9000")))?;
        let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad("only http:// and https:// are spoken"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| bad("no host in it"))?
            .as_str()
            .to_owned();
        if authority.contains('@') {
            return Err(bad(
                "credentials in the URL are not sent: give them as a header, -H 'Authorization: …'",
            ));
        }
        let host = uri.host().unwrap_or_default();
        if host.is_empty() {
            return Err(bad("no host in it"));
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let path_and_query = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        let path_and_query = if path_and_query.starts_with('/') {
            path_and_query
        } else {
            format!("/{path_and_query}")
        };
        Ok(Target {
            scheme,
            authority,
            host,
            path_and_query,
        })
    }

    /// Whether the host is this machine: no proxy then, and the hint to start the function.
    fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The URL of `path_and_query` on this host.
    fn url(&self, path_and_query: &str) -> String {
        format!("{}://{}{path_and_query}", self.scheme, self.authority)
    }
}

/// The request to send, headers in the order they are sent. Its `Debug` is the verbose
/// request line and headers: a credential's value redacted.
struct Request {
    method: String,
    target: Target,
    /// The path and query the request goes to.
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// An event (`POST /event-invoke`) rather than a web function's request.
    is_event: bool,
    /// How long to wait for the whole answer.
    wait: Duration,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(true))
    }
}

impl Request {
    /// The request `args` describe, with `body`, `X-Scf-Name: name` and `X-Scf-Request-Id:
    /// request_id` (unless a `-H` replaces them).
    fn new(args: &Args, body: Option<Vec<u8>>, name: &str, request_id: &str) -> Result<Request> {
        let target = Target::parse(args.url.as_deref(), args.port)?;
        let (method, path, is_event) = match args.http.as_deref() {
            None => {
                let path = if target.path_and_query == "/" {
                    EVENT_PATH.to_owned()
                } else {
                    target.path_and_query.clone()
                };
                ("POST".to_owned(), path, true)
            }
            Some([method, path]) => {
                let method = check_method(method)?;
                check_path(path)?;
                ensure!(
                    !target.path_and_query.contains('?'),
                    "--url has a query, and --http's PATH too may: put the query in PATH"
                );
                let prefix = target.path_and_query.trim_end_matches('/');
                (method, format!("{prefix}{path}"), false)
            }
            Some(other) => bail!("--http takes METHOD and PATH, not {} values", other.len()),
        };
        let body = if is_event {
            Some(body.context("no event to send")?)
        } else {
            body
        };
        let mut headers: Vec<(String, String)> = vec![(
            "User-Agent".into(),
            concat!("cargo-scf/", env!("CARGO_PKG_VERSION")).into(),
        )];
        match &body {
            Some(b) if is_event || serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok() => {
                headers.push(("Content-Type".into(), "application/json".into()));
            }
            Some(b) if std::str::from_utf8(b).is_ok() => {
                headers.push(("Content-Type".into(), "text/plain; charset=utf-8".into()));
            }
            Some(_) => headers.push(("Content-Type".into(), "application/octet-stream".into())),
            None => {}
        }
        let scf = [
            ("X-Scf-Request-Id", request_id),
            ("X-Scf-Memory", &args.memory.to_string()),
            ("X-Scf-Timeout", &args.timeout.to_string()),
            ("X-Scf-Version", "$LATEST"),
            ("X-Scf-Name", name),
            ("X-Scf-Namespace", &args.namespace),
            ("X-Scf-Region", &args.region),
            ("X-Scf-Appid", APPID),
            ("X-Scf-Uin", UIN),
            ("X-Scf-Secret-Id", FAKE_SECRET_ID),
            ("X-Scf-Secret-Key", FAKE_SECRET_KEY),
            ("X-Scf-Session-Token", FAKE_SESSION_TOKEN),
        ];
        headers.extend(scf.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())));
        if is_event && body.as_deref().is_some_and(is_timer) {
            headers.push(("X-Scf-Trigger-Src".into(), "timer".into()));
        }
        for h in &args.headers {
            let (name, value) = parse_header(h)?;
            match headers
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(&name))
            {
                Some(slot) => *slot = (name, value),
                None => headers.push((name, value)),
            }
        }
        for (n, v) in &headers {
            ensure!(
                http::HeaderValue::from_bytes(v.as_bytes()).is_ok(),
                "the value of {n} cannot go in a header (a control character?)"
            );
        }
        let wait = Duration::from_millis(args.timeout).saturating_add(GRACE);
        Ok(Request {
            method,
            target,
            path,
            headers,
            body,
            is_event,
            wait,
        })
    }

    /// The value of the header `name`.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// What is taken out of whatever is shown: the value of each credential header sent and,
    /// of `Authorization` and `Proxy-Authorization`, the parts a server may give back alone
    /// ([`credential_parts`]); each as sent and as [`printable`] shows it, of at least
    /// [`MIN_SECRET`] characters.
    fn secrets(&self) -> Vec<String> {
        let mut raw = Vec::new();
        for (n, v) in &self.headers {
            if is_credential(n) {
                raw.push(v.clone());
                if is_authorization(n) {
                    raw.extend(credential_parts(v));
                }
            }
        }
        let mut all: Vec<String> = raw.iter().map(|s| printable(s, usize::MAX)).collect();
        all.extend(raw);
        all.retain(|s| s.chars().count() >= MIN_SECRET);
        all.sort_unstable();
        all.dedup();
        all
    }

    /// `text` made printable, the secrets sent taken out, at most [`SHOWN_VALUE`] characters.
    fn scrub(&self, text: &str) -> String {
        self.scrub_to(text, SHOWN_VALUE)
    }

    /// `text` made printable, the secrets sent taken out (in any case), then cut to `max`
    /// characters: see [`redact`].
    fn scrub_to(&self, text: &str, max: usize) -> String {
        redact(&printable(text, usize::MAX), &self.secrets(), max)
    }

    /// What may surprise: an event that is not JSON, one over SCF's asynchronous limit (one over
    /// the synchronous limit is never read: [`read_body`]).
    fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let Some(body) = &self.body else {
            return w;
        };
        if self.is_event
            && let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body)
        {
            w.push(format!(
                "the event is not JSON (line {} column {}); it is sent as it is",
                e.line(),
                e.column()
            ));
        }
        if self.is_event && body.len() > ASYNC_LIMIT {
            w.push(format!(
                "{} bytes: SCF takes an event over 128 KB only synchronously",
                body.len()
            ));
        }
        w
    }

    /// The request line and (verbose) the headers as they go, a credential's value redacted.
    fn describe(&self, verbose: bool) -> String {
        let body = match &self.body {
            Some(b) => format!("{} bytes", b.len()),
            None => "no body".to_owned(),
        };
        let mut s = format!(
            "> {} {} ({body}, request id {})\n",
            self.method,
            self.scrub(&self.target.url(&self.path)),
            self.scrub(self.header("X-Scf-Request-Id").unwrap_or("-")),
        );
        if verbose {
            if self.header("Host").is_none() {
                let _ = writeln!(s, "> Host: {}", self.target.authority);
            }
            for (n, v) in &self.headers {
                let _ = writeln!(s, "> {}", self.shown(n, v));
            }
            if let Some(b) = &self.body {
                let _ = writeln!(s, "> Content-Length: {}", b.len());
            }
        }
        s
    }

    /// `name: value` to show: a credential's value as `<redacted>`, any other scrubbed; the
    /// name scrubbed too (a server may answer with a secret as a header's name).
    fn shown(&self, name: &str, value: &str) -> String {
        let shown_name = self.scrub_to(name, SHOWN_NAME);
        if is_credential(name) {
            format!("{shown_name}: {REDACTED}")
        } else {
            format!("{shown_name}: {}", self.scrub(value))
        }
    }

    /// Sends the request, shows the answer: status, time and headers on stderr, the body on
    /// stdout as it comes.
    fn send(&self, verbose: bool) -> Result<Outcome> {
        eprint!("{}", self.describe(verbose));
        let url = self.target.url(&self.path);
        let mut b = http::Request::builder()
            .method(self.method.as_str())
            .uri(url.as_str());
        for (n, v) in &self.headers {
            // As bytes: a value may be UTF-8 (obs-text), which `&str`'s conversion refuses.
            b = b.header(n.as_str(), v.as_bytes());
        }
        let agent = agent(self.target.is_loopback(), self.wait);
        let start = Instant::now();
        let answer = match &self.body {
            Some(body) => b.body(body.as_slice()).map(|r| agent.run(r)),
            None => b.body(()).map(|r| agent.run(r)),
        }
        .map_err(|e| anyhow!("cannot build the request: {}", self.scrub(&e.to_string())))?
        .map_err(|e| self.transport_error(e))?;
        let elapsed = start.elapsed();
        let status = answer.status();
        let reason = status
            .canonical_reason()
            .map_or_else(String::new, |r| format!(" {r}"));
        eprintln!(
            "< {}{reason} in {:.1} ms",
            status.as_u16(),
            elapsed.as_secs_f64() * 1000.0
        );
        for (n, v) in answer.headers() {
            eprintln!(
                "< {}",
                self.shown(n.as_str(), &String::from_utf8_lossy(v.as_bytes()))
            );
        }
        let (_, mut body) = answer.into_parts();
        let mut reader = body.as_reader();
        let mut out = io::stdout().lock();
        let to_terminal = io::stdout().is_terminal();
        let mut buf = vec![0u8; 64 * 1024];
        let mut last = None;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = out.flush();
                    return Err(self.cut(&e));
                }
            };
            last = Some(buf[n - 1]);
            // A closed stdout (`| head`) ends the output, not the run: the answer came.
            if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                return Ok(Outcome::Answered(status.as_u16()));
            }
        }
        if to_terminal && last.is_some_and(|b| b != b'\n') {
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
        Ok(Outcome::Answered(status.as_u16()))
    }

    /// A failure before the answer came, said plainly (exit code 2).
    fn transport_error(&self, e: ureq::Error) -> anyhow::Error {
        let url = self.scrub(&self.target.url(&self.path));
        let at = &self.target.authority;
        let refused = match &e {
            ureq::Error::ConnectionFailed => true,
            ureq::Error::Io(io) => io.kind() == io::ErrorKind::ConnectionRefused,
            _ => false,
        };
        if refused {
            return if self.target.is_loopback() {
                anyhow!(
                    "nothing answers at {url}: start the function with `cargo scf run` or \
                     `cargo scf watch` (or give --url / --port where it listens)"
                )
            } else {
                anyhow!("nothing answers at {url} (connection refused)")
            };
        }
        // rustls's error comes as it is, or inside an I/O error (from the TLS stream).
        let tls = match &e {
            ureq::Error::Rustls(r) => Some(r),
            ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
            _ => None,
        };
        if let Some(r) = tls {
            return match r {
                rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                    anyhow!("{at} does not speak TLS: a plain-HTTP server? use http://")
                }
                _ => anyhow!("TLS with {at} failed: {}", self.scrub(&r.to_string())),
            };
        }
        let text = self.scrub(&e.to_string());
        match &e {
            ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => anyhow!(
                "cannot connect to {at} within {} s",
                CONNECT_TIMEOUT.as_secs()
            ),
            ureq::Error::Timeout(_) => anyhow!(
                "no answer from {url} within {} ms (--timeout {} ms, plus {} s)",
                self.wait.as_millis(),
                self.wait.saturating_sub(GRACE).as_millis(),
                GRACE.as_secs()
            ),
            ureq::Error::HostNotFound => anyhow!("cannot resolve the host of {url}"),
            ureq::Error::Tls(_) => anyhow!("TLS with {at} failed: {text}"),
            ureq::Error::Protocol(_) if self.target.scheme == "https" => anyhow!(
                "{at} does not speak HTTPS as expected: {text} (a plain-HTTP server? use http://)"
            ),
            _ => anyhow!("the request to {url} failed: {text}"),
        }
    }

    /// The answer's body cut short (a timeout or a closed connection): no whole answer.
    fn cut(&self, e: &io::Error) -> anyhow::Error {
        let timed_out = matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) || e
            .get_ref()
            .and_then(|i| i.downcast_ref::<ureq::Error>())
            .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)));
        if timed_out {
            anyhow!(
                "the answer's body did not end within {} ms (--timeout plus {} s)",
                self.wait.as_millis(),
                GRACE.as_secs()
            )
        } else {
            anyhow!(
                "the answer's body was cut short: {}",
                self.scrub(&e.to_string())
            )
        }
    }
}

/// An agent for one exchange: rustls with the web PKI's roots, no redirects, no header of its
/// own (the request carries them all), no proxy to a loopback address; the whole exchange
/// bounded by `wait`.
fn agent(loopback: bool, wait: Duration) -> ureq::Agent {
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::WebPki)
        .build();
    let mut config = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .max_redirects(0)
        .allow_non_standard_methods(true)
        .user_agent("")
        .accept("")
        .timeout_resolve(Some(CONNECT_TIMEOUT))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(wait));
    if loopback {
        config = config.proxy(None);
    }
    ureq::Agent::new_with_config(config.build())
}

/// The header names whose values are credentials: never shown.
fn is_credential(name: &str) -> bool {
    scf_lean::is_secret_header(name) || is_authorization(name)
}

/// The credential headers whose value is `SCHEME CREDENTIALS`.
fn is_authorization(name: &str) -> bool {
    name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("proxy-authorization")
}

/// The parts of an authorization (`SCHEME CREDENTIALS`) a server may give back alone, besides
/// the whole value: the credentials after the scheme, any scheme (`Bearer TOKEN`: TOKEN, also
/// without its `=` padding); for `Basic`, `user:password` base64-decoded and the password; for
/// a scheme of parameters (`TC3-HMAC-SHA256 Credential=AKID…/date/service/tc3_request,
/// SignedHeaders=…, Signature=…`, Digest), the value of each parameter naming a credential, a
/// signature, a token, a secret, a password or a response, and a value's part before its first
/// `/` (TC3's SecretId).
fn credential_parts(value: &str) -> Vec<String> {
    let Some((scheme, rest)) = value.trim().split_once([' ', '\t']) else {
        return Vec::new();
    };
    let rest = rest.trim();
    let mut parts = vec![rest.to_owned()];
    if is_token68(rest) {
        let unpadded = rest.trim_end_matches('=');
        parts.push(unpadded.to_owned());
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD_NO_PAD.decode(unpadded);
            if let Ok(pair) = decoded.map(|d| String::from_utf8_lossy(&d).into_owned()) {
                if let Some((_, password)) = pair.split_once(':') {
                    parts.push(password.to_owned());
                }
                parts.push(pair);
            }
        }
    } else {
        const SECRET_PARAMS: [&str; 6] = [
            "credential",
            "signature",
            "token",
            "secret",
            "password",
            "response",
        ];
        for (name, v) in auth_params(rest) {
            let name = name.to_ascii_lowercase();
            if SECRET_PARAMS.iter().any(|p| name.contains(p)) {
                if let Some((first, _)) = v.split_once('/') {
                    parts.push(first.to_owned());
                }
                parts.push(v);
            }
        }
    }
    parts
}

/// Whether `text` is a token68 (RFC 9110): what `Basic` and `Bearer` carry.
fn is_token68(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The `name=value` parameters of an authorization's credentials (RFC 9110's auth-param):
/// separated by commas, a value a token or a quoted string (given unquoted).
fn auth_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        if chars.peek().is_none() {
            return out;
        }
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                .collect::<String>()
                .trim()
                .to_owned();
        }
        out.push((name.trim().to_owned(), value));
    }
}

/// `NAME: VALUE` of `-H`; the name a token, the value trimmed.
fn parse_header(h: &str) -> Result<(String, String)> {
    let (name, value) = h.split_once(':').ok_or_else(|| {
        anyhow!(
            "-H {}: give a header as 'NAME: VALUE'",
            printable(h.split(':').next().unwrap_or(""), 100)
        )
    })?;
    let name = name.trim();
    ensure!(
        http::HeaderName::from_bytes(name.as_bytes()).is_ok(),
        "-H: {:?} is not a header name",
        printable(name, 100)
    );
    ensure!(
        !name.eq_ignore_ascii_case("content-length")
            && !name.eq_ignore_ascii_case("transfer-encoding"),
        "-H {name}: it is set from the body"
    );
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// `--http`'s METHOD, in capitals: a token (`GET`, `post`, `PROPFIND`).
fn check_method(method: &str) -> Result<String> {
    let m = method.to_ascii_uppercase();
    ensure!(
        http::Method::from_bytes(m.as_bytes()).is_ok(),
        "--http {}: not an HTTP method (GET, POST, PUT, DELETE, ...)",
        printable(method, 40)
    );
    Ok(m)
}

/// `--http`'s PATH: from `/`, with its query, nothing a request line cannot carry.
fn check_path(path: &str) -> Result<()> {
    ensure!(
        path.starts_with('/'),
        "--http PATH must start with / (got {:?}), e.g. /items?page=2",
        printable(path, 100)
    );
    ensure!(
        path.parse::<http::uri::PathAndQuery>().is_ok() && !path.contains(['#', ' ']),
        "--http PATH {:?} cannot go in a request line: percent-encode spaces and other \
         special characters (%20)",
        printable(path, 100)
    );
    Ok(())
}

/// `url` with any `user:password@` before its host shown as `…@`, for a message.
fn without_userinfo(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}…{}", &url[..start], &url[start + at..]),
        None => url.to_owned(),
    }
}

/// Whether the event is a timer trigger's (`"Type": "timer"`, any case), as SCF then also
/// sends `X-Scf-Trigger-Src: timer`.
fn is_timer(event: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "Type")]
        kind: Option<String>,
    }
    serde_json::from_slice::<Typed>(event)
        .is_ok_and(|t| t.kind.is_some_and(|k| k.eq_ignore_ascii_case("timer")))
}

/// A fresh random request id shaped like SCF's: a version-4 UUID.
fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(list: &[&str]) -> Args {
        Cli::try_parse_from(std::iter::once("invoke").chain(list.iter().copied()))
            .unwrap_or_else(|e| panic!("{list:?}: {e}"))
            .args
    }

    fn parse_error(list: &[&str]) -> String {
        Cli::try_parse_from(std::iter::once("invoke").chain(list.iter().copied()))
            .map(|_| "parsed")
            .unwrap_err()
            .to_string()
    }

    /// The request `list` describes, the body read as `run` reads it (stdin empty).
    fn request(list: &[&str]) -> Result<Request> {
        let a = args(list);
        let body = read_body(&a, &mut io::empty())?;
        Request::new(&a, body, "my-fn", "rid-1")
    }

    #[test]
    fn test_every_sample_event_is_json_and_found_by_name() {
        assert_eq!(EXAMPLES.len(), 8);
        for e in EXAMPLES {
            let v: serde_json::Value =
                serde_json::from_str(e.json).unwrap_or_else(|err| panic!("{}: {err}", e.name));
            assert!(v.is_object(), "{}", e.name);
            assert_eq!(example(e.name).map(|x| x.name), Some(e.name));
            assert_eq!(
                example(&e.name.replace('_', "-").to_uppercase()).map(|x| x.name),
                Some(e.name)
            );
            assert!(example_list().contains(e.name));
        }
        assert!(example("nope").is_none());
        assert!(is_timer(example("timer").unwrap().json.as_bytes()));
        assert!(
            EXAMPLES
                .iter()
                .filter(|e| e.name != "timer")
                .all(|e| !is_timer(e.json.as_bytes()))
        );
    }

    #[test]
    fn test_event_request_carries_scf_headers() {
        let r = request(&["--example", "timer", "--memory", "256", "--timeout", "900"]).unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/event-invoke");
        assert_eq!(r.target.url(&r.path), "http://127.0.0.1:9000/event-invoke");
        assert!(r.is_event);
        assert_eq!(
            r.body.as_deref(),
            Some(example("timer").unwrap().json.as_bytes())
        );
        let expected = [
            ("Content-Type", "application/json"),
            ("X-Scf-Request-Id", "rid-1"),
            ("X-Scf-Memory", "256"),
            ("X-Scf-Timeout", "900"),
            ("X-Scf-Version", "$LATEST"),
            ("X-Scf-Name", "my-fn"),
            ("X-Scf-Namespace", "default"),
            ("X-Scf-Region", "ap-guangzhou"),
            ("X-Scf-Appid", APPID),
            ("X-Scf-Uin", UIN),
            ("X-Scf-Secret-Id", FAKE_SECRET_ID),
            ("X-Scf-Secret-Key", FAKE_SECRET_KEY),
            ("X-Scf-Session-Token", FAKE_SESSION_TOKEN),
            ("X-Scf-Trigger-Src", "timer"),
        ];
        for (n, v) in expected {
            assert_eq!(r.header(n), Some(v), "{n}");
        }
        assert!(r.header("User-Agent").unwrap().starts_with("cargo-scf/"));
        assert_eq!(r.headers.len(), expected.len() + 1);
        assert_eq!(r.wait, Duration::from_millis(5900));

        let cos = request(&[
            "--example",
            "cos",
            "--region",
            "ap-shanghai",
            "--namespace",
            "ns",
        ])
        .unwrap();
        assert_eq!(cos.header("X-Scf-Trigger-Src"), None);
        assert_eq!(cos.header("X-Scf-Region"), Some("ap-shanghai"));
        assert_eq!(cos.header("X-Scf-Namespace"), Some("ns"));
        assert_eq!(cos.header("X-Scf-Memory"), Some("128"));
        assert_eq!(cos.header("X-Scf-Timeout"), Some("3000"));
    }

    #[test]
    fn test_http_request_method_path_body_and_headers() {
        let r = request(&["--http", "get", "/items/7?q=1&flag", "--port", "9001"]).unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("GET", "/items/7?q=1&flag")
        );
        assert_eq!(
            r.target.url(&r.path),
            "http://127.0.0.1:9001/items/7?q=1&flag"
        );
        assert!(!r.is_event);
        assert_eq!(r.body, None);
        assert_eq!(r.header("Content-Type"), None);
        assert_eq!(r.header("X-Scf-Trigger-Src"), None);
        assert_eq!(r.header("X-Scf-Request-Id"), Some("rid-1"));

        let r = request(&[
            "--http",
            "POST",
            "/orders",
            "-d",
            "qty=1",
            "-H",
            "X-Trace:  abc é ",
            "-H",
            "content-type: application/x-www-form-urlencoded",
            "-H",
            "X-Scf-Request-Id: mine",
            "--url",
            "https://example.com/release/",
        ])
        .unwrap();
        assert_eq!(r.target.url(&r.path), "https://example.com/release/orders");
        assert_eq!(r.body.as_deref(), Some(&b"qty=1"[..]));
        assert_eq!(r.header("X-Trace"), Some("abc é"));
        assert_eq!(
            r.header("Content-Type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(r.header("X-Scf-Request-Id"), Some("mine"));
        // A header given by -H replaces the tool's in place: one of each name.
        let names: Vec<String> = r.headers.iter().map(|(n, _)| n.to_lowercase()).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "{names:?}");

        let json = request(&["--http", "PUT", "/x", "--data", "{\"a\":1}"]).unwrap();
        assert_eq!(json.header("Content-Type"), Some("application/json"));
        let text = request(&["--http", "PUT", "/x", "--data", "hello"]).unwrap();
        assert_eq!(
            text.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
    }

    #[test]
    fn test_url_forms() {
        let t = |u: &str| Target::parse(Some(u), None).unwrap();
        assert_eq!(t("127.0.0.1:9000").url("/a"), "http://127.0.0.1:9000/a");
        assert_eq!(t("HTTP://localhost:8080").scheme, "http");
        assert!(t("localhost:8080").is_loopback());
        assert!(t("http://[::1]:9000").is_loopback());
        assert_eq!(t("http://[::1]:9000").host, "::1");
        assert!(!t("https://1250000000-abc.ap-guangzhou.tencentscf.com").is_loopback());
        assert_eq!(t("http://h:1").path_and_query, "/");
        assert_eq!(t("http://h:1/run?x=1").path_and_query, "/run?x=1");
        assert_eq!(
            Target::parse(None, None).unwrap().url("/"),
            "http://127.0.0.1:9000/"
        );
        assert_eq!(
            Target::parse(None, Some(9100)).unwrap().authority,
            "127.0.0.1:9100"
        );
        // A path in --url replaces /event-invoke.
        let r = request(&["--data", "{}", "--url", "http://127.0.0.1:9000/other?x=1"]).unwrap();
        assert_eq!(r.path, "/other?x=1");
        assert_eq!(without_userinfo("https://u:p@h:1/a@b"), "https://…@h:1/a@b");
        assert_eq!(without_userinfo("u:p@h"), "…@h");
        assert_eq!(without_userinfo("http://h/x@y"), "http://h/x@y");
        for bad in [
            "ftp://h/",
            "http://",
            "http://user:pw@h:1/",
            "http://user:p w@h:1/",
            "http://h :1",
        ] {
            let e = Target::parse(Some(bad), None).unwrap_err().to_string();
            assert!(e.starts_with("--url"), "{bad}: {e}");
            assert!(!e.contains("pw@"), "{e}");
        }
    }

    #[test]
    fn test_argument_errors() {
        let no_event = request(&[]).unwrap_err().to_string();
        assert!(no_event.contains("no event to send"), "{no_event}");
        assert!(
            no_event.contains("--example NAME, one of: timer, cos"),
            "{no_event}"
        );
        let bad = request(&["--example", "sqs"]).unwrap_err().to_string();
        assert!(
            bad.contains("\"sqs\"") && bad.contains("cmq_queue"),
            "{bad}"
        );
        let missing = request(&["no/such/file.json"]).unwrap_err();
        assert!(format!("{missing:#}").contains("read no/such/file.json"));
        for (list, want) in [
            (&["--http", "GET", "items"][..], "must start with /"),
            (&["--http", "GET", "/a b"], "percent-encode"),
            (&["--http", "G T", "/"], "not an HTTP method"),
            (&["--data", "{}", "-H", "NoColon"], "'NAME: VALUE'"),
            (&["--data", "{}", "-H", "Bad Name: x"], "not a header name"),
            (
                &["--data", "{}", "-H", "Content-Length: 9"],
                "set from the body",
            ),
            (
                &["--data", "{}", "-H", "X-A: a\u{1}b"],
                "cannot go in a header",
            ),
            (
                &["--http", "GET", "/a?b", "--url", "http://h/s?x"],
                "put the query in PATH",
            ),
        ] {
            let e = request(list).unwrap_err().to_string();
            assert!(e.contains(want), "{list:?}: {e}");
        }
        // What clap refuses: two sources, --url with --port, --http with one value, a timeout
        // of zero.
        for list in [
            &["f.json", "--data", "{}"][..],
            &["--data", "{}", "--example", "timer"],
            &["f.json", "--example", "timer"],
            &["--data", "{}", "--url", "http://h", "--port", "1"],
            &["--http", "GET"],
            &["--data", "{}", "--timeout", "0"],
            &["--data", "{}", "--memory", "lots"],
        ] {
            parse_error(list);
        }
        // With --http the body is optional; stdin is read for `-`.
        let a = args(&["-"]);
        let body = read_body(&a, &mut &b"{\"x\":1}"[..]).unwrap();
        assert_eq!(body.as_deref(), Some(&b"{\"x\":1}"[..]));
    }

    #[test]
    fn test_credentials_are_never_shown() {
        let r = request(&[
            "--example",
            "timer",
            "-H",
            "X-Scf-Secret-Id: AKIDreal0123456789",
            "-H",
            "authorization: Bearer tok-123456",
            "--url",
            "http://127.0.0.1:9000/AKIDreal0123456789",
        ])
        .unwrap();
        assert_eq!(r.header("X-Scf-Secret-Id"), Some("AKIDreal0123456789"));
        let shown = r.describe(true);
        for secret in [
            "AKIDreal0123456789",
            "tok-123456",
            FAKE_SECRET_KEY,
            FAKE_SESSION_TOKEN,
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("X-Scf-Secret-Id: <redacted>"), "{shown}");
        assert!(shown.contains("X-Scf-Session-Token: <redacted>"), "{shown}");
        assert!(shown.contains("authorization: <redacted>"), "{shown}");
        assert!(shown.contains("X-Scf-Name: my-fn"), "{shown}");
        assert!(shown.contains("> Host: 127.0.0.1:9000"), "{shown}");
        // An answer's header: a credential's by name, any other scrubbed of the values sent.
        assert_eq!(
            r.shown("x-scf-secret-key", "whatever"),
            "x-scf-secret-key: <redacted>"
        );
        assert_eq!(
            r.shown("x-echo", &format!("key={FAKE_SECRET_KEY}\n")),
            "x-echo: key=<redacted>\\n"
        );
        assert_eq!(r.describe(false).lines().count(), 1);
        assert_eq!(format!("{r:?}"), shown);
    }

    #[test]
    fn test_answered_secrets_are_taken_out_in_any_case_and_any_part() {
        let basic = base64::engine::general_purpose::STANDARD.encode("ann:pa55w0rd-ann");
        let r = request(&[
            "--data",
            "{}",
            "-H",
            "X-Scf-Secret-Key: RealKeyZ8krbsj5ykbzqpn74wfkmlpx",
            "-H",
            "Authorization: Bearer tok3n-Z8krbsj5yk",
            "-H",
            &format!("Proxy-Authorization: Basic {basic}"),
        ])
        .unwrap();
        // A secret as a header's name, in another case, alone after its scheme.
        for (name, value, want) in [
            (
                "realkeyz8krbsj5ykbzqpn74wfkmlpx",
                "as-a-header-name",
                "<redacted>: as-a-header-name",
            ),
            (
                "x-echo-case",
                "REALKEYZ8KRBSJ5YKBZQPN74WFKMLPX",
                "x-echo-case: <redacted>",
            ),
            (
                "www-authenticate",
                "Bearer realm=\"x\", token=\"TOK3N-z8krbsj5yk\"",
                "www-authenticate: Bearer realm=\"x\", token=\"<redacted>\"",
            ),
            ("x-token", "tok3n-Z8krbsj5yk", "x-token: <redacted>"),
            ("x-basic", "ann:pa55w0rd-ann", "x-basic: <redacted>"),
            ("x-pass", "PA55W0RD-ANN", "x-pass: <redacted>"),
            ("x-b64", &basic, "x-b64: <redacted>"),
            (
                "x-b64-unpadded",
                basic.trim_end_matches('='),
                "x-b64-unpadded: <redacted>",
            ),
            // Secrets side by side are one.
            (
                "x-both",
                "RealKeyZ8krbsj5ykbzqpn74wfkmlpxTOK3N-Z8krbsj5yk",
                "x-both: <redacted>",
            ),
            ("x-plain", "nothing secret", "x-plain: nothing secret"),
        ] {
            assert_eq!(r.shown(name, value), want, "{name}");
        }
        // Overlapping secrets are one: neither leaves a part.
        let two = ["abcdef".to_owned(), "DEFGHI".to_owned()];
        assert_eq!(redact("xxABCdefghiyy", &two, 100), "xx<redacted>yy");
        assert_eq!(redact("é abcdef é", &two, 100), "é <redacted> é");
        // Scrubbed before the cut: a secret across it leaves nothing; a secret's beginning at
        // the cut (4 characters or more) goes too, a shorter one stays.
        let across = format!("{}REALKEYZ8KRBSJ5YKBZQPN74WFKMLPX", "a".repeat(395));
        let shown = r.shown("x-long", &across);
        assert_eq!(
            shown,
            format!("x-long: {}<reda…", "a".repeat(395)),
            "{shown}"
        );
        let tail = format!("{}REALKEYZ8K{}", "b".repeat(394), "c".repeat(20));
        assert_eq!(
            r.shown("x-tail", &tail),
            format!("x-tail: {}<redacted>…", "b".repeat(394))
        );
        let short = format!("{}REALKEYZ8K", "b".repeat(397));
        assert_eq!(
            r.shown("x-short", &short),
            format!("x-short: {}REA…", "b".repeat(397))
        );
        let long_name = format!("{}tok3n-z8krbsj5yk", "n".repeat(95));
        assert_eq!(
            r.shown(&long_name, "v"),
            format!("{}<reda…: v", "n".repeat(95))
        );
        // A secret shown escaped is taken out as shown.
        let r = request(&["--data", "{}", "-H", "Authorization: Bearer a\u{202e}bcdef"]).unwrap();
        assert_eq!(r.shown("x-e", "a\u{202e}bcdef"), "x-e: <redacted>");
    }

    #[test]
    fn test_credential_parts() {
        let parts = |v: &str| credential_parts(v);
        assert_eq!(parts("Bearer  tok-123 "), ["tok-123", "tok-123"]);
        assert_eq!(parts("tok-123"), Vec::<String>::new());
        // user:password = "Aladdin:open sesame"
        assert_eq!(
            parts("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            [
                "QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
                "QWxhZGRpbjpvcGVuIHNlc2FtZQ",
                "open sesame",
                "Aladdin:open sesame"
            ]
        );
        assert_eq!(parts("Basic not*base64"), ["not*base64"]);
        let tc3 = "TC3-HMAC-SHA256 Credential=AKIDz8krbsj5yk/2019-02-25/cvm/tc3_request, \
                   SignedHeaders=content-type;host, Signature=2230eefd229f582d8b1b891af7107b91";
        assert_eq!(
            parts(tc3),
            [
                &tc3[16..],
                "AKIDz8krbsj5yk",
                "AKIDz8krbsj5yk/2019-02-25/cvm/tc3_request",
                "2230eefd229f582d8b1b891af7107b91"
            ]
        );
        assert_eq!(
            auth_params(r#"a=1, b="x,\"y", c ,d= 2 "#),
            [
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "x,\"y".to_owned()),
                ("d".to_owned(), "2".to_owned())
            ]
        );
        assert!(is_token68("QWxh+/9=="));
        assert!(!is_token68("a=b, c"));
        assert!(!is_token68("=="));
    }

    #[test]
    fn test_body_is_read_up_to_the_sync_limit() {
        let a = args(&["-"]);
        let body = read_body(&a, &mut io::Read::take(io::repeat(b' '), SYNC_LIMIT as u64))
            .unwrap()
            .unwrap();
        assert_eq!(body.len(), SYNC_LIMIT);
        // One byte more, or no end at all: refused, no more read than the limit and one byte.
        let over = |from: &mut dyn io::Read| format!("{:#}", read_body(&a, from).unwrap_err());
        let e = over(&mut io::Read::take(io::repeat(b' '), SYNC_LIMIT as u64 + 1));
        assert!(
            e.contains(
                "the event from stdin is more than 6000000 bytes (6 MB), SCF's limit on a \
                        synchronous request"
            ),
            "{e}"
        );
        let mut endless = io::repeat(b' ');
        assert!(over(&mut endless).contains("more than 6000000 bytes"));
        if Path::new("/dev/zero").exists() {
            let e = request(&["/dev/zero"]).unwrap_err().to_string();
            assert!(
                e.contains("the event in /dev/zero is more than 6000000"),
                "{e}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big.json");
        std::fs::write(&file, vec![b' '; SYNC_LIMIT]).unwrap();
        let r = request(&[file.to_str().unwrap()]).unwrap();
        assert_eq!(r.body.map(|b| b.len()), Some(SYNC_LIMIT));
        std::fs::write(&file, vec![b' '; SYNC_LIMIT + 1]).unwrap();
        let e = request(&["--http", "PUT", "/", file.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("the body in ") && e.contains("(6 MB)"), "{e}");
        let data = " ".repeat(SYNC_LIMIT);
        assert_eq!(
            request(&["--data", &data]).unwrap().body.map(|b| b.len()),
            Some(SYNC_LIMIT)
        );
        let data = " ".repeat(SYNC_LIMIT + 1);
        let e = request(&["--data", &data]).unwrap_err().to_string();
        assert!(
            e.contains("the event given with --data is more than"),
            "{e}"
        );
    }

    #[test]
    fn test_warnings() {
        let w = request(&["--data", "not json"]).unwrap().warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("not JSON (line 1 column 2)"), "{}", w[0]);
        assert!(
            request(&["--example", "cls"])
                .unwrap()
                .warnings()
                .is_empty()
        );
        let big = format!("[{}0]", "0,".repeat(70_000));
        let w = request(&["--data", &big]).unwrap().warnings();
        assert!(w[0].contains("only synchronously"), "{w:?}");
        assert!(
            request(&["--http", "POST", "/", "--data", "x"])
                .unwrap()
                .warnings()
                .is_empty()
        );
    }

    #[test]
    fn test_request_ids_are_fresh_uuids() {
        let (a, b) = (request_id(), request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(a.matches('-').count(), 4);
    }
}
