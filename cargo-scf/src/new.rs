//! `cargo scf new NAME`: a new function from scf-lean's template, which is built into the tool.
//!
//! The template is a working project as it is: its function is a small tutorial, and its tests
//! pass. Three of its files carry Liquid for cargo-generate, in comments (`Cargo.toml`: the
//! package name and the scf-lean dependency; `Dockerfile`: the binary's name; `README.md`: the
//! package name in its title and commands); they are rendered here the same way, so that either
//! tool writes the same project.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

mod template {
    include!(concat!(env!("OUT_DIR"), "/template.rs"));
}

/// The files that carry Liquid (cargo-generate.toml's `include`).
const RENDERED: &[&str] = &["Cargo.toml", "Dockerfile", "README.md"];

/// Where scf-lean comes from when `--scf-lean` is not given.
pub const DEFAULT_SCF_LEAN: &str = "https://github.com/scf-lean/scf-lean";

/// Write a new function into ./NAME.
#[derive(clap::Args)]
pub struct Args {
    /// The function's name: its package, binary and image are named after it.
    name: String,
    /// Where scf-lean comes from: a path to a clone of it, or its git repository.
    #[arg(long = "scf-lean", value_name = "PATH|GIT-URL", default_value = DEFAULT_SCF_LEAN)]
    scf_lean: String,
    /// The directory to write (default: ./NAME).
    #[arg(long)]
    path: Option<PathBuf>,
    /// Version control for the new project: git (when git is installed) or none.
    #[arg(long, default_value = "git", value_parser = ["git", "none"])]
    vcs: String,
}

pub fn run(args: Args) -> Result<()> {
    check_name(&args.name)?;
    let dir = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        bail!(
            "{} already exists: choose another name or --path",
            dir.display()
        );
    }
    let scf_lean = dependency(&args.scf_lean)?;
    write(&dir, &args.name, &scf_lean)?;
    if args.vcs == "git" {
        git_init(&dir);
    }
    println!("Created the function `{}` in {}", args.name, dir.display());
    println!("scf-lean from {scf_lean}");
    println!();
    println!("  cd {}", dir.display());
    println!("  git add -A && git commit -m 'A new function'   # --version and the image's date");
    println!("  cargo test             # the function's tests");
    println!("  cargo scf watch        # serve it on :9000 as SCF does, rebuilt on every save");
    println!("  cargo scf invoke --example timer   # (another terminal) send it a sample event");
    println!(
        "  cargo scf deploy --region REGION --repository ccr.ccs.tencentyun.com/NAMESPACE/{}",
        args.name
    );
    println!("                         # built, pushed, created or updated on SCF, Active");
    Ok(())
}

/// Writes the template into `dir`, its Liquid rendered with `name` and `scf_lean`.
pub fn write(dir: &Path, name: &str, scf_lean: &str) -> Result<()> {
    let parser = liquid::ParserBuilder::with_stdlib()
        .build()
        .context("the Liquid parser")?;
    let globals = liquid::object!({ "project-name": name, "crate_name": name.replace('-', "_"), "scf_lean": scf_lean });
    for (rel, bytes) in template::FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        }
        let contents: Vec<u8> = if RENDERED.contains(rel) {
            let text = std::str::from_utf8(bytes)
                .with_context(|| format!("template/{rel} is not UTF-8"))?;
            let t = parser
                .parse(text)
                .with_context(|| format!("template/{rel}"))?;
            t.render(&globals)
                .with_context(|| format!("template/{rel}"))?
                .into_bytes()
        } else {
            bytes.to_vec()
        };
        fs::write(&path, contents).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

/// A package name cargo takes, and that names a binary and an image: ASCII letters, digits,
/// `-` and `_`, starting with a letter.
fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!(
            "`{name}` cannot name a function: use lowercase ASCII letters, digits, `-` and `_`, \
             starting with a letter, at most 64 (an image name is lowercase)"
        );
    }
    if RESERVED.contains(&name) {
        bail!("`{name}` cannot name a function: it is a Rust keyword or a built-in crate's name");
    }
    Ok(())
}

/// What cargo refuses as a package name: the built-in crates and Rust's keywords.
const RESERVED: &[&str] = &[
    "std",
    "core",
    "alloc",
    "proc_macro",
    "proc-macro",
    "test",
    "abstract",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
];

/// A git URL as given; a path made absolute (the new project is elsewhere), and checked to be
/// a clone of scf-lean.
fn dependency(given: &str) -> Result<String> {
    // It goes inside a TOML string as it is.
    if given
        .chars()
        .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        bail!(
            "--scf-lean {given:?}: a quote, a backslash or a control character cannot go in Cargo.toml"
        );
    }
    if given.contains("://") || given.starts_with("git@") {
        return Ok(given.to_owned());
    }
    let path = Path::new(given);
    let manifest = path.join("Cargo.toml");
    let text = fs::read_to_string(&manifest).with_context(|| {
        format!(
            "--scf-lean {given}: no {} (a clone of scf-lean, or its git URL)",
            manifest.display()
        )
    })?;
    if !text.contains("name = \"scf-lean\"") {
        bail!(
            "--scf-lean {given}: {} is not scf-lean's",
            manifest.display()
        );
    }
    let abs = path
        .canonicalize()
        .with_context(|| format!("--scf-lean {given}"))?;
    let abs = abs
        .to_str()
        .with_context(|| format!("--scf-lean {given}: the path is not UTF-8"))?;
    if abs.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        bail!(
            "--scf-lean {given}: its path {abs:?} cannot go in Cargo.toml (a quote, a backslash or a control character)"
        );
    }
    Ok(abs.to_owned())
}

/// `git init`, as `cargo new` does, unless git is missing or the directory is already inside a
/// work tree.
fn git_init(dir: &Path) {
    let inside = Command::new("git")
        .args(["rev-parse", "--is-inside-work-tree"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !inside {
        let _ = Command::new("git")
            .args(["init", "-q"])
            .current_dir(dir)
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template's copy of `rel`, as text.
    fn template_file(rel: &str) -> &'static str {
        let (_, bytes) = template::FILES
            .iter()
            .find(|(r, _)| *r == rel)
            .unwrap_or_else(|| panic!("no template/{rel}"));
        std::str::from_utf8(bytes).unwrap()
    }

    /// The template written for `hello-fn`, in a temporary directory.
    fn written() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "hello-fn", "https://example.invalid/scf-lean").unwrap();
        dir
    }

    /// The README comes out as the template's, `my-function` replaced by the package's name
    /// everywhere, its first and last lines (the Liquid) reduced to the HTML comments around
    /// it: any other Liquid in it (a `{{` or `{%` of its own) would show here.
    #[test]
    fn test_the_readme_names_the_package() {
        let dir = written();
        let readme = fs::read_to_string(dir.path().join("README.md")).unwrap();
        let lines: Vec<&str> = template_file("README.md").split_inclusive('\n').collect();
        let (first, last) = (lines[0], lines[lines.len() - 1]);
        assert!(first.starts_with("<!-- ") && first.ends_with("{% capture readme %}-->\n"));
        assert!(last.starts_with("<!-- ") && last.contains(" {% endcapture %}{{ readme "));
        let body = lines[1..lines.len() - 1].concat();
        assert!(body.starts_with("# my-function\n"), "{body}");
        let comment = |line: &str| format!("{}-->\n", &line[..line.find("{%").unwrap()]);
        let expected = format!(
            "{}{}{}",
            comment(first),
            body.replace("my-function", "hello-fn"),
            comment(last)
        );
        assert_eq!(readme, expected);
        assert!(readme.contains("\n# hello-fn\n"));
        assert!(!readme.contains("my-function"));
    }

    /// Every other file but the rendered ones is copied byte for byte; the rendered ones name
    /// the package.
    #[test]
    fn test_only_the_rendered_files_change() {
        let dir = written();
        for (rel, bytes) in template::FILES {
            let out = fs::read(dir.path().join(rel)).unwrap();
            if RENDERED.contains(rel) {
                let text = String::from_utf8(out).unwrap();
                assert!(text.contains("hello-fn"), "{rel}:\n{text}");
                assert!(
                    !text.contains("{{") && !text.contains("{%"),
                    "{rel}:\n{text}"
                );
            } else {
                assert_eq!(&out[..], *bytes, "{rel}");
            }
        }
        let toml = fs::read_to_string(dir.path().join("Cargo.toml")).unwrap();
        assert!(toml.contains("\nname = \"hello-fn\"\n"), "{toml}");
    }
}
