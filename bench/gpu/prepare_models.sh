#!/usr/bin/env bash
# The extra models the GPU benchmarks compare, built from the default models (`make models` first):
#   $GPU_CACHE/models-fp16/   the model repository with an fp16 transformer (fp32 in and out,
#                             bench/gpu/export_fp16.py), so the service itself can serve it
#   $GPU_CACHE/ort-inputs/    bench/gpu/ort_batching.py's files: the served fp32 transformer, the
#                             fp16 one, the predictor, a content and a style image
# Needs torch (the `train` extra; its CPU build is enough).
#   bash bench/gpu/prepare_models.sh
set -euo pipefail
source bench/gpu/env.sh
IMAGES=${ATELIER_IMAGE_DIR:-../shared/data/images}
FP16=$GPU_CACHE/models-fp16
rm -rf "$FP16" && cp -r "$MODELS" "$FP16"
FOLDER=$FP16/magenta-mobile/1
"$PY" bench/gpu/export_fp16.py "$FOLDER/transformer.onnx"
"$PY" - "$FOLDER" <<'PYTHON'
import hashlib
import json
import sys
from pathlib import Path

folder = Path(sys.argv[1])
manifest = json.loads((folder / "manifest.json").read_text())
manifest["files"]["transformer"]["sha256"] = hashlib.sha256((folder / "transformer.onnx").read_bytes()).hexdigest()
manifest["provenance"]["notes"] = "fp16 transformer from bench/gpu/export_fp16.py, for GPU benchmarks only"
(folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
PYTHON
INPUTS=$GPU_CACHE/ort-inputs
rm -rf "$INPUTS" && mkdir -p "$INPUTS"
cp "$MODELS/magenta-mobile/1/transformer.onnx" "$INPUTS/transformer_fp32.onnx"
cp "$FOLDER/transformer.onnx" "$INPUTS/transformer_fp16.onnx"
cp "$MODELS/magenta-mobile/1/predictor.onnx" "$INPUTS/predictor.onnx"
cp "$IMAGES/content/tubingen.jpg" "$INPUTS/content.jpg"
cp "$IMAGES/style/starry_night.jpg" "$INPUTS/style.jpg"
echo "$FP16 $INPUTS"
