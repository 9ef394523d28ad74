"""Registered styles: content-addressed embeddings kept on disk, one JSON file per style.

Layout: ``<style_dir>/<owner>/<id>.json``. The owner is ``public`` when API keys are off and a hash of
the key otherwise, so a style is visible only to the key that registered it. The files are read once
at start-up into an in-memory index; writes go to disk first (atomically) and then to the index.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
from datetime import datetime, timezone
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

    def load(self) -> int:
        """Read every stored style into memory; unreadable files are logged and skipped."""
        count = 0
        if not self.root.is_dir():
            return 0
        for owner_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and _OWNER.match(p.name)):
            for path in sorted(owner_dir.glob("*.json")):
                try:
                    record = StyleRecord.model_validate_json(path.read_bytes())
                except (OSError, ValidationError) as exc:
                    log.warning("skipping unreadable style file %s: %s", path, exc)
                    continue
                self._index.setdefault(owner_dir.name, {})[record.id] = record
                count += 1
        return count

    def get(self, owner: str, style_id: str) -> StyleRecord | None:
        with self._lock:
            return self._index.get(owner, {}).get(style_id)

    def put(self, owner: str, style_id: str, embedding: list[float], model: str) -> tuple[StyleRecord, bool]:
        """Register a style; returns the stored record and whether it was new."""
        assert _ID.match(style_id) and _OWNER.match(owner), "ids and owners are generated, never user text"
        with self._lock:
            existing = self._index.get(owner, {}).get(style_id)
            if existing is not None:
                return existing, False
            record = StyleRecord(id=style_id, embedding=embedding, model=model, created=datetime.now(timezone.utc))
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
        with self._lock:
            records = sorted(self._index.get(owner, {}).values(), key=lambda r: (r.created, r.id))
        return records[offset : offset + limit], len(records)

    def _write(self, owner: str, record: StyleRecord) -> None:
        folder = self.root / owner
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(record.model_dump(mode="json"), f)
        os.replace(tmp, folder / f"{record.id}.json")
