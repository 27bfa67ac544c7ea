//! The function's image, built and run as SCF runs it: a static musl binary in a `FROM scratch`
//! image, a read-only root filesystem, `/tmp` writable, 1,024 descriptors and processes.
//!
//! Opt-in, since it builds a release binary and an image (about a minute):
//!
//!     SCF_LEAN_IMAGE_TEST=1 cargo test --test image -- --nocapture
//!
//! Needs podman or docker and `rustup target add x86_64-unknown-linux-musl`.

use std::io::Write;

use scf_lean::testing::SECRETS;
use scf_lean::testing::image::Image;

#[test]
fn the_image_runs_as_scf_runs_it() {
    if std::env::var("SCF_LEAN_IMAGE_TEST").as_deref() != Ok("1") {
        // Straight to stderr, past the test harness's capture: a skip shows without --nocapture.
        let _ = writeln!(
            std::io::stderr(),
            "the_image_runs_as_scf_runs_it: skipped (SCF_LEAN_IMAGE_TEST=1 builds and runs the image)"
        );
        return;
    }
    let image = Image::build(".").unwrap_or_else(|why| panic!("cannot build the image: {why}"));
    let size = std::fs::metadata(&image.binary)
        .map(|m| m.len())
        .unwrap_or(0);
    println!("{}: binary {size} bytes", image.tag());

    // It says who it is, and binds nothing to say it.
    let version = image.run(&["--version"]);
    assert!(version.starts_with(env!("CARGO_PKG_NAME")), "{version}");

    // Every sample event reaches the function (adapt the list to your triggers).
    let container = image.start();
    let mut samples: Vec<_> = std::fs::read_dir("events")
        .expect("events/")
        .map(|f| f.unwrap().path())
        .collect();
    samples.sort();
    for (i, path) in samples.iter().enumerate() {
        let r = container.event(std::fs::read(path).unwrap());
        assert!(
            r.status < 500,
            "{}: {} {}",
            path.display(),
            r.status,
            r.text()
        );
        r.assert_no_secrets();
        println!(
            "{} -> {} (image-request-{})",
            path.display(),
            r.status,
            i + 1
        );
    }

    // SIGTERM, as the platform stops an instance: a clean exit, on the SIGTERM itself (the
    // engine's SIGKILL, 5 s later, would make the code 137).
    let (code, took) = container.stop();
    assert_eq!(code, 0, "exit code after SIGTERM");
    println!("stopped in {took:?}");

    // stdout and stderr are the function's logs: request ids, never a credential.
    let logs = container.logs();
    assert!(logs.contains("image-request-1"), "{logs}");
    for secret in SECRETS {
        assert!(!logs.contains(secret), "a credential in the logs:\n{logs}");
    }
}
