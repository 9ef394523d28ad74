"""A folder runs through one loaded model and one style embedding, its images concurrently."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from atelier.cli import main
from service.batching import BatchKey, MicroBatcher
from service.registry import ModelRegistry
from service.runtime import OnnxModel
from service.stylist import Stylist
from tests.helpers.cli import small_images


@pytest.mark.slow
def test_fifty_images_one_model_load_one_style_embedding(
    model_repository: Path,
    image_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    counts: Counter[str] = Counter()
    in_flight = {"now": 0, "most": 0}

    real_load = ModelRegistry.load.__func__  # type: ignore[attr-defined]
    real_session = OnnxModel.__init__
    real_batch = MicroBatcher.run
    real_stylist_run = Stylist.run

    def load(cls: type[ModelRegistry], settings: object) -> ModelRegistry:
        counts["registry"] += 1
        return real_load(cls, settings)

    def session(self: OnnxModel, *args: object, **kwargs: object) -> None:
        counts["session"] += 1
        real_session(self, *args, **kwargs)

    async def batch(self: MicroBatcher, key: BatchKey, fn: object, *inputs: object) -> object:
        counts[key.stage] += 1
        return await real_batch(self, key, fn, *inputs)

    async def stylist_run(self: Stylist, job: object) -> object:
        in_flight["now"] += 1
        in_flight["most"] = max(in_flight["most"], in_flight["now"])
        try:
            return await real_stylist_run(self, job)
        finally:
            in_flight["now"] -= 1

    monkeypatch.setattr(ModelRegistry, "load", classmethod(load))
    monkeypatch.setattr(OnnxModel, "__init__", session)
    monkeypatch.setattr(MicroBatcher, "run", batch)
    monkeypatch.setattr(Stylist, "run", stylist_run)
    monkeypatch.setenv("ATELIER_STYLE_DIR", str(tmp_path / "styles"))

    photos = tmp_path / "photos"
    sources = small_images(photos, 50)
    out = tmp_path / "out"
    style = image_dir / "style" / "starry_night.jpg"
    code = main(
        ["stylize", str(photos), "-o", str(out), "--style", str(style), "--model-dir", str(model_repository), "--json"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert len(records) == 50 and len({r["style_id"] for r in records}) == 1
    assert sorted(p.relative_to(out) for p in out.rglob("*.png")) == sorted(
        p.relative_to(photos).with_suffix(".png") for p in sources
    )
    sessions = len(list(model_repository.glob("*/*/*.onnx")))  # the registry opens every version's files
    assert counts["registry"] == 1, counts  # one model load for the whole folder
    assert counts["session"] == sessions, counts  # each ONNX file opened once
    assert counts["predictor"] == 1, counts  # one style embedding for the 50 images
    assert counts["transformer"] == 50, counts
    assert in_flight["most"] > 1, in_flight  # the images ran concurrently, not one after another
