"""Redis as the state several replicas share: the style-embedding cache and the registered styles.

Set ``ATELIER_REDIS_URL`` to use it; without it the service keeps its embedded defaults (the
in-process LRU and the styles on local disk). Redis is never on the critical path:

- the local LRU stays in front of Redis, and every registered style a replica sees is kept on its
  own disk too, so a replica keeps serving what it has when Redis goes away;
- every Redis call has short socket timeouts and no client-side retries, and ``RedisBackend`` is a
  circuit breaker: after one failure it refuses calls for ``retry_s`` without touching the network,
  so a dead Redis costs at most one timeout per replica per retry period, not one per request;
- its state is exported as ``atelier_cache_backend_up`` and ``atelier_cache_backend_errors_total``
  and reported by /readyz (200 with ``"status": "degraded"``: requests still succeed).

Keys (``volatile-lru`` eviction evicts only keys with a TTL, so registrations are never evicted)::

    atelier:emb:<key>        float32 little-endian embedding, with a TTL
    atelier:styles:<owner>   hash: style id -> StyleRecord JSON, no TTL
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.cache import EmbeddingCache, LruEmbeddingCache
from service.config import Settings
from service.errors import CorruptStyle, StylesUnavailable
from service.metrics import Metrics
from service.styles import StyleRecord, StyleStore

log = logging.getLogger(__name__)

T = TypeVar("T")
EMBEDDING_PREFIX = "atelier:emb:"
STYLES_PREFIX = "atelier:styles:"


class BackendUnavailable(Exception):
    """Redis failed or its circuit is open; the caller falls back to local state."""


class RedisBackend:
    """One Redis client per process behind a circuit breaker; thread-safe."""

    def __init__(
        self,
        url: str,
        timeout_s: float,
        retry_s: float,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # the breaker decides when to try again, not the client
        )
        parts = urlsplit(url)
        self.address = f"{parts.hostname}:{parts.port or 6379}"  # never the password
        self.retry_s = retry_s
        self.metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._error: str | None = None
        self._up = False
        metrics.backend_up.labels("redis").set(0)

    def run(self, op: str, call: Callable[[redis.Redis], T]) -> T:
        """``call(client)``, or BackendUnavailable at once while the circuit is open."""
        with self._lock:
            if self._clock() < self._open_until:
                raise BackendUnavailable(self._error or "redis unavailable")
        try:
            result = call(self.client)
        except redis.RedisError as exc:
            self._failed(op, exc)
            raise BackendUnavailable(str(exc)) from exc
        self._succeeded()
        return result

    def check(self) -> dict[str, Any]:
        """PING (unless the circuit is open) and report the state, for /readyz."""
        with contextlib.suppress(BackendUnavailable):  # the failure is recorded in the state below
            self.run("ping", lambda c: c.ping())
        with self._lock:
            return {"backend": "redis", "address": self.address, "up": self._up, "error": self._error}

    def close(self) -> None:
        self.client.close()

    def _failed(self, op: str, exc: Exception) -> None:
        self.metrics.backend_errors.labels("redis", op).inc()
        self.metrics.backend_up.labels("redis").set(0)
        with self._lock:
            was_up, self._up = self._up, False
            self._error = f"{type(exc).__name__}: {exc}"
            self._open_until = self._clock() + self.retry_s
        if was_up:
            log.warning("redis at %s unavailable, serving from local state: %s", self.address, exc)

    def _succeeded(self) -> None:
        with self._lock:
            was_up, self._up, self._error = self._up, True, None
        if not was_up:
            self.metrics.backend_up.labels("redis").set(1)
            log.info("redis at %s available", self.address)


class RedisEmbeddingCache:
    """The local LRU in front of Redis (the ``EmbeddingCache`` protocol); Redis errors read as misses."""

    def __init__(self, local: LruEmbeddingCache, backend: RedisBackend, ttl_s: int) -> None:
        self.local = local
        self.backend = backend
        self.ttl_s = ttl_s

    def get(self, key: str) -> np.ndarray | None:
        embedding = self.local.get(key)
        if embedding is not None:
            return embedding
        try:
            raw = self.backend.run("get", lambda c: c.get(EMBEDDING_PREFIX + key))
        except BackendUnavailable:
            return None
        if raw is None:
            return None
        embedding = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        self.local.put(key, embedding)
        return embedding

    def put(self, key: str, embedding: np.ndarray) -> None:
        self.local.put(key, embedding)
        data = np.asarray(embedding, dtype="<f4").tobytes()
        with contextlib.suppress(BackendUnavailable):  # counted by the backend; the local copy serves this replica
            self.backend.run("put", lambda c: c.set(EMBEDDING_PREFIX + key, data, ex=self.ttl_s))

    def __len__(self) -> int:
        return len(self.local)


class SharedStyleStore(StyleStore):
    """Registered styles shared through Redis, with every record a replica sees kept on its disk.

    Redis decides which registration wins (HSETNX), so every replica returns the same ``created``.
    A style registered while Redis is unreachable is kept locally and published once it is back.
    Listing merges Redis with the local records; while Redis is down it lists the local ones only, and
    looking up a style this replica has not seen is ``StylesUnavailable`` (503, retry), not a 404.
    """

    def __init__(self, root: Path, backend: RedisBackend) -> None:
        super().__init__(root)
        self.backend = backend
        self._unpublished: set[tuple[str, str]] = set()
        self._unpublished_lock = threading.Lock()

    def get(self, owner: str, style_id: str) -> StyleRecord | None:
        self._publish_pending()
        record = super().get(owner, style_id)
        if record is not None:
            return record
        try:
            raw = self.backend.run("style_get", lambda c: c.hget(STYLES_PREFIX + owner, style_id))
        except BackendUnavailable:
            raise StylesUnavailable(
                f"style {style_id[:80]!r} is not on this replica and the shared style registry is unreachable; "
                "retry shortly",
                retry_after_s=math.ceil(self.backend.retry_s),
            ) from None
        if raw is None:
            return None
        record = StyleRecord.model_validate_json(raw)
        problem = self._misfit(record)
        if problem is not None:
            raise CorruptStyle(f"the shared style {style_id[:80]!r} is corrupt ({problem}); register its image again")
        return self.adopt(owner, record)

    def put(self, owner: str, style_id: str, embedding: list[float], model: str) -> tuple[StyleRecord, bool]:
        self._publish_pending()
        candidate = StyleRecord(id=style_id, embedding=embedding, model=model, created=datetime.now(UTC))
        try:
            winner = self._publish(owner, candidate)
        except BackendUnavailable:
            record, created = super().put(owner, style_id, embedding, model)
            if created:
                with self._unpublished_lock:
                    self._unpublished.add((owner, style_id))
            return record, created
        return self.adopt(owner, winner), winner is candidate

    def page(self, owner: str, offset: int, limit: int) -> tuple[list[StyleRecord], int]:
        self._publish_pending()
        try:
            raws = self.backend.run("style_list", lambda c: c.hvals(STYLES_PREFIX + owner))
        except BackendUnavailable:
            return super().page(owner, offset, limit)
        merged = {r.id: r for r in super().page(owner, 0, sys.maxsize)[0]}
        merged.update((r.id, r) for r in map(StyleRecord.model_validate_json, raws))
        records = sorted(merged.values(), key=lambda r: (r.created, r.id))
        return records[offset : offset + limit], len(records)

    def _publish(self, owner: str, record: StyleRecord) -> StyleRecord:
        """HSETNX the record; the one already in Redis wins (returned) when another replica was first."""

        def publish(client: redis.Redis) -> bytes | None:
            if client.hsetnx(STYLES_PREFIX + owner, record.id, record.model_dump_json()):
                return None
            return client.hget(STYLES_PREFIX + owner, record.id)

        existing = self.backend.run("style_put", publish)
        return record if existing is None else StyleRecord.model_validate_json(existing)

    def _publish_pending(self) -> None:
        """Publish what was registered here during an outage; a no-op (one set test) otherwise."""
        with self._unpublished_lock:
            pending = sorted(self._unpublished)
        for owner, style_id in pending:
            record = super().get(owner, style_id)
            assert record is not None, "unpublished styles are stored locally first"
            try:
                self.adopt(owner, self._publish(owner, record))
            except BackendUnavailable:
                return
            with self._unpublished_lock:
                self._unpublished.discard((owner, style_id))


def cache_and_store(settings: Settings, metrics: Metrics) -> tuple[EmbeddingCache, StyleStore, RedisBackend | None]:
    """The embedding cache and style store these settings ask for: local only, or shared through Redis."""
    local = LruEmbeddingCache(settings.cache_entries)
    if settings.redis_url is None:
        return local, StyleStore(settings.style_dir), None
    backend = RedisBackend(settings.redis_url, settings.redis_timeout_s, settings.redis_retry_s, metrics)
    cache = RedisEmbeddingCache(local, backend, settings.redis_cache_ttl_s)
    return cache, SharedStyleStore(settings.style_dir, backend), backend
