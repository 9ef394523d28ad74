# shellcheck shell=bash
# Sourced by the GPU benchmark scripts: which Python runs them, where results go, and the CUDA check.
#   PY   the interpreter with the project and onnxruntime-gpu installed (default: the project's .venv)
#   OUT  where the JSON files go (default: artifacts/gpu)
# The CUDA and cuDNN libraries come either with the machine or from the nvidia-* wheels that
# `pip install onnxruntime-gpu[cuda,cudnn]` adds. ONNX Runtime finds the wheels' copies only after
# onnxruntime.preload_dlls(), so every Python started from here (the servers too) calls it first,
# through a sitecustomize.py put first on PYTHONPATH.
PY=${PY:-.venv/bin/python}
OUT=${OUT:-artifacts/gpu}
GPU_CACHE=${GPU_CACHE:-.cache/gpu}
MODELS=${ATELIER_MODEL_DIR:-$PWD/models}
mkdir -p "$OUT" "$GPU_CACHE/preload"
cat > "$GPU_CACHE/preload/sitecustomize.py" <<'PYTHON'
try:
    import onnxruntime
except ImportError:
    pass
else:
    if hasattr(onnxruntime, "preload_dlls"):
        onnxruntime.preload_dlls()
PYTHON
export PYTHONPATH="$PWD/$GPU_CACHE/preload:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export ATELIER_PROVIDERS=cuda

# Fails unless ONNX Runtime really opens a session on CUDA here: it falls back to the CPU silently.
require_cuda() {
  "$PY" - "$MODELS/magenta-mobile/1/predictor.onnx" <<'PYTHON'
import json
import sys

import onnxruntime as ort

session = ort.InferenceSession(sys.argv[1], providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
active = session.get_providers()
print(json.dumps({"onnxruntime": ort.__version__, "available": ort.get_available_providers(), "active": active}))
if active[0] != "CUDAExecutionProvider":
    sys.exit("ONNX Runtime does not run on CUDA here (docs/performance.md, GPU benchmark scripts)")
PYTHON
}
