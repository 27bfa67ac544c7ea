#!/usr/bin/env bash
# The tiny build: the same code, std rebuilt by nightly for size, panics abort at once.
#
#   bench/build-tiny.sh                 # → target/x86_64-unknown-linux-musl/tiny/scf-lean
#   bench/build-tiny.sh --manifest-path my-fn/Cargo.toml --bin my-fn     # your function
#   OPT_LEVEL=s bench/build-tiny.sh     # opt-level (default z)
#
# Needs: rustup toolchain install nightly --component rust-src
#        rustup +nightly target add x86_64-unknown-linux-musl
#
# It trades away panic handling: with panic=immediate-abort a panic in your function (an index
# out of bounds, an unwrap on None, ...) kills the process at once with SIGILL: no 500 answer, no
# panic message, no log line; SCF sees the instance die and starts a new one (a cold start).
# The stable build (`cargo build --release --target x86_64-unknown-linux-musl`) catches it,
# answers 500 and keeps serving. Use the tiny build for functions that do not panic.
#
# The profile is given on the command line (a `panic = "immediate-abort"` in Cargo.toml would
# need `cargo-features` there and break stable builds): profile "tiny" inherits "release" (fat
# LTO, one codegen unit, stripped) and changes opt-level and panic. .cargo/config.toml's
# non-PIE static flags apply as for the stable build, and of build.rs's musl link arguments
# --build-id=none and the hot-text ordering (src/hot-text.ld: 20 us off a cold start, side by
# side, for 72 bytes), not the 64 KiB segment alignment: a 116 KB binary already fits in a few
# fault-around windows (120 KiB idle RSS either way), and the padding would take it to 264 KB.
#
# Nothing unwinds in this build, so no unwind tables are emitted (`force-unwind-tables=no`):
# 16 KB less binary, 6 KB less image. RUSTFLAGS replaces .cargo/config.toml's flags, so the
# static non-PIE flags are spelled out again.
set -euo pipefail
# scf-lean's own binary unless a --manifest-path is given (relative to where you are).
manifest=()
# This repository's echo unless told (the workspace's other member, cargo-scf, is a host tool).
[[ " $* " == *" --manifest-path"* ]] || manifest=(--manifest-path "$(dirname "$0")/../Cargo.toml" -p scf-lean)
export SCF_LEAN_LINK_ARGS=${SCF_LEAN_LINK_ARGS:--Wl,--build-id=none @hot-text}
export RUSTFLAGS="-C target-feature=+crt-static,+sse4.2 -C relocation-model=static -C force-unwind-tables=no ${TINY_RUSTFLAGS:-}"
exec cargo +nightly build --target x86_64-unknown-linux-musl \
  -Zbuild-std=std,panic_abort -Zpanic-immediate-abort \
  --config 'profile.tiny.inherits="release"' \
  --config "profile.tiny.opt-level=\"${OPT_LEVEL:-z}\"" \
  --config 'profile.tiny.panic="immediate-abort"' \
  --profile tiny "${manifest[@]}" "$@"
