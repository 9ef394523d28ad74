"""Resident memory of one service process over a bounded run of mixed sizes; prints JSON.

    .venv/bin/python -m bench.memory [--seconds 120] [--concurrency 4] [--out bench/results/memory.json]
    .venv/bin/python -m bench.memory --large [--idle 10] [--env ATELIER_X=V ...] [--out bench/results/memory-large.json]

``--large`` is the deployment's memory bound instead: one process warmed on small images (its
baseline), then a 6000x6000 PNG (the largest ATELIER_MAX_PIXELS allows) stylised at 1024 and at 2048
(``max_side``) by each model in turn, the arbitrary one with an uncached style image, first at the
default brush (the network at the output over the stroke scale), then at ``stroke_scale=1`` (the
network at the output size). For each step it reports the RSS peak (sampled every 20 ms), the RSS
after ``--idle`` seconds of idle against the warm baseline, and when it first came within 20% of it.

Starts `python -m service`, warms every size once (ONNX Runtime's arena grows to the largest batch
it has seen and keeps it: that is the plateau to hold), then sends a mix of 256/512/1024 images,
registered and uncached styles and presets from ``--concurrency`` clients until ``--seconds`` have
passed, sampling the process's RSS every second. Flat means the last RSS within 10% of the first.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench.common import IMAGES, emit, environment, parse_assignments, register_style, rss_bytes, serve
from tests.helpers.images import square_jpeg

SIZES = (256, 512, 1024)
MIB = 1024 * 1024


async def mixed_load(url: str, styles: list[bytes], style_ids: list[str], concurrency: int, seconds: float) -> dict:
    contents = {size: square_jpeg(IMAGES / "content" / "tubingen.jpg", size) for size in SIZES}
    # Each request's form: a size, and a registered style, a style image (cache miss once) or a preset.
    forms = itertools.cycle([(size, kind) for size in SIZES for kind in ("style_id", "style", "preset")])
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


def large_png(side: int = 6000) -> bytes:
    """A smooth side x side PNG: the most pixels allowed, and small enough (a few MB) to upload."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    rgb = np.stack([x / side * 255, y / side * 255, (x + y) / (2 * side) * 255], axis=2).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class PeakSampler:
    """The process's RSS sampled every 20 ms on a thread while a block runs; ``peak`` in MiB."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid) / MIB)
            time.sleep(0.02)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid) / MIB)


MODELS = ("presets-26", "magenta-mobile")
# The default brush (the network at the output over the stroke scale, then guided upsampling) and
# stroke_scale 1 (the network at the output size, the most memory a request can ask for).
BRUSHES = ("default", "1")
LARGE_SIDES = (1024, 2048)
IDLE_TARGET = 1.2  # within 20% of the warm baseline


def idle_trace(pid: int, idle_s: float, limit_mib: float) -> tuple[float, float | None]:
    """RSS after ``idle_s`` seconds, and the first second (sampled every 0.25 s) it was within ``limit_mib``."""
    started = time.perf_counter()
    within: float | None = None
    while (elapsed := time.perf_counter() - started) < idle_s:
        if within is None and rss_bytes(pid) / MIB <= limit_mib:
            within = round(elapsed, 2)
        time.sleep(0.25)
    return rss_bytes(pid) / MIB, within


def large_images(idle_s: float, env: dict[str, str]) -> dict[str, object]:
    content = large_png()
    styles = sorted((IMAGES / "style").iterdir())
    small = square_jpeg(IMAGES / "content" / "tubingen.jpg", 256)
    report: dict[str, object] = {"content": {"width": 6000, "height": 6000, "png_bytes": len(content)}}
    # A long deadline: on loaded cores a presets-26 2048 run at stroke_scale 1 nears the default 60 s.
    server_env = {"ATELIER_PROCESSES": "1", "ATELIER_REQUEST_TIMEOUT_S": "600"} | env
    report["server_env"] = server_env
    with (
        tempfile.TemporaryDirectory(prefix="atelier-memory-") as tmp,
        serve(Path(tmp), server_env) as server,
    ):
        pid = server.process.pid
        report["rss_mib_after_start"] = round(rss_bytes(pid) / MIB, 1)
        with httpx.Client(base_url=server.url, timeout=900) as client:
            for n in range(4):  # warm: both models, small images
                assert client.post("/v1/stylize", files={"content": small}, data={"preset": str(n)}).status_code == 200
                files = {"content": small, "style": styles[n % len(styles)].read_bytes()}
                assert client.post("/v1/stylize", files=files).status_code == 200
            time.sleep(2)
            baseline = rss_bytes(pid) / MIB
            report["rss_mib_warm_baseline"] = round(baseline, 1)
            steps = []
            for brush, side, model in itertools.product(BRUSHES, LARGE_SIDES, MODELS):
                # max_side: the output is side x side (the server's own cap is far larger now).
                data = {"format": "jpeg", "max_side": str(side)}
                if brush != "default":
                    data["stroke_scale"] = brush
                files = {"content": content}
                if model == "presets-26":
                    data["preset"] = str(len(steps) % 26)
                else:  # an uncached style image each time: the predictor runs too
                    files["style"] = styles[len(steps) % len(styles)].read_bytes()
                started = time.perf_counter()
                with PeakSampler(pid) as sampler:
                    response = client.post("/v1/stylize", files=files, data=data)
                seconds = time.perf_counter() - started
                idle, within = idle_trace(pid, idle_s, IDLE_TARGET * baseline)
                steps.append(
                    {
                        "model": model,
                        "brush": brush,
                        "output_side": side,
                        "stroke_scale": response.headers.get("X-Stroke-Scale"),
                        "status": response.status_code,
                        "seconds": round(seconds, 2),
                        "rss_mib_peak": round(sampler.peak, 1),
                        "rss_mib_after_idle": round(idle, 1),
                        "rss_anon_mib_after_idle": round(rss_bytes(pid, "RssAnon") / MIB, 1),
                        "idle_over_baseline": round(idle / baseline, 3),
                        "seconds_to_within_20_percent": within,
                    }
                )
                print(json.dumps(steps[-1]), file=sys.stderr, flush=True)
    report["steps"] = steps
    report["peak_mib"] = max(step["rss_mib_peak"] for step in steps)
    report["peak_within_2_gib"] = report["peak_mib"] <= 2048
    report["idle_within_20_percent"] = all(step["idle_over_baseline"] <= IDLE_TARGET for step in steps)
    report["all_200"] = all(step["status"] == 200 for step in steps)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--large", action="store_true", help="the 6000x6000 PNG at 1024 and 2048 per model")
    parser.add_argument("--idle", type=float, default=10.0, help="with --large: idle seconds after each step")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        type=parse_assignments,
        metavar="NAME=VALUE",
        help="with --large: server settings (NAME=VALUE[,...]); repeatable",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.large:
        env = {name: value for assignments in args.env for name, value in assignments.items()}
        report = {"environment": environment(), "settings": {"idle_s": args.idle}} | large_images(args.idle, env)
        emit(report, args.out)
        return 0
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
