//! `cargo scf`: a function on scf-lean from code to a pushed image, from any host, without
//! Docker.
//!
//! - `cargo scf new NAME` writes a new function from scf-lean's template (built into the tool);
//! - `cargo scf build` builds it for SCF (static x86-64 musl) with rustup's own `rust-lld`;
//! - `cargo scf image` writes its `FROM scratch` image as an OCI layout or a Docker archive,
//!   reproducibly, without a container engine;
//! - `cargo scf push REF` pushes that image to a registry (TCR or any OCI registry) and prints
//!   `REF@sha256:…`, what SCF's `ImageUri` takes;
//! - `cargo scf deploy` creates or updates the SCF function on that image through Tencent Cloud
//!   API 3.0 and waits until it is Active;
//! - `cargo scf run` serves the function on this host as SCF would, `cargo scf watch` serves it
//!   and rebuilds it on every edit, `cargo scf invoke` sends it an event or an HTTP request.
//!
//! One file per job: `new.rs`, `build.rs`, `image.rs`, `push.rs` (with `auth.rs` for the
//! registry's credentials), `deploy.rs` (with `cloud.rs` for the API and its signature),
//! `run.rs`, `watch.rs`, `invoke.rs`; `main.rs` only reads the command line.

mod auth;
mod build;
mod cloud;
mod deploy;
mod image;
mod invoke;
mod new;
mod project;
mod push;
mod run;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Cargo runs `cargo-scf scf ARGS` for `cargo scf ARGS`.
#[derive(Parser)]
#[command(name = "cargo", bin_name = "cargo", version, styles = clap::builder::Styles::plain())]
enum Cargo {
    Scf(Scf),
}

/// A function on scf-lean from code to a running SCF function: new, run, watch, invoke, build,
/// image, push, deploy.
#[derive(clap::Args)]
#[command(version, about)]
struct Scf {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    New(new::Args),
    Build(build::Args),
    Image(image::Args),
    Push(push::Args),
    Deploy(deploy::Args),
    Run(run::Args),
    Watch(watch::Args),
    Invoke(invoke::Args),
}

fn main() -> ExitCode {
    let Cargo::Scf(scf) = Cargo::parse();
    let result = match scf.command {
        Command::New(a) => new::run(a),
        Command::Build(a) => build::run(a).map(|_| ()),
        Command::Image(a) => image::run(a),
        Command::Push(a) => push::run(a),
        Command::Deploy(a) => deploy::run(a),
        Command::Run(a) => run::run(a),
        Command::Watch(a) => watch::run(a),
        Command::Invoke(a) => invoke::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
