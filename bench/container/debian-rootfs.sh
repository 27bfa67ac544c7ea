#!/usr/bin/env bash
# The "typical image" of bench/run.sh: a Debian minimal root filesystem (debootstrap
# --variant=minbase) plus python3, as a tarball cached under /tmp so that reruns are fast.
#
#   bench/container/debian-rootfs.sh [OUT.tar]      # default /tmp/bench-cache/debian-python3.tar
#
# The mirror is the one apt uses on this machine (MIRROR= overrides it).
set -euo pipefail
OUT=${1:-/tmp/bench-cache/debian-python3.tar}
[[ -s "$OUT" ]] && { echo "$OUT (cached)"; exit 0; }
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-$(grep -rhoE 'https?://[^ ]+/debian/?$' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | head -1 || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
mkdir -p "$(dirname "$OUT")"
ROOT=$(mktemp -d /tmp/bench-debootstrap.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo ">> debootstrap --variant=minbase --include=python3 $SUITE ($MIRROR)" >&2
debootstrap --variant=minbase --include=python3 "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || {
  tail -20 "$ROOT.log" >&2
  exit 1
}
rm -f "$ROOT.log"
# What a built image would not carry: apt's downloaded lists and packages.
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
tar --numeric-owner -C "$ROOT" -cf "$OUT.part" .
mv "$OUT.part" "$OUT"
echo "$OUT"
