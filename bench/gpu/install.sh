#!/usr/bin/env bash
# Installs onnxruntime-gpu with the CUDA 13 and cuDNN 9 libraries from PyPI into the project's
# environment (after `make setup`), then checks that a session really runs on CUDA.
#   bash bench/gpu/install.sh            (PY=... for another interpreter)
# Where the machine already has CUDA 13 and cuDNN 9, CUDA_LIBS=system skips the nvidia-* wheels.
set -euo pipefail
source bench/gpu/env.sh
ORT_VERSION=$(env -u PYTHONPATH "$PY" -c "import importlib.metadata as m; print(m.version('onnxruntime-gpu'))" 2>/dev/null || echo 1.31.1)
EXTRAS="[cuda,cudnn]"
[ "${CUDA_LIBS:-pip}" = system ] && EXTRAS=""
env -u PYTHONPATH "$PY" -m pip install -q "onnxruntime-gpu$EXTRAS==$ORT_VERSION"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
require_cuda
