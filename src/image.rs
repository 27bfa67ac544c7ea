//! What a function's image is: the one description that the template's `Dockerfile`,
//! [`testing::image`](crate::testing::image) and `cargo scf image` all follow (a test holds the
//! Dockerfiles to it).
//!
//! A `FROM scratch` image with one layer holding one file, the static x86-64 musl executable at
//! [`ENTRYPOINT`], run as a numeric user (a scratch image has no `/etc/passwd`), listening on
//! SCF's port. Nothing else: no libc, no certificates, no shell; SCF's root filesystem is
//! read-only and only `/tmp` is writable, and the binary needs neither.
//!
//! ```
//! use scf_lean::image;
//!
//! assert_eq!(image::binary("my-fn"), "target/x86_64-unknown-linux-musl/release/my-fn");
//! assert_eq!((image::OS, image::ARCHITECTURE), ("linux", "amd64"));
//! ```

/// The Rust target the binary is built for: static, x86-64 (SCF runs images on linux/amd64).
pub const TARGET: &str = "x86_64-unknown-linux-musl";

/// The image's platform: operating system.
pub const OS: &str = "linux";

/// The image's platform: architecture (Go's name for x86-64, as registries and engines use).
pub const ARCHITECTURE: &str = "amd64";

/// Where the binary is in the image, and the image's entrypoint.
pub const ENTRYPOINT: &str = "/function";

/// The binary's mode in the layer: what the Dockerfile's `COPY` of a built binary gives it
/// (the root filesystem is read-only on SCF whatever the mode).
pub const MODE: u32 = 0o755;

/// The user the function runs as, `uid:gid`: not root, and numeric.
pub const USER: &str = "10001:10001";

/// The port the image exposes: SCF sends every invocation to it (`PORT` overrides it).
pub const PORT: u16 = crate::scf::DEFAULT_PORT;

/// The image's description label (`org.opencontainers.image.description`).
pub const DESCRIPTION: &str =
    "A function on Tencent Cloud SCF, served by scf-lean: static musl binary";

/// The image's source label (`org.opencontainers.image.source`): scf-lean's repository.
pub const SOURCE: &str = "https://github.com/scf-lean/scf-lean";

/// The image's licenses label (`org.opencontainers.image.licenses`).
pub const LICENSES: &str = "MIT OR Apache-2.0";

/// The release binary of the package `name`, relative to the project (where cargo puts it).
pub fn binary(name: &str) -> String {
    let mut p = String::from("target/");
    p.push_str(TARGET);
    p.push_str("/release/");
    p.push_str(name);
    p
}

/// The image's labels, in this order: title (the function's name), description, source,
/// licenses, version (the package's).
pub fn labels<'a>(title: &'a str, version: &'a str) -> [(&'static str, &'a str); 5] {
    [
        ("org.opencontainers.image.title", title),
        ("org.opencontainers.image.description", DESCRIPTION),
        ("org.opencontainers.image.source", SOURCE),
        ("org.opencontainers.image.licenses", LICENSES),
        ("org.opencontainers.image.version", version),
    ]
}
