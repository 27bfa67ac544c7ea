//! A real container registry on loopback for the push tests: the CNCF distribution registry
//! (Debian's `docker-registry`, 2.8), started with a configuration file written here, with or
//! without TLS (a CA made here), anonymous, with htpasswd (bcrypt) or with the token protocol
//! (a token server made here, issuing ES256 JWTs that the registry verifies against the
//! server's self-signed certificate); and a small image written as an OCI layout.
//!
//! The registry listens on `127.0.0.1:0`, so the kernel picks a free port (no race with another
//! process), and says which in its log line `listening on 127.0.0.1:PORT`, which is waited
//! for. Every process and thread started here stops when its value is dropped, also when a
//! test panics; every wait is bounded.

// Each test uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// How long the registry may take to listen.
const START: Duration = Duration::from_secs(15);

/// The registry program: Debian's name, else upstream's.
pub fn registry_program() -> Option<&'static str> {
    ["docker-registry", "registry"]
        .into_iter()
        .find(|p| works(p))
}

/// Whether `program --version` works.
pub fn works(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// How the registry authenticates.
pub enum Auth {
    /// Not at all.
    None,
    /// htpasswd: this user and password (stored as a bcrypt hash).
    Htpasswd {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// The token protocol, with this token server.
    Token(TokenConfig),
}

/// What the registry needs to know of a token server.
pub struct TokenConfig {
    /// The realm URL (the token endpoint).
    pub realm: String,
    /// The service name (the tokens' audience).
    pub service: String,
    /// The issuer name (the tokens' `iss`).
    pub issuer: String,
    /// The PEM certificate that signs the tokens.
    pub cert_pem: String,
}

/// A running registry, killed and waited for when dropped.
pub struct Registry {
    /// The registry process.
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its log lines so far.
    log: Arc<Mutex<String>>,
    /// Its configuration and storage, removed when dropped.
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry with its storage and configuration in a new temporary directory,
    /// serving TLS with `tls` (certificate and key PEM) if given.
    ///
    /// # Panics
    /// When it does not listen within 15 s (the panic shows its log).
    pub fn start(program: &str, tls: Option<(&str, &str)>, auth: &Auth) -> Registry {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let d = dir.path();
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             health:\n  storagedriver:\n    enabled: false\n\
             http:\n  addr: 127.0.0.1:0\n  secret: cargo-scf-test-secret\n",
            d.join("data").display()
        );
        if let Some((cert, key)) = tls {
            std::fs::write(d.join("tls.crt"), cert).unwrap();
            std::fs::write(d.join("tls.key"), key).unwrap();
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                d.join("tls.crt").display(),
                d.join("tls.key").display()
            ));
        }
        match auth {
            Auth::None => {}
            Auth::Htpasswd { user, password } => {
                // Cost 4, the least bcrypt takes: the registry checks it on every request.
                let hash = bcrypt::hash(password, 4).expect("bcrypt");
                std::fs::write(d.join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: cargo-scf-test\n    path: {}\n",
                    d.join("htpasswd").display()
                ));
            }
            Auth::Token(t) => {
                std::fs::write(d.join("token.crt"), &t.cert_pem).unwrap();
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    \
                     rootcertbundle: {}\n",
                    t.realm,
                    t.service,
                    t.issuer,
                    d.join("token.crt").display()
                ));
            }
        }
        std::fs::write(d.join("config.yml"), config).unwrap();
        let mut child = Command::new(program)
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let (log, tx) = (Arc::clone(&log), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = listening(&line) {
                        let _ = tx.send(addr);
                    }
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let deadline = Instant::now() + START;
        let addr = loop {
            if let Ok(a) = rx.recv_timeout(Duration::from_millis(50)) {
                break a;
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "the registry exited ({status}) before listening:\n{}",
                    log.lock().unwrap()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the registry did not listen within {START:?}:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Registry {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address of distribution's `listening on 127.0.0.1:PORT` (`, tls` after it with TLS).
fn listening(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let end = rest.find([',', '"', ' ']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A CA and a server certificate it issued for 127.0.0.1 (IP SAN) and localhost.
pub struct TestCa {
    /// The CA's certificate, PEM.
    pub ca_pem: String,
    /// The server's certificate, PEM.
    pub cert_pem: String,
    /// The server's private key, PEM (PKCS#8).
    pub key_pem: String,
}

impl TestCa {
    /// Makes them (ECDSA P-256).
    pub fn new() -> TestCa {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "cargo-scf test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut server =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = server.signed_by(&key, &issuer).unwrap();
        TestCa {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// What the token server saw of one request.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// The `scope` parameters.
    pub scopes: Vec<String>,
    /// The `service` parameter.
    pub service: Option<String>,
    /// Whether it carried basic credentials, and whether they were right.
    pub credentials: Option<bool>,
}

/// A token server on loopback (plain HTTP): checks basic credentials and issues ES256 JWTs
/// granting what the `scope` asks (pull, push) on repositories. Stopped when dropped.
pub struct TokenServer {
    /// Its realm URL.
    pub realm: String,
    /// Its signing certificate, PEM (the registry's `rootcertbundle`).
    pub cert_pem: String,
    /// The service name it issues tokens for.
    pub service: String,
    /// Its issuer name.
    pub issuer: String,
    /// The requests it has answered.
    pub requests: Arc<Mutex<Vec<TokenRequest>>>,
    /// The tokens it has issued.
    pub issued: Arc<Mutex<Vec<String>>>,
    /// Set to stop its thread.
    stop: Arc<AtomicBool>,
    /// The thread that serves it.
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    /// Starts one that knows `user` with `password`.
    pub fn start(user: &str, password: &str) -> TokenServer {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "cargo-scf test token issuer");
        let cert = params.self_signed(&key).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &rng,
        )
        .unwrap();
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let service = "cargo-scf-test-registry".to_owned();
        let issuer = "cargo-scf-test-issuer".to_owned();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let issued = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let x5c = STANDARD.encode(cert.der());
        let expected = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        let thread = {
            let (requests, issued, stop) = (requests.clone(), issued.clone(), stop.clone());
            let (service, issuer) = (service.clone(), issuer.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) else {
                        continue;
                    };
                    let query = req.url().split_once('?').map_or("", |(_, q)| q).to_owned();
                    let mut scopes = Vec::new();
                    let mut svc = None;
                    for pair in query.split('&') {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        let v = percent_encoding::percent_decode_str(v)
                            .decode_utf8_lossy()
                            .into_owned();
                        match k {
                            "scope" => scopes.push(v),
                            "service" => svc = Some(v),
                            _ => {}
                        }
                    }
                    let authz = req
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("Authorization"))
                        .map(|h| h.value.as_str().to_owned());
                    let right = authz.as_ref().map(|a| *a == expected);
                    requests.lock().unwrap().push(TokenRequest {
                        scopes: scopes.clone(),
                        service: svc.clone(),
                        credentials: right,
                    });
                    let json_header = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        &b"application/json"[..],
                    )
                    .unwrap();
                    if right != Some(true) || svc.as_deref() != Some(&service) {
                        let body = json!({"errors": [{"code": "UNAUTHORIZED",
                            "message": "wrong username or password"}]});
                        let _ = req.respond(
                            tiny_http::Response::from_string(body.to_string())
                                .with_status_code(401)
                                .with_header(json_header),
                        );
                        continue;
                    }
                    let access: Vec<Value> = scopes
                        .iter()
                        .filter_map(|s| {
                            let mut parts = s.splitn(3, ':');
                            let (kind, name, actions) =
                                (parts.next()?, parts.next()?, parts.next()?);
                            let actions: Vec<&str> = actions
                                .split(',')
                                .filter(|a| matches!(*a, "pull" | "push"))
                                .collect();
                            (kind == "repository").then(
                                || json!({"type": "repository", "name": name, "actions": actions}),
                            )
                        })
                        .collect();
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
                    let claims = json!({
                        "iss": issuer, "sub": "cargo-scf-test", "aud": service,
                        "exp": now + 300, "nbf": now - 10, "iat": now,
                        "jti": format!("{now}-{}", issued.lock().unwrap().len()),
                        "access": access,
                    });
                    let signing_input = format!(
                        "{}.{}",
                        URL_SAFE_NO_PAD.encode(header.to_string()),
                        URL_SAFE_NO_PAD.encode(claims.to_string())
                    );
                    let signature = signer.sign(&rng, signing_input.as_bytes()).unwrap();
                    let token = format!(
                        "{signing_input}.{}",
                        URL_SAFE_NO_PAD.encode(signature.as_ref())
                    );
                    issued.lock().unwrap().push(token.clone());
                    let body = json!({"token": token, "expires_in": 300});
                    let _ = req.respond(
                        tiny_http::Response::from_string(body.to_string()).with_header(json_header),
                    );
                }
            })
        };
        TokenServer {
            realm: format!("http://127.0.0.1:{port}/token"),
            cert_pem: cert.pem(),
            service,
            issuer,
            requests,
            issued,
            stop,
            thread: Some(thread),
        }
    }

    /// The registry's side of it.
    pub fn config(&self) -> TokenConfig {
        TokenConfig {
            realm: self.realm.clone(),
            service: self.service.clone(),
            issuer: self.issuer.clone(),
            cert_pem: self.cert_pem.clone(),
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The manifest format of a layout written by [`write_layout`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    /// Docker v2 schema 2.
    Docker,
    /// OCI 1.0.
    Oci,
}

/// An image written as an OCI layout.
pub struct WrittenLayout {
    /// The manifest's digest.
    pub digest: String,
    /// The manifest's bytes.
    pub manifest: Vec<u8>,
    /// The manifest's media type.
    pub media_type: &'static str,
    /// The digests of the layer and the config.
    pub blobs: Vec<String>,
}

/// `sha256:<hex>` of bytes.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// Writes a small linux/amd64 image into `dir` as an OCI layout: one gzip layer holding
/// `/hello.txt` with `payload`, its config, and a manifest in `format`, laid out with
/// three-space indents and a final newline (as no serializer here writes it: a push that
/// re-serialized it would change its digest).
pub fn write_layout(dir: &Path, format: Format, payload: &[u8]) -> WrittenLayout {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> String {
        let d = sha256(data);
        std::fs::write(blobs.join(&d[7..]), data).unwrap();
        d
    };
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(payload.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, "hello.txt", payload).unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let layer = gz.finish().unwrap();
    let (manifest_type, config_type, layer_type) = match format {
        Format::Docker => (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ),
        Format::Oci => (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
    };
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]},
    })
    .to_string();
    let layer_digest = put(&layer);
    let config_digest = put(config.as_bytes());
    let manifest = format!(
        "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"{manifest_type}\",\n   \"config\": {{\
         \"mediaType\": \"{config_type}\", \"size\": {}, \"digest\": \"{config_digest}\"}},\n   \
         \"layers\": [{{\"mediaType\": \"{layer_type}\", \"size\": {}, \"digest\": \"{layer_digest}\"}}]\n}}\n",
        config.len(),
        layer.len()
    );
    // It is JSON all the same.
    let _: Value = serde_json::from_str(&manifest).unwrap();
    let digest = put(manifest.as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": manifest_type, "digest": digest, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "test"},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    WrittenLayout {
        digest,
        manifest: manifest.into_bytes(),
        media_type: manifest_type,
        blobs: vec![layer_digest, config_digest],
    }
}

/// A temporary `bin/` holding a fake `docker-credential-<name>` that answers `get` for `host`
/// with this username and password (and exits 1, "credentials not found", for another host).
pub fn credential_helper(
    dir: &Path,
    name: &str,
    host: &str,
    user: &str,
    password: &str,
) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = bin.join(format!("docker-credential-{name}"));
    let answer = json!({"ServerURL": host, "Username": user, "Secret": password}).to_string();
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread -r server\n\
         if [ \"$server\" = '{host}' ]; then printf '%s\\n' '{answer}'; exit 0; fi\n\
         echo 'credentials not found in native keychain'; exit 1\n"
    );
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// What a [`Scripted`] server answers: status, headers, body.
pub type Reply = (u16, Vec<(String, String)>, Vec<u8>);

/// A registry that answers from a script (method and path in, a reply out), one request per
/// connection: a broken or hostile registry. Stopped when dropped.
pub struct Scripted {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Set to stop its thread.
    stop: Arc<AtomicBool>,
    /// The thread that serves it.
    thread: Option<JoinHandle<()>>,
}

impl Scripted {
    /// Starts it on a loopback port the kernel picks.
    pub fn start(script: impl Fn(&str, &str) -> Reply + Send + 'static) -> Scripted {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = answer(stream, &script);
            }
        });
        Scripted {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

/// Reads one request (its head, and its body up to its length), writes the script's reply.
fn answer(
    mut stream: std::net::TcpStream,
    script: &impl Fn(&str, &str) -> Reply,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut words = line.split_whitespace();
    let (method, path) = (
        words.next().unwrap_or("").to_owned(),
        words.next().unwrap_or("").to_owned(),
    );
    let mut length = 0u64;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink())?;
    let (status, headers, body) = script(&method, &path);
    let mut head = format!("HTTP/1.1 {status} Scripted\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "HEAD" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(&body)?;
    }
    stream.flush()
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
