#!/usr/bin/env bash
# Base images for the build and the compose stack, in the engine DOCKER_HOST points to.
# Prints the choice as KEY=VALUE lines (the env file scripts/docker-images.sh writes):
#   ATELIER_PYTHON_IMAGE, ATELIER_GATEWAY_IMAGE, ATELIER_REDIS_IMAGE, ATELIER_TORCH_WHEELS,
#   ATELIER_TORCH_INDEX, ATELIER_OFFLINE, and ATELIER_PARITY_IMAGES (the image corpus as an image)
# Upstream images are used when the engine has them or can pull them. Where it cannot (no registry
# answers: ATELIER_OFFLINE=auto finds out with one pull of the python image), it builds stand-ins from
# Debian bookworm packages (deploy/standins/), tagged atelier-standin/*, never with an upstream name:
# the Dockerfile and docker-compose.yml take them through build arguments and variables whose
# defaults stay upstream. ATELIER_OFFLINE=1 skips the pull; =0 fails if a pull fails.
# Each stand-in is built once per engine and reused while its image exists.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-/usr/bin/docker}
export DOCKER_BUILDKIT=1
PYTHON_UPSTREAM=python:3.12-slim-bookworm
GATEWAY_UPSTREAM=nginx:1.27-alpine
REDIS_UPSTREAM=redis:7.4-alpine
DEBIAN=atelier-standin/debian:bookworm
TORCH_VERSION=$(sed -n 's/.*"torch==\([^"]*\)".*/\1/p' pyproject.toml)
MIRROR=${ATELIER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${ATELIER_DOCKER_CACHE:-/var/cache/atelier-docker}

log() { echo "docker-standins: $*" >&2; }
pip_config() { python3 -m pip config get "$1" 2>/dev/null || pip config get "$1" 2>/dev/null || true; }
have() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
pullable() { have "$1" || timeout "${ATELIER_PULL_TIMEOUT:-60}" "$DOCKER" pull -q "$1" >/dev/null 2>&1; }

debian_base() {
  have "$DEBIAN" && return
  command -v debootstrap >/dev/null || { log "debootstrap missing: run scripts/system-deps.sh"; exit 1; }
  local root=$CACHE/bookworm-minbase
  log "debootstrap --variant=minbase bookworm from $MIRROR (about 90 s)"
  rm -rf "$root" && mkdir -p "$CACHE"
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" --numeric-owner -c . | "$DOCKER" import -c 'CMD ["bash"]' - "$DEBIAN" >/dev/null
  rm -rf "$root"
}

standin() {  # standin NAME: atelier-standin/NAME from deploy/standins/NAME.Dockerfile
  local tag=atelier-standin/$1:bookworm
  if ! have "$tag"; then
    debian_base
    log "building $tag"
    "$DOCKER" build -q -t "$tag" -f "deploy/standins/$1.Dockerfile" --build-arg DEBIAN_IMAGE="$DEBIAN" \
      deploy/standins >/dev/null
  fi
  echo "$tag"
}

torch_wheel() {  # the CPU wheel for the stand-in's python: ATELIER_TORCH_WHEEL, else pip's find-links
  if [ -n "${ATELIER_TORCH_WHEEL:-}" ]; then echo "$ATELIER_TORCH_WHEEL"; return; fi
  local abi dirs
  abi=$("$DOCKER" run --rm --network none "$1" python -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
  dirs="${PIP_FIND_LINKS:-} $(pip_config global.find-links)"
  for dir in $dirs .cache/wheels; do
    dir=${dir#file://}
    for wheel in "$dir"/torch-"$TORCH_VERSION"+cpu-"$abi"-"$abi"-*x86_64.whl; do
      [ -f "$wheel" ] && { echo "$wheel"; return; }
    done
  done
  log "no torch-$TORCH_VERSION+cpu $abi wheel in pip's find-links ($dirs); set ATELIER_TORCH_WHEEL"
  exit 1
}

torch_wheels_image() {
  local wheel tag context
  wheel=$(torch_wheel "$1")
  tag=atelier-standin/torch-wheels:$(basename "$wheel" .whl | tr '+' '_' | cut -c1-120)
  if ! have "$tag"; then
    log "building $tag from $wheel"
    context=$(mktemp -d)
    trap 'rm -rf "$context"' RETURN
    ln "$wheel" "$context/" 2>/dev/null || cp "$wheel" "$context/"
    "$DOCKER" build -q -t "$tag" -f deploy/standins/torch-wheels.Dockerfile "$context" >/dev/null
  fi
  echo "$tag"
}

parity_images() {  # the corpus the export's parity check needs, which lies outside the build context
  local dir=${ATELIER_IMAGE_DIR:-../shared/data/images} tag
  [ -d "$dir/content" ] && [ -d "$dir/style" ] || { log "image corpus not found at $dir (set ATELIER_IMAGE_DIR)"; exit 1; }
  tag=atelier-local/parity-images:$( (cd "$dir" && find content style -type f -print0 | sort -z | xargs -0 sha256sum) \
    | sha256sum | cut -c1-16)
  if ! have "$tag"; then
    log "building $tag from $dir"
    printf 'FROM scratch\nCOPY content/ /content/\nCOPY style/ /style/\n' \
      | "$DOCKER" build -q -t "$tag" -f - "$dir" >/dev/null
  fi
  echo "$tag"
}

echo "ATELIER_PARITY_IMAGES=$(parity_images)"
offline=${ATELIER_OFFLINE:-auto}
if [ "$offline" = auto ]; then
  if pullable "$PYTHON_UPSTREAM"; then offline=0; else offline=1; log "$PYTHON_UPSTREAM cannot be pulled: stand-ins"; fi
fi
if [ "$offline" = 1 ]; then
  python=$(standin python)
  echo "ATELIER_OFFLINE=1"
  echo "ATELIER_PYTHON_IMAGE=$python"
  echo "ATELIER_GATEWAY_IMAGE=$(standin nginx)"
  echo "ATELIER_REDIS_IMAGE=$(standin redis)"
  echo "ATELIER_TORCH_WHEELS=$(torch_wheels_image "$python")"
  # torch itself comes from the wheels image; its dependencies from PyPI.
  echo "ATELIER_TORCH_INDEX=${ATELIER_TORCH_INDEX:-https://pypi.org/simple}"
else
  for image in "$PYTHON_UPSTREAM" "$GATEWAY_UPSTREAM" "$REDIS_UPSTREAM"; do
    pullable "$image" || { log "cannot pull $image (ATELIER_OFFLINE=1 builds stand-ins)"; exit 1; }
  done
  echo "ATELIER_OFFLINE=0"
  echo "ATELIER_PYTHON_IMAGE=$PYTHON_UPSTREAM"
  echo "ATELIER_GATEWAY_IMAGE=$GATEWAY_UPSTREAM"
  echo "ATELIER_REDIS_IMAGE=$REDIS_UPSTREAM"
  echo "ATELIER_TORCH_WHEELS=scratch"
  echo "ATELIER_TORCH_INDEX=${ATELIER_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
fi
