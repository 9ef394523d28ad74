#!/usr/bin/env bash
# Training quality under a time budget on a GPU (bench/training_quality.py): fine-tune the default
# model and train a 10-style model for a bounded time each, then compare them with Gatys on held-out
# pairs. Needs a CUDA build of torch: the project's .venv has the CPU wheel (its pin), so point PY at
# a Python whose torch has CUDA, with the project's `train` dependencies. Needs the pinned weight
# wheels in .cache/wheels (`make wheels`) and the images in $ATELIER_IMAGE_DIR. Writes JSON to $OUT.
#   bash bench/gpu/training_quality.sh [seconds per model] [size] [more bench/training_quality.py flags]
set -euo pipefail
SECONDS_PER_MODEL=${1:-120}
SIZE=${2:-256}
IMAGES=${ATELIER_IMAGE_DIR:-../shared/data/images}
OUT=${OUT:-artifacts/gpu}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
"$PY" - <<'PYTHON' | tee "$OUT/environment.json"
import json, torch
try:
    import onnxruntime as ort
    providers = ort.get_available_providers(); ort_version = ort.__version__
except ImportError:
    providers, ort_version = [], None
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda,
                  "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                  "onnxruntime": ort_version, "ort_providers": providers}))
PYTHON
"$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'torch has no CUDA device here')"
"$PY" bench/training_quality.py --images "$IMAGES" --seconds "$SECONDS_PER_MODEL" --size "$SIZE" \
  --batch-size 8 --eval-styles 10 "${@:3}" > "$OUT/training_quality.json"
cat "$OUT/training_quality.json"
