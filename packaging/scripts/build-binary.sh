#!/usr/bin/env bash
# Builds the one `skerry` release binary that every package ships: statically
# linked (glibc static-pie), so the same file runs from the .deb on any
# x86_64 Linux and alone in a `FROM scratch` image. Prints its path on the
# last line of stdout; cargo's own output goes to stderr.
#
#   bash packaging/scripts/build-binary.sh          # build (no-op when fresh)
#
# The other packaging scripts call this unless SKERRY_BIN names a binary
# already built (CI builds once and hands the path to each of them).
#
# The target is named explicitly so that RUSTFLAGS reach only the binary's
# crates, not build scripts and proc macros (which cannot be static).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$SKERRY_ROOT"

target=x86_64-unknown-linux-gnu
if ! command -v cmake >/dev/null 2>&1; then
  echo "build-binary: cmake is missing (pingora's zlib-ng needs it): apt-get install -y cmake" >&2
  exit 1
fi
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --target "$target" -p skerry >&2

bin="$(skerry_target_dir)/$target/release/skerry"

# A dynamic binary would still run here but not in the scratch image.
dynamic=$(readelf -d "$bin")
if [[ $dynamic == *'(NEEDED)'* ]]; then
  echo "build-binary: $bin is not statically linked:" >&2
  grep '(NEEDED)' <<<"$dynamic" >&2
  exit 1
fi
echo "$bin"
