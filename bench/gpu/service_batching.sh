#!/usr/bin/env bash
# The service's micro-batcher over HTTP on a lent GPU machine: bench.load at 1024x1024, batching on
# (ATELIER_MAX_BATCH_SIZE=8) and off (1), CUDA provider required, bare session in the same run, for
# each model repository in $PRECISIONS (name=folder pairs; default the served fp32 models) and each
# number of service processes in $PROCESSES (ATELIER_PROCESSES values; default 1), other ATELIER_
# settings from the environment, $TAG appended to the file names; then
# bench.request_cost at concurrency 16, batching on and off: the server's CPU per image by thread
# role, which says what caps throughput when the GPU does not. bench/gpu/prepare.sh makes the
# carried files (the service's wheels for Python 3.12 in $DEPS, the images, the fp16 repository).
#   bash bench/gpu/service_batching.sh [bench.load flags]
set -euo pipefail
DEPS=${DEPS:-.cache/gpu/deps}
OUT=${OUT:-artifacts/gpu}
PRECISIONS=${PRECISIONS:-fp32=models}
PROCESSES=${PROCESSES:-1}
mkdir -p "$OUT"
source bench/gpu/install_ort.sh
python3 -m pip install -q --no-index --find-links "$DEPS" --target "$SITE" fastapi uvicorn uvloop httptools pydantic \
  pydantic-settings python-multipart prometheus-client redis httpx
export PYTHONPATH="$SITE:$PWD" ATELIER_PROVIDERS=cuda
for pair in $PRECISIONS; do
  for processes in $PROCESSES; do
    ATELIER_MODEL_DIR=$PWD/${pair#*=} ATELIER_PROCESSES=$processes python3 -m bench.load --sizes 1024 \
      --concurrency 1,16 --batch-sizes 8,1 "$@" --out "$OUT/service_batching_${pair%%=*}_p${processes}${TAG:-}.json"
  done
done
python3 -m bench.request_cost --size 1024 --concurrency 16 --requests 96 --rounds 1 \
  --variant ATELIER_MAX_BATCH_SIZE=8 --variant ATELIER_MAX_BATCH_SIZE=1 --out "$OUT/request_cost${TAG:-}.json"
