#!/usr/bin/env bash
# Issue-7 GPU figures on a lent machine whose onnxruntime lacks the CUDA provider (../shared/tools/GPU.md):
# joins the onnxruntime-gpu 1.31.1 cp312 wheel from parts carried earlier (60 MB each, in $PARTS),
# checks its sha256, installs it into a private folder, and runs bench/gpu/ort_batching.py.
#   bash bench/gpu/ort_batching.sh MODELS_DIR [ort_batching.py flags]   (files: see bench/gpu/ort_batching.py)
# Preparing the parts here (a device call carries at most 64 MiB):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#       onnxruntime-gpu==1.31.1 -d .cache/gpu && split -b 60M -d .cache/gpu/onnxruntime_gpu-*.whl part_
# then one call per part, back to back so the machine stays warm:
#   carry the part's folder, run `mkdir -p /var/tmp/ort && cp <folder>/part_0N /var/tmp/ort/`;
# the last call carries MODELS_DIR too and runs this script.
set -euo pipefail
MODELS=${1:?models dir}
PARTS=${PARTS:-/var/tmp/ort}
SITE=${SITE:-/tmp/ort-site}
OUT=${OUT:-artifacts/gpu}
WHEEL=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
SHA256=05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7
mkdir -p "$OUT"
cat "$PARTS"/part_0* > "$WHEEL"
echo "$SHA256  $WHEEL" | sha256sum -c --quiet
python3 -m pip install -q --no-deps --no-index --target "$SITE" "$WHEEL"
nvidia-smi --query-gpu=name --format=csv,noheader
PYTHONPATH="$SITE" python3 bench/gpu/ort_batching.py --models "$MODELS" "${@:2}" | tee "$OUT/ort_batching.json"
