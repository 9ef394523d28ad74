"""Fixtures shared by every test package: the image corpus and the built default models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IMAGES = Path(os.environ.get("ATELIER_IMAGE_DIR", REPO.parent / "shared" / "data" / "images"))


@pytest.fixture(scope="session")
def image_dir() -> Path:
    assert (IMAGES / "content").is_dir(), f"image corpus missing at {IMAGES}"
    return IMAGES


@pytest.fixture(scope="session")
def model_repository() -> Path:
    """The repository `make setup` builds (models/ or $ATELIER_MODEL_DIR), built here if missing."""
    from onnx_export.__main__ import build_defaults

    repository = Path(os.environ.get("ATELIER_MODEL_DIR", REPO / "models"))
    build_defaults(repository)  # a no-op when verified copies are there
    return repository
