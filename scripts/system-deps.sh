#!/usr/bin/env bash
# Debian packages the test suite drives for real: Chromium (browser tests), Redis and nginx
# (the deployment topology test), docker-compose (validates and runs docker-compose.yml), and for
# the Docker tests (tests/docker): Debian's Docker engine (docker.io: dockerd + its own
# /usr/bin/docker client with built-in BuildKit) and debootstrap (local stand-ins for the upstream
# base images when no registry answers; scripts/docker-standins.sh).
# Installs only what is missing; `make test` calls this.
# Usage: scripts/system-deps.sh [binary:package ...]   (default: the whole list below)
set -euo pipefail
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(chromium:chromium redis-server:redis-server nginx:nginx docker-compose:docker-compose
  dockerd:docker.io debootstrap:debootstrap)
missing=()
for pair in "${wanted[@]}"; do
  binary=${pair%%:*} package=${pair#*:}
  command -v "$binary" >/dev/null 2>&1 || [ -x "/usr/sbin/$binary" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
