"""Bounds on what a client sends, checked once, before any of it reaches parsing or arithmetic.

FastAPI's ``Form(max_length=...)`` bounds a single field, but on a repeated field (``list[str]``,
the batch route's per-item ``style_id`` and ``preset``) it bounds the list, not each value. So the
style fields of every item, on every route, go through ``check_style_fields`` here: one rule, and a
batch item that breaks it fails alone (422) instead of the whole batch.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from service.errors import InvalidField

MAX_REFERENCE = 128  # a style id (64 hex), a preset index or name, a model name/version
MAX_STYLES_TEXT = 4096  # the `styles` blend list
MAX_WEIGHTS_TEXT = 1024  # the `weights` list
MAX_INDEX_DIGITS = 9  # a preset index; far below Python's int-string limit (4300 digits)

FIELD_LIMITS = {
    "style_id": MAX_REFERENCE,
    "preset": MAX_REFERENCE,
    "model": MAX_REFERENCE,
    "styles": MAX_STYLES_TEXT,
    "weights": MAX_WEIGHTS_TEXT,
}


def check_length(name: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise InvalidField(f"`{name}` is {len(value)} characters long; the limit is {limit}")


def check_style_fields(values: dict[str, str | None]) -> None:
    """Every text style field within its length (``InvalidField``, 422, otherwise)."""
    for name, limit in FIELD_LIMITS.items():
        check_length(name, values.get(name), limit)


def small_index(reference: str) -> int | None:
    """``reference`` as a non-negative index when it is a short run of ASCII digits, else None."""
    if reference.isascii() and reference.isdigit() and len(reference) <= MAX_INDEX_DIGITS:
        return int(reference)
    return None


def normalised(weights: Sequence[float]) -> list[float]:
    """Finite non-negative weights scaled to sum to 1, without overflow for any finite input.

    Dividing by the largest weight first keeps the sum within ``len(weights)``: ``math.fsum`` of
    ``1e308, 1e308`` overflows, ``1, 1`` does not, and the proportions are the same.
    """
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise InvalidField("weights must be finite and non-negative")
    largest = max(weights, default=0.0)
    if largest <= 0:
        raise InvalidField("weights must not all be zero")
    scaled = [w / largest for w in weights]
    total = math.fsum(scaled)
    return [w / total for w in scaled]


class PixelBudget:
    """At most ``total`` pixels decoding at once across the codec threads (0: no bound).

    A decode holds its image's pixels from loading until its RGB array exists, Pillow's copy and the
    numpy copy both alive: about 7 bytes a pixel, 250 MB for a 36 MP image. Several such images
    decoding at once, one per codec thread, is what a burst of large uploads adds to a process's peak;
    a decode waits here until its pixels fit. An image larger than the budget decodes alone.
    """

    def __init__(self, total: int = 0) -> None:
        self.total = total
        self._used = 0
        self._cond = threading.Condition()

    def configure(self, total: int) -> None:
        with self._cond:
            self.total = total
            self._cond.notify_all()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        with self._cond:
            wanted = min(pixels, self.total)
            if self.total:
                while self._used and self._used + wanted > self.total:
                    self._cond.wait()
            self._used += wanted
        try:
            yield
        finally:
            with self._cond:
                self._used -= wanted
                self._cond.notify_all()


DECODE_BUDGET = PixelBudget()
