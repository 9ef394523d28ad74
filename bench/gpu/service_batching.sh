#!/usr/bin/env bash
# The service over HTTP on the GPU: bench.load with batching on (ATELIER_MAX_BATCH_SIZE=8) and off
# (1), the bare session timed in the same run, for each model repository in $PRECISIONS
# (name=folder pairs; default the served fp32 models) and each number of service processes in
# $PROCESSES (ATELIER_PROCESSES values; default 1). Then bench.request_cost at concurrency 16,
# batching on and off: the server's CPU per image by thread role, which says what caps throughput
# when the GPU does not. Other ATELIER_ settings come from the environment; $TAG ends the file names.
#   bash bench/gpu/service_batching.sh [bench.load flags, e.g. --sizes 1024 --concurrency 16,32]
set -euo pipefail
source bench/gpu/env.sh
require_cuda >&2
PRECISIONS=${PRECISIONS:-fp32=$MODELS}
PROCESSES=${PROCESSES:-1}
for pair in $PRECISIONS; do
  for processes in $PROCESSES; do
    ATELIER_MODEL_DIR=$(realpath "${pair#*=}") ATELIER_PROCESSES=$processes "$PY" -m bench.load --sizes 1024 \
      --concurrency 1,16 --batch-sizes 8,1 "$@" --out "$OUT/service_batching_${pair%%=*}_p${processes}${TAG:-}.json"
  done
done
"$PY" -m bench.request_cost --size 1024 --concurrency 16 --requests 96 --rounds 1 \
  --variant ATELIER_MAX_BATCH_SIZE=8 --variant ATELIER_MAX_BATCH_SIZE=1 --out "$OUT/request_cost${TAG:-}.json"
