#!/usr/bin/env bash
# Builds skerry_<version>_<arch>.deb with plain dpkg-deb: the static release
# binary, the reference configuration as a conffile, the hardened systemd
# unit and the maintainer scripts in packaging/deb/debian/. Prints the
# package's path on the last line of stdout.
#
#   bash packaging/deb/build.sh                        # builds the binary too
#   SKERRY_BIN=target/.../skerry bash packaging/deb/build.sh
set -euo pipefail
# shellcheck source=SCRIPTDIR/../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"
cd "$SKERRY_ROOT"

bin=$(skerry_bin)
version=$(skerry_version)
arch=$(dpkg --print-architecture)
out=$(skerry_out_dir)
root="$out/deb/skerry_${version}_${arch}"
deb="$out/skerry_${version}_${arch}.deb"

rm -rf "$root"
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/etc/skerry" \
  "$root/usr/lib/systemd/system" "$root/usr/share/doc/skerry"

install_binary "$bin" "$root/usr/bin/skerry"
install -m 0644 packaging/skerry.yaml "$root/etc/skerry/skerry.yaml"
install -m 0644 packaging/systemd/skerry.service "$root/usr/lib/systemd/system/skerry.service"
install -m 0644 README.md "$root/usr/share/doc/skerry/README.md"
cat >"$root/usr/share/doc/skerry/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: skerry
Source: $(sed -n 's/^repository = "\(.*\)"/\1/p' Cargo.toml)

Files: *
License: $(sed -n 's/^license = "\(.*\)"/\1/p' Cargo.toml)
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF

for script in postinst prerm postrm; do
  install -m 0755 "packaging/deb/debian/$script" "$root/DEBIAN/$script"
done
install -m 0644 packaging/deb/debian/conffiles "$root/DEBIAN/conffiles"
size_kib=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$size_kib/" \
  packaging/deb/debian/control.in >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
  >"$root/DEBIAN/md5sums"

# The package must ship the same reference file `skerry config example` prints.
cmp -s packaging/skerry.yaml <("$bin" config example) ||
  die "packaging/skerry.yaml differs from what $bin prints for 'config example' (stale binary?)"

dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
dpkg-deb --info "$deb" >&2
dpkg-deb --contents "$deb" >&2
echo "$deb"
