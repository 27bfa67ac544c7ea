//! Tencent Cloud API 3.0, as SCF's deployment speaks it: TC3-HMAC-SHA256 signatures, the
//! credentials they are made with, and calls that answer JSON or the documented error.
//!
//! A call is `POST /` to `scf.tencentcloudapi.com` with the action's parameters as a JSON body
//! and the common parameters in headers (`X-TC-Action`, `X-TC-Timestamp`, `X-TC-Version`,
//! `X-TC-Region`, `X-TC-Token` with temporary credentials). The signature is the one the API 3.0
//! signature document describes and Tencent's SDKs compute: over the method, `/`, the empty
//! query, the `content-type` and `host` headers and the SHA-256 of the body, with a key derived
//! from the secret key, the UTC date and the service name. Every answer is
//! `{"Response": {...}}`; a failed call has `Response.Error.{Code, Message}` and a `RequestId`.
//!
//! The secret key never leaves this file except through [`Secret::expose`] into the HMAC; the
//! secret id is shown only masked ([`Credentials::masked_id`]) and the token never.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::Secret;

/// The API's host for SCF.
pub const SCF_HOST: &str = "scf.tencentcloudapi.com";
/// SCF's service name: the credential scope's middle part.
pub const SCF_SERVICE: &str = "scf";
/// SCF's API version.
pub const SCF_VERSION: &str = "2018-04-16";
/// The signature's algorithm, as the `Authorization` header names it.
pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
/// The body's type: what is sent and what is signed, byte for byte.
pub const CONTENT_TYPE: &str = "application/json";
/// The headers the signature covers.
pub const SIGNED_HEADERS: &str = "content-type;host";

/// The environment variables of the credentials (those of Tencent's SDKs and `tccli`).
pub const ENV_SECRET_ID: &str = "TENCENTCLOUD_SECRET_ID";
/// The secret key's variable.
pub const ENV_SECRET_KEY: &str = "TENCENTCLOUD_SECRET_KEY";
/// The temporary credentials' token's variable.
pub const ENV_SESSION_TOKEN: &str = "TENCENTCLOUD_SESSION_TOKEN";
/// The region's variable.
pub const ENV_REGION: &str = "TENCENTCLOUD_REGION";
/// `tccli`'s profile's variable (its files are `~/.tccli/PROFILE.credential` and
/// `.configure`).
pub const ENV_TCCLI_PROFILE: &str = "TCCLI_PROFILE";

/// Connecting, TLS included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The most of an answer that is read.
const MAX_ANSWER_BYTES: u64 = 4 * 1024 * 1024;
/// The most of a credential or configuration file that is read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A secret id, a secret key and, for temporary credentials, their token.
#[derive(Clone)]
pub struct Credentials {
    /// The secret id (`AKID…`): shown only masked.
    pub secret_id: String,
    /// The secret key: never shown.
    pub secret_key: Secret,
    /// The temporary credentials' token: never shown.
    pub token: Option<Secret>,
    /// Where they were found, for messages.
    pub source: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("secret_id", &self.masked_id())
            .field("secret_key", &self.secret_key)
            .field("token", &self.token)
            .field("source", &self.source)
            .finish()
    }
}

impl Credentials {
    /// The secret id with all but its first four and last four characters hidden: enough to
    /// tell which key is in use, not enough to use it.
    pub fn masked_id(&self) -> String {
        mask(&self.secret_id)
    }

    /// Every string that must never be shown: the key, the token, the full id.
    pub fn secrets(&self) -> Vec<&str> {
        let mut s = vec![self.secret_key.expose(), self.secret_id.as_str()];
        if let Some(t) = &self.token {
            s.push(t.expose());
        }
        s.retain(|s| !s.is_empty());
        s
    }

    /// The credentials from the environment (`TENCENTCLOUD_SECRET_ID`, `_SECRET_KEY`, and
    /// `_SESSION_TOKEN` for temporary ones), else from `tccli`'s credential file.
    ///
    /// # Errors
    /// Only one of the id and the key set; a `tccli` file that is not what `tccli configure`
    /// writes; none found anywhere.
    pub fn lookup() -> Result<Credentials> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        match (var(ENV_SECRET_ID), var(ENV_SECRET_KEY)) {
            (Some(id), Some(key)) => {
                return Ok(Credentials {
                    secret_id: id.trim().to_owned(),
                    secret_key: Secret::new(key.trim()),
                    token: var(ENV_SESSION_TOKEN).map(|t| Secret::new(t.trim())),
                    source: format!("${ENV_SECRET_ID} and ${ENV_SECRET_KEY}"),
                });
            }
            (Some(_), None) => bail!("${ENV_SECRET_ID} is set but ${ENV_SECRET_KEY} is not"),
            (None, Some(_)) => bail!("${ENV_SECRET_KEY} is set but ${ENV_SECRET_ID} is not"),
            (None, None) => {}
        }
        let path = tccli_file("credential");
        if let Some(path) = path.as_ref().filter(|p| p.exists()) {
            return tccli_credentials(path);
        }
        bail!(
            "no Tencent Cloud credentials: set {ENV_SECRET_ID} and {ENV_SECRET_KEY} (and \
             {ENV_SESSION_TOKEN} for temporary ones), or run `tccli configure` (it writes {}). \
             A key is made at https://console.cloud.tencent.com/cam/capi",
            path.map_or_else(
                || "~/.tccli/default.credential".to_owned(),
                |p| p.display().to_string()
            )
        )
    }
}

/// `s` with all but its first four and last four characters replaced by `…`; a short `s`
/// entirely hidden.
pub fn mask(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 16 {
        return "…".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// `~/.tccli/PROFILE.EXT`, the profile from `$TCCLI_PROFILE` (default `default`).
fn tccli_file(ext: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    let profile = std::env::var(ENV_TCCLI_PROFILE)
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    Some(
        PathBuf::from(home)
            .join(".tccli")
            .join(format!("{profile}.{ext}")),
    )
}

fn read_small(path: &std::path::Path) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .with_context(|| format!("open {}", path.display()))?
        .take(MAX_FILE_BYTES)
        .read_to_end(&mut buf)
        .with_context(|| format!("read {}", path.display()))?;
    Ok(buf)
}

/// `tccli configure` writes `{"secretId": "...", "secretKey": "..."}` (and `"token"` for
/// temporary credentials).
fn tccli_credentials(path: &std::path::Path) -> Result<Credentials> {
    #[derive(Deserialize)]
    struct File {
        #[serde(rename = "secretId", default)]
        secret_id: String,
        #[serde(rename = "secretKey", default)]
        secret_key: String,
        #[serde(default)]
        token: Option<String>,
        #[serde(rename = "type", default)]
        kind: String,
    }
    let bytes = read_small(path)?;
    let f: File = serde_json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a tccli credential file ({})",
            path.display(),
            crate::auth::json_where(&e)
        )
    })?;
    if f.secret_id.trim().is_empty() || f.secret_key.trim().is_empty() {
        let how = if f.kind.is_empty() {
            "run `tccli configure`".to_owned()
        } else {
            format!(
                "its {} login holds no key: run any tccli command to refresh it",
                f.kind
            )
        };
        bail!("{} has no secretId and secretKey: {how}", path.display());
    }
    Ok(Credentials {
        secret_id: f.secret_id.trim().to_owned(),
        secret_key: Secret::new(f.secret_key.trim()),
        token: f
            .token
            .filter(|t| !t.trim().is_empty())
            .map(|t| Secret::new(t.trim())),
        source: path.display().to_string(),
    })
}

/// The region of `tccli`'s profile, if it has one (`tccli configure set region …`).
pub fn tccli_region() -> Option<String> {
    let path = tccli_file("configure")?;
    let bytes = read_small(&path).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("_sys_param")
        .and_then(|p| p.get("region"))
        .or_else(|| v.get("region"))
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// The UTC date of `timestamp` (seconds since 1970), `YYYY-MM-DD`: the credential scope's.
pub fn utc_date(timestamp: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(timestamp);
    let mut s = humantime::format_rfc3339_seconds(t).to_string();
    s.truncate(10);
    s
}

/// What a signature covers: the request as sent.
pub struct Signing<'a> {
    /// The `Host` header: `scf.tencentcloudapi.com`, or `host:port` of another endpoint.
    pub host: &'a str,
    /// The `Content-Type` header.
    pub content_type: &'a str,
    /// The body, byte for byte.
    pub payload: &'a [u8],
    /// The service: `scf`.
    pub service: &'a str,
    /// `X-TC-Timestamp`.
    pub timestamp: u64,
}

impl Signing<'_> {
    /// The canonical request of a `POST /` (step 1 of the document).
    pub fn canonical_request(&self) -> String {
        format!(
            "POST\n/\n\ncontent-type:{}\nhost:{}\n\n{SIGNED_HEADERS}\n{}",
            self.content_type.trim().to_ascii_lowercase(),
            self.host.trim().to_ascii_lowercase(),
            hex(&Sha256::digest(self.payload))
        )
    }

    /// `DATE/SERVICE/tc3_request`.
    pub fn scope(&self) -> String {
        format!("{}/{}/tc3_request", utc_date(self.timestamp), self.service)
    }

    /// The string to sign (step 2).
    pub fn string_to_sign(&self) -> String {
        format!(
            "{ALGORITHM}\n{}\n{}\n{}",
            self.timestamp,
            self.scope(),
            hex(&Sha256::digest(self.canonical_request().as_bytes()))
        )
    }

    /// The signature (step 3): HMAC-SHA256 with the key derived from the secret key, the date
    /// and the service.
    pub fn signature(&self, secret_key: &Secret) -> String {
        let date = utc_date(self.timestamp);
        let k_date = hmac_sha256(
            format!("TC3{}", secret_key.expose()).as_bytes(),
            date.as_bytes(),
        );
        let k_service = hmac_sha256(&k_date, self.service.as_bytes());
        let k_signing = hmac_sha256(&k_service, b"tc3_request");
        hex(&hmac_sha256(&k_signing, self.string_to_sign().as_bytes()))
    }

    /// The `Authorization` header (step 4), with `secret_id` as given: the real one to send,
    /// a masked one to show.
    pub fn authorization(&self, secret_id: &str, secret_key: &Secret) -> String {
        format!(
            "{ALGORITHM} Credential={secret_id}/{}, SignedHeaders={SIGNED_HEADERS}, Signature={}",
            self.scope(),
            self.signature(secret_key)
        )
    }
}

/// An error the API answered: `Response.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The action that failed.
    pub action: String,
    /// `Error.Code`, e.g. `ResourceNotFound.Function`.
    pub code: String,
    /// `Error.Message`.
    pub message: String,
    /// `RequestId`, for Tencent's support.
    pub request_id: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}: {}", self.action, self.code, self.message)?;
        if let Some(hint) = hint(&self.code) {
            write!(f, "\n  {hint}")?;
        }
        if !self.request_id.is_empty() {
            write!(f, "\n  (request id {})", self.request_id)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// What to do about an error code, in plain words.
fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "AuthFailure.SignatureFailure" => {
            "the secret key does not match the secret id: check TENCENTCLOUD_SECRET_KEY"
        }
        "AuthFailure.SecretIdNotFound" | "AuthFailure.InvalidSecretId" => {
            "no such secret id, or it is disabled: check TENCENTCLOUD_SECRET_ID (https://console.cloud.tencent.com/cam/capi)"
        }
        "AuthFailure.SignatureExpire" => {
            "this machine's clock is more than 5 minutes off: set it right (NTP) and deploy again"
        }
        "AuthFailure.TokenFailure" | "AuthFailure.InvalidAuthorization" => {
            "temporary credentials expired or their token is wrong: get new ones (TENCENTCLOUD_SESSION_TOKEN)"
        }
        "AuthFailure.UnauthorizedOperation"
        | "UnauthorizedOperation"
        | "UnauthorizedOperation.CAM" => {
            "the key's user is not allowed this action: grant it QcloudSCFFullAccess (or scf:* on the function) in CAM"
        }
        "InvalidParameter.Region" | "UnsupportedRegion" | "InvalidParameterValue.Region" => {
            "SCF has no such region: e.g. ap-guangzhou, ap-shanghai, ap-beijing, ap-hongkong, ap-singapore"
        }
        "RequestLimitExceeded" => "too many calls: wait a moment and deploy again",
        "ResourceInUse.Function" => "the function exists already",
        "LimitExceeded.Function" => "the account has as many functions as it may in this namespace",
        _ => return None,
    })
}

/// The API's endpoint: `https://scf.tencentcloudapi.com` unless told otherwise.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `https://host[:port]` or `http://…`.
    pub url: String,
    /// `host[:port]`: the `Host` header, and what is signed.
    pub host: String,
}

impl Endpoint {
    /// The public endpoint.
    pub fn scf() -> Endpoint {
        Endpoint {
            url: format!("https://{SCF_HOST}"),
            host: SCF_HOST.to_owned(),
        }
    }

    /// Another endpoint: `https://HOST[:PORT]`, or `http://` on a loopback address only.
    pub fn parse(url: &str) -> Result<Endpoint> {
        let url = url.trim_end_matches('/');
        let (scheme, host) = url.split_once("://").with_context(|| {
            format!("endpoint {url}: not a URL (https://scf.ap-guangzhou.tencentcloudapi.com)")
        })?;
        if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
            bail!(
                "endpoint {url}: give the scheme and host only, e.g. https://scf.tencentcloudapi.com"
            );
        }
        match scheme {
            "https" => {}
            "http" if crate::push::is_loopback(host_name(host)) => {}
            "http" => bail!(
                "endpoint {url}: plain HTTP is allowed to a loopback address only (what a signed \
                 call carries could be read and replayed on the way)"
            ),
            _ => bail!("endpoint {url}: https:// (or http:// on loopback)"),
        }
        Ok(Endpoint {
            url: url.to_owned(),
            host: host.to_owned(),
        })
    }
}

/// `host` without its port (`[::1]:80` → `::1`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// One call, signed, ready to send or to show.
pub struct Call {
    /// The headers in the order sent, `Authorization` last.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: Vec<u8>,
    /// The `Authorization` header with the id masked: what is shown.
    pub shown_authorization: String,
}

impl Call {
    /// The call as HTTP/1.1 text: request line, headers, blank line, body. The secret id is
    /// masked, the token hidden; the key was never in it.
    pub fn to_http(&self) -> String {
        let mut s = String::from("POST / HTTP/1.1\r\n");
        for (name, value) in &self.headers {
            let value = match *name {
                "Authorization" => self.shown_authorization.as_str(),
                "X-TC-Token" => "<temporary credentials' token, not shown>",
                _ => value.as_str(),
            };
            s.push_str(name);
            s.push_str(": ");
            s.push_str(value);
            s.push_str("\r\n");
        }
        s.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        s.push_str(&String::from_utf8_lossy(&self.body));
        s.push('\n');
        s
    }
}

/// A client of SCF's API in one region, with its credentials.
pub struct Client {
    endpoint: Endpoint,
    region: String,
    credentials: Credentials,
    agent: ureq::Agent,
}

impl Client {
    /// A client of `endpoint` for `region`.
    pub fn new(endpoint: Endpoint, region: &str, credentials: Credentials) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("cargo-scf/", env!("CARGO_PKG_VERSION")))
            .timeout_resolve(Some(CONNECT_TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_call(Some(CALL_TIMEOUT))
            .build();
        Client {
            endpoint,
            region: region.to_owned(),
            credentials,
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// `action` with `params`, signed at `timestamp`.
    pub fn sign(&self, action: &str, params: &Value, timestamp: u64) -> Call {
        let body = serde_json::to_vec(params).expect("a JSON value serializes");
        let signing = Signing {
            host: &self.endpoint.host,
            content_type: CONTENT_TYPE,
            payload: &body,
            service: SCF_SERVICE,
            timestamp,
        };
        let key = &self.credentials.secret_key;
        let authorization = signing.authorization(&self.credentials.secret_id, key);
        let shown_authorization = signing.authorization(&self.credentials.masked_id(), key);
        let mut headers = vec![
            ("Host", self.endpoint.host.clone()),
            ("Content-Type", CONTENT_TYPE.to_owned()),
            ("X-TC-Action", action.to_owned()),
            ("X-TC-Timestamp", timestamp.to_string()),
            ("X-TC-Version", SCF_VERSION.to_owned()),
            ("X-TC-Region", self.region.clone()),
            (
                "X-TC-RequestClient",
                concat!("cargo-scf/", env!("CARGO_PKG_VERSION")).to_owned(),
            ),
        ];
        if let Some(t) = &self.credentials.token {
            headers.push(("X-TC-Token", t.expose().to_owned()));
        }
        headers.push(("Authorization", authorization));
        Call {
            headers,
            body,
            shown_authorization,
        }
    }

    /// `action` with `params`, signed now.
    pub fn sign_now(&self, action: &str, params: &Value) -> Call {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.sign(action, params, now)
    }

    /// Calls `action` and returns its `Response` (without `RequestId`'s meaning: the caller
    /// picks what it needs).
    ///
    /// # Errors
    /// The API's own error as an [`ApiError`] (`err.downcast_ref::<ApiError>()`); the network's;
    /// an answer that is not the API's shape.
    pub fn call(&self, action: &str, params: &Value) -> Result<Value> {
        let call = self.sign_now(action, params);
        let mut req = self.agent.post(&format!("{}/", self.endpoint.url));
        for (name, value) in &call.headers {
            if *name != "Host" {
                req = req.header(*name, value.as_str());
            }
        }
        let mut answer = req.send(&call.body[..]).map_err(|e| {
            anyhow::anyhow!(
                "{action}: cannot reach {}: {}",
                self.endpoint.url,
                self.shown(&e.to_string(), 500)
            )
        })?;
        let status = answer.status().as_u16();
        let body = answer
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .with_context(|| format!("{action}: read the answer of {}", self.endpoint.url))?;
        let v: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => bail!(
                "{action}: {} answered HTTP {status} and not the API's JSON: {}",
                self.endpoint.url,
                self.shown(&String::from_utf8_lossy(&body), 300)
            ),
        };
        // Whatever the server says may quote what it was sent: every string of the answer is
        // scrubbed of the secrets before anything reads it.
        let mut v = v;
        self.scrub_value(&mut v);
        let Some(response) = v.get("Response") else {
            bail!(
                "{action}: {} answered HTTP {status} without a Response: {}",
                self.endpoint.url,
                self.shown(&v.to_string(), 300)
            );
        };
        let request_id = self.shown(
            response
                .get("RequestId")
                .and_then(Value::as_str)
                .unwrap_or(""),
            100,
        );
        if let Some(err) = response.get("Error") {
            let field =
                |k: &str| self.shown(err.get(k).and_then(Value::as_str).unwrap_or(""), 2000);
            return Err(ApiError {
                action: action.to_owned(),
                code: field("Code"),
                message: field("Message"),
                request_id,
            }
            .into());
        }
        if status != 200 {
            bail!(
                "{action}: {} answered HTTP {status} (request id {request_id})",
                self.endpoint.url
            );
        }
        Ok(response.clone())
    }

    /// `text` as it may be shown: every secret replaced (in any ASCII case) first, then
    /// control characters escaped and at most `max` characters kept, so that no cut leaves a
    /// part of a secret.
    pub fn shown(&self, text: &str, max: usize) -> String {
        crate::auth::redact(
            &crate::auth::printable(text, usize::MAX),
            &self.credentials.secrets(),
            max,
        )
    }

    /// Every string in `v` (keys too) scrubbed of the secrets.
    fn scrub_value(&self, v: &mut Value) {
        let secrets = self.credentials.secrets();
        fn walk(v: &mut Value, secrets: &[&str]) {
            match v {
                Value::String(s) => *s = scrub(s, secrets),
                Value::Array(a) => a.iter_mut().for_each(|v| walk(v, secrets)),
                Value::Object(o) => {
                    let old = std::mem::take(o);
                    for (k, mut v) in old {
                        walk(&mut v, secrets);
                        o.insert(scrub(&k, secrets), v);
                    }
                }
                _ => {}
            }
        }
        walk(v, &secrets);
    }
}

/// `text` with every occurrence of each secret, in any ASCII case, replaced by `<redacted>`.
fn scrub(text: &str, secrets: &[&str]) -> String {
    crate::auth::redact(text, secrets, usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of the API 3.0 signature document, whose keys are printed in full:
    /// CVM's DescribeInstances at 1551113065 (2019-02-25).
    #[test]
    fn signature_document_example() {
        let payload = r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        let s = Signing {
            host: "cvm.tencentcloudapi.com",
            content_type: "application/json; charset=utf-8",
            payload: payload.as_bytes(),
            service: "cvm",
            timestamp: 1_551_113_065,
        };
        assert_eq!(
            s.canonical_request(),
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\n\
             content-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            s.string_to_sign(),
            "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n\
             5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        let key = Secret::new("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE");
        assert_eq!(
            s.authorization("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", &key),
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, \
             SignedHeaders=content-type;host, \
             Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    /// The date is UTC's: 16:44 UTC on the 25th is the 26th in Beijing, and the scope says 25.
    #[test]
    fn scope_date_is_utc() {
        assert_eq!(utc_date(1_551_113_065), "2019-02-25");
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_551_139_199), "2019-02-25");
        assert_eq!(utc_date(1_551_139_200), "2019-02-26");
    }

    #[test]
    fn masking() {
        assert_eq!(mask("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"), "AKID…MPLE");
        assert_eq!(mask("short"), "…");
        let c = Credentials {
            secret_id: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE".into(),
            secret_key: Secret::new("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"),
            token: Some(Secret::new("token-token-token")),
            source: "test".into(),
        };
        let debug = format!("{c:?}");
        for s in c.secrets() {
            assert!(!debug.contains(s), "{debug}");
        }
    }

    #[test]
    fn shown_call_hides_every_secret() {
        let c = Credentials {
            secret_id: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE".into(),
            secret_key: Secret::new("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"),
            token: Some(Secret::new("a-session-token-of-some-length")),
            source: "test".into(),
        };
        let client = Client::new(Endpoint::scf(), "ap-guangzhou", c.clone());
        let call = client.sign("GetFunction", &serde_json::json!({"FunctionName": "f"}), 1);
        let text = call.to_http();
        assert!(text.starts_with("POST / HTTP/1.1\r\nHost: scf.tencentcloudapi.com\r\n"));
        assert!(text.contains("\r\nX-TC-Action: GetFunction\r\n"));
        assert!(text.contains("Credential=AKID…MPLE/1970-01-01/scf/tc3_request"));
        assert!(text.ends_with("\r\n\r\n{\"FunctionName\":\"f\"}\n"));
        for s in c.secrets() {
            assert!(!text.contains(s), "{s} in {text}");
        }
        // What is sent carries the real ones.
        let sent = |n: &str| call.headers.iter().find(|h| h.0 == n).unwrap().1.clone();
        assert!(sent("Authorization").contains("Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/"));
        assert_eq!(sent("X-TC-Token"), "a-session-token-of-some-length");
    }

    /// Tencent's own signer (the Python SDK, `tencentcloud-sdk-python-common`, which `.ci/setup`
    /// installs) signs the same calls with the same keys and time: its requests' signatures
    /// equal ours over its bodies, and its signature over our bodies equals ours.
    #[test]
    fn the_official_sdk_signs_alike() {
        let Some(python) = sdk_python() else {
            return;
        };
        let key = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";
        for (host, token, timestamp) in [
            (SCF_HOST, None, 1_551_113_065u64),
            ("127.0.0.1:18080", Some("a-token"), 1_551_139_200),
            (SCF_HOST, Some("x"), 1_796_515_199),
        ] {
            let creds = Credentials {
                secret_id: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE".into(),
                secret_key: Secret::new(key),
                token: token.map(Secret::new),
                source: "test".into(),
            };
            let client = Client::new(
                Endpoint {
                    url: format!("https://{host}"),
                    host: host.into(),
                },
                "ap-shanghai",
                creds.clone(),
            );
            let cases = [
                (
                    "GetFunction",
                    serde_json::json!({"FunctionName": "my-fn", "Namespace": "default"}),
                ),
                (
                    "CreateFunction",
                    serde_json::json!({
                        "FunctionName": "my-fn", "Type": "HTTP", "MemorySize": 128,
                        "Description": "未命名 \"quoted\" ünïcode",
                        "Environment": {"Variables": [{"Key": "A", "Value": "1 2"}]},
                        "Code": {"ImageConfig": {"ImageType": "personal",
                            "ImageUri": "ccr.ccs.tencentyun.com/ns/f:1@sha256:00", "ImagePort": 9000}}
                    }),
                ),
            ];
            let calls: Vec<Call> = cases
                .iter()
                .map(|(a, p)| client.sign(a, p, timestamp))
                .collect();
            let job = serde_json::json!({
                "secret_id": creds.secret_id, "secret_key": key, "token": token,
                "region": "ap-shanghai", "host": host, "timestamp": timestamp,
                "cases": cases.iter().zip(&calls).map(|((a, p), c)| serde_json::json!({
                    "action": a, "params": p,
                    "body": String::from_utf8(c.body.clone()).unwrap(),
                })).collect::<Vec<_>>(),
            });
            let out = run_python(&python, &job);
            let lines: Vec<Value> = out
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines.len(), calls.len(), "{out}");
            for (line, call) in lines.iter().zip(&calls) {
                let sdk_headers = &line["sdk"]["headers"];
                let sdk_body = line["sdk"]["body"].as_str().unwrap();
                // The SDK's own request, signed here.
                let ours_over_sdk = Signing {
                    host,
                    content_type: sdk_headers["Content-Type"].as_str().unwrap(),
                    payload: sdk_body.as_bytes(),
                    service: SCF_SERVICE,
                    timestamp,
                }
                .authorization(&creds.secret_id, &creds.secret_key);
                assert_eq!(
                    sdk_headers["Authorization"].as_str().unwrap(),
                    ours_over_sdk
                );
                // The headers both send.
                let ours = |n: &str| call.headers.iter().find(|h| h.0 == n).map(|h| h.1.as_str());
                for name in [
                    "Content-Type",
                    "Host",
                    "X-TC-Action",
                    "X-TC-Timestamp",
                    "X-TC-Version",
                    "X-TC-Region",
                    "X-TC-Token",
                ] {
                    assert_eq!(sdk_headers[name].as_str(), ours(name), "{name}");
                }
                // Our request, signed by the SDK.
                let sent = ours("Authorization").unwrap();
                let signature = sent.rsplit("Signature=").next().unwrap();
                assert_eq!(line["ours"].as_str().unwrap(), signature);
            }
        }
    }

    /// `python3` with Tencent's SDK importable: from PYTHONPATH, or where `.ci/setup` installs
    /// it. None (the test is skipped, said on stderr) when it is not there, unless
    /// `SCF_LEAN_REQUIRE_TC_SDK` is set (as in CI).
    fn sdk_python() -> Option<std::process::Command> {
        let mut path = std::env::var("PYTHONPATH").unwrap_or_default();
        let installed = "/opt/tencentcloud-sdk-python";
        if std::path::Path::new(installed).is_dir() {
            path = if path.is_empty() {
                installed.into()
            } else {
                format!("{installed}:{path}")
            };
        }
        let ok = std::process::Command::new("python3")
            .env("PYTHONPATH", &path)
            .args(["-c", "import tencentcloud.common.common_client"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            assert!(
                std::env::var_os("SCF_LEAN_REQUIRE_TC_SDK").is_none(),
                "python3 cannot import Tencent's SDK: run `bash .ci/setup`"
            );
            eprintln!(
                "skipped: python3 with tencentcloud-sdk-python-common (bash .ci/setup installs it)"
            );
            return None;
        }
        let mut c = std::process::Command::new("python3");
        c.env("PYTHONPATH", path);
        Some(c)
    }

    fn run_python(python: &std::process::Command, job: &Value) -> String {
        use std::io::Write as _;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tc3/sdk_sign.py");
        let mut c = std::process::Command::new(python.get_program());
        c.envs(python.get_envs().filter_map(|(k, v)| Some((k, v?))));
        let mut child = c
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(job.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{script} failed");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn scrubbing_takes_every_case_and_keeps_other_text() {
        let secrets = ["Gu5t9xKEY", "tok"];
        assert_eq!(
            scrub("a Gu5t9xKEY b gu5t9xkey ü GU5T9XKEYé TOKEN tok", &secrets),
            "a <redacted> b <redacted> ü <redacted>é <redacted>EN <redacted>"
        );
        assert_eq!(scrub("nothing here", &secrets), "nothing here");
        assert_eq!(scrub("", &secrets), "");
        assert_eq!(scrub("x", &[""]), "x");
    }

    #[test]
    fn endpoints() {
        assert_eq!(Endpoint::scf().url, "https://scf.tencentcloudapi.com");
        let e = Endpoint::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            (e.url.as_str(), e.host.as_str()),
            ("http://127.0.0.1:8080", "127.0.0.1:8080")
        );
        assert!(Endpoint::parse("http://[::1]:9").is_ok());
        assert!(Endpoint::parse("https://scf.ap-shanghai.tencentcloudapi.com").is_ok());
        for bad in [
            "http://example.com",
            "ftp://x",
            "scf.tencentcloudapi.com",
            "https://h/p",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
