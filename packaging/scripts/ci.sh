#!/usr/bin/env bash
# Everything packaging checks in CI, in order, with one release build shared
# by the .deb and the image:
#   static binary -> .deb -> install/smoke/remove/purge on this machine
#   -> OCI image -> container smoke -> Helm chart render + validation.
# Needs root, Docker, mosquitto-clients, python3, cmake (tests/run --deps-only
# installs the Debian packages).
#
#   bash packaging/scripts/ci.sh
#   SKERRY_SMOKE_VIA=node bash packaging/scripts/ci.sh   # see deb/smoke.sh, oci/smoke.sh
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$SKERRY_ROOT"

timed() { # LABEL COMMAND...: runs it, then reports its wall time
  local label=$1 t0=$SECONDS
  shift
  "$@"
  printf '==> packaging: %s took %ds\n' "$label" $((SECONDS - t0)) >&2
}

step "packaging: static release build"
SKERRY_BIN=$(timed "release build" skerry_bin) # or the SKERRY_BIN given
export SKERRY_BIN
ls -l "$SKERRY_BIN"

step "packaging: .deb"
deb=$(timed "deb build" bash packaging/deb/build.sh | tail -n 1)
timed "deb smoke" bash packaging/deb/smoke.sh "$deb"

step "packaging: OCI image"
docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable"
image=$(timed "image build" bash packaging/oci/build.sh | tail -n 1)
timed "container smoke" bash packaging/oci/smoke.sh "$image"

step "packaging: Helm chart"
timed "chart validation" bash packaging/k8s/validate.sh
step "packaging: all checks passed"
