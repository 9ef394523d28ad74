#!/usr/bin/env bash
# Issue-4 measurement on a lent GPU machine (see ../shared/tools/GPU.md): fine-tune the
# default model and train a 10-style model for a bounded time, then compare with Gatys on
# held-out pairs. Needs the pinned weight wheels in .cache/wheels and the shared images in
# $IMAGES (both carried, since the machine reaches no registry); writes JSON to $OUT.
#   bash bench/gpu/training_quality.sh [seconds per model] [size] [more bench/training_quality.py flags]
set -euo pipefail
SECONDS_PER_MODEL=${1:-120}
SIZE=${2:-256}
IMAGES=${IMAGES:-.cache/device-images}
OUT=${OUT:-artifacts/gpu}
PYTHON=${PYTHON:-python3}  # the device machine has torch in its system python
mkdir -p "$OUT"
"$PYTHON" - <<'PY' | tee "$OUT/environment.json"
import json, torch
try:
    import onnxruntime as ort
    providers = ort.get_available_providers(); ort_version = ort.__version__
except ImportError:
    providers, ort_version = [], None
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda,
                  "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                  "onnxruntime": ort_version, "ort_providers": providers}))
PY
"$PYTHON" bench/training_quality.py --images "$IMAGES" --seconds "$SECONDS_PER_MODEL" --size "$SIZE" \
  --batch-size 8 --eval-styles 10 "${@:3}" > "$OUT/training_quality.json"
cat "$OUT/training_quality.json"
