#!/usr/bin/env bash
# Installs onnxruntime-gpu 1.31.1 (cp312, CUDA 13) on a lent GPU machine whose own onnxruntime
# lacks the CUDA provider (../shared/tools/GPU.md): joins the wheel from parts carried earlier
# (60 MB each, in $PARTS), checks its sha256 and installs it into $SITE, with a sitecustomize.py
# that preloads CUDA and cuDNN from the machine's wheels before any session starts.
# Preparing the parts here (a device call carries at most 64 MiB):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#       onnxruntime-gpu==1.31.1 -d .cache/gpu && split -b 60M -d .cache/gpu/onnxruntime_gpu-*.whl part_
# then one call per part, back to back so the machine stays warm: carry the part's folder and run
# `mkdir -p /var/tmp/ort && cp <folder>/part_0N /var/tmp/ort/`; the last call runs the benchmark.
#   source bench/gpu/install_ort.sh    (sets SITE; the caller puts it on PYTHONPATH)
set -euo pipefail
PARTS=${PARTS:-/var/tmp/ort}
SITE=${SITE:-/tmp/ort-site}
WHEEL=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
SHA256=05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7
cat "$PARTS"/part_0* > "$WHEEL"
echo "$SHA256  $WHEEL" | sha256sum -c --quiet
python3 -m pip install -q --no-deps --no-index --target "$SITE" "$WHEEL"
echo "import onnxruntime; onnxruntime.preload_dlls()" > "$SITE/sitecustomize.py"
nvidia-smi --query-gpu=name --format=csv,noheader
