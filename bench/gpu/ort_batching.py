"""Bare ONNX Runtime throughput of the default transformer on a GPU: batch 1 vs batches, fp32 vs fp16.

    python3 bench/gpu/ort_batching.py --models DIR [--size 1024] [--batches 1,4,8] [--seconds 4]

DIR holds transformer_fp32.onnx (the served model), transformer_fp16.onnx (bench/gpu/export_fp16.py),
predictor.onnx, and a content and a style image (content.jpg, style.jpg). Prints JSON: images/s per
precision and batch with the provider that was really active, and the fp16 output's drift from fp32.
This is what the service's micro-batcher can gain at most: it groups concurrent requests into these
batches. Inputs go in and out as numpy arrays (host copies included), as in the service.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC", "arena_extend_strategy": "kSameAsRequested"}


def session(path: Path) -> ort.InferenceSession:
    providers = [("CUDAExecutionProvider", CUDA_OPTIONS), "CPUExecutionProvider"]
    return ort.InferenceSession(str(path), providers=providers)


def image(path: Path, side: int) -> np.ndarray:
    with Image.open(path) as im:
        rgb = im.convert("RGB").resize((side, side), Image.BILINEAR)
    return np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0


def throughput(sess: ort.InferenceSession, content: np.ndarray, embedding: np.ndarray, batch: int,
               seconds: float) -> dict[str, float]:
    feeds = {"content_image": np.repeat(content, batch, 0), "embedding": np.repeat(embedding, batch, 0)}
    for _ in range(3):  # warm-up: cuDNN algorithm choice and arena growth for this shape
        sess.run(None, feeds)
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        sess.run(None, feeds)
        runs += 1
    elapsed = time.perf_counter() - started
    return {"images_per_s": round(batch * runs / elapsed, 2), "ms_per_batch": round(1000 * elapsed / runs, 2),
            "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # CUDA and cuDNN from the machine's installed wheels, before the first session
    style = image(args.models / "style.jpg", 256)
    (embedding,) = session(args.models / "predictor.onnx").run(None, {"style_image": style})
    content = image(args.models / "content.jpg", args.size)
    report: dict[str, object] = {"onnxruntime": ort.__version__, "available": ort.get_available_providers(),
                                 "size": args.size, "results": {}}
    outputs = {}
    for precision in ("fp32", "fp16"):
        sess = session(args.models / f"transformer_{precision}.onnx")
        outputs[precision] = sess.run(None, {"content_image": content, "embedding": embedding})[0]
        report["results"][precision] = {  # type: ignore[index]
            "provider": sess.get_providers()[0],
            **{f"batch_{b}": throughput(sess, content, embedding, int(b), args.seconds)
               for b in args.batches.split(",")},
        }
    drift = np.abs(outputs["fp16"] - outputs["fp32"])
    report["fp16_vs_fp32"] = {"max_abs": float(drift.max()), "mean_abs": float(drift.mean()),
                              "finite": bool(np.isfinite(outputs["fp16"]).all())}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
