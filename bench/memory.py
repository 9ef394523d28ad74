"""Resident memory of one service process over a bounded run of mixed sizes; prints JSON.

    .venv/bin/python -m bench.memory [--seconds 120] [--concurrency 4] [--out bench/results/memory.json]

Starts `python -m service`, warms every size once (ONNX Runtime's arena grows to the largest batch
it has seen and keeps it: that is the plateau to hold), then sends a mix of 256/512/1024 images,
registered and uncached styles and presets from ``--concurrency`` clients until ``--seconds`` have
passed, sampling the process's RSS every second. Flat means the last RSS within 10% of the first.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import IMAGES, emit, environment, register_style, rss_bytes, serve
from tests.helpers.images import square_jpeg

SIZES = (256, 512, 1024)
MIB = 1024 * 1024


async def mixed_load(url: str, styles: list[bytes], style_ids: list[str], concurrency: int, seconds: float) -> dict:
    contents = {size: square_jpeg(IMAGES / "content" / "tubingen.jpg", size) for size in SIZES}
    # Each request's form: a size, and a registered style, a style image (cache miss once) or a preset.
    forms = itertools.cycle(
        [
            (size, kind)
            for size in SIZES
            for kind in ("style_id", "style", "preset")
        ]
    )
    counts = {"ok": 0, "errors": 0}
    stop_at = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def one_client(index: int) -> None:
            for n in itertools.count(index):
                if time.perf_counter() >= stop_at:
                    return
                size, kind = next(forms)
                files = {"content": contents[size]}
                data = {"format": "jpeg"}
                if kind == "style_id":
                    data["style_id"] = style_ids[n % len(style_ids)]
                elif kind == "style":
                    files["style"] = styles[n % len(styles)]
                else:
                    data["preset"] = str(n % 26)
                response = await client.post("/v1/stylize", files=files, data=data)
                counts["ok" if response.status_code == 200 else "errors"] += 1

        await asyncio.gather(*(one_client(i) for i in range(concurrency)))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    styles = [path.read_bytes() for path in sorted((IMAGES / "style").iterdir())]
    report: dict[str, object] = {"environment": environment(), "settings": vars(args) | {"out": str(args.out)}}
    one_process = {"ATELIER_PROCESSES": "1"}  # its resident memory is what is sampled
    with tempfile.TemporaryDirectory(prefix="atelier-memory-") as tmp, serve(Path(tmp), one_process) as server:
        pid = server.process.pid
        report["rss_mib_after_start"] = round(rss_bytes(pid) / MIB, 1)
        style_ids = [register_style(server.url, data) for data in styles[:4]]
        # Warm-up: every size, at the run's concurrency, so the arenas reach their plateau.
        asyncio.run(mixed_load(server.url, styles[:4], style_ids, args.concurrency, seconds=15))
        samples: list[tuple[float, float]] = []
        started = time.perf_counter()

        async def sample() -> None:
            while time.perf_counter() - started < args.seconds:
                samples.append((round(time.perf_counter() - started, 1), round(rss_bytes(pid) / MIB, 1)))
                await asyncio.sleep(1.0)

        async def run() -> dict:
            load = mixed_load(server.url, styles, style_ids, args.concurrency, args.seconds)
            counts, _ = await asyncio.gather(load, sample())
            return counts

        report["requests"] = asyncio.run(run())
    rss = [value for _, value in samples]
    report["rss_mib"] = {
        "first": rss[0],
        "last": rss[-1],
        "min": min(rss),
        "max": max(rss),
        "last_over_first": round(rss[-1] / rss[0], 3),
        "max_over_first": round(max(rss) / rss[0], 3),
    }
    report["flat_within_10_percent"] = abs(rss[-1] / rss[0] - 1) <= 0.10
    report["samples_every_10s"] = samples[::10]
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
