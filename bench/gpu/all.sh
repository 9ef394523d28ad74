#!/usr/bin/env bash
# Every GPU figure of issue 7 in one device call, once bench/gpu/prepare.sh has run here and the
# first four wheel parts wait in /var/tmp/ort (prepare.sh's header lists the calls):
#   - the bare ONNX Runtime session at 1024x1024, batch 1/4/8/16, fp32 and fp16, float and uint8
#     pixels in and out (ort_batching.json);
#   - the service over HTTP at 1024x1024, batching on and off, fp32 and fp16 models, one and four
#     service processes (service_batching_<precision>_p<processes>.json);
#   - the service's CPU per image by thread role at concurrency 16 (request_cost.json);
#   - the case where batching is likeliest to pay: fp16, four processes, two inference threads each
#     (*_threads2.json).
# Results go to $OUT, which the device tool brings back, each file as its step ends; the steps most
# likely to show batching pay (fp16, four processes) run first, so a run cut short keeps them.
set -euo pipefail
mkdir -p /var/tmp/ort && cp .cache/gpu/p4/part_04 /var/tmp/ort/
export ATELIER_IMAGE_DIR=$PWD/.cache/gpu/images
PRECISIONS="fp16=.cache/gpu/models-fp16 fp32=models" PROCESSES="4 1" bash bench/gpu/service_batching.sh \
  --concurrency 16,32 --requests 160 --seconds 6 --rounds 3
ATELIER_INFERENCE_THREADS=2 TAG=_threads2 PRECISIONS="fp16=.cache/gpu/models-fp16" PROCESSES=4 \
  bash bench/gpu/service_batching.sh --concurrency 16,32 --requests 160 --seconds 6 --rounds 3
bash bench/gpu/ort_batching.sh .cache/gpu/p4 --size 1024 --batches 1,4,8,16 --seconds 2 --uint8
