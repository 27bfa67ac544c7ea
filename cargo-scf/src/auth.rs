//! The registry's credentials for `cargo scf push`, and the registry's authentication
//! challenges: where a username and password come from, and how they stay out of every output.
//!
//! The credentials for a registry host are looked up in this order; the first source that has
//! some for the host wins:
//!
//! 1. the environment: `SCF_REGISTRY_USERNAME` and `SCF_REGISTRY_PASSWORD` (both, or neither);
//!    what a CI job sets, e.g. a TCR access token as the password;
//! 2. Docker's config, `$DOCKER_CONFIG/config.json` or else `~/.docker/config.json`: the host's
//!    credential helper (`credHelpers`), else the default store (`credsStore`), both run as
//!    `docker-credential-<helper> get`, else the host's `auths` entry that `docker login`
//!    writes (`auth`: base64 of `user:password`);
//! 3. podman's (containers') auth file: `$REGISTRY_AUTH_FILE` if set, else
//!    `$XDG_RUNTIME_DIR/containers/auth.json`, then `$XDG_CONFIG_HOME/containers/auth.json`
//!    (`~/.config/containers/auth.json`), with the same `auths` and `credHelpers`, where a key
//!    may also name a namespace or a repository (`host/ns/name`: the longest match wins).
//!
//! Keys match as Docker matches them: the host exactly, else any key that names the same host
//! once a scheme and a path are dropped (`https://host`, `https://host/v1/`).
//!
//! A password, a token or an `auth` string is held in a [`Secret`]: its `Debug` prints
//! `<redacted>`, it has no `Display`, and nothing here puts one in an error message (a config
//! that does not parse is reported by line and column only: serde's own messages may quote
//! the value they choke on).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use serde::Deserialize;

/// The environment variable with the registry username.
pub const ENV_USERNAME: &str = "SCF_REGISTRY_USERNAME";
/// The environment variable with the registry password (or access token).
pub const ENV_PASSWORD: &str = "SCF_REGISTRY_PASSWORD";

/// How long a credential helper may take to answer.
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);
/// The most a credential helper's answer, or an auth file, may hold.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// A value that must never be shown: a password, a token, an `Authorization` header.
///
/// Its `Debug` prints `<redacted>` and it has no `Display`; [`Secret::expose`] is the one way
/// to the text, for the request that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself: for an `Authorization` header or a token request, never for output.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A username and password for a registry, and where they were found (for messages).
#[derive(Clone)]
pub struct Credentials {
    /// The username (not a secret: messages may show it).
    pub username: String,
    /// The password or access token.
    pub password: Secret,
    /// Where they come from, e.g. `$SCF_REGISTRY_USERNAME`, or a file and its key.
    pub source: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .field("source", &self.source)
            .finish()
    }
}

impl Credentials {
    /// The `Authorization` header value of HTTP basic authentication with them.
    pub fn basic(&self) -> Secret {
        let pair = format!("{}:{}", self.username, self.password.expose());
        Secret(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }

    /// The strings that must never appear in output: the password, and the basic header's
    /// base64 (what an `auth` entry holds).
    pub fn secrets(&self) -> Vec<Secret> {
        let basic = self.basic();
        let encoded = basic.expose().trim_start_matches("Basic ").to_owned();
        vec![self.password.clone(), Secret(encoded)]
    }
}

/// The credentials for `host` (`name[:port]`, as in the image reference) and the repository
/// `repository` (its path, without the host), from the first source that has some; `None`
/// when none has.
///
/// # Errors
/// A source that is there but broken: only one of the two environment variables set, an auth
/// file that is not JSON, an `auth` entry that is not base64 `user:password`, a credential
/// helper that fails.
pub fn lookup(host: &str, repository: &str) -> Result<Option<Credentials>> {
    if let Some(c) = from_env()? {
        return Ok(Some(c));
    }
    if let Some(path) = docker_config_path()
        && let Some(c) = from_file(&path, host, &[], Flavor::Docker)?
    {
        return Ok(Some(c));
    }
    let scopes = repository_scopes(host, repository);
    for path in podman_auth_paths() {
        if let Some(c) = from_file(&path, host, &scopes, Flavor::Podman)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// The credentials in `SCF_REGISTRY_USERNAME` and `SCF_REGISTRY_PASSWORD`.
fn from_env() -> Result<Option<Credentials>> {
    let user = std::env::var(ENV_USERNAME).ok().filter(|s| !s.is_empty());
    let pass = std::env::var(ENV_PASSWORD).ok().filter(|s| !s.is_empty());
    match (user, pass) {
        (Some(username), Some(password)) => Ok(Some(Credentials {
            username,
            password: Secret(password),
            source: format!("${ENV_USERNAME} and ${ENV_PASSWORD}"),
        })),
        (None, None) => Ok(None),
        (Some(_), None) => bail!("{ENV_USERNAME} is set but {ENV_PASSWORD} is not: set both"),
        (None, Some(_)) => bail!("{ENV_PASSWORD} is set but {ENV_USERNAME} is not: set both"),
    }
}

/// The home directory, from `HOME`.
fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => home().map(|h| h.join(".docker").join("config.json")),
    }
}

/// podman's auth files, in the order containers/image reads them: `$REGISTRY_AUTH_FILE` alone
/// if set, else `$XDG_RUNTIME_DIR/containers/auth.json` then
/// `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`.
fn podman_auth_paths() -> Vec<PathBuf> {
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|f| !f.is_empty()) {
        return vec![PathBuf::from(f)];
    }
    let mut paths = Vec::new();
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        paths.push(PathBuf::from(d).join("containers").join("auth.json"));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".config")));
    if let Some(c) = config {
        paths.push(c.join("containers").join("auth.json"));
    }
    paths
}

/// The keys of a podman auth file that may hold a repository's credentials, most specific
/// first: `host/a/b`, `host/a`, then `host` (matched separately).
fn repository_scopes(host: &str, repository: &str) -> Vec<String> {
    let mut scopes = Vec::new();
    let mut path = repository;
    while !path.is_empty() {
        scopes.push(format!("{host}/{path}"));
        path = path.rsplit_once('/').map_or("", |(parent, _)| parent);
    }
    scopes
}

/// Whose file it is: the lookup rules differ a little.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// Docker's config.json: a credential helper wins over `auths`.
    Docker,
    /// podman's auth.json: keys may name repositories.
    Podman,
}

/// An auth file: Docker's config.json or podman's auth.json (the same keys).
#[derive(Deserialize, Default)]
struct AuthFile {
    /// Registry (key) to `auth` entry.
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    /// Registry host to credential helper name (`docker-credential-<name>`).
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    /// The default credential helper for every registry.
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

/// One `auths` entry. No `Debug`: it holds secrets.
#[derive(Deserialize, Default)]
struct AuthEntry {
    /// base64 of `user:password`.
    #[serde(default)]
    auth: Option<String>,
    /// The username, where a tool wrote it apart.
    #[serde(default)]
    username: Option<String>,
    /// The password, where a tool wrote it apart.
    #[serde(default)]
    password: Option<String>,
    /// An OAuth refresh token (`docker login` to some registries): not used, reported.
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The credentials for `host` in the auth file at `path` (none when it does not exist).
fn from_file(
    path: &Path,
    host: &str,
    scopes: &[String],
    flavor: Flavor,
) -> Result<Option<Credentials>> {
    let file = match read_auth_file(path)? {
        Some(f) => f,
        None => return Ok(None),
    };
    let shown = path.display();
    // A credential helper for this host, then (Docker) the default store.
    let helper = file
        .cred_helpers
        .get(host)
        .map(|h| (h.as_str(), "credHelpers"))
        .or_else(|| {
            (flavor == Flavor::Docker)
                .then_some(())
                .and(file.creds_store.as_deref())
                .filter(|s| !s.is_empty())
                .map(|s| (s, "credsStore"))
        });
    if let Some((helper, key)) = helper
        && let Some(c) = run_helper(helper, host, &format!("{key} in {shown}"))?
    {
        return Ok(Some(c));
    }
    // The `auths` entry: a repository's or namespace's key (podman), the host's, then any key
    // naming the same host.
    let by_scope = scopes
        .iter()
        .find_map(|s| file.auths.get(s).map(|e| (s.as_str(), e)));
    let entry = by_scope
        .or_else(|| file.auths.get_key_value(host).map(|(k, e)| (k.as_str(), e)))
        .or_else(|| {
            file.auths
                .iter()
                .find(|(k, _)| key_hostname(k, flavor).eq_ignore_ascii_case(host))
                .map(|(k, e)| (k.as_str(), e))
        });
    match entry {
        Some((key, e)) => entry_credentials(e, &format!("{shown} (auths.\"{key}\")")),
        None => Ok(None),
    }
}

/// Reads and parses an auth file; `None` when there is none.
fn read_auth_file(path: &Path) -> Result<Option<AuthFile>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let mut text = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut text)
        .with_context(|| format!("read {}", path.display()))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        bail!("{} is larger than {MAX_CONFIG_BYTES} bytes", path.display());
    }
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(AuthFile::default()));
    }
    serde_json::from_slice(&text).map(Some).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a valid auth file: {}",
            path.display(),
            json_where(&e)
        )
    })
}

/// Where a JSON document is broken, without serde's message (which may quote a value).
pub fn json_where(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "cannot be read",
        serde_json::error::Category::Syntax => "a syntax error",
        serde_json::error::Category::Data => "an unexpected value",
        serde_json::error::Category::Eof => "it ends early",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// The host a key names: Docker's `ConvertToHostname` (the key without a scheme and a
/// path); for podman, as containers/image reads it, the path is dropped only from a key with
/// a scheme (`host/ns` names a namespace, not the host).
fn key_hostname(key: &str, flavor: Flavor) -> &str {
    let lower = key
        .get(..8)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let rest = if lower.starts_with("https://") {
        &key[8..]
    } else if lower.starts_with("http://") {
        &key[7..]
    } else if flavor == Flavor::Podman {
        return key;
    } else {
        key
    };
    rest.split('/').next().unwrap_or(rest)
}

/// The credentials of an `auths` entry: `auth` (base64 `user:password`), else `username` and
/// `password`; `None` for an entry with neither (Docker leaves `{}` when a helper keeps them).
fn entry_credentials(e: &AuthEntry, source: &str) -> Result<Option<Credentials>> {
    if let Some(auth) = e.auth.as_deref().filter(|a| !a.trim().is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .with_context(|| format!("{source}: `auth` is not base64 of user:password"))?;
        let (user, pass) = decoded
            .split_once(':')
            .with_context(|| format!("{source}: `auth` is not base64 of user:password"))?;
        if user.is_empty() || pass.is_empty() {
            bail!("{source}: `auth` has an empty username or password");
        }
        return Ok(Some(Credentials {
            username: user.to_owned(),
            password: Secret(pass.to_owned()),
            source: source.to_owned(),
        }));
    }
    match (&e.username, &e.password) {
        (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Ok(Some(Credentials {
            username: u.clone(),
            password: Secret(p.clone()),
            source: source.to_owned(),
        })),
        _ if e.identitytoken.as_deref().is_some_and(|t| !t.is_empty()) => bail!(
            "{source} holds an identity token, which `cargo scf push` does not use: \
             log in with a username and password (or set {ENV_USERNAME} and {ENV_PASSWORD})"
        ),
        _ => Ok(None),
    }
}

/// A credential helper's answer to `get`.
#[derive(Deserialize)]
struct HelperAnswer {
    /// The username.
    #[serde(rename = "Username", default)]
    username: String,
    /// The password or token.
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `docker-credential-<helper> get` with `host` on its standard input; `None` when it has
/// no credentials for the host (or is not installed: then a warning says so).
fn run_helper(helper: &str, host: &str, named_in: &str) -> Result<Option<Credentials>> {
    if helper.is_empty()
        || !helper
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        bail!("{named_in}: {helper:?} is not a credential helper's name");
    }
    let program = format!("docker-credential-{helper}");
    let mut child = match Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("warning: {named_in} names {program}, which is not installed: skipped");
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("run {program} ({named_in})")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is seen by its exit status below.
        let _ = stdin.write_all(host.as_bytes());
    }
    let reader = |pipe: Option<std::process::ChildStdout>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(MAX_CONFIG_BYTES).read_to_end(&mut out);
            }
            out
        })
    };
    let stdout = reader(child.stdout.take());
    let stderr_pipe = child.stderr.take();
    let stderr = std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(p) = stderr_pipe {
            let _ = p.take(64 * 1024).read_to_end(&mut out);
        }
        out
    });
    let deadline = Instant::now() + HELPER_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{program} ({named_in}) did not answer within {} s",
                    HELPER_TIMEOUT.as_secs()
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e).with_context(|| format!("wait for {program}")),
        }
    };
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    if !status.success() {
        // A failure's output is an error message (docker-credential-helpers print it on
        // stdout), not credentials.
        let message = String::from_utf8_lossy(if out.is_empty() { &err } else { &out })
            .trim()
            .to_owned();
        if message.contains("credentials not found") {
            return Ok(None);
        }
        bail!(
            "{program} ({named_in}) failed ({status}): {}",
            printable(&message, 300)
        );
    }
    let answer: HelperAnswer = serde_json::from_slice(&out).map_err(|e| {
        anyhow::anyhow!(
            "{program} ({named_in}) answered no credentials JSON: {}",
            json_where(&e)
        )
    })?;
    if answer.username.is_empty() || answer.secret.is_empty() {
        return Ok(None);
    }
    if answer.username == "<token>" {
        bail!(
            "{program} ({named_in}) gave an identity token, which `cargo scf push` does not use: \
             log in with a username and password (or set {ENV_USERNAME} and {ENV_PASSWORD})"
        );
    }
    Ok(Some(Credentials {
        username: answer.username,
        password: Secret(answer.secret),
        source: format!("{program} ({named_in})"),
    }))
}

/// `text` made safe for a terminal, at most `max` characters: control characters escaped.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A secret shorter than this (characters) is not taken out of what is shown (it would take
/// ordinary text out); nor is a secret's beginning shorter than this left at a cut.
pub const MIN_SECRET: usize = 4;
/// What a secret is shown as.
pub const REDACTED: &str = "<redacted>";

/// `text` with every occurrence of one of `secrets` (in any ASCII case; overlapping ones as
/// one) shown as `<redacted>`, then cut to `max` characters: taken out before the cut, a secret
/// crossing it leaves nothing, and a secret's beginning of [`MIN_SECRET`] characters or more
/// left at the cut is taken out too.
pub fn redact(text: &str, secrets: &[impl AsRef<str>], max: usize) -> String {
    let lower = text.to_ascii_lowercase();
    let secrets: Vec<String> = secrets
        .iter()
        .map(|s| s.as_ref().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    let mut spans = Vec::new();
    for s in &secrets {
        let mut from = 0;
        while let Some(i) = lower[from..].find(s.as_str()) {
            let at = from + i;
            spans.push((at, at + s.len()));
            from = at + lower[at..].chars().next().map_or(1, char::len_utf8);
        }
    }
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (start, end) in merged {
        out.push_str(&text[pos..start]);
        out.push_str(REDACTED);
        pos = end;
    }
    out.push_str(&text[pos..]);
    let Some((cut, _)) = out.char_indices().nth(max) else {
        return out;
    };
    let kept = &out[..cut];
    let kept_lower = kept.to_ascii_lowercase();
    // The longest beginning of a secret that what is kept ends with.
    let tail = secrets
        .iter()
        .flat_map(|s| {
            s.char_indices()
                .skip(MIN_SECRET)
                .map(|(i, _)| i)
                .chain([s.len()])
                .filter(|&i| s[..i].chars().count() >= MIN_SECRET)
                .filter(|&i| kept_lower.ends_with(&s[..i]))
        })
        .max();
    match tail {
        Some(n) => format!("{}{REDACTED}…", &kept[..kept.len() - n]),
        None => format!("{kept}…"),
    }
}

/// An authentication challenge from a registry's `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP basic authentication: send the username and password with every request.
    Basic,
    /// The token protocol: get a token from `realm` for `service` and `scope`, then send it as
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token server's URL.
        realm: String,
        /// The registry's name for the token server.
        service: Option<String>,
        /// The access the request needed, e.g. `repository:ns/name:pull,push`.
        scope: Option<String>,
    },
    /// Another scheme (its name), which `cargo scf push` does not speak.
    Other(String),
}

/// The challenges of a `WWW-Authenticate` header value (RFC 9110: `scheme param=value, ...`,
/// values as tokens or quoted strings; several challenges may share a header).
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    let mut p = Parser { s: header, i: 0 };
    loop {
        p.skip(|c| c == ',' || c.is_ascii_whitespace());
        let scheme = p.token();
        if scheme.is_empty() {
            break;
        }
        let mut params: BTreeMap<String, String> = BTreeMap::new();
        loop {
            p.skip(|c| c.is_ascii_whitespace());
            let save = p.i;
            let name = p.token();
            p.skip(|c| c.is_ascii_whitespace());
            if name.is_empty() || !p.eat('=') {
                // The next challenge's scheme (or something that is no parameter).
                p.i = save;
                break;
            }
            p.skip(|c| c.is_ascii_whitespace());
            if p.at_end() || p.s[p.i..].starts_with([',', '=']) {
                // A token68 (`Basic dXNlcg==`), not a parameter: skipped.
                p.skip(|c| c != ',');
                break;
            }
            // A quoted string, or (leniently: a URL is no RFC token) anything up to a comma.
            let value = if p.eat('"') {
                p.quoted()
            } else {
                let start = p.i;
                p.skip(|c| c != ',' && !c.is_ascii_whitespace());
                p.s[start..p.i].to_owned()
            };
            params.insert(name.to_ascii_lowercase(), value);
            p.skip(|c| c.is_ascii_whitespace());
            if !p.eat(',') {
                break;
            }
        }
        out.push(match scheme.to_ascii_lowercase().as_str() {
            "basic" => Challenge::Basic,
            "bearer" => match params.remove("realm") {
                Some(realm) => Challenge::Bearer {
                    realm,
                    service: params.remove("service"),
                    scope: params.remove("scope"),
                },
                None => Challenge::Other("Bearer without a realm".into()),
            },
            _ => Challenge::Other(scheme.to_owned()),
        });
    }
    out
}

/// A cursor over a header value.
struct Parser<'a> {
    /// The header value.
    s: &'a str,
    /// The position in it (a character boundary).
    i: usize,
}

impl<'a> Parser<'a> {
    /// Skips the characters that match.
    fn skip(&mut self, f: impl Fn(char) -> bool) {
        while let Some(c) = self.s[self.i..].chars().next() {
            if !f(c) {
                break;
            }
            self.i += c.len_utf8();
        }
    }

    /// Whether the whole value has been read.
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    /// Takes `c` if it is next.
    fn eat(&mut self, c: char) -> bool {
        if self.s[self.i..].starts_with(c) {
            self.i += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// An RFC 9110 token (possibly empty).
    fn token(&mut self) -> &'a str {
        let start = self.i;
        self.skip(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
        &self.s[start..self.i]
    }

    /// The rest of a quoted string, its opening quote taken: up to the closing quote, with
    /// backslash escapes.
    fn quoted(&mut self) -> String {
        let mut v = String::new();
        let mut chars = self.s[self.i..].char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => {
                    self.i += at + 1;
                    return v;
                }
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        v.push(n);
                    }
                }
                c => v.push(c),
            }
        }
        self.i = self.s.len();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let c = Credentials {
            username: "100012345678".into(),
            password: Secret::new("hunter2-p4ss"),
            source: "test".into(),
        };
        let shown = format!("{c:?} {:?} {:?}", c.basic(), c.secrets());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            !shown.contains(&c.secrets()[1].expose().to_owned()),
            "{shown}"
        );
        assert!(shown.contains("<redacted>") && shown.contains("100012345678"));
        assert_eq!(
            c.basic().expose(),
            "Basic MTAwMDEyMzQ1Njc4Omh1bnRlcjItcDRzcw=="
        );
    }

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenges(
                r#"Bearer realm="https://ccr.ccs.tencentyun.com/service/token",service="ccr.ccs.tencentyun.com",scope="repository:ns/fn:pull,push""#
            ),
            vec![Challenge::Bearer {
                realm: "https://ccr.ccs.tencentyun.com/service/token".into(),
                service: Some("ccr.ccs.tencentyun.com".into()),
                scope: Some("repository:ns/fn:pull,push".into()),
            }]
        );
        assert_eq!(
            parse_challenges(r#"Basic realm="Registry Realm""#),
            vec![Challenge::Basic]
        );
        assert_eq!(
            parse_challenges(r#"Basic realm="a, b", Bearer realm=https://x/t, service = "s\"q""#),
            vec![
                Challenge::Basic,
                Challenge::Bearer {
                    realm: "https://x/t".into(),
                    service: Some("s\"q".into()),
                    scope: None
                }
            ]
        );
        assert_eq!(
            parse_challenges("Negotiate"),
            vec![Challenge::Other("Negotiate".into())]
        );
        assert_eq!(
            parse_challenges("Basic dXNlcjpwYXNz==, Bearer realm=\"r\""),
            vec![
                Challenge::Basic,
                Challenge::Bearer {
                    realm: "r".into(),
                    service: None,
                    scope: None
                }
            ]
        );
        assert_eq!(parse_challenges(""), vec![]);
        // Hostile input neither panics nor loops.
        for s in [
            "\"",
            "=",
            "Bearer realm=\"",
            "Bearer ,,,=,\"",
            "é=é",
            "Bearer realm=é\\",
        ] {
            let _ = parse_challenges(s);
        }
    }

    #[test]
    fn docker_keys() {
        assert_eq!(
            key_hostname("https://index.docker.io/v1/", Flavor::Docker),
            "index.docker.io"
        );
        assert_eq!(
            key_hostname("HTTP://127.0.0.1:5000", Flavor::Podman),
            "127.0.0.1:5000"
        );
        assert_eq!(key_hostname("h.io/ns", Flavor::Docker), "h.io");
        assert_eq!(key_hostname("h.io/ns", Flavor::Podman), "h.io/ns");
        assert_eq!(
            key_hostname("ccr.ccs.tencentyun.com", Flavor::Docker),
            "ccr.ccs.tencentyun.com"
        );
        assert_eq!(key_hostname("é", Flavor::Docker), "é");
        assert_eq!(
            repository_scopes("h:1", "a/b/c"),
            vec!["h:1/a/b/c", "h:1/a/b", "h:1/a"]
        );
    }

    #[test]
    fn auth_entries() {
        let e = AuthEntry {
            auth: Some("dXNlcjpwYTpzcw==".into()),
            ..AuthEntry::default()
        };
        let c = entry_credentials(&e, "f").unwrap().unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.expose()),
            ("user", "pa:ss")
        );
        let bad = AuthEntry {
            auth: Some("not base64 at all!".into()),
            ..AuthEntry::default()
        };
        let msg = format!("{:#}", entry_credentials(&bad, "f").err().unwrap());
        assert!(!msg.contains("not base64 at all!"), "{msg}");
        assert!(
            entry_credentials(&AuthEntry::default(), "f")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn printable_escapes_controls() {
        assert_eq!(printable("a\x1b[31mb\n", 100), "a\\u{1b}[31mb\\n");
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}
