//! Log lines, to stdout and stderr only (SCF collects both and reads nothing else).
//!
//! One writer for the whole server, in this one module. Lines are built by hand into a reused
//! buffer with `itoa` (no `std::fmt` on the request path) and written once per turn of the event
//! loop, so a burst of requests costs one `write` of their access lines. Error lines go to stderr
//! at once. The level and format come from `SCF_LEAN_LOG_LEVEL` (`off|error|info|debug`) and
//! `SCF_LEAN_LOG_FORMAT` (`text|json`), like the AWS Lambda runtime's
//! `AWS_LAMBDA_LOG_LEVEL`/`AWS_LAMBDA_LOG_FORMAT`.
//!
//! Only the request id, method, path (never the query), status, sizes and times of a request
//! are ever written: header values other than the request id, and so the credentials, never are.

use std::io::Write;
use std::time::{Duration, SystemTime};

use crate::date;
use crate::version::{COMMIT, Identity, VERSION};

/// How much is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing at all.
    Off,
    /// Function errors, panics and start-up failures.
    Error,
    /// Also the start-up line and one access line per request (the default).
    Info,
    /// Also the reason of each protocol error and connection events.
    Debug,
}

impl Level {
    /// `off`, `error`, `info` or `debug`, in any case.
    pub fn parse(s: &str) -> Option<Level> {
        [
            ("off", Level::Off),
            ("error", Level::Error),
            ("info", Level::Info),
            ("debug", Level::Debug),
        ]
        .into_iter()
        .find(|(n, _)| s.trim().eq_ignore_ascii_case(n))
        .map(|(_, l)| l)
    }

    fn name(self) -> &'static str {
        match self {
            Level::Off => "OFF",
            Level::Error => "ERROR",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

/// The shape of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `INFO [request-id] POST /event-invoke 200 1234B 56us`
    Text,
    /// One JSON object per line: `{"level":"INFO","time":…,"requestId":…,"msg":…}`.
    Json,
}

impl Format {
    /// `text` or `json`, in any case.
    pub fn parse(s: &str) -> Option<Format> {
        match s.trim() {
            t if t.eq_ignore_ascii_case("text") => Some(Format::Text),
            t if t.eq_ignore_ascii_case("json") => Some(Format::Json),
            _ => None,
        }
    }
}

/// One request, as its access line tells it.
pub(crate) struct Access<'a> {
    pub request_id: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub bytes: usize,
    pub elapsed: Duration,
}

/// The server's log writer.
pub(crate) struct Log {
    level: Level,
    format: Format,
    /// Lines for stdout, written by [`Log::flush`] once per loop turn.
    out: Vec<u8>,
    /// Scratch for one stderr line.
    err: Vec<u8>,
}

impl Log {
    pub fn new(level: Level, format: Format) -> Log {
        Log {
            level,
            format,
            out: Vec::new(),
            err: Vec::new(),
        }
    }

    pub fn enabled(&self, level: Level) -> bool {
        level != Level::Off && level <= self.level
    }

    /// The start-up line: who is running (the function and scf-lean: version, commit), the
    /// address, µs from the start of `main` to listening and the process's CPU µs since it
    /// started (fork, exec, page faults and all).
    pub fn startup(
        &mut self,
        me: Option<&Identity>,
        port: u16,
        ready: Duration,
        cpu: Option<Duration>,
    ) {
        if !self.enabled(Level::Info) {
            return;
        }
        let us = ready.as_micros().min(u128::from(u64::MAX)) as u64;
        let cpu_us = cpu.map(|c| c.as_micros().min(u128::from(u64::MAX)) as u64);
        let mut line = begin(self.format, Level::Info, None);
        match self.format {
            Format::Text => {
                Identity::describe_into(me, &mut line);
                line.extend_from_slice(b" listening on 0.0.0.0:");
                push_num(&mut line, port);
                line.extend_from_slice(b" in ");
                push_num(&mut line, us);
                line.extend_from_slice(b" us");
                if let Some(cpu) = cpu_us {
                    line.extend_from_slice(b" (process CPU since start: ");
                    push_num(&mut line, cpu);
                    line.extend_from_slice(b" us)");
                }
            }
            Format::Json => {
                line.extend_from_slice(b"\"msg\":\"listening\",");
                if let Some(me) = me.filter(|me| me.name != "scf-lean") {
                    for (key, value) in [
                        ("function", me.name),
                        ("functionVersion", me.version),
                        ("functionCommit", me.commit),
                    ] {
                        push_str(&mut line, key);
                        line.push(b':');
                        push_str(&mut line, value);
                        line.push(b',');
                    }
                }
                line.extend_from_slice(b"\"version\":");
                push_str(&mut line, VERSION);
                line.extend_from_slice(b",\"commit\":");
                push_str(&mut line, COMMIT);
                line.extend_from_slice(b",\"port\":");
                push_num(&mut line, port);
                line.extend_from_slice(b",\"startupUs\":");
                push_num(&mut line, us);
                if let Some(cpu) = cpu_us {
                    line.extend_from_slice(b",\"processCpuUs\":");
                    push_num(&mut line, cpu);
                }
                line.push(b'}');
            }
        }
        line.push(b'\n');
        self.out.extend_from_slice(&line);
        self.flush();
    }

    /// One access line per request, at `info`.
    pub fn access(&mut self, a: &Access<'_>) {
        if !self.enabled(Level::Info) {
            return;
        }
        let us = a.elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        let mut line = std::mem::take(&mut self.out);
        begin_into(&mut line, self.format, Level::Info, a.request_id);
        match self.format {
            Format::Text => {
                push_clean(&mut line, a.method);
                line.push(b' ');
                push_clean(&mut line, a.path);
                line.push(b' ');
                push_num(&mut line, a.status);
                line.push(b' ');
                push_num(&mut line, a.bytes as u64);
                line.extend_from_slice(b"B ");
                push_num(&mut line, us);
                line.extend_from_slice(b"us");
            }
            Format::Json => {
                line.extend_from_slice(b"\"msg\":\"request\",\"method\":");
                push_str(&mut line, a.method);
                line.extend_from_slice(b",\"path\":");
                push_str(&mut line, a.path);
                line.extend_from_slice(b",\"status\":");
                push_num(&mut line, a.status);
                line.extend_from_slice(b",\"bytes\":");
                push_num(&mut line, a.bytes as u64);
                line.extend_from_slice(b",\"us\":");
                push_num(&mut line, us);
                line.push(b'}');
            }
        }
        line.push(b'\n');
        self.out = line;
    }

    /// A line at `level` about one request (`None` where the request id is not known), to stderr
    /// for errors and to stdout otherwise.
    pub fn line(&mut self, level: Level, request_id: Option<&str>, msg: &str) {
        if !self.enabled(level) {
            return;
        }
        let mut line = std::mem::take(&mut self.err);
        line.clear();
        begin_into(&mut line, self.format, level, request_id);
        match self.format {
            Format::Text => push_clean(&mut line, msg),
            Format::Json => {
                line.extend_from_slice(b"\"msg\":");
                push_str(&mut line, msg);
                line.push(b'}');
            }
        }
        line.push(b'\n');
        if level == Level::Error {
            self.flush();
            let _ = std::io::stderr().write_all(&line);
        } else {
            self.out.extend_from_slice(&line);
        }
        self.err = line;
    }

    /// Writes the buffered stdout lines.
    pub fn flush(&mut self) {
        if !self.out.is_empty() {
            // A closed stdout must not stop the server.
            let _ = std::io::stdout().lock().write_all(&self.out);
            self.out.clear();
        }
    }
}

fn begin(format: Format, level: Level, request_id: Option<&str>) -> Vec<u8> {
    let mut v = Vec::with_capacity(128);
    begin_into(&mut v, format, level, request_id);
    v
}

fn begin_into(v: &mut Vec<u8>, format: Format, level: Level, request_id: Option<&str>) {
    match format {
        Format::Text => {
            v.extend_from_slice(level.name().as_bytes());
            v.extend_from_slice(b" [");
            push_clean(v, request_id.unwrap_or("-"));
            v.extend_from_slice(b"] ");
        }
        Format::Json => {
            v.extend_from_slice(b"{\"level\":\"");
            v.extend_from_slice(level.name().as_bytes());
            v.extend_from_slice(b"\",\"time\":\"");
            date::rfc3339_millis(SystemTime::now(), v);
            v.extend_from_slice(b"\",\"requestId\":");
            match request_id {
                Some(id) => push_str(v, id),
                None => v.extend_from_slice(b"null"),
            }
            v.push(b',');
        }
    }
}

fn push_num(v: &mut Vec<u8>, n: impl itoa::Integer) {
    v.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A JSON string, escaped.
fn push_str(v: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *v, s);
}

/// Text as is, but control characters as `?`, so no client byte can forge a line.
fn push_clean(v: &mut Vec<u8>, s: &str) {
    v.extend(
        s.bytes()
            .map(|b| if b < 0x20 || b == 0x7f { b'?' } else { b }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access<'static> {
        Access {
            request_id: Some("rid-1"),
            method: "POST",
            path: "/event-invoke",
            status: 200,
            bytes: 42,
            elapsed: Duration::from_micros(17),
        }
    }

    #[test]
    fn test_text_access_line() {
        let mut log = Log::new(Level::Info, Format::Text);
        log.access(&access());
        assert_eq!(log.out, b"INFO [rid-1] POST /event-invoke 200 42B 17us\n");
    }

    #[test]
    fn test_json_access_line_parses() {
        let mut log = Log::new(Level::Info, Format::Json);
        log.access(&access());
        let v: serde_json::Value = serde_json::from_slice(&log.out).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["requestId"], "rid-1");
        assert_eq!(v["status"], 200);
        assert_eq!(v["us"], 17);
        assert_eq!(v["time"].as_str().unwrap().len(), 24);
    }

    #[test]
    fn test_levels_filter() {
        let mut log = Log::new(Level::Error, Format::Text);
        log.access(&access());
        log.line(Level::Debug, None, "x");
        assert!(log.out.is_empty());
        let mut log = Log::new(Level::Off, Format::Text);
        assert!(!log.enabled(Level::Error));
        log.line(Level::Info, None, "x");
        assert!(log.out.is_empty());
        let mut log = Log::new(Level::Debug, Format::Text);
        log.line(Level::Debug, Some("r"), "bad\nline");
        assert_eq!(log.out, b"DEBUG [r] bad?line\n");
    }

    #[test]
    fn test_parse_names() {
        assert_eq!(Level::parse("Info"), Some(Level::Info));
        assert_eq!(Level::parse("OFF"), Some(Level::Off));
        assert_eq!(Level::parse("trace"), None);
        assert_eq!(Format::parse("JSON"), Some(Format::Json));
        assert_eq!(Format::parse("yaml"), None);
    }
}
