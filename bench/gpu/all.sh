#!/usr/bin/env bash
# Every GPU figure of docs/performance.md in one run, after `make setup` and bench/gpu/install.sh:
#   - the service over HTTP at 1024x1024, batching on and off, fp32 and fp16 models, one and four
#     processes (service_batching_<precision>_p<processes>.json), and the CPU per image by thread
#     role (request_cost.json);
#   - fp16 with four processes and two inference threads each, where batching is likeliest to pay
#     (*_threads2.json);
#   - the bare ONNX Runtime session at 1024x1024, batch 1/4/8/16, fp32 and fp16, float and uint8
#     pixels in and out (ort_batching.json).
# JSON goes to $OUT (artifacts/gpu), each file as its step ends; the steps likeliest to show
# batching pay run first, so a run cut short keeps them.
#   bash bench/gpu/all.sh
set -euo pipefail
source bench/gpu/env.sh
bash bench/gpu/prepare_models.sh
PRECISIONS="fp16=$GPU_CACHE/models-fp16 fp32=$MODELS" PROCESSES="4 1" bash bench/gpu/service_batching.sh \
  --concurrency 16,32 --requests 160 --seconds 6 --rounds 3
ATELIER_INFERENCE_THREADS=2 TAG=_threads2 PRECISIONS="fp16=$GPU_CACHE/models-fp16" PROCESSES=4 \
  bash bench/gpu/service_batching.sh --concurrency 16,32 --requests 160 --seconds 6 --rounds 3
bash bench/gpu/ort_batching.sh --size 1024 --batches 1,4,8,16 --seconds 2 --uint8
