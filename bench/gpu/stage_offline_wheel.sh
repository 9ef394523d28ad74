#!/usr/bin/env bash
# OPTIONAL, for a GPU machine that reaches no package index and receives files only in small
# pieces (one lab's set-up: at most 64 MiB per copy). An ordinary GPU machine uses
# bench/gpu/install.sh instead; no other script needs this one.
#
#   bash bench/gpu/stage_offline_wheel.sh pack      on a connected machine, after `make models`
#   bash bench/gpu/stage_offline_wheel.sh install   on the GPU machine, once every part is there
#
# pack downloads onnxruntime-gpu 1.31.1 for CPython 3.12 (about 256 MB), checks its sha256 and
# splits it into 60 MB parts, one folder per part ($STAGE/p0 ... p4), so each can travel alone; it
# also downloads the service's own wheels for Python 3.12 ($STAGE/deps). Copy the part folders one
# by one and collect the parts in $PARTS there; copy $STAGE/deps, models/ and the images with the
# working tree.
#
# install joins the parts, checks the sha256, installs the wheel and the service's wheels with
# --no-index into $SITE, and prints the two variables that make the other scripts use them:
#   export PY=python3 PYTHONPATH=$SITE
# (the machine's own python3 must bring numpy, pillow, onnx and, for the fp16 export, torch).
set -euo pipefail
ORT_WHEEL=onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
ORT_WHEEL_SHA256=05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7
STAGE=${STAGE:-.cache/gpu/stage}
PARTS=${PARTS:-/var/tmp/ort}
SITE=${SITE:-/tmp/ort-site}
PY=${PY:-.venv/bin/python}
SERVICE_WHEELS="fastapi uvicorn uvloop httptools pydantic pydantic-settings python-multipart prometheus-client redis httpx"

pack() {
  mkdir -p "$STAGE"
  if [ ! -f "$STAGE/$ORT_WHEEL" ]; then
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --platform manylinux_2_28_x86_64 onnxruntime-gpu==1.31.1 -d "$STAGE"
  fi
  echo "$ORT_WHEEL_SHA256  $STAGE/$ORT_WHEEL" | sha256sum -c --quiet
  rm -rf "$STAGE"/p[0-9] "$STAGE/parts" && mkdir "$STAGE/parts"
  split -b 60M -d "$STAGE/$ORT_WHEEL" "$STAGE/parts/part_"
  for part in "$STAGE"/parts/part_*; do
    n=${part##*part_0}
    mkdir "$STAGE/p$n" && mv "$part" "$STAGE/p$n/"
  done
  rmdir "$STAGE/parts"
  rm -rf "$STAGE/deps"
  # shellcheck disable=SC2086
  "$PY" -m pip download -q --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d "$STAGE/deps" $SERVICE_WHEELS
  du -sh "$STAGE"/p[0-9] "$STAGE/deps"
}

install() {
  if [ ! -d "$SITE/onnxruntime" ]; then
    cat "$PARTS"/part_0* > "/tmp/$ORT_WHEEL"
    echo "$ORT_WHEEL_SHA256  /tmp/$ORT_WHEEL" | sha256sum -c --quiet
    python3 -m pip install -q --no-deps --no-index --target "$SITE" "/tmp/$ORT_WHEEL"
    # shellcheck disable=SC2086
    python3 -m pip install -q --no-index --find-links "$STAGE/deps" --target "$SITE" $SERVICE_WHEELS
  fi
  echo "export PY=python3 PYTHONPATH=$SITE"
}

case "${1:-}" in
  pack) pack ;;
  install) install ;;
  *) echo "usage: $0 pack|install" >&2; exit 2 ;;
esac
