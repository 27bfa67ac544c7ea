//! Local invoke: sends an event file to a running function the way SCF does, as
//! `POST /event-invoke` with the event as the body and the `X-Scf-*` context headers (a fresh
//! request id, memory, timeout, name, namespace, region, appid, uin and dummy credentials),
//! then prints the answer.
//!
//! ```text
//! cargo run &                                    # the function, on port 9000
//! cargo run --example invoke -- events/timer.json
//! cargo run --example invoke -- events/cos.json --url http://127.0.0.1:9000 --timeout 10000
//! ```
//!
//! The status and the request id go to stderr, the body to stdout (so `| jq` works). Exit code:
//! 0 for a 2xx answer, 1 for another status, 2 when the event could not be sent.
//! Standard library only: a `TcpStream`, one request, `Connection: close`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: invoke EVENT.json [--url http://127.0.0.1:9000] [--name NAME] \
[--memory MB] [--timeout MS] [--region REGION] [--namespace NS]";

/// What to send, and where.
#[derive(Clone, Debug)]
pub struct Invoke {
    /// `host:port` to connect to.
    pub addr: String,
    /// The request path (`/event-invoke`).
    pub path: String,
    /// The event file's bytes, sent as they are.
    pub event: Vec<u8>,
    /// `X-Scf-Name`; the package name (`scf-lean`) by default.
    pub name: String,
    /// `X-Scf-Memory`, MB.
    pub memory_mb: u32,
    /// `X-Scf-Timeout`, ms; also how long to wait for the answer (plus 5 s).
    pub timeout_ms: u64,
    /// `X-Scf-Region`.
    pub region: String,
    /// `X-Scf-Namespace`.
    pub namespace: String,
}

/// The answer.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The request id that was sent.
    pub request_id: String,
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// How long the round trip took.
    pub elapsed: Duration,
}

impl Invoke {
    /// Reads the arguments (without the program name) and the event file.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Invoke, String> {
        let mut file = None;
        let mut url = "http://127.0.0.1:9000".to_owned();
        let mut inv = Invoke {
            addr: String::new(),
            path: String::new(),
            event: Vec::new(),
            name: env!("CARGO_PKG_NAME").to_owned(),
            memory_mb: 128,
            timeout_ms: 3000,
            region: "ap-guangzhou".to_owned(),
            namespace: "default".to_owned(),
        };
        let mut args = args.into_iter();
        while let Some(a) = args.next() {
            let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
            match a.as_str() {
                "--url" => url = value("--url")?,
                "--name" => inv.name = value("--name")?,
                "--memory" => {
                    inv.memory_mb = value("--memory")?
                        .parse()
                        .map_err(|_| "--memory takes a number of MB")?;
                }
                "--timeout" => {
                    inv.timeout_ms = value("--timeout")?
                        .parse()
                        .map_err(|_| "--timeout takes a number of ms")?;
                }
                "--region" => inv.region = value("--region")?,
                "--namespace" => inv.namespace = value("--namespace")?,
                "-h" | "--help" => return Err(USAGE.to_owned()),
                _ if a.starts_with("--") => return Err(format!("unknown option {a}\n{USAGE}")),
                _ if file.is_none() => file = Some(a),
                _ => return Err(format!("one event file only\n{USAGE}")),
            }
        }
        let file = file.ok_or_else(|| USAGE.to_owned())?;
        inv.event = std::fs::read(&file).map_err(|e| format!("cannot read {file}: {e}"))?;
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("--url must start with http:// (got {url})"))?;
        let (addr, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        inv.addr = if addr.contains(':') {
            addr.to_owned()
        } else {
            format!("{addr}:80")
        };
        inv.path = if path == "/" {
            "/event-invoke".to_owned()
        } else {
            path.to_owned()
        };
        Ok(inv)
    }

    /// Sends the event and reads the answer.
    ///
    /// # Errors
    /// Connection and I/O errors, a timeout, or an answer that is not HTTP.
    pub fn send(&self) -> io::Result<Answer> {
        let request_id = request_id();
        let start = Instant::now();
        let mut s = TcpStream::connect(&self.addr)?;
        let wait = Duration::from_millis(self.timeout_ms.saturating_add(5000));
        s.set_read_timeout(Some(wait))?;
        s.set_write_timeout(Some(wait))?;
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: scf-lean-invoke\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\
             X-Scf-Request-Id: {request_id}\r\nX-Scf-Memory: {mem}\r\nX-Scf-Timeout: {timeout}\r\n\
             X-Scf-Version: $LATEST\r\nX-Scf-Name: {name}\r\nX-Scf-Namespace: {ns}\r\n\
             X-Scf-Region: {region}\r\nX-Scf-Appid: 1250000000\r\nX-Scf-Uin: 100000000001\r\n\
             X-Scf-Secret-Id: AKIDlocalinvokedummy\r\nX-Scf-Secret-Key: local-invoke-dummy-key\r\n\
             X-Scf-Session-Token: local-invoke-dummy-token\r\n",
            path = self.path,
            host = self.addr,
            len = self.event.len(),
            mem = self.memory_mb,
            timeout = self.timeout_ms,
            name = self.name,
            ns = self.namespace,
            region = self.region,
        );
        if is_timer(&self.event) {
            head.push_str("X-Scf-Trigger-Src: timer\r\n");
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        s.write_all(&self.event)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let (status, body) = parse_response(&raw)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "the answer is not HTTP"))?;
        Ok(Answer {
            request_id,
            status,
            body: body.to_vec(),
            elapsed: start.elapsed(),
        })
    }
}

/// Whether the event is a timer trigger's (`"Type": "timer"`, any case), as SCF then also
/// sends `X-Scf-Trigger-Src: timer`.
fn is_timer(event: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(event).is_ok_and(|v| {
        v.get("Type")
            .and_then(|t| t.as_str())
            .is_some_and(|t| t.eq_ignore_ascii_case("timer"))
    })
}

/// A fresh random request id shaped like SCF's (a version-4 UUID), from the standard
/// library's per-process random hash keys.
fn request_id() -> String {
    let mut bits = [0u8; 16];
    for half in bits.chunks_mut(8) {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    bits[6] = bits[6] & 0x0f | 0x40;
    bits[8] = bits[8] & 0x3f | 0x80;
    let hex: String = bits.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// (status, body) of one HTTP/1.1 response read to the end of the connection.
fn parse_response(raw: &[u8]) -> Option<(u16, &[u8])> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let body = &raw[end + 4..];
    let len = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    Some((status, len.map_or(body, |n| &body[..n.min(body.len())])))
}

fn main() -> ExitCode {
    let inv = match Invoke::from_args(std::env::args().skip(1)) {
        Ok(inv) => inv,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match inv.send() {
        Ok(a) => {
            eprintln!(
                "status {} in {:.1} ms (request id {})",
                a.status,
                a.elapsed.as_secs_f64() * 1000.0,
                a.request_id
            );
            let mut out = io::stdout().lock();
            let _ = out.write_all(&a.body);
            let _ = out.write_all(b"\n");
            if (200..300).contains(&a.status) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("cannot invoke http://{}{}: {e}", inv.addr, inv.path);
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_request_ids_are_fresh_uuids() {
        let (a, b) = (request_id(), request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn test_response_parsing() {
        let raw = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\n{}extra";
        assert_eq!(parse_response(raw), Some((400, &b"{}"[..])));
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n\r\nall"),
            Some((200, &b"all"[..]))
        );
        assert_eq!(parse_response(b"nonsense"), None);
    }

    #[test]
    fn test_timer_detection() {
        assert!(is_timer(br#"{"Type":"Timer"}"#));
        assert!(!is_timer(br#"{"Records":[]}"#));
        assert!(!is_timer(b"{oops"));
    }
}
