"""The Redis backend at its seam: embeddings and registered styles shared between two stores, and
the circuit breaker that keeps a dead Redis off the request path. A real redis-server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from service.cache import LruEmbeddingCache
from service.cache_redis import RedisBackend, RedisEmbeddingCache, SharedStyleStore
from service.errors import StylesUnavailable
from service.metrics import Metrics
from tests.helpers.deploy import RedisServer
from tests.helpers.server import free_port


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def backend(url: str, clock: FakeClock | None = None) -> tuple[RedisBackend, Metrics]:
    metrics = Metrics()
    return RedisBackend(url, timeout_s=0.25, retry_s=2.0, metrics=metrics, clock=clock or FakeClock()), metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_an_embedding_put_by_one_replica_is_found_by_another(redis_server: RedisServer):
    (one, _), (two, metrics_two) = backend(redis_server.url), backend(redis_server.url)
    first = RedisEmbeddingCache(LruEmbeddingCache(8), one, ttl_s=60)
    second = RedisEmbeddingCache(LruEmbeddingCache(8), two, ttl_s=60)
    embedding = np.random.default_rng(0).normal(size=100).astype(np.float32)
    first.put("k" * 64, embedding)
    found = second.get("k" * 64)
    assert found is not None and np.array_equal(found, embedding) and found.dtype == np.float32
    assert len(second) == 1  # now also in the second replica's local LRU
    assert 0 < one.client.ttl("atelier:emb:" + "k" * 64) <= 60  # evictable under volatile-lru
    assert sample(metrics_two, "atelier_cache_backend_up", backend="redis") == 1


def test_a_dead_redis_is_tried_once_per_retry_period():
    clock = FakeClock()
    dead, metrics = backend(f"redis://127.0.0.1:{free_port()}/0", clock)
    cache = RedisEmbeddingCache(LruEmbeddingCache(8), dead, ttl_s=60)
    cache.put("a" * 64, np.ones(4, np.float32))  # stored locally; Redis refused
    assert cache.get("a" * 64) is not None and cache.get("b" * 64) is None
    errors = sample(metrics, "atelier_cache_backend_errors_total", backend="redis", op="put")
    assert errors == 1 and sample(metrics, "atelier_cache_backend_up", backend="redis") == 0
    assert sample(metrics, "atelier_cache_backend_errors_total", backend="redis", op="get") == 0  # circuit open
    assert dead.check()["up"] is False
    clock.now += 2.5
    assert cache.get("b" * 64) is None
    assert sample(metrics, "atelier_cache_backend_errors_total", backend="redis", op="get") == 1  # tried again


def test_registered_styles_are_shared_and_agree_on_their_record(redis_server: RedisServer, tmp_path: Path):
    stores = [SharedStyleStore(tmp_path / name, backend(redis_server.url)[0]) for name in ("a", "b", "c")]
    style_id = "5" * 64
    first, created = stores[0].put("public", style_id, [0.5] * 3, "magenta-mobile/1")
    again, created_again = stores[1].put("public", style_id, [0.5] * 3, "magenta-mobile/1")
    assert created and not created_again and again == first  # Redis kept the first registration
    assert stores[2].get("public", style_id) == first
    assert (tmp_path / "c" / "public" / f"{style_id}.json").is_file()  # kept locally for outages
    assert stores[2].get("someone-else", style_id) is None
    records, total = stores[1].page("public", 0, 10)
    assert total == 1 and records == [first]


def test_an_unseen_style_is_unavailable_not_unknown_while_redis_is_down(tmp_path: Path):
    """Another replica may have registered it: a 503 with Retry-After says retry, a 404 would say it is gone."""
    dead, _ = backend(f"redis://127.0.0.1:{free_port()}/0")
    store = SharedStyleStore(tmp_path, dead)
    seen, _ = store.put("public", "6" * 64, [0.25] * 3, "magenta-mobile/1")  # kept locally, published later
    assert store.get("public", "6" * 64) == seen
    with pytest.raises(StylesUnavailable) as raised:
        store.get("public", "7" * 64)
    assert raised.value.status == 503 and raised.value.headers == {"Retry-After": "2"}
