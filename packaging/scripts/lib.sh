# shellcheck shell=bash
# Helpers shared by the packaging scripts; source it, don't run it.
#   . "$(dirname "$0")/../scripts/lib.sh"

# The workspace root, whatever the caller's directory.
SKERRY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# The workspace's version: [workspace.package] version in Cargo.toml.
skerry_version() {
  python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["workspace"]["package"]["version"])' \
    "$SKERRY_ROOT/Cargo.toml"
}

# Cargo's target directory, and the packaging output inside it.
skerry_target_dir() {
  echo "${CARGO_TARGET_DIR:-$SKERRY_ROOT/target}"
}
skerry_out_dir() {
  echo "${SKERRY_PKG_OUT:-$(skerry_target_dir)/packaging}"
}

# The static release binary: $SKERRY_BIN when set (CI builds it once and
# hands it to every script), otherwise built now.
skerry_bin() {
  if [[ -n ${SKERRY_BIN:-} ]]; then
    [[ -x $SKERRY_BIN ]] || { echo "SKERRY_BIN=$SKERRY_BIN is not an executable" >&2; return 1; }
    echo "$SKERRY_BIN"
  else
    bash "$SKERRY_ROOT/packaging/scripts/build-binary.sh" | tail -n 1
  fi
}

# Prints a step header with the seconds since the script started.
step() {
  printf '==> [%3ds] %s\n' "$SECONDS" "$*"
}

die() {
  echo "FAIL: $*" >&2
  exit 1
}

# Copies the binary into a package tree without its DWARF line tables
# (43 MB -> 11 MB); symbol names stay, so backtraces still name functions.
install_binary() { # SRC DST
  install -m 0755 "$1" "$2"
  strip --strip-debug "$2"
}
