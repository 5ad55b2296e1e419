#!/usr/bin/env bash
# Builds the image ringkv:dev (override with IMAGE=name:tag) FROM scratch:
# static kvnode and kvctl are built on the host (no golang image needed) and
# staged with the few files a scratch image lacks under bin/docker/, which
# the Dockerfile copies in. `make docker-image` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-ringkv:dev}
GO=${GO:-go}
STAGE=bin/docker

command -v docker >/dev/null 2>&1 || { echo "docker-build: docker is not installed" >&2; exit 1; }

rm -rf "$STAGE"
mkdir -p "$STAGE/rootfs/usr/local/bin" "$STAGE/rootfs/etc" "$STAGE/rootfs/tmp" "$STAGE/data"

echo "docker-build: building static kvnode and kvctl (linux/$("$GO" env GOARCH))"
CGO_ENABLED=0 GOOS=linux "$GO" build -trimpath -ldflags='-s -w' \
  -o "$STAGE/rootfs/usr/local/bin/" ./cmd/kvnode ./cmd/kvctl

cp deploy/docker/passwd deploy/docker/group deploy/docker/nsswitch.conf "$STAGE/rootfs/etc/"
chmod 0644 "$STAGE"/rootfs/etc/*
chmod 1777 "$STAGE/rootfs/tmp"
chmod 0755 "$STAGE/data" "$STAGE"/rootfs/usr/local/bin/*

rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || rev="$rev-dirty"

echo "docker-build: building image $IMAGE (revision $rev)"
# DOCKER_BUILDKIT is left to the caller: the Dockerfile needs nothing beyond
# the classic builder, which is what runs when buildx is not installed.
docker build --label "org.opencontainers.image.revision=$rev" \
  --label "org.opencontainers.image.source=https://github.com/ringkv/ringkv" \
  -t "$IMAGE" -f Dockerfile .
docker image ls "$IMAGE"
