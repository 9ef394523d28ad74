"""service/services.py: the composition root builds one wiring and ``running_services`` always closes it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from onnx_export.manifest import ManifestError
from service.config import Settings
from service.services import Services, build_services, running_services


def settings(model_dir: Path, tmp_path: Path) -> Settings:
    return Settings(model_dir=model_dir, style_dir=tmp_path / "styles", providers="cpu", redis_url=None)


def test_an_empty_model_repository_fails_the_build_with_what_to_run(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    with pytest.raises(ManifestError, match="run `make models`"):
        asyncio.run(build_services(settings(tmp_path / "models", tmp_path)))


def test_the_parts_share_one_codec_pool_and_one_batcher_and_close_even_after_an_error(
    model_repository: Path, tmp_path: Path
) -> None:
    seen: list[Services] = []

    async def scenario() -> None:
        async with running_services(settings(model_repository, tmp_path)) as services:
            seen.append(services)
            assert services.stylist.codec is services.codec and services.stylist.batcher is services.batcher
            assert services.stylist.embedder is services.embedder and services.embedder.cache is services.cache
            assert await services.codec.run(lambda: 41 + 1) == 42
            raise KeyError("a failure inside the block")

    with pytest.raises(KeyError):
        asyncio.run(scenario())
    with pytest.raises(RuntimeError, match="shutdown"):  # the codec threads were stopped on the way out
        asyncio.run(seen[0].codec.run(lambda: 0))
