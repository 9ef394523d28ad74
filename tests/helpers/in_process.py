"""The app in this process, on the real models and ONNX Runtime, through FastAPI's TestClient: no server,
no port, the lifespan (``service.services.build_services``) run as uvicorn runs it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service.config import Settings
from service.main import create_app
from service.services import Services


@contextmanager
def in_process_client(model_dir: Path, workdir: Path, **settings: Any) -> Iterator[TestClient]:
    """A TestClient over ``create_app`` on ``model_dir``: CPU, local styles under ``workdir``, no Redis,
    no API keys, whatever the environment says; ``settings`` override the rest."""
    values: dict[str, Any] = {
        "model_dir": model_dir,
        "style_dir": workdir / "styles",
        "providers": "cpu",
        "redis_url": None,
        "api_keys": [],
        **settings,
    }
    with TestClient(create_app(Settings(**values))) as client:
        yield client


def services_of(client: TestClient) -> Services:
    return client.app.state.services  # type: ignore[attr-defined]


def repository_with_second_version(models: Path, root: Path, name: str = "magenta-mobile") -> Path:
    """A model repository holding ``models``' models and a version 2 of ``name`` (the same ONNX files
    linked, a manifest saying version 2), so that a model name alone means a different version than 1."""
    root.mkdir(parents=True, exist_ok=True)
    for model in models.iterdir():
        if model.is_dir():
            (root / model.name).mkdir()
            for version in model.iterdir():
                (root / model.name / version.name).symlink_to(version.resolve(), target_is_directory=True)
    first = models / name / "1"
    second = root / name / "2"
    second.mkdir()
    for entry in first.iterdir():
        if entry.name != "manifest.json":
            os.symlink(entry.resolve(), second / entry.name)
    manifest = json.loads((first / "manifest.json").read_text())
    (second / "manifest.json").write_text(json.dumps({**manifest, "version": 2}, indent=2))
    return root
