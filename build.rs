//! Build script: generates the settings of `scf_lean::config` from one row each, embeds the
//! version and git commit, and passes the musl link arguments.
//!
//! Every setting is one row of [`ROWS`], smoltcp-style: `SCF_LEAN_MAX_BODY_BYTES=1048576 cargo
//! build` bakes a new default into the binary; the same variable set when the server starts
//! overrides it again (see `src/config.rs`). A new limit is a new row (plus the code that
//! enforces it). The script reads no source file and runs `git` once, so it does not slow a
//! normal build and reruns only when a variable or the checked-out commit changes.

use std::env;
use std::fs;
use std::path::Path;
use std::process::Command;

/// One setting: its name, its variable, its kind, its default, its range and what it means.
/// `config.rs` (fields, defaults, overrides), `--help` and the tables in `src/lib.rs` and the
/// README all come from these rows; a test checks the tables against them.
struct Row {
    /// The constant of the build-time default in `scf_lean::config`.
    name: &'static str,
    /// The `Config` field.
    field: &'static str,
    /// The environment variable: set when building, it bakes a new default into the binary; set
    /// at start, it overrides the default for that run.
    var: &'static str,
    kind: Kind,
    default: Default,
    /// Whether a value set at start may only lower the build-time one (which sizes an array).
    lower_only: bool,
    /// Whether the variable set when building bakes a new default in. `PORT` and the log
    /// settings are read at start only: a shell that exports `PORT=8080` or
    /// `SCF_LEAN_LOG_LEVEL=debug` for its runs must not change the default of every later build
    /// (an image listening on 8080 where SCF sends to 9000).
    at_build: bool,
    /// What it bounds or sets, and what happens past it.
    doc: &'static str,
}

/// What a setting holds.
enum Kind {
    /// A whole number from `min` to `max`, of Rust type `ty`.
    Number {
        ty: &'static str,
        min: u64,
        max: u64,
    },
    /// Milliseconds from `min` to `max`, a `Duration` in `Config`.
    Millis { min: u64, max: u64 },
    /// One of `words`, parsed by `<ty>::parse`; the variant is the word capitalized.
    Word {
        ty: &'static str,
        words: &'static [&'static str],
    },
}

/// Where the default comes from.
enum Default {
    Num(u64),
    Word(&'static str),
    /// A constant of the platform module (`crate::platform`), such as its port.
    Platform(&'static str),
}

use Default::{Num, Platform, Word};

const fn number(ty: &'static str, min: u64, max: u64) -> Kind {
    Kind::Number { ty, min, max }
}

const fn millis(min: u64, max: u64) -> Kind {
    Kind::Millis { min, max }
}

#[rustfmt::skip]
const ROWS: &[Row] = &[
    Row { name: "PORT", field: "port", var: "PORT", kind: number("u16", 0, 65535), default: Platform("DEFAULT_PORT"), lower_only: false, at_build: false,
          doc: "TCP port on 0.0.0.0 (0: a free port, named in the start-up line; Cloud Run and Knative set it too)" },
    Row { name: "MAX_HEAD_BYTES", field: "max_head_bytes", var: "SCF_LEAN_MAX_HEAD_BYTES", kind: number("usize", 256, 1 << 24), default: Num(32 * 1024), lower_only: false, at_build: true,
          doc: "request line + headers, in bytes; past it 431, close" },
    Row { name: "MAX_HEADERS", field: "max_headers", var: "SCF_LEAN_MAX_HEADERS", kind: number("usize", 1, 1024), default: Num(100), lower_only: true, at_build: true,
          doc: "header fields per request; past it 431, close (at start only lowered: the build-time value sizes a stack array)" },
    Row { name: "MAX_TARGET_BYTES", field: "max_target_bytes", var: "SCF_LEAN_MAX_TARGET_BYTES", kind: number("usize", 1, 1 << 24), default: Num(8 * 1024), lower_only: false, at_build: true,
          doc: "request target (path + query), in bytes; past it 414, close" },
    Row { name: "MAX_BODY_BYTES", field: "max_body_bytes", var: "SCF_LEAN_MAX_BODY_BYTES", kind: number("usize", 0, 1 << 32), default: Num(6 * 1024 * 1024), lower_only: false, at_build: true,
          doc: "body after chunked decoding, in bytes (SCF's 6 MB synchronous limit); past it 413 without reading the body, close" },
    Row { name: "MAX_RESPONSE_BYTES", field: "max_response_bytes", var: "SCF_LEAN_MAX_RESPONSE_BYTES", kind: number("usize", 0, 1 << 32), default: Num(6 * 1024 * 1024), lower_only: false, at_build: true,
          doc: "a function's response (header lines and body), in bytes (SCF refuses more than 6 MB); past it a JSON 500 instead, logged" },
    Row { name: "MAX_CHUNK_META_BYTES", field: "max_chunk_meta_bytes", var: "SCF_LEAN_MAX_CHUNK_META_BYTES", kind: number("usize", 0, 1 << 24), default: Num(16 * 1024), lower_only: false, at_build: true,
          doc: "chunk extensions + trailers of one chunked body, in bytes; past it 400, close" },
    Row { name: "MAX_CONNECTIONS", field: "max_connections", var: "SCF_LEAN_MAX_CONNECTIONS", kind: number("usize", 1, 1 << 20), default: Num(1024), lower_only: false, at_build: true,
          doc: "open connections (SCF's descriptor limit); past it accepting pauses until one closes" },
    Row { name: "MEMORY_BUDGET_BYTES", field: "memory_budget_bytes", var: "SCF_LEAN_MEMORY_BUDGET_BYTES", kind: number("usize", 0, 1 << 40), default: Num(0), lower_only: false, at_build: true,
          doc: "bytes all connections may hold in request buffers and responses together (0: half the instance's memory limit, read from its cgroup when the server is first idle, and 32 MiB until then or without one; past 256 KiB a connection may use only three quarters of it; when it is full, partial requests of at most 256 KiB give way, the stalest first); past it 503, close" },
    Row { name: "FIRST_BYTE_TIMEOUT_MS", field: "first_byte_timeout", var: "SCF_LEAN_FIRST_BYTE_TIMEOUT_MS", kind: millis(1, 1 << 40), default: Num(10_000), lower_only: false, at_build: true,
          doc: "a new connection must send its first byte within it, else it is closed; with every slot or descriptor taken, the connection quiet longest (200 ms at least; a silent one, else an idle keep-alive one, else a request stalled mid-way: 408) makes room for a new one" },
    Row { name: "HEAD_TIMEOUT_MS", field: "head_timeout", var: "SCF_LEAN_HEAD_TIMEOUT_MS", kind: millis(1, 1 << 40), default: Num(10_000), lower_only: false, at_build: true,
          doc: "a request head that has started must be complete within it; else 408, close" },
    Row { name: "BODY_TIMEOUT_MS", field: "body_timeout", var: "SCF_LEAN_BODY_TIMEOUT_MS", kind: millis(1, 1 << 40), default: Num(30_000), lower_only: false, at_build: true,
          doc: "a body may stall this long, and a client may stop reading a response this long; else 408 (or a plain close), close" },
    Row { name: "BODY_DEADLINE_MS", field: "body_deadline", var: "SCF_LEAN_BODY_DEADLINE_MS", kind: millis(1, 1 << 40), default: Num(60_000), lower_only: false, at_build: true,
          doc: "a body must be complete within it from the end of its head, however steadily it arrives; else 408, close" },
    Row { name: "IDLE_TIMEOUT_MS", field: "idle_timeout", var: "SCF_LEAN_IDLE_TIMEOUT_MS", kind: millis(1, 1 << 40), default: Num(900_000), lower_only: false, at_build: true,
          doc: "an idle keep-alive connection is closed after it (long: the proxy in front reuses connections, and closing first races with its next request)" },
    Row { name: "LINGER_MS", field: "linger", var: "SCF_LEAN_LINGER_MS", kind: millis(0, 1 << 40), default: Num(2_000), lower_only: false, at_build: true,
          doc: "after a response that closes the connection, unread input is drained this long, so that the close does not reset the response away" },
    Row { name: "SHUTDOWN_GRACE_MS", field: "shutdown_grace", var: "SCF_LEAN_SHUTDOWN_GRACE_MS", kind: millis(0, 1 << 40), default: Num(2_000), lower_only: false, at_build: true,
          doc: "after SIGTERM or SIGINT, requests in flight may finish within it; then the process exits" },
    Row { name: "CONCURRENCY", field: "concurrency", var: "SCF_LEAN_CONCURRENCY", kind: number("usize", 1, 1024), default: Num(1), lower_only: false, at_build: true,
          doc: "invocations run at once, on worker threads, for a function made with scf_lean::concurrent (set it to the function's MaxConcurrency); 1: each call runs on the loop's thread, one at a time, no thread started" },
    Row { name: "MAX_STREAMS", field: "max_streams", var: "SCF_LEAN_MAX_STREAMS", kind: number("usize", 1, 1 << 16), default: Num(256), lower_only: false, at_build: true,
          doc: "streams whose producers run at once, each on a thread (SCF allows an instance 1,024); past it a stream's head goes out and its producer waits for a thread" },
    Row { name: "STREAM_BUFFER_BYTES", field: "stream_buffer_bytes", var: "SCF_LEAN_STREAM_BUFFER_BYTES", kind: number("usize", 1024, 1 << 26), default: Num(64 * 1024), lower_only: false, at_build: true,
          doc: "bytes a streamed answer may queue for a client that reads slower than the function sends; past it send waits" },
    Row { name: "TIME_LIMIT_MS", field: "time_limit", var: "SCF_LEAN_TIME_LIMIT_MS", kind: millis(1, 1 << 40), default: Num(900_000), lower_only: false, at_build: true,
          doc: "an invocation's time limit where X-Scf-Timeout does not give one (SCF's longest); a stream still open at its limit is cut off" },
    Row { name: "LOG_LEVEL", field: "log_level", var: "SCF_LEAN_LOG_LEVEL", kind: Kind::Word { ty: "Level", words: &["off", "error", "warn", "info", "debug"] }, default: Word("info"), lower_only: false, at_build: false,
          doc: "log level: off, error, warn, info or debug" },
    Row { name: "LOG_MESSAGE_BYTES", field: "log_message_bytes", var: "SCF_LEAN_LOG_MESSAGE_BYTES", kind: number("usize", 64, 1 << 16), default: Num(16 * 1024), lower_only: false, at_build: true,
          doc: "a message a function logs (scf_lean::info! and the others), in bytes; past it the rest is cut and the line says how much" },
    Row { name: "LOG_FORMAT", field: "log_format", var: "SCF_LEAN_LOG_FORMAT", kind: Kind::Word { ty: "Format", words: &["text", "json"] }, default: Word("text"), lower_only: false, at_build: false,
          doc: "log line format: text or json" },
];

/// Linker arguments for the static musl executable, each as the linker's own words: build.rs
/// passes them to rustc as they are for `rust-lld` (the linker `.cargo/config.toml` names, which
/// every rustup toolchain ships: no C cross-toolchain on any host), and as `-Wl,` options when a
/// C compiler drives the link (`CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=musl-gcc`, or
/// `cc`). Only the final link of the binaries sees them; `SCF_LEAN_LINK_ARGS` (space-separated,
/// may be empty) replaces the list, which is how `bench/profiles.sh` measures the alternatives.
/// Measured (bench/PROFILES.md) and left out: `-z noseparate-code` (4 KB less on disk but only
/// 190 bytes less compressed, and it maps the headers and rodata executable) and `-z norelro`
/// (nothing saved once compressed). rustc already passes `--gc-sections`, `-O1`, `-static
/// -no-pie` and `--strip-all`.
const MUSL_LINK_ARGS: &[&[&str]] = &[
    // No .note.gnu.build-id: 36 incompressible bytes (plus a program header) that nothing on
    // SCF reads; the binary is stripped, so no debugger would match it to symbols either.
    &["--build-id=none"],
    // Segments at 64 KiB boundaries, in the file and in memory: the kernel maps an executable's
    // pages by fault-around, 16 pages per fault clamped to the mapping, and maps large page-cache
    // folios whole. Aligned, the hot code of src/hot-text.ld (below) fills exactly one window and
    // the hot read-only data starts another, instead of both straddling two: idle RSS 268 ->
    // 172 KiB, cold start -12 us (bench/REPORT.md). The cost is zero padding: 467 -> 594 KB on
    // disk, +0.7 KB compressed.
    &["-z", "max-page-size=0x10000"],
    // The text segment on a boundary of its own, in the file and in memory: GNU ld's default on
    // x86-64, lld's only when asked. Without it lld starts the code mid-window, after the
    // read-only data (idle RSS 216 instead of 168 KiB).
    &["-z", "separate-code"],
];

/// Whether the musl link is `rust-lld` (or another ld.lld) rather than a C compiler driving a
/// linker: cargo names the target's configured linker in `RUSTC_LINKER`.
fn linker_is_lld() -> bool {
    let linker = env::var("RUSTC_LINKER").unwrap_or_default();
    let stem = Path::new(&linker)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    matches!(stem.as_str(), "rust-lld" | "ld.lld" | "lld")
}

/// One linker option in the form the link takes: the words themselves for lld, `-Wl,a,b` for
/// a C compiler.
fn for_linker(words: &[&str], lld: bool) -> Vec<String> {
    if lld {
        words.iter().map(|w| w.to_string()).collect()
    } else {
        vec![format!("-Wl,{}", words.join(","))]
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    link_args();
    let dir = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let dir = Path::new(&dir);
    fs::write(dir.join("settings.rs"), settings()).expect("write settings.rs");
    let version = format!(
        "/// The version of scf-lean.\npub const VERSION: &str = {:?};\n\
         /// The git commit it was built from (`unknown` outside a checkout).\npub const COMMIT: &str = {:?};\n",
        env::var("CARGO_PKG_VERSION").unwrap_or_default(),
        commit()
    );
    fs::write(dir.join("version.rs"), version).expect("write version.rs");
}

/// The code `src/config.rs` includes: one constant per row (its build-time default), the
/// `Config` struct with its `Default`, the `SETTINGS` table and the override code.
fn settings() -> String {
    let mut consts = String::new();
    let mut fields = String::new();
    let mut defaults = String::new();
    let mut table = String::new();
    let mut arms = String::new();
    let mut overridden = false;
    for (i, row) in ROWS.iter().enumerate() {
        let Row {
            name, field, var, ..
        } = *row;
        let built = if row.at_build {
            println!("cargo:rerun-if-env-changed={var}");
            env::var(var).ok()
        } else {
            None
        };
        overridden |= built.is_some();
        let (ty, field_ty, value, shown) = match (&row.kind, &row.default) {
            (Kind::Word { ty, words }, _) => {
                let word = match (&built, &row.default) {
                    (Some(s), _) => {
                        let w = s.trim().to_ascii_lowercase();
                        let Some(w) = words.iter().find(|x| **x == w) else {
                            panic!("{var}={s:?}: expected {}", one_of(words));
                        };
                        *w
                    }
                    (None, Word(w)) => *w,
                    (None, _) => panic!("{name}: a word setting needs a word default"),
                };
                let variant = capitalized(word);
                (
                    *ty,
                    *ty,
                    format!("{ty}::{variant}"),
                    format!("Shown::Word({word:?})"),
                )
            }
            (Kind::Number { min, max, .. } | Kind::Millis { min, max }, default) => {
                let ty = match row.kind {
                    Kind::Number { ty, .. } => ty,
                    _ => "u64",
                };
                let value = match (&built, default) {
                    (Some(s), _) => match s.trim().parse::<u64>() {
                        Ok(v) if (*min..=*max).contains(&v) => v.to_string(),
                        _ => panic!("{var}={s:?}: expected a whole number from {min} to {max}"),
                    },
                    (None, Num(n)) => n.to_string(),
                    (None, Platform(c)) => format!("crate::platform::{c}"),
                    (None, Word(_)) => panic!("{name}: a number setting needs a number default"),
                };
                let field_ty = match row.kind {
                    Kind::Millis { .. } => "Duration",
                    _ => ty,
                };
                let shown = match ty {
                    "u64" => format!("Shown::Number({name})"),
                    _ => format!("Shown::Number({name} as u64)"),
                };
                (ty, field_ty, value, shown)
            }
        };
        let doc = row.doc;
        let unit = if matches!(row.kind, Kind::Millis { .. }) {
            " (milliseconds)"
        } else {
            ""
        };
        let when = if row.at_build {
            "at build time and at start"
        } else {
            "at start"
        };
        consts.push_str(&format!(
            "/// Default of [`Config::{field}`]: {doc}. `{var}` overrides it {when}.\n\
             pub const {name}: {ty} = {value};\n"
        ));
        fields.push_str(&format!(
            "    /// {}. `{var}`{unit}; default [`{name}`].\n    pub {field}: {field_ty},\n",
            capitalized(doc)
        ));
        let init = match row.kind {
            Kind::Millis { .. } => format!("Duration::from_millis({name})"),
            _ => name.to_string(),
        };
        defaults.push_str(&format!("            {field}: {init},\n"));
        table.push_str(&format!(
            "    Setting {{ var: {var:?}, default: {shown}, doc: {doc:?} }},\n"
        ));
        let parse = match &row.kind {
            Kind::Word { ty, words } => {
                format!("word(text, {ty}::parse, {:?})?", one_of(words))
            }
            Kind::Number { min, max, .. } | Kind::Millis { min, max } => {
                let max = if row.lower_only {
                    format!("{name} as u64")
                } else {
                    max.to_string()
                };
                let n = format!("number(text, {min}, {max})?");
                match row.kind {
                    Kind::Millis { .. } => format!("Duration::from_millis({n})"),
                    _ => n,
                }
            }
        };
        arms.push_str(&format!("            {i} => self.{field} = {parse},\n"));
    }
    format!(
        "// Generated by build.rs from its rows: every setting, its default and its override.\n\n\
         {consts}\n\
         /// The server's settings, one field per row of [`SETTINGS`]. `Config::default()` holds\n\
         /// the build-time defaults; [`Config::from_env`] overrides them from the environment.\n\
         #[derive(Clone, Debug, PartialEq, Eq)]\n\
         pub struct Config {{\n{fields}}}\n\n\
         impl Default for Config {{\n    fn default() -> Config {{\n        Config {{\n{defaults}        }}\n    }}\n}}\n\n\
         /// Every setting, in the order `--help` and the docs list them.\n\
         pub const SETTINGS: &[Setting] = &[\n{table}];\n\n\
         /// Whether a default was changed at build time (the docs show the defaults of the rows).\n\
         #[allow(dead_code)]\n\
         pub(crate) const CHANGED_AT_BUILD: bool = {overridden};\n\n\
         impl Config {{\n\
         \x20   /// Sets the field of `SETTINGS[i]` from the text of its variable.\n\
         \x20   fn set(&mut self, i: usize, text: &str) -> Result<(), Expected> {{\n\
         \x20       match i {{\n{arms}            _ => {{}}\n        }}\n        Ok(())\n    }}\n}}\n"
    )
}

/// `a, b or c`.
fn one_of(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `cargo:rustc-link-arg-bins` for the musl target only: a normal build gets nothing extra.
fn link_args() {
    if env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-musl") {
        return;
    }
    println!("cargo:rerun-if-env-changed=SCF_LEAN_LINK_ARGS");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER");
    let lld = linker_is_lld();
    // The functions run at start-up and per request first in .text, so that they share one
    // 64 KiB fault-around window instead of pulling most of .text into RSS: idle RSS 360 ->
    // 268 KiB alone, 172 KiB with the alignment above (bench/order.sh writes the script and has
    // the figures). An INSERT script: the linker keeps its default layout; a stale rule matches
    // nothing. `@hot-text` in SCF_LEAN_LINK_ARGS stands for it.
    let root = env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let hot = Path::new(&root).join("src").join("hot-text.ld");
    println!("cargo:rerun-if-changed={}", hot.display());
    // Where the script goes in the list; which copy, once the list is known.
    let mut args = Vec::new();
    let mut hot_at = None;
    match env::var("SCF_LEAN_LINK_ARGS") {
        // As given: `-Wl,` options are unwrapped for lld, so that one list serves both links.
        Ok(list) => {
            for a in list.split_whitespace() {
                if a == "@hot-text" {
                    hot_at = Some(args.len());
                } else if lld && let Some(words) = a.strip_prefix("-Wl,") {
                    args.extend(words.split(',').map(String::from));
                } else {
                    args.push(a.to_string());
                }
            }
        }
        Err(_) => {
            for words in MUSL_LINK_ARGS {
                args.extend(for_linker(words, lld));
            }
            hot_at = Some(args.len());
        }
    }
    // The pad of lld's copy serves the 64 KiB alignment only (without it, it would be zeros on
    // disk for nothing: the tiny build).
    let aligned = args.iter().any(|a| a.contains("max-page-size=0x10000"));
    if let (Some(at), Some(script)) = (hot_at, hot_text_script(&hot, lld, aligned)) {
        let words = for_linker(&["-T", &script.display().to_string()], lld);
        args.splice(at..at, words);
    }
    for a in &args {
        println!("cargo:rustc-link-arg-bins={a}");
    }
    // For the functions built on scf-lean (`links = "scf_lean"`): their build script reads
    // DEP_SCF_LEAN_LINK_ARGS (arguments separated by U+001F) and passes them on, so that their
    // binary gets the same layout. The hot-text rules name scf-lean's and std's functions.
    println!("cargo::metadata=link_args={}", args.join("\u{1f}"));
}

/// The hot-text script for this link, `None` when src/hot-text.ld is missing. GNU ld takes it
/// as written. lld lays the read-only data out before the code, not after it as GNU ld does, so
/// its copy (in OUT_DIR) changes two things:
/// - the hot read-only data goes at the start of .rodata, in the headers' window, rather than
///   before .init, which lld would take to mean the end of .rodata (idle RSS 168 KiB, not 212);
/// - the code starts at an odd multiple of 64 KiB in the file, as GNU ld's does (0x10000), not
///   at 0x20000 after 108 KiB of read-only data. A file written at once (cp, an image's layer
///   unpacked) sits in the page cache in large folios, naturally aligned, and the kernel maps a
///   folio whole: at a 128 KiB boundary the first fault maps 128 KiB of code, not the hot 64
///   (idle RSS 232 instead of 168 KiB). A pad after .eh_frame ends the read-only segment just
///   past a 128 KiB boundary, so that the code segment starts 64 KiB later; its zeros cost 386
///   bytes compressed. Only with the 64 KiB alignment (`pad`).
fn hot_text_script(hot: &Path, lld: bool, pad: bool) -> Option<std::path::PathBuf> {
    let text = fs::read_to_string(hot).ok()?;
    if !lld {
        return Some(hot.to_path_buf());
    }
    let out = Path::new(&env::var("OUT_DIR").ok()?).join("hot-text-lld.ld");
    let mut text = text.replace("INSERT BEFORE .init;", "INSERT BEFORE .rodata;");
    if pad {
        text.push_str(
        "\n/* build.rs, for lld: the code segment at an odd multiple of 64 KiB in the file. */\n\
         SECTIONS\n{\n  .scf.pad :\n  {\n    BYTE(0);\n    . = ALIGN(0x20000) + 1;\n  }\n}\n\
         INSERT AFTER .eh_frame;\n",
        );
    }
    fs::write(&out, text).ok()?;
    Some(out)
}

/// The short commit hash, or "unknown" outside a git checkout (a `docker build` context).
fn commit() -> String {
    println!("cargo:rerun-if-env-changed=SCF_LEAN_COMMIT");
    if let Ok(c) = env::var("SCF_LEAN_COMMIT") {
        return c;
    }
    let root = env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let git = Path::new(&root).join(".git");
    if !git.exists() {
        return "unknown".into();
    }
    // Rerun when the checked-out commit moves (HEAD, or the branch it points at).
    println!("cargo:rerun-if-changed={}", git.join("HEAD").display());
    if let Ok(head) = fs::read_to_string(git.join("HEAD")) {
        if let Some(r) = head.strip_prefix("ref: ") {
            // A missing file would make cargo rerun the script on every build.
            for f in [git.join(r.trim()), git.join("packed-refs")] {
                if f.exists() {
                    println!("cargo:rerun-if-changed={}", f.display());
                }
            }
        }
    }
    Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(&root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
