"""Style-embedding caches: a small protocol and the embedded default, a bounded in-process LRU.

Keys are content addresses (``embedding_key``): sha256 over the model label, the preprocessing tag
and the image bytes, so a key can never return an embedding computed by another model or recipe.
A Redis backend only has to implement ``get`` and ``put`` with the same keys.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Protocol

import numpy as np


def embedding_key(data: bytes, model_label: str, preprocessing: str) -> str:
    """sha256(model label, preprocessing tag, bytes) as 64 hex digits; also a registered style's id."""
    digest = hashlib.sha256()
    digest.update(model_label.encode() + b"\n" + preprocessing.encode() + b"\n")
    digest.update(data)
    return digest.hexdigest()


class EmbeddingCache(Protocol):
    """What the service needs from an embedding cache; implementations must be thread-safe."""

    def get(self, key: str) -> np.ndarray | None: ...

    def put(self, key: str, embedding: np.ndarray) -> None: ...

    def __len__(self) -> int: ...


class LruEmbeddingCache:
    """At most ``max_entries`` embeddings, least recently used evicted first; 0 keeps nothing."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            embedding = self._entries.get(key)
            if embedding is not None:
                self._entries.move_to_end(key)
            return embedding

    def put(self, key: str, embedding: np.ndarray) -> None:
        if self.max_entries == 0:
            return
        frozen = np.array(embedding, dtype=np.float32, copy=True)
        frozen.setflags(write=False)
        with self._lock:
            self._entries[key] = frozen
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
