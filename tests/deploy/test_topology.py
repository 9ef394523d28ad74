"""Scale-out on loopback: Redis, three replicas and the nginx gateway (see conftest.py).

The tests share one topology and run in file order: a replica is killed under load, then Redis.
Retryable answers, as docs/deployment.md documents them: 429, 502, 503 and 504, each a problem+json body
with Retry-After, and a response cut short by a killed replica. Anything else that is not a 200
fails the test.
"""

from __future__ import annotations

import io
import itertools
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image
from websockets.sync.client import connect

from tests.helpers.deploy import Topology
from tests.helpers.images import encode_image, gradient_image
from tests.helpers.metrics import metric_sum

pytestmark = pytest.mark.slow

RETRYABLE = {429, 502, 503, 504}
CUT_SHORT = 0  # the connection closed before the whole response arrived (docs/deployment.md: retry it like a 502)
CONTENT = encode_image(gradient_image(96, 72, seed=1), "PNG")
# Loopback source addresses 127.0.0.N, each used by one load client only: nginx's per-client rate
# limit drains at 10 requests/s, and a client of the previous test can still fill its bucket.
SOURCE_OCTETS = itertools.count(10)


@dataclass
class Outcome:
    status: int
    headers: httpx.Headers
    body: bytes


@pytest.fixture(scope="module")
def style_paths(image_dir: Path) -> list[Path]:
    return [image_dir / "style" / name for name in ("starry_night.jpg", "the_scream.jpg")]


@pytest.fixture(scope="module")
def style_bytes(style_paths: list[Path]) -> bytes:
    return style_paths[0].read_bytes()


@pytest.fixture(scope="module")
def registered(topology: Topology, style_bytes: bytes) -> dict:
    """A style registered through the first replica, then looked up once through every other one."""
    first, *others = topology.replicas
    response = httpx.post(first.url + "/v1/styles", files={"style": style_bytes}, timeout=60)
    assert response.status_code == 201, response.text
    record = response.json()
    for replica in others:
        assert httpx.get(f"{replica.url}/v1/styles/{record['id']}", timeout=10).status_code == 200
    return record


def stylize_request(style_id: str, style_bytes: bytes) -> Callable[[httpx.Client, int], Outcome]:
    """Cycle through a preset, the registered style and a style image (predictor or cache)."""

    def send(client: httpx.Client, n: int) -> Outcome:
        kind = n % 3
        data = {"preset": str(n % 26)} if kind == 0 else {"style_id": style_id} if kind == 1 else {}
        files = {"content": CONTENT, **({"style": style_bytes} if kind == 2 else {})}
        try:
            response = client.post("/v1/stylize", data={**data, "max_side": "96"}, files=files)
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            # A replica killed after its response header reached nginx: too late for nginx to retry.
            return Outcome(CUT_SHORT, httpx.Headers(), repr(exc).encode())
        return Outcome(response.status_code, response.headers, response.content)

    return send


def run_load(
    url: str, send: Callable[[httpx.Client, int], Outcome], count: int, clients: int, disrupt_after: int,
    disrupt: Callable[[], None],
) -> list[Outcome]:  # fmt: skip
    """``count`` requests from ``clients`` sequential clients; ``disrupt()`` once ``disrupt_after`` are done.

    Each client has its own loopback source address, never used before, as distinct users behind the
    gateway would, so the per-client rate limit applies to each separately.
    """
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    octets = [next(SOURCE_OCTETS) for _ in range(clients)]
    assert octets[-1] < 255, "out of loopback source addresses"

    def client_loop(index: int) -> None:
        transport = httpx.HTTPTransport(local_address=f"127.0.0.{octets[index]}")
        with httpx.Client(base_url=url, transport=transport, timeout=60) as client:
            for n in range(index, count, clients):
                outcome = send(client, n)
                with lock:
                    outcomes.append(outcome)

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client_loop, i) for i in range(clients)]
        deadline = time.monotonic() + 120
        while len(outcomes) < disrupt_after and time.monotonic() < deadline and not all(f.done() for f in futures):
            time.sleep(0.01)
        disrupt()
        done_before = len(outcomes)
        for future in futures:
            future.result(timeout=120)
    assert len(outcomes) == count
    assert done_before < count - clients, "the disruption came after the load, not during it"
    return outcomes


def assert_success_or_retryable(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        if outcome.status == 200:
            assert outcome.headers["content-type"] == "image/png"
            continue
        if outcome.status == CUT_SHORT:
            continue
        assert outcome.status in RETRYABLE, f"{outcome.status}: {outcome.body[:300]!r}"
        assert outcome.headers.get("retry-after"), f"{outcome.status} without Retry-After"
        assert outcome.headers["content-type"].startswith("application/problem+json")


def test_style_registered_on_one_replica_is_used_on_another(topology: Topology, registered: dict, style_bytes: bytes):
    first, second, third = topology.replicas
    style_id = registered["id"]
    fetched = httpx.get(f"{second.url}/v1/styles/{style_id}", timeout=10).json()
    assert fetched == registered  # same embedding, model and created: one record, not three
    used = httpx.post(second.url + "/v1/stylize", data={"style_id": style_id}, files={"content": CONTENT}, timeout=60)
    assert used.status_code == 200 and used.headers["x-style-id"] == style_id
    again = httpx.post(third.url + "/v1/styles", files={"style": style_bytes}, timeout=60)
    assert again.status_code == 200 and again.json() == registered  # already registered, through another replica
    listing = httpx.get(third.url + "/v1/styles", timeout=10).json()
    assert [item["id"] for item in listing["items"]] == [style_id] and listing["total"] == 1


def test_embeddings_are_shared_between_replicas(topology: Topology, style_paths: list[Path]):
    first, second, _ = topology.replicas
    style = style_paths[1].read_bytes()
    misses = metric_sum(second, "atelier_embedding_cache_misses_total")
    hits = metric_sum(second, "atelier_embedding_cache_hits_total")
    for replica in (first, second):
        response = httpx.post(replica.url + "/v1/stylize", files={"content": CONTENT, "style": style}, timeout=60)
        assert response.status_code == 200, response.text
    # The second replica found the first one's embedding in Redis: a hit, and its predictor never ran.
    assert metric_sum(second, "atelier_embedding_cache_misses_total") == misses
    assert metric_sum(second, "atelier_embedding_cache_hits_total") == hits + 1


def test_gateway_passes_request_ids_and_refuses_large_bodies(topology: Topology):
    url = topology.gateway.url
    echoed = httpx.get(url + "/v1/models", headers={"X-Request-ID": "trace-42"}, timeout=10)
    assert echoed.status_code == 200 and echoed.headers["x-request-id"] == "trace-42"
    generated = httpx.get(url + "/v1/models", timeout=10).headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0  # nginx's $request_id, kept by the service
    # nginx writes its access line after the response has gone out: give it a moment.
    deadline = time.monotonic() + 5
    while f'"request_id":"{generated}"' not in topology.gateway.access_log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f'"request_id":"{generated}"' in topology.gateway.access_log()

    too_large = httpx.post(url + "/v1/stylize", content=b"\0" * (22 * 1024 * 1024), timeout=60,
                           headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert too_large.status_code == 413
    assert too_large.headers["content-type"] == "application/problem+json"
    assert too_large.json()["type"] == "urn:atelier:problem:content-too-large"
    assert httpx.get(url + "/metrics", timeout=10).status_code == 404  # scraped per replica, not here


def test_the_live_websocket_passes_through_the_gateway(topology: Topology) -> None:
    """/v1/live is upgraded through nginx: the hello, a settings reply and a painted frame come back."""
    url = topology.gateway.url.replace("http://", "ws://") + "/v1/live"
    with connect(url, subprotocols=["atelier.live.v1"], open_timeout=10) as ws:  # type: ignore[list-item]
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        ws.send(json.dumps({"type": "settings", "preset": "1", "max_side": 64}))
        ws.send(encode_image(gradient_image(96, 72, seed=1), "JPEG"))  # live frames are JPEG or WebP
        kinds = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            message = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            if isinstance(message, bytes):
                break
            kinds.append(json.loads(message)["type"])
        else:
            pytest.fail(f"no painted frame through the gateway; got {kinds}")
    assert "frame" in kinds, kinds
    with Image.open(io.BytesIO(message)) as painted:
        assert max(painted.size) == 64


def test_a_replica_killed_under_load(topology: Topology, registered: dict, style_bytes: bytes):
    victim = topology.replicas[2]

    def kill_replica() -> None:
        victim.process.kill()  # SIGKILL: no graceful shutdown, connections reset mid-request
        victim.process.wait()
        topology.killed.append(victim)

    send = stylize_request(registered["id"], style_bytes)
    started = time.perf_counter()
    outcomes = run_load(topology.gateway.url, send, count=90, clients=6, disrupt_after=24, disrupt=kill_replica)
    elapsed = time.perf_counter() - started
    assert_success_or_retryable(outcomes)
    succeeded = sum(o.status == 200 for o in outcomes)
    print(f"replica killed under load: {succeeded}/90 succeeded in {elapsed:.1f} s")
    # nginx retries a request whose replica died before answering, so in practice all succeed.
    assert succeeded >= 85
    victim_address = victim.url.removeprefix("http://")
    assert any(victim_address in line and "[error]" in line for line in topology.gateway.access_log().splitlines())
    after = httpx.post(topology.gateway.url + "/v1/stylize", data={"preset": "1"}, files={"content": CONTENT})
    assert after.status_code == 200


def test_redis_down_mid_run_keeps_serving(topology: Topology, registered: dict, style_bytes: bytes):
    replicas = topology.live_replicas()
    send = stylize_request(registered["id"], style_bytes)
    outcomes = run_load(topology.gateway.url, send, count=60, clients=4, disrupt_after=12, disrupt=topology.redis.kill)
    assert [o.status for o in outcomes] == [200] * 60, {o.status: o.body[:200] for o in outcomes if o.status != 200}

    for replica in replicas:
        ready = httpx.get(replica.url + "/readyz", timeout=10)
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded" and ready.json()["shared_backend"]["up"] is False
        assert metric_sum(replica, 'atelier_cache_backend_up{backend="redis"}') == 0
        assert metric_sum(replica, "atelier_cache_backend_errors_total") >= 1

    # A registration during the outage succeeds locally and is published once Redis is back.
    first, second = replicas[:2]
    new_style = encode_image(gradient_image(64, 64, seed=9), "PNG")
    created = httpx.post(first.url + "/v1/styles", files={"style": new_style}, timeout=60)
    assert created.status_code == 201
    new_id = created.json()["id"]
    # Not shared yet, and the second replica cannot ask Redis: "retry", not "no such style".
    topology.expected_errors.append((503, "/v1/styles/{style_id}"))
    unseen = httpx.get(f"{second.url}/v1/styles/{new_id}", timeout=10)
    assert unseen.status_code == 503 and unseen.json()["type"].endswith("styles-unavailable")
    assert unseen.headers["retry-after"] == "1"  # ATELIER_REDIS_RETRY_S=0.5, rounded up

    topology.redis.start()  # same port and data dir: the earlier registrations come back from the AOF
    # Each replica skips Redis for ATELIER_REDIS_RETRY_S after a failure; wait until both have seen it back.
    deadline = time.monotonic() + 10
    for replica in (first, second):
        while httpx.get(replica.url + "/readyz", timeout=10).json()["status"] != "ready":
            assert time.monotonic() < deadline, f"{replica.url} did not see Redis come back"
            time.sleep(0.1)
    assert metric_sum(first, 'atelier_cache_backend_up{backend="redis"}') == 1
    listing = httpx.get(first.url + "/v1/styles", timeout=10).json()  # any styles call publishes pending ones
    assert {item["id"] for item in listing["items"]} == {registered["id"], new_id}
    assert httpx.get(f"{second.url}/v1/styles/{new_id}", timeout=10).json() == created.json()


def test_gateway_rate_limit_answers_429(topology: Topology):
    def models(_: int) -> httpx.Response:
        return httpx.get(topology.gateway.url + "/v1/models", timeout=10)

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(models, range(80)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429} and statuses.count(429) >= 10, statuses
    limited = next(r for r in responses if r.status_code == 429)
    assert limited.headers["retry-after"] == "1"
    assert limited.json()["type"] == "urn:atelier:problem:rate-limited"
