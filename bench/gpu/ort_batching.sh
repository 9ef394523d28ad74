#!/usr/bin/env bash
# The bare ONNX Runtime session on the GPU (bench/gpu/ort_batching.py) on the files that
# bench/gpu/prepare_models.sh made; prints the JSON and writes it to $OUT/ort_batching$TAG.json.
#   bash bench/gpu/ort_batching.sh [ort_batching.py flags, e.g. --size 1024 --batches 1,4,8,16 --seconds 2 --uint8]
set -euo pipefail
source bench/gpu/env.sh
require_cuda >&2
"$PY" bench/gpu/ort_batching.py --models "$GPU_CACHE/ort-inputs" "$@" | tee "$OUT/ort_batching${TAG:-}.json"
