#!/usr/bin/env bash
# `make docker-images`: builds the CPU image atelier:cpu and the video workers' atelier:video-worker
# from the committed Dockerfile in the engine DOCKER_HOST points to; when none answers, in a dockerd
# started for the run and stopped afterwards (scripts/docker-engine.sh). Base images are the
# upstream ones, or local stand-ins where no registry answers (scripts/docker-standins.sh); the
# choice goes to $ATELIER_DOCKER_ENV_FILE (artifacts/docker/images.env), which `docker compose
# --env-file` takes for the gateway and Redis. On an offline site the build gets pip's CA bundle
# (ATELIER_PIP_CA, else PIP_CERT or pip's configured `cert`, else the system bundle) as the `pip_ca`
# build secret only; online it gets one only when ATELIER_PIP_CA is set.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOCKER=${DOCKER:-/usr/bin/docker} DOCKER_BUILDKIT=1
ENV_FILE=${ATELIER_DOCKER_ENV_FILE:-artifacts/docker/images.env}
TAG=${ATELIER_IMAGE:-atelier:cpu}
WORKER_TAG=${ATELIER_VIDEO_WORKER_IMAGE:-atelier:video-worker}
began=$(date +%s)

engine=$(scripts/docker-engine.sh start)
DOCKER_HOST=$(sed -n 's/^DOCKER_HOST=//p' <<<"$engine")
pid=$(sed -n 's/^ATELIER_DOCKERD_PID=//p' <<<"$engine")
export DOCKER_HOST
trap 'scripts/docker-engine.sh stop "$pid"' EXIT

mkdir -p "$(dirname "$ENV_FILE")"
scripts/docker-standins.sh >"$ENV_FILE.new"
mv "$ENV_FILE.new" "$ENV_FILE"
# shellcheck disable=SC1090
. "$ENV_FILE"

secret=()
ca=${ATELIER_PIP_CA:-}
if [ -z "$ca" ] && [ "$ATELIER_OFFLINE" = 1 ]; then
  ca=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || echo /etc/ssl/certs/ca-certificates.crt)}
fi
[ -n "$ca" ] && secret=(--secret "id=pip_ca,src=$ca")

# build TARGET TAG: one stage of the committed Dockerfile; the video worker's build reuses the
# runtime stage's layers from the first one.
build() {
  local target=$1 tag=$2 log
  log=$(dirname "$ENV_FILE")/build-${tag//[:\/]/-}.log
  echo "docker-images: building $tag (target $target) on $ATELIER_PYTHON_IMAGE (log: $log)" >&2
  if ! nice "$DOCKER" build --progress=plain --target "$target" --build-arg VARIANT=cpu \
      --build-arg PYTHON_IMAGE="$ATELIER_PYTHON_IMAGE" --build-arg TORCH_WHEELS="$ATELIER_TORCH_WHEELS" \
      --build-arg TORCH_INDEX="$ATELIER_TORCH_INDEX" --build-arg PARITY_IMAGES="$ATELIER_PARITY_IMAGES" \
      "${secret[@]}" -t "$tag" . >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "docker-images: the build of $tag failed (whole log: $log)" >&2
    exit 1
  fi
}
build runtime "$TAG"
built=$(date +%s)
build video-worker "$WORKER_TAG"
"$DOCKER" image prune -f >/dev/null  # the previous builds' now untagged images; the build cache stays
size=$("$DOCKER" image inspect -f '{{.Size}}' "$TAG")
worker=$("$DOCKER" image inspect -f '{{.Size}}' "$WORKER_TAG")
base=$("$DOCKER" image inspect -f '{{.Size}}' "$ATELIER_PYTHON_IMAGE")
echo "docker-images: $TAG $((size / 1000000)) MB, $(((size - base) / 1000000)) MB on top of $ATELIER_PYTHON_IMAGE;" \
  "$((built - began)) s" >&2
echo "docker-images: $WORKER_TAG $((worker / 1000000)) MB, $(((worker - size) / 1000000)) MB on top of $TAG;" \
  "$(($(date +%s) - built)) s" >&2
