#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Makes the Debian base images the Dockerfile starts FROM, locally: there is
# no registry to pull from here. debootstrap a minbase bookworm tree from
# the machine's own Debian mirror, keep it as a tarball in a cache that
# outlives the checkout, and `podman import` it as
# docker.io/library/debian:bookworm and :bookworm-slim.
set -euo pipefail

cache=${TSGATE_CACHE:-/var/tmp/tsgate-cache}
tarball=$cache/bookworm-minbase.tar

have_image() {
	podman image exists "docker.io/library/debian:$1"
}

if have_image bookworm && have_image bookworm-slim; then
	exit 0
fi

mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
	mirror=$(awk '/^URIs:/ {print $2; exit}' \
		/etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	[ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' \
		/etc/apt/sources.list 2>/dev/null || true)
	[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
	tmp=$(mktemp -d "$cache/rootfs.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	echo "base-image: debootstrap bookworm from $mirror" >&2
	debootstrap --variant=minbase bookworm "$tmp" "$mirror" \
		>"$cache/debootstrap.log" 2>&1 || {
		tail -20 "$cache/debootstrap.log" >&2
		exit 1
	}
	tar -C "$tmp" -cf "$tarball.part" .
	mv "$tarball.part" "$tarball"
fi

podman import "$tarball" docker.io/library/debian:bookworm >/dev/null
podman tag docker.io/library/debian:bookworm \
	docker.io/library/debian:bookworm-slim
