#!/usr/bin/env bash
# Build a local base image with Python 3.11 from Debian packages, so image
# tests need no outside registry:  make-base.sh TAG [DOCKER_HOST]
# debootstrap (minbase bookworm + python3 and venv, docs stripped) -> docker import.
# The root file system is cached under $MLSHIP_BASE_CACHE (default
# /var/cache/mlship-test-base) so later runs only import it.
set -euo pipefail
tag="${1:?usage: make-base.sh TAG}"
cache="${MLSHIP_BASE_CACHE:-/var/cache/mlship-test-base}"
rootfs="$cache/bookworm-python3-slim.tar"
if [ ! -s "$rootfs" ]; then
  mkdir -p "$cache"
  work="$(mktemp -d "$cache/root.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$work" >"$cache/debootstrap.log" 2>&1 || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  # Slim like the official python:*-slim images: no package caches, docs, manuals or locales.
  rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/lib/apt/lists/* \
    "$work"/usr/share/doc/* "$work"/usr/share/man/* "$work"/usr/share/info/* "$work"/usr/share/locale/*
  tar -C "$work" --numeric-owner -cf "$rootfs.tmp" .
  mv "$rootfs.tmp" "$rootfs"
fi
docker import --change 'CMD ["python3"]' "$rootfs" "$tag" >/dev/null
echo "$tag"
