"""Where a request's CPU goes inside the service: CPU ms and page faults per image, by thread role; JSON.

    .venv/bin/python -m bench.request_cost [--size 1024] [--concurrency 1] [--requests 24] \\
        [--variant ATELIER_HEAP_REUSE_MIB=32 --variant ATELIER_HEAP_REUSE_MIB=0] [--gap S] [--out F]

Starts `python -m service` (one process) once per ``--variant`` (environment assignments, comma-separated, on top of
the bench's own), drives ``--requests`` stylize requests (a registered style, JPEG in and out) at
``--concurrency``, and reads the server's per-thread CPU time and minor page faults from /proc before
and after. Roles come from the OS thread names the service gives its pools: ``event_loop`` (the main
thread: HTTP parsing, routing, asyncio), ``codec`` (decode, resize, encode), ``inference`` (the
micro-batcher's threads, which call ONNX Runtime and take part in its work), ``onnxruntime`` (the
unnamed threads: ONNX Runtime's intra-op pool, the model's compute on a CPU) and ``other``. On a
GPU host this says which part of the CPU side a throughput ceiling comes from. The variants run in
turn, round by round, so the machine's drift reaches each. ``--gap S`` sends the requests one at a time
with S idle seconds before each (sparse traffic: past 2 s the idle trim runs in between, and the next
request faults its buffers in again); ``images_per_s`` is then over the requests' own time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import (
    IMAGES,
    cached_style_form,
    drive,
    emit,
    environment,
    parse_assignments,
    serve,
    summary,
    warm_up,
)
from tests.helpers.images import square_jpeg

ROLES = {"atelier-codec": "codec", "atelier-infer": "inference"}
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def thread_usage(pid: int) -> dict[str, Counter[str]]:
    """CPU seconds and minor faults of a process's threads so far, summed by role."""
    cpu: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    unnamed = (Path(f"/proc/{pid}/comm")).read_text().strip()  # threads nobody named keep the process's name
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            # Fields after the command name: state is first, minflt the 8th, utime and stime the 12th and 13th.
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # the thread ended between listing and reading
            continue
        role = "event_loop" if task.name == str(pid) else ROLES.get(name, "onnxruntime" if name == unnamed else "other")
        cpu[role] += (int(fields[11]) + int(fields[12])) / TICKS_PER_S
        faults[role] += int(fields[7])
    return {"cpu": cpu, "faults": faults}


def per_image(before: dict[str, Counter[str]], after: dict[str, Counter[str]], images: int) -> dict[str, object]:
    roles = ["event_loop", "codec", "inference", "onnxruntime", "other"]
    cpu = {r: round((after["cpu"][r] - before["cpu"][r]) * 1000 / images, 1) for r in roles}
    faults = {r: round((after["faults"][r] - before["faults"][r]) / images) for r in roles}
    return {
        "cpu_ms": cpu | {"total": round(sum(cpu.values()), 1)},
        "minor_faults": faults | {"total": sum(faults.values())},
    }


def medians(rounds: list[dict[str, Any]]) -> dict[str, object]:
    """Each figure's median over the rounds."""
    return {
        "images_per_s": statistics.median(r["load"]["images_per_s"] for r in rounds),
        "p50_ms": statistics.median(r["load"]["p50_ms"] for r in rounds),
        **{
            part: {role: statistics.median(r[part][role] for r in rounds) for role in rounds[0][part]}
            for part in ("cpu_ms", "minor_faults")
        },
    }


def sparse(url: str, files: dict[str, bytes], data: dict[str, str], count: int, gap_s: float) -> dict[str, Any]:
    """``count`` requests, one at a time, each after ``gap_s`` idle seconds."""
    latencies_s: list[float] = []
    errors = 0
    for _ in range(count):
        time.sleep(gap_s)
        one = asyncio.run(drive(url, files, data, 1, 1, 600))
        errors += int(one["errors"])
        if one["images"]:
            latencies_s.append(float(one["p50_ms"]) / 1000)
    return summary(latencies_s, sum(latencies_s), errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=24, help="requests per variant and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variant", action="append", type=parse_assignments, help="NAME=VALUE[,...]; repeatable")
    parser.add_argument("--gap", type=float, default=0.0, help="idle seconds before each request (concurrency 1)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    variants = args.variant or [{}]
    started = time.perf_counter()
    report: dict[str, object] = {"environment": environment(), "settings": vars(args) | {"out": str(args.out)}}
    files = {"content": square_jpeg(IMAGES / "content" / "tubingen.jpg", args.size)}
    results: list[dict[str, object]] = [{"variant": v, "rounds": []} for v in variants]
    with tempfile.TemporaryDirectory(prefix="atelier-bench-") as tmp:
        for round_index in range(args.rounds):
            for index, variant in enumerate(variants):
                folder = Path(tmp) / f"r{round_index}v{index}"
                folder.mkdir()
                # One process: its threads are what /proc is read for.
                with serve(folder, {"ATELIER_MAX_PENDING": "256", "ATELIER_PROCESSES": "1", **variant}) as server:
                    data = cached_style_form(server.url)
                    warm_up(server.url, files, data, args.concurrency)
                    before = thread_usage(server.process.pid)
                    if args.gap:
                        load = sparse(server.url, files, data, args.requests, args.gap)
                    else:
                        load = asyncio.run(drive(server.url, files, data, args.concurrency, args.requests, 600))
                    after = thread_usage(server.process.pid)
                    cost = per_image(before, after, max(1, load["images"]))
                    results[index]["rounds"].append({"load": load, **cost})  # type: ignore[attr-defined]
    for result in results:
        result["median"] = medians(result["rounds"])  # type: ignore[arg-type]
    report["variants"] = results
    report["wall_s"] = round(time.perf_counter() - started, 1)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
