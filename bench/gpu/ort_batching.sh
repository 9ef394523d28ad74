#!/usr/bin/env bash
# Bare ONNX Runtime batching figures on a lent GPU machine (bench/gpu/ort_batching.py), after
# bench/gpu/install_ort.sh has installed onnxruntime-gpu from the carried parts.
#   bash bench/gpu/ort_batching.sh MODELS_DIR [ort_batching.py flags]   (files: see bench/gpu/ort_batching.py)
set -euo pipefail
MODELS=${1:?models dir}
OUT=${OUT:-artifacts/gpu}
mkdir -p "$OUT"
source bench/gpu/install_ort.sh
PYTHONPATH="$SITE" python3 bench/gpu/ort_batching.py --models "$MODELS" "${@:2}" | tee "$OUT/ort_batching.json"
