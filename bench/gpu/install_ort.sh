#!/usr/bin/env bash
# Installs onnxruntime-gpu 1.31.1 (cp312, CUDA 13) on a lent GPU machine whose own onnxruntime
# lacks the CUDA provider (../shared/tools/GPU.md): joins the wheel from the parts carried earlier
# (bench/gpu/prepare.sh makes them; they wait in $PARTS), checks its sha256 and installs it into
# $SITE, with a sitecustomize.py that preloads CUDA and cuDNN from the machine's wheels before any
# session starts. A second call in the same machine finds it installed.
#   source bench/gpu/install_ort.sh    (sets SITE; the caller puts it on PYTHONPATH)
set -euo pipefail
source bench/gpu/ort_wheel.sh
PARTS=${PARTS:-/var/tmp/ort}
SITE=${SITE:-/tmp/ort-site}
if [ ! -f "$SITE/sitecustomize.py" ]; then
  cat "$PARTS"/part_0* > "/tmp/$ORT_WHEEL"
  echo "$ORT_WHEEL_SHA256  /tmp/$ORT_WHEEL" | sha256sum -c --quiet
  python3 -m pip install -q --no-deps --no-index --target "$SITE" "/tmp/$ORT_WHEEL"
  echo "import onnxruntime; onnxruntime.preload_dlls()" > "$SITE/sitecustomize.py"
fi
nvidia-smi --query-gpu=name --format=csv,noheader
