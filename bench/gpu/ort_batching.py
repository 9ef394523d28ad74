"""Bare ONNX Runtime throughput of the default transformer on a GPU: batch 1 vs batches, fp32 vs fp16,
float vs uint8 pixels in and out.

    python3 bench/gpu/ort_batching.py --models DIR [--size 1024] [--batches 1,4,8] [--seconds 4] [--uint8]

DIR holds transformer_fp32.onnx (the served model), transformer_fp16.onnx (bench/gpu/export_fp16.py),
predictor.onnx, and a content and a style image (content.jpg, style.jpg). Prints JSON: images/s per
precision and batch with the provider that was really active, and the fp16 output's drift from fp32.
This is what the service's micro-batcher can gain at most: it groups concurrent requests into these
batches. Inputs go in and out as numpy arrays (host copies included), as in the service.

``--uint8`` also times each graph wrapped to take and return uint8 HxWx3 pixels (``uint8_io``): the
cast, scale, rounding and transposes run on the GPU, and a quarter of the bytes cross to and from
it. The service does those on its codec threads today; this says what moving them would buy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC", "arena_extend_strategy": "kSameAsRequested"}


def session(model: Path | bytes) -> ort.InferenceSession:
    providers = [("CUDAExecutionProvider", CUDA_OPTIONS), "CPUExecutionProvider"]
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), providers=providers)


def image(path: Path, side: int) -> np.ndarray:
    with Image.open(path) as im:
        rgb = im.convert("RGB").resize((side, side), Image.BILINEAR)
    return np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0


def uint8_io(path: Path) -> bytes:
    """The transformer graph with uint8 [N,H,W,3] pixels in ("content_uint8") and out ("stylized_uint8").

    In: transpose to NCHW, cast, scale by 1/255. Out: scale by 255, clip to [0, 255], round, cast,
    transpose back, as the service's ``to_uint8`` does on the host (which rounds halves up, ONNX's
    Round to even: at most one level apart).
    """
    model = onnx.load(str(path))
    graph = model.graph
    (content,) = [i for i in graph.input if i.name == "content_image"]
    (stylized,) = graph.output
    graph.input.remove(content)
    graph.output.remove(stylized)
    graph.input.insert(0, helper.make_tensor_value_info("content_uint8", TensorProto.UINT8, ["N", "H", "W", 3]))
    graph.output.append(helper.make_tensor_value_info("stylized_uint8", TensorProto.UINT8, ["N", "H", "W", 3]))
    constants = {"u8_inv255": 1 / 255, "u8_255": 255.0, "u8_zero": 0.0}
    graph.initializer.extend(numpy_helper.from_array(np.array(v, np.float32), k) for k, v in constants.items())
    before = [
        helper.make_node("Transpose", ["content_uint8"], ["u8_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Cast", ["u8_nchw"], ["u8_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["u8_float", "u8_inv255"], ["content_image"]),
    ]
    after = [
        helper.make_node("Mul", [stylized.name, "u8_255"], ["u8_scaled"]),
        helper.make_node("Clip", ["u8_scaled", "u8_zero", "u8_255"], ["u8_clipped"]),
        helper.make_node("Round", ["u8_clipped"], ["u8_rounded"]),
        helper.make_node("Cast", ["u8_rounded"], ["u8_cast"], to=TensorProto.UINT8),
        helper.make_node("Transpose", ["u8_cast"], ["stylized_uint8"], perm=[0, 2, 3, 1]),
    ]
    nodes = before + list(graph.node) + after
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def host_pixels(tensor: np.ndarray) -> np.ndarray:
    """float [N,3,H,W] in [0, 1] -> uint8 [N,H,W,3], rounded on the host."""
    return np.round(np.clip(tensor * 255, 0, 255)).astype(np.uint8).transpose(0, 2, 3, 1)


def batched_feeds(content: np.ndarray, embedding: np.ndarray, batch: int, uint8: bool) -> dict[str, np.ndarray]:
    if uint8:
        return {"content_uint8": np.repeat(host_pixels(content), batch, 0), "embedding": np.repeat(embedding, batch, 0)}
    return {"content_image": np.repeat(content, batch, 0), "embedding": np.repeat(embedding, batch, 0)}


def throughput(sess: ort.InferenceSession, feeds: dict[str, np.ndarray], seconds: float) -> dict[str, float]:
    batch = len(feeds["embedding"])
    for _ in range(3):  # warm-up: cuDNN algorithm choice and arena growth for this shape
        sess.run(None, feeds)
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        sess.run(None, feeds)
        runs += 1
    elapsed = time.perf_counter() - started
    return {
        "images_per_s": round(batch * runs / elapsed, 2),
        "ms_per_batch": round(1000 * elapsed / runs, 2),
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--uint8", action="store_true", help="also time the graphs with uint8 pixels in and out")
    args = parser.parse_args()
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # CUDA and cuDNN from the machine's installed wheels, before the first session
    style = image(args.models / "style.jpg", 256)
    (embedding,) = session(args.models / "predictor.onnx").run(None, {"style_image": style})
    content = image(args.models / "content.jpg", args.size)
    report: dict[str, object] = {
        "onnxruntime": ort.__version__,
        "available": ort.get_available_providers(),
        "size": args.size,
        "results": {},
    }
    outputs = {}
    for precision in ("fp32", "fp16"):
        path = args.models / f"transformer_{precision}.onnx"
        sess = session(path)
        outputs[precision] = sess.run(None, {"content_image": content, "embedding": embedding})[0]
        report["results"][precision] = {  # type: ignore[index]
            "provider": sess.get_providers()[0],
            **{
                f"batch_{b}": throughput(sess, batched_feeds(content, embedding, int(b), False), args.seconds)
                for b in args.batches.split(",")
            },
        }
        if args.uint8:
            sess = session(uint8_io(path))
            pixels = sess.run(None, batched_feeds(content, embedding, 1, True))[0]
            on_host = host_pixels(outputs[precision]).astype(int)
            report["results"][f"{precision}_uint8"] = {  # type: ignore[index]
                "provider": sess.get_providers()[0],
                "max_levels_from_host_rounding": int(np.abs(pixels.astype(int) - on_host).max()),
                **{
                    f"batch_{b}": throughput(sess, batched_feeds(content, embedding, int(b), True), args.seconds)
                    for b in args.batches.split(",")
                },
            }
    drift = np.abs(outputs["fp16"] - outputs["fp32"])
    report["fp16_vs_fp32"] = {
        "max_abs": float(drift.max()),
        "mean_abs": float(drift.mean()),
        "finite": bool(np.isfinite(outputs["fp16"]).all()),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
