"""Loopback load generator: latency and throughput of POST /v1/stylize, batching on and off; prints JSON.

    .venv/bin/python -m bench.load [--sizes 256,512,1024] [--concurrency 1,4,16] [--requests 48] \\
        [--seconds 8] [--rounds 3] [--batch-sizes 8,1] [--out bench/results/load.json]

It starts `python -m service` on loopback once per micro-batcher setting (all up at once), registers
one style on each (so every request hits the embedding cache), and drives JPEG-in/JPEG-out requests
at each image size and concurrency, each cell bounded by a request count and a time limit, the
settings alternating cell by cell, every cell ``--rounds`` times. Before, between and after the rounds
of each size it times the bare transformer session in this process (batch 1, same intra-op threads,
the servers idle), so the HTTP + codec overhead is a ratio measured on the same machine seconds apart:
a cell's median images/s over the bare session's median. One round's cell moves 10-20% on a shared
machine; the medians are what docs/performance.md cites. The load generator runs on the
same cores as the server, which is part of what the ratio charges to HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import IMAGES, MODELS, cached_style_form, drive, emit, environment, serve, summary, warm_up
from service import imaging
from service.config import Settings
from service.registry import LoadedModel, load_model
from tests.helpers.images import square_jpeg


def bare_model(model: LoadedModel, size: int, count: int, seconds: float) -> dict[str, float | int]:
    """The transformer session alone: one [1,3,S,S] run after another, images per second."""
    embedding = np.full((1, model.manifest.embedding_size), 0.01, np.float32)
    content = imaging.to_tensor(np.asarray(_decoded(size)))
    model.transform(content, embedding)  # warm-up: first run of a shape allocates
    latencies: list[float] = []
    started = time.perf_counter()
    while len(latencies) < count and time.perf_counter() - started < seconds:
        begun = time.perf_counter()
        model.transform(content, embedding)
        latencies.append(time.perf_counter() - begun)
    return summary(latencies, time.perf_counter() - started)


def over_rounds(cells: list[dict[str, float | int]]) -> dict[str, float | int]:
    """One cell's rounds: counts summed, images/s and latency percentiles their medians."""
    served = [c for c in cells if c["images"]]  # a round with no answer has no percentiles
    merged: dict[str, float | int] = {
        "images": sum(c["images"] for c in cells),
        "errors": sum(c["errors"] for c in cells),
        "rounds": len(cells),
        "images_per_s": round(statistics.median(c["images_per_s"] for c in served), 2) if served else 0.0,
    }
    for name in ("p50_ms", "p95_ms", "p99_ms"):
        if served:
            merged[name] = round(statistics.median(c[name] for c in served), 1)
    return merged


def _decoded(size: int) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(_content(size))).convert("RGB"))


def _content(size: int) -> bytes:
    return square_jpeg(IMAGES / "content" / "tubingen.jpg", size)


def start_servers(batch_sizes: list[int], workdir: Path, stack: ExitStack) -> dict[int, tuple[str, dict[str, str]]]:
    """One server per micro-batcher setting, all up at once (an idle one takes no CPU), each with the
    style registered: its URL and the form fields of a cached-style request."""
    servers: dict[int, tuple[str, dict[str, str]]] = {}
    for batch_size in batch_sizes:
        env = {"ATELIER_MAX_BATCH_SIZE": str(batch_size), "ATELIER_MAX_PENDING": "256"}
        folder = workdir / f"batch{batch_size}"
        folder.mkdir()
        server = stack.enter_context(serve(folder, env))
        servers[batch_size] = (server.url, cached_style_form(server.url))
    return servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,512,1024")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--requests", type=int, default=48, help="most requests per cell")
    parser.add_argument("--seconds", type=float, default=8.0, help="most seconds per cell")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every cell; figures are medians")
    parser.add_argument("--batch-sizes", default="8,1", help="ATELIER_MAX_BATCH_SIZE values (1 = batching off)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    concurrency = [int(x) for x in args.concurrency.split(",")]
    batch_sizes = [int(x) for x in args.batch_sizes.split(",")]

    started = time.perf_counter()
    report: dict[str, object] = {"environment": environment(), "settings": vars(args) | {"out": str(args.out)}}
    settings = Settings()
    model = load_model(MODELS / "magenta-mobile" / "1", settings.providers, settings.ort_intra_op_threads)
    bare: dict[str, object] = {"providers": model.providers, "intra_op_threads": settings.ort_intra_op_threads}
    cells_out: dict[int, dict[str, dict[str, dict[str, float | int]]]] = {b: {} for b in batch_sizes}
    ratios: dict[int, dict[str, dict[str, float]]] = {b: {} for b in batch_sizes}
    with tempfile.TemporaryDirectory(prefix="atelier-bench-") as tmp, ExitStack() as stack:
        servers = start_servers(batch_sizes, Path(tmp), stack)
        for size in sizes:
            files = {"content": _content(size)}
            for url, data in servers.values():
                warm_up(url, files, data, max(concurrency))
            # The bare model before, between and after the rounds of this size's HTTP cells, and the
            # batching settings alternating cell by cell: the machine is shared, and its drift should
            # hit every column. Each figure is then a median over rounds.
            runs: dict[int, dict[str, list[dict[str, float | int]]]] = {b: {} for b in batch_sizes}
            bare_rates = [bare_model(model, size, args.requests, args.seconds)["images_per_s"]]
            for _ in range(args.rounds):
                for c in concurrency:
                    for batch_size, (url, data) in servers.items():
                        cell = asyncio.run(drive(url, files, data, c, args.requests, args.seconds))
                        runs[batch_size].setdefault(f"c{c}", []).append(cell)
                bare_rates.append(bare_model(model, size, args.requests, args.seconds)["images_per_s"])
            bare_rate = statistics.median(bare_rates)
            bare[str(size)] = {"images_per_s": bare_rate, "runs_images_per_s": bare_rates}
            for batch_size in batch_sizes:
                merged = {name: over_rounds(cells) for name, cells in runs[batch_size].items()}
                cells_out[batch_size][str(size)] = merged
                ratios[batch_size][str(size)] = {
                    name: round(float(cell["images_per_s"]) / bare_rate, 3) for name, cell in merged.items()
                }
    report["bare_model"] = bare
    for batch_size in batch_sizes:
        report[f"http_batch{batch_size}"] = cells_out[batch_size]
        report[f"http_batch{batch_size}_over_bare"] = ratios[batch_size]
    report["wall_s"] = round(time.perf_counter() - started, 1)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
