"""The model registry against real model folders: sha256 refusal, lookups, provider readiness."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from onnx_export.manifest import ManifestError
from service.config import Settings
from service.errors import UnknownModel
from service.registry import ModelRegistry
from tests.helpers.server import start_server, stop_server


@pytest.fixture(scope="module")
def registry(model_repository: Path) -> ModelRegistry:
    return ModelRegistry.load(Settings(model_dir=model_repository, providers="cpu"))


def test_lookup_by_name_and_version(registry: ModelRegistry) -> None:
    assert registry.get(None).label == "magenta-mobile/1"
    assert registry.get("presets-26").label == registry.get("presets-26/1").label == "presets-26/1"
    for bad in ("nope", "presets-26/2", "presets-26/x", "presets-26/\u00b2"):
        with pytest.raises(UnknownModel):
            registry.get(bad)
    assert registry.provider_problem() is None


def test_shapes_through_the_sessions(registry: ModelRegistry) -> None:
    model = registry.get(None)
    embedding = model.predict(np.random.default_rng(0).random((2, 3, 256, 256), dtype=np.float32))
    assert embedding.shape == (2, 100)
    out = model.transform(np.full((2, 3, 36, 52), 0.5, np.float32), embedding)
    assert out.shape == (2, 3, 36, 52) and out.min() >= 0 and out.max() <= 1


def test_a_corrupt_model_is_refused_and_reported(model_repository: Path, tmp_path: Path) -> None:
    for name in ("magenta-mobile", "presets-26"):
        shutil.copytree(model_repository / name, tmp_path / name)
    transformer = tmp_path / "presets-26" / "1" / "transformer.onnx"
    transformer.write_bytes(transformer.read_bytes()[:-10] + b"0123456789")
    registry = ModelRegistry.load(Settings(model_dir=tmp_path, providers="cpu"))
    assert "presets-26/1" in registry.failures and "sha256" in registry.failures["presets-26/1"]
    with pytest.raises(UnknownModel):
        registry.get("presets-26")


def test_missing_default_model_fails_start_up(tmp_path: Path) -> None:
    with pytest.raises(ManifestError):
        ModelRegistry.load(Settings(model_dir=tmp_path, providers="cpu"))


def test_readiness_fails_when_cuda_is_requested_but_not_active(model_repository: Path, tmp_path: Path) -> None:
    live = start_server(model_repository, tmp_path, {"ATELIER_PROVIDERS": "cuda"}, wait_ready=False)
    try:
        with live.client() as c:
            ready = c.get("/readyz")
            if ready.status_code == 200:  # a machine where CUDA really works
                assert "CUDAExecutionProvider" in ready.json()["providers"]
            else:
                assert ready.status_code == 503
                body = ready.json()
                assert body["type"].endswith("not-ready") and "CUDA" in body["detail"]
                assert body["providers"] == ["CPUExecutionProvider"]
            assert c.get("/livez").status_code == 200
    finally:
        stop_server(live)
