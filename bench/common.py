"""What the benchmarks share: a service process on loopback (tests.helpers.server), a bounded load driver,
test images, RSS."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

from tests.helpers.server import LiveServer, running_server

REPO = Path(__file__).resolve().parents[1]
IMAGES = Path(os.environ.get("ATELIER_IMAGE_DIR", REPO.parent / "shared" / "data" / "images"))
MODELS = Path(os.environ.get("ATELIER_MODEL_DIR", REPO / "models"))


# The benchmarks' servers log warnings only (start_server turns INFO on for several processes) and
# keep the service's own upload limit.
BENCH_ENV = {"ATELIER_LOG_LEVEL": "WARNING"}


@contextmanager
def serve(workdir: Path, env: dict[str, str] | None = None, source: Path = REPO) -> Iterator[LiveServer]:
    """`python -m service` (of the tree ``source``) on the default models and a free loopback port until
    the block ends; waits (90 s at most) until every one of its processes is ready."""
    with running_server(MODELS, workdir, env, base_env=BENCH_ENV, source=source) as server:
        yield server


def register_style(url: str, data: bytes) -> str:
    response = httpx.post(url + "/v1/styles", files={"style": data}, timeout=60)
    response.raise_for_status()
    return response.json()["id"]


def cached_style_form(url: str) -> dict[str, str]:
    """Form fields of a JPEG-out stylize request whose style is registered (so its embedding is cached)."""
    style_id = register_style(url, (IMAGES / "style" / "starry_night.jpg").read_bytes())
    return {"style_id": style_id, "format": "jpeg", "quality": "90"}


def warm_up(url: str, files: dict[str, bytes], data: dict[str, str], concurrency: int) -> None:
    """Twice ``concurrency`` requests at that concurrency, unmeasured. The first run of each shape, batch
    sizes included, allocates what later runs reuse (on a GPU also a cuDNN algorithm choice), in every
    process of a server; left in a short measured run, those first runs weigh on whichever setting
    forms more shapes: batching."""
    asyncio.run(drive(url, files, data, concurrency, 2 * concurrency, 60))


def summary(latencies_s: list[float], wall_s: float, errors: int = 0) -> dict[str, float | int]:
    """Latency percentiles (ms) and images per second of a run."""
    ms = np.asarray(latencies_s) * 1000.0
    if not len(ms):
        return {"images": 0, "errors": errors}
    return {
        "images": len(ms),
        "errors": errors,
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "images_per_s": round(len(ms) / wall_s, 2),
    }


def multipart_request(host: str, path: str, files: dict[str, bytes], data: dict[str, str]) -> bytes:
    """A complete HTTP/1.1 POST with a multipart/form-data body, built once and sent many times."""
    boundary = "atelier-bench-" + "5" * 24
    body = bytearray()
    for name, value in data.items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for name, content in files.items():
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.jpg"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + content
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + bytes(body)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one request on a keep-alive connection; read the whole answer; return its status."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def drive(
    url: str, files: dict[str, bytes], data: dict[str, str], concurrency: int, count: int, seconds: float
) -> dict[str, float | int]:
    """POST /v1/stylize from ``concurrency`` keep-alive connections until ``count`` answers or ``seconds`` pass.

    A raw HTTP/1.1 client over asyncio streams with the request built once: the load generator shares
    the server's cores, so it should cost as little CPU as possible.
    """
    host, port = url.removeprefix("http://").split(":")
    request = multipart_request(f"{host}:{port}", "/v1/stylize", files, data)
    latencies: list[float] = []
    errors = 0
    sent = 0
    started = time.perf_counter()
    stop_at = started + seconds

    async def client_loop() -> None:
        nonlocal sent, errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while sent < count and time.perf_counter() < stop_at:
                sent += 1
                begun = time.perf_counter()
                if await _exchange(reader, writer, request) == 200:
                    latencies.append(time.perf_counter() - begun)
                else:
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return summary(latencies, time.perf_counter() - started, errors)


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident set size of a process (or another kB field of /proc/<pid>/status: RssAnon, VmHWM), Linux."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for process {pid}")


def parse_assignments(text: str) -> dict[str, str]:
    """An argparse type: NAME=VALUE[,NAME=VALUE...] as a dict (server settings for a bench's run)."""
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if not all(len(pair) == 2 for pair in pairs):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE[,NAME=VALUE...], got {text!r}")
    return dict(pairs)


def environment() -> dict[str, object]:
    import onnxruntime as ort

    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {
        "cpu": platform.processor() or platform.machine(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "load_average_at_start": [round(x, 2) for x in load],
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "ort_providers_available": ort.get_available_providers(),
    }


def emit(report: dict[str, object], out: Path | None) -> None:
    """Print the report as JSON and, with ``out``, keep a copy there (bench/results/ holds the cited ones)."""
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
