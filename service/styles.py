"""Registered styles: content-addressed embeddings kept on disk, one JSON file per style.

Layout: ``<style_dir>/<owner>/<id>.json``. The owner is ``public`` when API keys are off and a hash of
the key otherwise, so a style is visible only to the key that registered it. The files are read at
start-up into an in-memory index; writes go to disk first (atomically) and then to the index. The
files are also what the processes of one server share (``ATELIER_PROCESSES``): a lookup that misses
the index, and every listing, picks up files another process wrote since.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from service.errors import CorruptStyle, StorageUnavailable

log = logging.getLogger(__name__)

PUBLIC_OWNER = "public"
_ID = re.compile(r"^[0-9a-f]{64}$")
_OWNER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class StyleRecord(BaseModel):
    """A registered style, as stored and as the API returns it."""

    id: str = Field(description="sha256 of the model label, the preprocessing tag and the image bytes (64 hex)")
    embedding: list[float] = Field(description="the style embedding the predictor returned")
    model: str = Field(description="the model it belongs to, as name/version")
    created: datetime = Field(description="when it was first registered (UTC)")


class StyleStore:
    """Thread-safe store of registered styles, scoped by owner."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._index: dict[str, dict[str, StyleRecord]] = {}
        self._unreadable: set[Path] = set()
        self._embedding_sizes: dict[str, int] = {}  # model label -> embedding length, once known
        self._corrupt: dict[tuple[str, str], str] = {}  # (owner, id) -> why its file was refused

    def expect_models(self, embedding_sizes: dict[str, int]) -> None:
        """Check every record read from now on against its model: an embedding of another length is
        refused as corrupt (it would fail inside ONNX Runtime). Models not named here are not checked."""
        self._embedding_sizes = dict(embedding_sizes)

    def load(self) -> int:
        """Read every stored style into memory; unreadable or corrupt files are logged and skipped."""
        try:
            if not self.root.is_dir():
                return 0
            owners = sorted(p.name for p in self.root.iterdir() if p.is_dir() and _OWNER.match(p.name))
        except OSError as exc:
            log.error("cannot read the style folder %s: %s; serving without its styles", self.root, exc)
            return 0
        return sum(self._index_new_files(owner) for owner in owners)

    def get(self, owner: str, style_id: str) -> StyleRecord | None:
        """The owner's record, None when there is none; ``CorruptStyle`` when its file was refused."""
        with self._lock:
            record = self._index.get(owner, {}).get(style_id)
            corrupt = self._corrupt.get((owner, style_id)) if record is None else None
        if corrupt is not None:
            raise CorruptStyle(f"the stored style {style_id[:80]!r} is corrupt ({corrupt}); register its image again")
        if record is None and _ID.match(style_id) and _OWNER.match(owner):  # user text never reaches a path
            # Another process of this server (ATELIER_PROCESSES > 1) may have registered it since start-up:
            # the files are what the processes share. A miss costs one failed open of a small file.
            record = self._index_file(owner, self.root / owner / f"{style_id}.json")
        return record if record is not None and record.id == style_id else None

    def put(self, owner: str, style_id: str, embedding: list[float], model: str) -> tuple[StyleRecord, bool]:
        """Register a style; returns the stored record and whether it was new."""
        assert _ID.match(style_id) and _OWNER.match(owner), "ids and owners are generated, never user text"
        with self._lock:
            existing = self._index.get(owner, {}).get(style_id)
            if existing is not None:
                return existing, False
            record = StyleRecord(id=style_id, embedding=embedding, model=model, created=datetime.now(UTC))
            self._write(owner, record)
            self._index.setdefault(owner, {})[style_id] = record
            self._corrupt.pop((owner, style_id), None)  # registering the image again repairs it
            return record, True

    def adopt(self, owner: str, record: StyleRecord) -> StyleRecord:
        """Keep a copy of a record registered elsewhere (another replica), replacing a local one that differs."""
        assert _ID.match(record.id) and _OWNER.match(owner), "ids and owners are generated, never user text"
        with self._lock:
            if self._index.get(owner, {}).get(record.id) != record:
                self._write(owner, record)
                self._index.setdefault(owner, {})[record.id] = record
            return record

    def page(self, owner: str, offset: int, limit: int) -> tuple[list[StyleRecord], int]:
        """Styles of one owner, oldest first, and their total count."""
        if _OWNER.match(owner):
            self._index_new_files(owner)  # registered by another process of this server since start-up
        with self._lock:
            records = sorted(self._index.get(owner, {}).values(), key=lambda r: (r.created, r.id))
        return records[offset : offset + limit], len(records)

    def _index_new_files(self, owner: str) -> int:
        """Index the owner's style files not indexed yet; returns how many were added."""
        with self._lock:
            known, unreadable = set(self._index.get(owner, {})), set(self._unreadable)
        new = [p for p in sorted((self.root / owner).glob("*.json")) if p.stem not in known and p not in unreadable]
        return sum(self._index_file(owner, path) is not None for path in new)

    def _index_file(self, owner: str, path: Path) -> StyleRecord | None:
        try:
            record = StyleRecord.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as exc:
            log.warning("skipping unreadable style file %s: %s", path, exc)
            with self._lock:
                self._unreadable.add(path)  # warned once, not at every listing
            return None
        problem = self._misfit(record)
        if problem is not None or record.id != path.stem:
            problem = problem or f"its file is named {path.name}"
            log.warning("skipping corrupt style file %s: %s", path, problem)
            with self._lock:
                self._unreadable.add(path)
                self._corrupt[(owner, path.stem)] = problem
            return None
        with self._lock:
            return self._index.setdefault(owner, {}).setdefault(record.id, record)

    def _misfit(self, record: StyleRecord) -> str | None:
        """Why ``record`` does not fit its model, or None (also for a model this store was not told of)."""
        expected = self._embedding_sizes.get(record.model)
        if expected is not None and len(record.embedding) != expected:
            return f"its embedding has {len(record.embedding)} values; model {record.model} takes {expected}"
        if not all(math.isfinite(x) for x in record.embedding):
            return "its embedding holds a value that is not finite"
        return None

    def _write(self, owner: str, record: StyleRecord) -> None:
        folder = self.root / owner
        tmp: str | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(record.model_dump(mode="json"), f)
            os.replace(tmp, folder / f"{record.id}.json")
        except OSError as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            log.error("cannot store style %s in %s: %s", record.id, folder, exc)
            # The server's own disk: nothing the client sent is wrong, and a retry may find it fixed.
            raise StorageUnavailable(
                f"the style store cannot write its folder ({exc.strerror or type(exc).__name__}); retry later"
            ) from exc
