#!/bin/sh
# Builds the ninety image FROM scratch (docker/Dockerfile) from a `ninety` binary: copies
# the binary, every shared library `ldd` lists for it and the loader into a temporary
# build context, then runs `docker build`. No registry is contacted.
#
#   docker/build-image.sh PATH/TO/ninety [TAG]     (TAG defaults to ninety:latest)
#
# The binary is normally target/release/ninety; a debug build works too (the tests use it).
set -eu
bin=${1:?usage: build-image.sh PATH/TO/ninety [TAG]}
tag=${2:-ninety:latest}
here=$(cd "$(dirname "$0")" && pwd)
[ -x "$bin" ] || { echo "build-image.sh: $bin is not an executable" >&2; exit 2; }
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT INT TERM
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc/ninety" "$ctx/data"
cp "$bin" "$ctx/rootfs/usr/local/bin/ninety"
# "libX.so => /path (0x...)" lines name libraries; a line starting with a path is the loader.
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
  while read -r lib; do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$ctx/rootfs$lib"
  done
cp "$here/Dockerfile" "$ctx/Dockerfile"
docker build --quiet --tag "$tag" "$ctx"
