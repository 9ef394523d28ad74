"""Registered styles: content-addressed embeddings kept on disk, one JSON file per style.

Layout: ``<style_dir>/<owner>/<id>.json``. The owner is ``public`` when API keys are off and a hash of
the key otherwise, so a style is visible only to the key that registered it. The files are read at
start-up into an in-memory index; writes go to disk first (atomically) and then to the index. The
files are also what the processes of one server share (``ATELIER_PROCESSES``): a lookup that misses
the index, and every listing, picks up files another process wrote since.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

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

    def load(self) -> int:
        """Read every stored style into memory; unreadable files are logged and skipped."""
        if not self.root.is_dir():
            return 0
        owners = sorted(p.name for p in self.root.iterdir() if p.is_dir() and _OWNER.match(p.name))
        return sum(self._index_new_files(owner) for owner in owners)

    def get(self, owner: str, style_id: str) -> StyleRecord | None:
        with self._lock:
            record = self._index.get(owner, {}).get(style_id)
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
        with self._lock:
            return self._index.setdefault(owner, {}).setdefault(record.id, record)

    def _write(self, owner: str, record: StyleRecord) -> None:
        folder = self.root / owner
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(record.model_dump(mode="json"), f)
        os.replace(tmp, folder / f"{record.id}.json")
