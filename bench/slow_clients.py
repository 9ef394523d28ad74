"""Slow clients against one service process: a normal client's latency with and without them, and how
soon the server closes them; prints JSON.

    .venv/bin/python -m bench.slow_clients [--slow 500] [--header-timeout 15] [--requests 60]
                                           [--out bench/results/slow-clients.json]

Starts `python -m service` (one process) with ``ATELIER_HEADER_TIMEOUT_S``, measures a normal client
(small stylize requests, one at a time) idle, then opens ``--slow`` connections that each send one
byte of a request header a second and never finish it, and measures the normal client again while they
are open. Targets: the loaded p99 within 2x the idle p99, and every slow connection closed by the server
within the header timeout (plus a second of slack for the timer and this driver's loop).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import IMAGES, emit, environment, serve, square_jpeg, summary

SLACK_S = 1.0
HEADER = b"GET /livez HTTP/1.1\r\nHost: bench\r\nX-Slow: " + b"a" * 4096


async def normal_client(url: str, content: bytes, count: int) -> list[float]:
    latencies = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for n in range(count):
            started = time.perf_counter()
            response = await client.post("/v1/stylize", files={"content": content}, data={"preset": str(n % 26)})
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text[:300]
    return latencies


async def slow_connection(host: str, port: int, give_up_s: float) -> dict[str, object]:
    """One byte a second until the server closes the connection; how long that took and what it said."""
    opened = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    answer = b""
    try:
        for byte in HEADER:
            if time.perf_counter() - opened > give_up_s:
                break
            try:
                answer = await asyncio.wait_for(reader.read(4096), timeout=1.0)
            except TimeoutError:
                writer.write(bytes([byte]))
                await writer.drain()
                continue
            break  # the server answered or closed
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return {"closed_after_s": time.perf_counter() - opened, "status": answer[9:12].decode() if answer else ""}


async def run(url: str, content: bytes, slow: int, requests: int, header_timeout: float) -> dict[str, object]:
    host, port = url.removeprefix("http://").split(":")
    give_up = header_timeout * 3
    tasks = [asyncio.create_task(slow_connection(host, int(port), give_up)) for _ in range(slow)]
    await asyncio.sleep(1.0)  # all connected and trickling
    started = time.perf_counter()
    loaded = await normal_client(url, content, requests)
    measured_s = time.perf_counter() - started
    closed = await asyncio.gather(*tasks)
    times = sorted(float(c["closed_after_s"]) for c in closed)
    statuses: dict[str, int] = {}
    for c in closed:
        statuses[str(c["status"]) or "closed"] = statuses.get(str(c["status"]) or "closed", 0) + 1
    return {
        "loaded": summary(loaded, measured_s),
        "loaded_window_s": round(measured_s, 2),
        "slow_connections": {
            "count": slow,
            "answers": statuses,
            "closed_after_s_min": round(times[0], 2),
            "closed_after_s_max": round(times[-1], 2),
            "all_closed_within_timeout": times[-1] <= header_timeout + SLACK_S,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", type=int, default=500)
    parser.add_argument("--header-timeout", type=float, default=15.0)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    content = square_jpeg(IMAGES / "content" / "tubingen.jpg", 128)
    env = {"ATELIER_PROCESSES": "1", "ATELIER_HEADER_TIMEOUT_S": str(args.header_timeout)}
    report: dict[str, object] = {"environment": environment(), "settings": vars(args) | {"out": str(args.out)}}
    with tempfile.TemporaryDirectory(prefix="atelier-slow-") as tmp, serve(Path(tmp), env) as server:
        asyncio.run(normal_client(server.url, content, 10))  # warm
        started = time.perf_counter()
        idle = asyncio.run(normal_client(server.url, content, args.requests))
        report["idle"] = summary(idle, time.perf_counter() - started)
        report |= asyncio.run(run(server.url, content, args.slow, args.requests, args.header_timeout))
    idle_p99, loaded_p99 = report["idle"]["p99_ms"], report["loaded"]["p99_ms"]  # type: ignore[index]
    report["p99_loaded_over_idle"] = round(loaded_p99 / idle_p99, 3)
    report["p99_within_2x"] = loaded_p99 <= 2 * idle_p99
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
