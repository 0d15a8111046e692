#!/bin/sh
# debian-root.sh -- print the path of a tarball of a minimal Debian bookworm
# root (essential packages and apt), made once with mmdebstrap from the Debian
# archive and kept in build/debian-root/ (about 3 minutes the first time).
# `make deb-test` unpacks it as a scratch root; `make docker-test` imports it
# as the image's base. Installs mmdebstrap when root and missing.
set -eu
cache=build/debian-root/bookworm.tar
mirror=${FARMSD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ ! -s "$cache" ]; then
    if ! command -v mmdebstrap >/dev/null 2>&1; then
        [ "$(id -u)" = 0 ] || { echo "debian-root: mmdebstrap missing: apt-get install mmdebstrap" >&2; exit 1; }
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >&2
    fi
    mkdir -p "$(dirname "$cache")"
    echo "debian-root: mmdebstrap bookworm into $cache (once)" >&2
    mmdebstrap --quiet --variant=apt --mode=root --format=tar bookworm "$cache.tmp" "$mirror" >&2
    mv "$cache.tmp" "$cache"
fi
echo "$cache"
