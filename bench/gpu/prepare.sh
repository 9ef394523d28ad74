#!/usr/bin/env bash
# Prepares here everything the GPU benchmarks carry to a lent GPU machine (../shared/tools/GPU.md),
# under .cache/gpu/ (ignored by git):
#   p0 .. p3/part_0N  the onnxruntime-gpu wheel in 60 MB parts (one device call carries at most 64 MiB)
#   p4/               its last part, and bench/gpu/ort_batching.py's files: the served fp32 transformer,
#                     an fp16 one (bench/gpu/export_fp16.py), the predictor, a content and a style image
#   models-fp16/      the model repository with that fp16 transformer (fp32 in and out), so the
#                     service itself can serve it over HTTP
#   deps/             the service's wheels for the machine's Python 3.12
#   images/           the shared test images (bench.load and bench.request_cost read them there)
# Then, with the device tool, five calls back to back so the machine stays warm:
#   for N in 0 1 2 3: carry [".cache/gpu/pN"], command
#       "mkdir -p /var/tmp/ort && cp .cache/gpu/pN/part_0N /var/tmp/ort/"
#   carry [".cache/gpu/p4", ".cache/gpu/deps", ".cache/gpu/images", ".cache/gpu/models-fp16", "models"],
#       command "bash bench/gpu/all.sh", timeout_s 600
#   bash bench/gpu/prepare.sh      (after make models)
set -euo pipefail
source bench/gpu/ort_wheel.sh
PY=${PY:-.venv/bin/python}
GPU=.cache/gpu
IMAGES=${ATELIER_IMAGE_DIR:-../shared/data/images}
mkdir -p "$GPU"
if [ ! -f "$GPU/$ORT_WHEEL" ]; then
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 onnxruntime-gpu==1.31.1 -d "$GPU"
fi
echo "$ORT_WHEEL_SHA256  $GPU/$ORT_WHEEL" | sha256sum -c --quiet
rm -rf "$GPU"/p[0-9] "$GPU/parts" && mkdir "$GPU/parts"
split -b 60M -d "$GPU/$ORT_WHEEL" "$GPU/parts/part_"
for part in "$GPU"/parts/part_*; do
  n=${part##*part_0}
  mkdir "$GPU/p$n" && mv "$part" "$GPU/p$n/"
done
rmdir "$GPU/parts"
[ -d "$GPU/p4" ] && [ ! -d "$GPU/p5" ] || { echo "expected parts 00-04 of $ORT_WHEEL" >&2; exit 1; }

rm -rf "$GPU/models-fp16" && cp -r models "$GPU/models-fp16"
FP16_FOLDER="$GPU/models-fp16/magenta-mobile/1"
"$PY" bench/gpu/export_fp16.py "$FP16_FOLDER/transformer.onnx"
"$PY" - "$FP16_FOLDER" <<'PYTHON'
import json, sys
from pathlib import Path
from onnx_export.manifest import file_sha256
folder = Path(sys.argv[1])
manifest = json.loads((folder / "manifest.json").read_text())
manifest["files"]["transformer"]["sha256"] = file_sha256(folder / "transformer.onnx")
manifest["provenance"]["notes"] = "fp16 transformer from bench/gpu/export_fp16.py, for GPU benchmarks only"
(folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
PYTHON

cp models/magenta-mobile/1/transformer.onnx "$GPU/p4/transformer_fp32.onnx"
cp "$FP16_FOLDER/transformer.onnx" "$GPU/p4/transformer_fp16.onnx"
cp models/magenta-mobile/1/predictor.onnx "$GPU/p4/predictor.onnx"
cp "$IMAGES/content/tubingen.jpg" "$GPU/p4/content.jpg"
cp "$IMAGES/style/starry_night.jpg" "$GPU/p4/style.jpg"

rm -rf "$GPU/deps" "$GPU/images"
"$PY" -m pip download -q --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d "$GPU/deps" \
  fastapi uvicorn uvloop httptools pydantic pydantic-settings python-multipart prometheus-client redis httpx
cp -r "$IMAGES" "$GPU/images"
du -sh "$GPU"/p[0-9] "$GPU/deps" "$GPU/images" "$GPU/models-fp16" models
