"""Per-image cost of the bare transformer session at each batch size: what a micro-batch saves or costs; JSON.

    .venv/bin/python -m bench.batch_cost [--sizes 128,256,384,512,1024] [--batches 1,2,4,8] [--rounds 4] \\
        [--out bench/results/batch_cost.json]

The session is the service's own (``service.registry.load_model``: the same provider, intra-op
threads and options), run on one content image repeated ``batch`` times. Batch sizes alternate within
each round, and each round runs every batch size for the same number of images, so the machine's
drift hits all of them. ``ms_per_image`` is the median over rounds of a run's time over its batch
size; ``over_batch_1`` is that against batch 1 (below 1: the batch saves time per image).
This is the measurement behind the CPU default of ``ATELIER_MAX_BATCH_PIXELS``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import IMAGES, MODELS, emit, environment
from service import imaging
from service.config import Settings
from service.registry import load_model
from tests.helpers.images import square_jpeg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="128,256,384,512,1024")
    parser.add_argument("--batches", default="1,2,4,8")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--images", type=int, default=8, help="images per batch size and round")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    if batches[0] != 1:
        parser.error("--batches must start with 1: the others are compared with it")
    started = time.perf_counter()
    settings = Settings()
    model = load_model(MODELS / "magenta-mobile" / "1", settings.providers, settings.ort_intra_op_threads)
    embedding = np.full((1, model.manifest.embedding_size), 0.01, np.float32)
    report: dict[str, object] = {
        "environment": environment(),
        "settings": vars(args) | {"out": str(args.out)},
        "providers": model.providers,
        "intra_op_threads": settings.ort_intra_op_threads,
    }
    for size in (int(s) for s in args.sizes.split(",")):
        decoded = imaging.decode(
            square_jpeg(IMAGES / "content" / "tubingen.jpg", size), max_pixels=10**8, min_side=1, what="content"
        )
        content = imaging.to_tensor(decoded)
        inputs = {b: (np.repeat(content, b, 0), np.repeat(embedding, b, 0)) for b in batches}
        for b in batches:
            model.transform(*inputs[b])  # warm-up: the first run of a shape allocates
        per_image: dict[int, list[float]] = {b: [] for b in batches}
        for _ in range(args.rounds):
            for b in batches:
                for _ in range(max(1, args.images // b)):
                    begun = time.perf_counter()
                    model.transform(*inputs[b])
                    per_image[b].append((time.perf_counter() - begun) / b)
        base = float(np.median(per_image[batches[0]]))
        report[str(size)] = {
            f"batch{b}": {
                "ms_per_image": round(1000 * float(np.median(times)), 2),
                "over_batch_1": round(float(np.median(times)) / base, 3),
            }
            for b, times in per_image.items()
        }
    report["wall_s"] = round(time.perf_counter() - started, 1)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
