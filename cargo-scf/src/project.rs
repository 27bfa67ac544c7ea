//! The function's project: the cargo package in the current directory (or `--manifest-path`),
//! as `cargo metadata` describes it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

/// A function's package: what its binary, image and reference are named after.
#[derive(Debug, Clone)]
pub struct Project {
    /// The package name: the binary's and the image's.
    pub name: String,
    /// The package version: the image's version label.
    pub version: String,
    /// The directory of its Cargo.toml.
    pub dir: PathBuf,
    /// Where cargo builds it (`CARGO_TARGET_DIR`, a workspace's target/ ...).
    pub target_directory: PathBuf,
    /// Its `[package.metadata]` table (`null` when it has none).
    pub metadata: serde_json::Value,
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    target_directory: PathBuf,
    #[serde(default)]
    workspace_default_members: Vec<String>,
}

#[derive(Deserialize)]
struct Package {
    id: String,
    name: String,
    version: String,
    manifest_path: PathBuf,
    targets: Vec<Target>,
    #[serde(default)]
    metadata: serde_json::Value,
}

#[derive(Deserialize)]
struct Target {
    kind: Vec<String>,
}

impl Project {
    /// The package of `manifest` (default: the one cargo finds from the current directory).
    /// In a workspace, the one package with a binary among the default members.
    pub fn find(manifest: Option<&Path>) -> Result<Project> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut c = Command::new(cargo);
        c.args(["metadata", "--no-deps", "--format-version", "1"]);
        if let Some(m) = manifest {
            c.arg("--manifest-path").arg(m);
        }
        let out = c
            .output()
            .context("run `cargo metadata` (is cargo on PATH?)")?;
        if !out.status.success() {
            bail!(
                "`cargo metadata` failed: is this a function's project (a Cargo.toml here or above)?\n{}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let m: Metadata = serde_json::from_slice(&out.stdout).context("read `cargo metadata`")?;
        let is_bin = |p: &&Package| p.targets.iter().any(|t| t.kind.iter().any(|k| k == "bin"));
        let mut bins: Vec<&Package> = m.packages.iter().filter(is_bin).collect();
        // The package of the given manifest, else the one whose directory holds the current
        // one (nearest first), else the workspace's default members.
        let cwd = std::env::current_dir()
            .ok()
            .and_then(|d| d.canonicalize().ok());
        let dir_of = |p: &Package| p.manifest_path.parent().and_then(|d| d.canonicalize().ok());
        if let Some(want) = manifest.and_then(|m| m.canonicalize().ok()) {
            bins.retain(|p| p.manifest_path.canonicalize().is_ok_and(|p| p == want));
        } else if let Some(here) = cwd.as_ref().and_then(|cwd| {
            bins.iter()
                .filter_map(|p| dir_of(p).filter(|d| cwd.starts_with(d)).map(|d| (d, *p)))
                .max_by_key(|(d, _)| d.components().count())
        }) {
            bins = vec![here.1];
        } else if bins.len() > 1 {
            bins.retain(|p| m.workspace_default_members.contains(&p.id));
        }
        let p = match bins.as_slice() {
            [p] => *p,
            [] => bail!(
                "no package with a binary here: a function is a binary package (cargo scf new NAME makes one)"
            ),
            _ => bail!(
                "several packages with binaries here ({}): give --manifest-path of the function's Cargo.toml",
                bins.iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Ok(Project {
            name: p.name.clone(),
            version: p.version.clone(),
            dir: p
                .manifest_path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            target_directory: m.target_directory,
            metadata: p.metadata.clone(),
        })
    }

    /// The release binary for SCF, where cargo puts it.
    pub fn binary(&self) -> PathBuf {
        self.target_directory
            .join(scf_lean::image::TARGET)
            .join("release")
            .join(&self.name)
    }
}
