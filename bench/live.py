"""Live painting over /v1/live on loopback: painted fps, latency and drop rate; prints JSON.

    .venv/bin/python -m bench.live [--seconds 10] [--source-fps 30] [--preset style-03] \\
        [--out bench/results/live.json]

Before and after, it times the presets transformer alone in this process (the servers stopped), so
the painted fps can be read against what the machine could run in the same minutes: at 320x240,
640x480, and 512x384, where the default brush runs the network for a 640x480 frame. It starts
`python -m service` (the defaults of this machine) and, with the same server, runs:
one stream at 320x240, one at 640x480, and four concurrent streams at 320x240. Each stream is a
camera: it sends pre-encoded JPEG frames (a pan across a shared photo) at ``--source-fps`` whatever
comes back, and the server paints the newest frame and drops the stale ones. Latency is from a
frame's send to the arrival of its painted frame, on the client's clock; the drop rate is the share
of frames sent that were never painted. The first ``--warmup-s`` seconds of each scenario are not
counted; every frame painted in the measured window counts, whenever it was sent.

The load generator runs on the same cores as the server: it sends frames encoded once before the
streams start and only reads the answers (real clients run elsewhere); it offers permessage-deflate
as browsers do, so against a server that accepts it, it deflates every frame on these cores too;
``client_cores`` says what it took. ``server_cpu_ms_per_painted_frame`` is the server process's CPU
time over the frames it painted: on a shared machine it moves far less than the fps do.
A second server, started after the first is stopped, repeats the four streams with
``ATELIER_MAX_BATCH_PIXELS`` raised so that four 320x240 frames share one ONNX Runtime run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from websockets.asyncio.client import connect

from bench.common import IMAGES, MODELS, REPO, emit, environment, serve
from service import imaging
from service.config import Settings
from service.registry import load_model
from tests.helpers.server import cpu_seconds as process_cpu_seconds

SUBPROTOCOL = "atelier.live.v1"
FOUR_320x240 = 4 * 320 * 240  # padded pixels of four frames: one run for four streams


def pan_frames(size: tuple[int, int], count: int = 30) -> list[bytes]:
    """JPEG frames panning across a shared photo, encoded once before any stream starts."""
    width, height = size
    with Image.open(IMAGES / "content" / "tubingen.jpg") as image:
        photo = image.convert("RGB").resize((round(width * 1.5), height), Image.Resampling.LANCZOS)
    frames = []
    for index in range(count):
        left = round((photo.width - width) * index / (count - 1))
        buffer = io.BytesIO()
        photo.crop((left, 0, left + width, height)).save(buffer, "JPEG", quality=80)
        frames.append(buffer.getvalue())
    return frames


async def one_stream(
    url: str, frames: list[bytes], preset: str, source_fps: float, warmup_s: float, seconds: float
) -> dict[str, float | int]:
    """A camera stream: frames at ``source_fps``; what came back in the measured window."""
    # permessage-deflate is offered, as browsers offer it: whether frames get deflated is the server's call.
    async with connect(url, subprotocols=[SUBPROTOCOL], max_size=16 * 1024 * 1024) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "settings", "preset": preset, "format": "jpeg", "quality": 80}))
        while json.loads(await ws.recv())["type"] != "settings":
            pass
        sent_at: dict[int, float] = {}
        latencies: list[float] = []
        painted = 0
        started = time.perf_counter()
        measure_from = started + warmup_s
        stop_at = measure_from + seconds
        first_measured_seq: int | None = None  # the first frame sent in the window: the drop rate's base

        async def receive() -> None:
            nonlocal painted
            timing: dict[str, object] | None = None
            async for message in ws:
                if isinstance(message, str):
                    data = json.loads(message)
                    timing = data if data["type"] == "frame" else timing
                    continue
                now = time.perf_counter()
                assert timing is not None
                seq = int(timing["seq"])  # type: ignore[call-overload]
                # Throughput counts every frame painted in the window, whenever it was sent: counting
                # only frames sent in it would leave out the window's first latency's worth of work.
                if measure_from <= now <= stop_at:
                    latencies.append(now - sent_at[seq])
                    painted += 1

        receiver = asyncio.create_task(receive())
        seq = 0
        while (now := time.perf_counter()) < stop_at:
            if first_measured_seq is None and now >= measure_from:
                first_measured_seq = seq
            sent_at[seq] = now
            await ws.send(frames[seq % len(frames)])
            seq += 1
            await asyncio.sleep(max(0.0, started + seq / source_fps - time.perf_counter()))
        await asyncio.sleep(0.5)  # answers to the last frames, not counted: they arrive after stop_at
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
    sent = seq - (first_measured_seq or 0)
    return {
        "sent": sent,
        "painted": painted,
        "painted_fps": round(painted / seconds, 2),
        "latency_ms_median": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "latency_ms_p90": round(float(np.percentile(latencies, 90)) * 1000, 1) if latencies else None,
        "drop_rate": round(1 - painted / sent, 3) if sent else None,
    }


async def scenario(url: str, size: tuple[int, int], streams: int, args: argparse.Namespace) -> dict[str, object]:
    frames = pan_frames(size)
    results = await asyncio.gather(
        *(one_stream(url, frames, args.preset, args.source_fps, args.warmup_s, args.seconds) for _ in range(streams))
    )
    latencies = [r["latency_ms_median"] for r in results if r["latency_ms_median"] is not None]
    sent = sum(int(r["sent"]) for r in results)
    painted = sum(int(r["painted"]) for r in results)
    return {
        "size": f"{size[0]}x{size[1]}",
        "streams": streams,
        "total_painted_fps": round(painted / args.seconds, 2),
        "latency_ms_median_of_streams": statistics.median(latencies) if latencies else None,
        "drop_rate": round(1 - painted / sent, 3) if sent else None,
        "per_stream": results,
    }


def bare_fps(sizes: list[tuple[int, int]], seconds: float = 4.0) -> dict[str, float]:
    """The presets transformer alone in this process, one [1,3,H,W] run after another, while no server
    runs: what a stream could paint at most on this machine right now (no decode, encode or network)."""
    settings = Settings()
    model = load_model(MODELS / settings.presets_model / "1", settings.providers, settings.ort_intra_op_threads)
    embedding = np.zeros((1, model.manifest.embedding_size), np.float32)
    embedding[0, 3] = 1.0
    rates = {}
    for width, height in sizes:
        with Image.open(IMAGES / "content" / "tubingen.jpg") as image:
            content = imaging.to_tensor(np.asarray(image.convert("RGB").resize((width, height))))
        model.transform(content, embedding)  # the first run of a shape allocates
        runs: list[float] = []
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            begun = time.perf_counter()
            model.transform(content, embedding)
            runs.append(time.perf_counter() - begun)
        rates[f"{width}x{height}"] = round(1 / statistics.median(runs), 2)
    return rates


def cpu_seconds(pid: int | None = None) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), or of this one when ``pid`` is None."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        return process_cpu_seconds(pid)
    except OSError:  # the server has exited
        return None


def run_server(
    env: dict[str, str], plan: list[tuple[tuple[int, int], int]], args: argparse.Namespace, source: Path = REPO
) -> list[dict]:
    with (
        tempfile.TemporaryDirectory(prefix="atelier-bench-live-") as workdir,
        serve(Path(workdir), env, source) as server,
    ):
        url = server.url.replace("http://", "ws://") + "/v1/live"
        results = []
        for size, streams in plan:
            # CPU per painted frame moves far less than fps when other work shares the cores.
            server_before, client_before, began = cpu_seconds(server.process.pid), cpu_seconds(), time.perf_counter()
            result = asyncio.run(scenario(url, size, streams, args))
            server_after, client_after = cpu_seconds(server.process.pid), cpu_seconds()
            wall = time.perf_counter() - began
            fps = float(result["total_painted_fps"])  # type: ignore[arg-type]
            if server_before is not None and server_after is not None:
                # Over the whole scenario (warm-up included) at the measured rate.
                server_cores = (server_after - server_before) / wall
                result["server_cores"] = round(server_cores, 3)
                result["server_cpu_ms_per_painted_frame"] = round(server_cores * 1000 / fps, 1) if fps else None
            result["client_cores"] = round((client_after - client_before) / wall, 3)  # type: ignore[operator]
            results.append(result)
        return results


PLAN = [((320, 240), 1), ((640, 480), 1), ((320, 240), 4)]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """The tree of ``ref`` (``git archive``) in a temporary folder: the baseline's own service code."""
    with tempfile.TemporaryDirectory(prefix="atelier-bench-live-baseline-") as folder:
        archive = subprocess.run(["git", "archive", ref], cwd=REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        yield Path(folder)


def compare(ref: str, rounds: int, args: argparse.Namespace) -> dict[str, object]:
    """The plan on a server of ``ref`` and one of this tree, alternated (ABBA...) ``rounds`` times each,
    so both see the same minutes of a shared machine; medians and their ratios (this tree / ref)."""
    runs: dict[str, list[list[dict]]] = {"baseline": [], "current": []}
    with checkout(ref) as baseline:
        for index in range(rounds):
            order = [("baseline", baseline), ("current", REPO)]
            for variant, source in order if index % 2 == 0 else order[::-1]:
                runs[variant].append(run_server({}, PLAN, args, source))

    def median(variant: str, position: int, field: str) -> float | None:
        values = [float(r[position][field]) for r in runs[variant] if r[position].get(field) is not None]
        return round(statistics.median(values), 2) if values else None

    def four_vs_one(variant: str) -> float | None:
        ratios = [float(r[2]["total_painted_fps"]) / float(r[0]["total_painted_fps"]) for r in runs[variant]]
        return round(statistics.median(ratios), 3) if ratios else None

    summary: dict[str, object] = {}
    for position, (size, streams) in enumerate(PLAN):
        row: dict[str, object] = {}
        for field in ("total_painted_fps", "server_cpu_ms_per_painted_frame", "latency_ms_median_of_streams"):
            base, current = median("baseline", position, field), median("current", position, field)
            row[field] = {
                "baseline": base,
                "current": current,
                "ratio": round(current / base, 3) if base and current else None,
            }
        summary[f"{streams}x{size[0]}x{size[1]}"] = row
    summary["four_streams_vs_one"] = {"baseline": four_vs_one("baseline"), "current": four_vs_one("current")}
    return {
        "baseline": {"ref": ref, "commit": git("rev-parse", ref)},
        "current": {"commit": git("rev-parse", "HEAD"), "uncommitted_changes": bool(git("status", "--porcelain"))},
        "rounds": rounds,
        "summary": summary,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per scenario")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="unmeasured seconds at the start of each")
    parser.add_argument("--source-fps", type=float, default=30.0, help="frames each stream sends per second")
    parser.add_argument("--preset", default="style-03")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--baseline", help="a git ref: alternate its server with this tree's on the same plan, and report ratios"
    )
    parser.add_argument("--rounds", type=int, default=2, help="servers of each tree, with --baseline")
    args = parser.parse_args()
    report: dict[str, object] = {
        "benchmark": "live",
        "command": "python -m bench.live "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if v is not None and k != "out" and (k != "rounds" or args.baseline)
        ),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "environment": environment(),
        "targets": {
            "one_320x240": ">= 20 painted fps, median latency <= 80 ms",
            "one_640x480": ">= 8 painted fps",
            "four_320x240": "total painted fps >= one stream's",
        },
    }
    # 512x384 is the network's size for a 640x480 frame at the default brush (stroke_scale 1.25): the
    # most a 640x480 stream could paint if the server added nothing.
    sizes = [(320, 240), (640, 480), (512, 384)]
    if args.baseline:
        before = bare_fps(sizes)
        report["ab"] = compare(args.baseline, args.rounds, args)
        report["bare_transformer_fps"] = {"before": before, "after": bare_fps(sizes)}
        report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        emit(report, args.out)
        return
    before = bare_fps(sizes)
    defaults = run_server({}, PLAN, args)
    batched = run_server({"ATELIER_MAX_BATCH_PIXELS": str(FOUR_320x240)}, [((320, 240), 4)], args)
    after = bare_fps(sizes)
    report["bare_transformer_fps"] = {"before": before, "after": after}
    one = defaults[0]["total_painted_fps"]
    report["scenarios"] = defaults
    report["four_streams_sharing_runs"] = {"env": {"ATELIER_MAX_BATCH_PIXELS": FOUR_320x240}, **batched[0]}
    report["four_streams_vs_one"] = {
        "defaults": round(float(defaults[2]["total_painted_fps"]) / float(one), 2) if one else None,  # type: ignore[arg-type]
        "sharing_runs": round(float(batched[0]["total_painted_fps"]) / float(one), 2) if one else None,  # type: ignore[arg-type]
    }
    # Painted fps over what the bare session ran in the same minutes: the server's own cost, the
    # figure that stays comparable when other work shares the cores.
    report["one_stream_vs_bare"] = {
        scenario["size"]: round(
            float(scenario["total_painted_fps"]) / statistics.mean([before[scenario["size"]], after[scenario["size"]]]),
            2,
        )
        for scenario in defaults[:2]
    }
    report["one_640x480_stream_vs_bare_at_network_size"] = round(
        float(defaults[1]["total_painted_fps"]) / statistics.mean([before["512x384"], after["512x384"]]),  # type: ignore[arg-type]
        2,
    )
    load = os.getloadavg()
    report["load_average_at_end"] = [round(x, 2) for x in load]
    emit(report, args.out)


if __name__ == "__main__":
    main()
