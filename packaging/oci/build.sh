#!/usr/bin/env bash
# Builds the Skerry OCI image with Docker, offline: `FROM scratch` plus the
# static release binary and the handful of files it reads at run time. No
# base image is pulled. Prints the image reference on the last line.
#
#   bash packaging/oci/build.sh                     # skerry:<version> and skerry:latest
#   SKERRY_BIN=target/.../skerry SKERRY_IMAGE=skerry:dev bash packaging/oci/build.sh
set -euo pipefail
# shellcheck source=SCRIPTDIR/../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"
cd "$SKERRY_ROOT"

bin=$(skerry_bin)
version=$(skerry_version)
image=${SKERRY_IMAGE:-skerry:$version}
ctx="$(skerry_out_dir)/oci/context"

# The context holds exactly what the image gets.
rm -rf "$ctx"
install -d -m 0755 "$ctx/rootfs/usr/bin" "$ctx/rootfs/etc/skerry" "$ctx/data"
install -d -m 1777 "$ctx/rootfs/tmp"
install_binary "$bin" "$ctx/rootfs/usr/bin/skerry"
install -m 0644 packaging/oci/skerry.yaml "$ctx/rootfs/etc/skerry/skerry.yaml"
# glibc's static resolver still reads nsswitch.conf; Docker injects
# /etc/hosts and /etc/resolv.conf at run time.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$ctx/rootfs/etc/nsswitch.conf"
printf 'root:x:0:0:root:/root:/sbin/nologin\nskerry:x:10001:10001:Skerry:/data:/sbin/nologin\n' \
  >"$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nskerry:x:10001:\n' >"$ctx/rootfs/etc/group"
chmod 0644 "$ctx/rootfs/etc/nsswitch.conf" "$ctx/rootfs/etc/passwd" "$ctx/rootfs/etc/group"
cp packaging/oci/Dockerfile "$ctx/Dockerfile"
# Same mtimes every build, so unchanged files keep their layer cache.
find "$ctx" -exec touch -h -d @0 {} +

# The classic builder needs nothing from a registry for FROM scratch;
# BuildKit, where installed, would want to fetch its Dockerfile frontend.
tags=(-t "$image")
[[ -n ${SKERRY_IMAGE:-} ]] || tags+=(-t skerry:latest)
DOCKER_BUILDKIT=0 docker build --build-arg "VERSION=$version" "${tags[@]}" "$ctx" >&2
docker image inspect -f 'image {{index .RepoTags 0}}: {{.Size}} bytes, user {{.Config.User}}' "$image" >&2
echo "$image"
