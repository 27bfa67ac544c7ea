//! Build script: scf-lean's `template/` built into the tool, so that `cargo scf new` writes
//! exactly what the repository's template holds (one source of truth). Every file of it but
//! its build output and cargo-generate's own settings.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let template = manifest.join("..").join("template");
    let mut files = Vec::new();
    walk(&template, &template, &mut files);
    files.sort();
    let mut out = String::from("/// The template's files: path (with `/`), contents.\n");
    out.push_str("pub const FILES: &[(&str, &[u8])] = &[\n");
    for (rel, abs) in &files {
        out.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            abs.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it")).join("template.rs");
    fs::write(dest, out).expect("write template.rs");
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (cargo-scf is built inside scf-lean's repository)",
            dir.display()
        )
    });
    for entry in entries {
        let entry = entry.expect("read the template");
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if dir == root && (name == "target" || name == "cargo-generate.toml") {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            walk(root, &path, files);
        } else {
            let rel = path.strip_prefix(root).expect("under the template");
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push((rel.join("/"), path.canonicalize().expect("canonical path")));
        }
    }
}
