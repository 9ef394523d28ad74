"""ATELIER_PROCESSES > 1: several uvicorn processes on one port, each loading the models and logging JSON."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers.images import encode_image, gradient_image
from tests.helpers.metrics import scrape
from tests.helpers.server import LiveServer, start_server, stop_server, wait_for_ready_processes


@pytest.mark.slow
def test_two_processes_serve_share_styles_and_both_log_json_lines(
    model_repository: Path, tmp_path: Path, content_path: Path, style_paths: list[Path]
) -> None:
    server = start_server(model_repository, tmp_path, {"ATELIER_PROCESSES": "2", "ATELIER_CODEC_THREADS": "1"})
    content = content_path.read_bytes()
    try:
        # /readyz answers once one process is ready; the style must be registered after both have
        # read the style folder at start-up, so that only the shared files can tell the other one.
        wait_for_ready_processes(server, 2)
        with server.client() as client:
            reply = client.post("/v1/styles", files={"style": style_paths[0].read_bytes()})
            assert reply.status_code == 201, reply.text
            style_id = reply.json()["id"]
        # A new connection each time, so the kernel hands them to either process; a style registered
        # in one is found by the other.
        for _ in range(12):
            with server.client() as client:
                reply = client.post(
                    "/v1/stylize", files={"content": content}, data={"style_id": style_id, "max_side": "64"}
                )
                assert reply.status_code == 200, reply.text
                listed = client.get("/v1/styles").json()
                assert [s["id"] for s in listed["items"]] == [style_id], listed
        # Whichever process answers a scrape reports the whole server.
        for _ in range(4):
            with server.client() as client:
                samples = scrape(client.get("/metrics").text)
            assert (
                samples[
                    ("atelier_http_requests_total", (("method", "POST"), ("route", "/v1/stylize"), ("status", "200")))
                ]
                == 12
            )
            assert samples[("atelier_jobs_in_flight", ())] == 0
            loaded = {labels for name, labels in samples if name == "atelier_model_info"}
            assert loaded and all("pid" not in dict(labels) for labels in loaded), loaded
    finally:
        stop_server(server)
    lines = server.log_lines()
    # each child logs "ready" once its models are loaded, as a JSON line like every other
    ready = {line["pid"] for line in lines if line.get("msg") == "ready" and line["processes"] == 2}
    assert len(ready) == 2, lines[-10:]
    served = [line["pid"] for line in lines if line.get("route") == "/v1/stylize" and line.get("status") == 200]
    assert len(served) == 12 and set(served) == ready, served


@pytest.mark.slow
def test_a_killed_process_is_replaced_and_its_jobs_leave_the_in_flight_gauge(
    model_repository: Path, tmp_path: Path, style_paths: list[Path]
) -> None:
    server = start_server(model_repository, tmp_path, {"ATELIER_PROCESSES": "2", "ATELIER_CODEC_THREADS": "1"})
    # Large enough that its run lasts seconds on one intra-op thread, so it can be caught in flight.
    big = encode_image(gradient_image(1600, 1200), "JPEG", quality=90)
    try:
        first = wait_for_ready_processes(server, 2)
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(post_ignoring_drops, server, big, style_paths[0].read_bytes())
            deadline = time.monotonic() + 30
            while in_flight(server) != 1:
                assert time.monotonic() < deadline and not slow.done(), "the request was never seen in flight"
                time.sleep(0.05)
            # Neither process gets to run its exit hook: the one holding the job leaves its gauge file.
            for pid in first:
                os.kill(pid, signal.SIGKILL)
            assert slow.result() is None  # its connection dropped with the process
        replaced = wait_for_ready_processes(server, 4) - first
        assert len(replaced) == 2, replaced
        assert in_flight(server) == 0
        with server.client() as client:
            reply = client.post(
                "/v1/stylize", files={"content": big, "style": style_paths[0].read_bytes()}, data={"max_side": "64"}
            )
        assert reply.status_code == 200, reply.text
    finally:
        stop_server(server)


def post_ignoring_drops(server: LiveServer, content: bytes, style: bytes) -> int | None:
    """POST a stylize request; its status, or None when the server drops the connection."""
    try:
        with server.client() as client:
            return client.post("/v1/stylize", files={"content": content, "style": style}).status_code
    except httpx.TransportError:
        return None


def in_flight(server: LiveServer) -> float:
    with server.client() as client:
        return scrape(client.get("/metrics").text)[("atelier_jobs_in_flight", ())]
