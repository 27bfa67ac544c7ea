//! A function that calls an HTTPS API: `GET <API_URL>/users/<name>`, answered with a short
//! summary of that user. It shows the three things an outbound call needs on SCF:
//!
//! - **Root certificates in the binary.** A `FROM scratch` image has no CA bundle, so the
//!   roots are Mozilla's, compiled in (`webpki-roots`). `EXTRA_CA_PEM`, a PEM file, adds more:
//!   for an API behind a private CA, and for the tests, whose local API has a test CA.
//! - **One client, kept warm.** The `ureq::Agent` is built once, by `function()`, and keeps its
//!   connection in a pool: the invocations after the first skip the TCP and TLS handshakes.
//! - **A timeout from the invocation's time left.** `ctx.remaining()` less a margin, so that a
//!   slow API gets a clear 504 from the function rather than SCF's own timeout.
//!
//! Invoke it with the event `{"user": "octocat"}` or with `GET /users/octocat`. It answers
//! `{"user", "name", "publicRepos", "followers", "htmlUrl"}`; 400 for a name that is not a
//! login, 404 when the API has no such user, 502 when the API fails (another error status, an
//! answer that is not the JSON expected, a refused certificate, no connection), 504 when it
//! does not answer in time or too little time is left to ask it.
//!
//! Settings: `API_URL` (default `https://api.github.com`) and `EXTRA_CA_PEM` (none).

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use scf_lean::{Context, Error, Function, Request, Response};
use serde::{Deserialize, Serialize};

/// The API asked when `API_URL` is not set.
const DEFAULT_API: &str = "https://api.github.com";
/// Kept back from the invocation's time left, to answer before SCF's deadline.
const MARGIN: Duration = Duration::from_millis(100);
/// With less than this left for the call (after the margin), the function does not call.
const MIN_CALL: Duration = Duration::from_millis(50);
/// The timeout without a deadline (no `X-Scf-Timeout`: run locally).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The function: the API's base URL and the client that keeps the connection to it.
pub struct Outbound {
    api: String,
    agent: ureq::Agent,
}

/// The event: `{"user": "octocat"}`.
#[derive(Deserialize)]
struct Event {
    user: String,
}

/// What the API says of a user (these fields; the others are skipped), and the summary the
/// function answers, in camelCase.
#[derive(Deserialize, Serialize)]
#[serde(rename_all(serialize = "camelCase"))]
struct User {
    #[serde(rename(serialize = "user"))]
    login: String,
    name: Option<String>,
    public_repos: u64,
    followers: u64,
    html_url: String,
}

impl Function for Outbound {
    fn event<'a>(
        &mut self,
        event: &'a [u8],
        ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        let e: Event = scf_lean::from_json(event)?;
        out.json(&self.user(&e.user, ctx)?)
    }

    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        let mut path = req.segments();
        match (
            req.method(),
            path.next().as_deref(),
            path.next(),
            path.next(),
        ) {
            ("GET", Some("users"), Some(name), None) => out.json(&self.user(&name, req.context())?),
            _ => Err(Error::not_found("the route is GET /users/<name>")),
        }
    }
}

impl Outbound {
    /// `GET <api>/users/<name>`, within the invocation's time left.
    fn user(&self, name: &str, ctx: &Context) -> Result<User, Error> {
        // Checked before it goes into the URL: no `/`, `?` or `..` reaches the API.
        let login = |c: u8| c.is_ascii_alphanumeric() || c == b'-';
        if name.is_empty() || name.len() > 39 || !name.bytes().all(login) {
            return Err(Error::bad_request(
                "a user name is 1 to 39 letters, digits or hyphens",
            ));
        }
        let timeout = call_timeout(ctx)?;
        let url = format!("{}/users/{name}", self.api);
        let start = std::time::Instant::now();
        let answer = self.agent.get(&url).timeout(timeout).call();
        // A line with the request id: what was asked, how it went, how long it took.
        let status = match &answer {
            Ok(a) => a.status(),
            Err(ureq::Error::Status(s, _)) => *s,
            Err(ureq::Error::Transport(_)) => 0,
        };
        let ms = start.elapsed().as_millis();
        scf_lean::info!(
            "GET {url}: {status} in {ms} ms (timeout {} ms)",
            timeout.as_millis()
        );
        match answer {
            // Read to the end (into_json does): the connection goes back to the pool.
            Ok(answer) => answer.into_json().map_err(|e| failed(&url, timeout, &e)),
            Err(ureq::Error::Status(status, answer)) => {
                let text = answer.status_text().to_owned();
                // The error's body too, read (and dropped) to keep the connection.
                let _ = answer.into_string();
                Err(if status == 404 {
                    Error::not_found(format!("the API has no user {name}"))
                } else {
                    Error::new(format!("the API answered {status} {text}: GET {url}"))
                        .with_status(502)
                })
            }
            Err(ureq::Error::Transport(e)) => Err(failed(&url, timeout, &e)),
        }
    }
}

/// How long the call may take: the invocation's time left less [`MARGIN`], or a 504 at once
/// when that leaves less than [`MIN_CALL`].
fn call_timeout(ctx: &Context) -> Result<Duration, Error> {
    let Some(left) = ctx.remaining() else {
        return Ok(DEFAULT_TIMEOUT);
    };
    match left.checked_sub(MARGIN) {
        Some(t) if t >= MIN_CALL => Ok(t),
        _ => Err(Error::new(format!(
            "only {} ms of the invocation left: too little to call the API",
            left.as_millis()
        ))
        .with_status(504)),
    }
}

/// A 504 when the time ran out (connecting, in the TLS handshake or reading the answer), a
/// 502 for any other failure.
fn failed(url: &str, timeout: Duration, e: &(dyn std::error::Error + 'static)) -> Error {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            )
        {
            let ms = timeout.as_millis();
            return Error::new(format!("the API did not answer within {ms} ms: GET {url}"))
                .with_status(504);
        }
        cause = c.source();
    }
    // ureq's own errors start with the URL: said once.
    let text = e.to_string();
    let text = text.strip_prefix(&format!("{url}: ")).unwrap_or(&text);
    Error::new(format!("the API failed: GET {url}: {text}")).with_status(502)
}

/// The function for the API at `api` (a base URL), trusting the embedded roots and the
/// certificates in `extra_ca_pem`, if any. The tests build it this way, with a local API.
///
/// # Errors
/// A URL that is not http(s), or PEM without a certificate or with a bad one.
pub fn function_with(api: &str, extra_ca_pem: Option<&[u8]>) -> Result<Outbound, String> {
    if !api.starts_with("https://") && !api.starts_with("http://") {
        return Err(format!("the API URL is not https://…: {api}"));
    }
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = extra_ca_pem {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("EXTRA_CA_PEM: {e}"))?;
        if certs.is_empty() {
            return Err("EXTRA_CA_PEM: no certificate in it".into());
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("EXTRA_CA_PEM: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let agent = ureq::AgentBuilder::new()
        .tls_config(Arc::new(tls))
        .user_agent(concat!("outbound/", env!("CARGO_PKG_VERSION")))
        .build();
    let api = api.trim_end_matches('/').to_owned();
    Ok(Outbound { api, agent })
}

/// The function as the server starts it: `API_URL` and `EXTRA_CA_PEM` from the environment. A
/// bad setting ends the process with a line on stderr (exit code 2), before it serves.
pub fn function() -> Outbound {
    let api = std::env::var("API_URL").unwrap_or_else(|_| DEFAULT_API.to_owned());
    let extra_ca = std::env::var_os("EXTRA_CA_PEM").map(|path| {
        std::fs::read(&path).map_err(|e| format!("EXTRA_CA_PEM={}: {e}", path.display()))
    });
    match extra_ca
        .transpose()
        .and_then(|pem| function_with(&api, pem.as_deref()))
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("outbound: {e}");
            std::process::exit(2)
        }
    }
}

scf_lean::main!(function());
