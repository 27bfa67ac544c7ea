#!/usr/bin/env bash
# The full figures of tests/hostile.rs, in release mode: 900 slowloris connections (p99 of
# legitimate requests under 10 ms), a 6 MB response read one byte at a time, 2,000 connection
# attempts under `ulimit -n 256` (until all are served), 50 rounds of resets and half-closes,
# 1,000 connections announcing 6 MiB bodies and sending 4 KiB, 20 slow readers of 6 MB answers,
# 1,100 connections that never speak, a burst of 40 x 2 MB requests.
# CI runs the same tests with modest sizes as part of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export HOSTILE_SLOWLORIS="${HOSTILE_SLOWLORIS:-900}"
export HOSTILE_HEAD_TIMEOUT_MS="${HOSTILE_HEAD_TIMEOUT_MS:-3000}"
export HOSTILE_P99_MAX_MS="${HOSTILE_P99_MAX_MS:-10}"
export HOSTILE_FD_ATTEMPTS="${HOSTILE_FD_ATTEMPTS:-2000}"
export HOSTILE_FD_WINDOW_S="${HOSTILE_FD_WINDOW_S:-90}"
export HOSTILE_FAULT_ROUNDS="${HOSTILE_FAULT_ROUNDS:-50}"
export HOSTILE_ANNOUNCERS="${HOSTILE_ANNOUNCERS:-1000}"
export HOSTILE_SLOW_READERS="${HOSTILE_SLOW_READERS:-20}"
export HOSTILE_SILENT="${HOSTILE_SILENT:-1100}"
export HOSTILE_BURST="${HOSTILE_BURST:-40}"
cargo test --release --test hostile -- --nocapture --test-threads=1 2>&1 \
  | grep -E '^(slowloris|slow reader|fd exhaustion|faults|announcers|silent flood|burst|test |test result)'
exit "${PIPESTATUS[0]}"
