"""The Python API: atelier.stylize in process, atelier.Client against a live server, the same methods."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import atelier
from atelier.client import Client
from atelier.local import Local
from tests.helpers.server import LiveServer

API = (
    "stylize",
    "stylize_bytes",
    "stylize_many",
    "stylize_batch",
    "register_style",
    "get_style",
    "list_styles",
    "list_models",
)


def test_local_and_client_have_the_same_methods() -> None:
    for name in API:
        local, remote = getattr(Local, name), getattr(Client, name)
        assert list(inspect.signature(local).parameters) == list(inspect.signature(remote).parameters), name


@pytest.fixture(scope="module")
def local(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Local:
    from service.config import Settings

    settings = Settings(model_dir=model_repository, style_dir=tmp_path_factory.mktemp("api-styles"))
    with Local(settings=settings) as engine:
        yield engine


def test_module_stylize_returns_a_pil_image(model_repository: Path, image_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("ATELIER_MODEL_DIR", str(model_repository))
    image = atelier.stylize(image_dir / "content" / "tubingen.jpg", preset="style-07", max_side=160)
    assert isinstance(image, Image.Image) and image.size == (160, 120) and image.mode == "RGB"


def test_in_process_and_client_agree(local: Local, live: LiveServer, image_dir: Path) -> None:
    content = Image.open(image_dir / "content" / "golden_gate_sq.jpg")  # a PIL image is accepted as well
    style = image_dir / "style" / "bricks_sq.jpg"
    with Client(live.url) as client:
        ours = local.stylize(content, style, max_side=128, strength=0.6)
        theirs = client.stylize(content, style, max_side=128, strength=0.6)
    diff = np.abs(np.asarray(ours, np.int16) - np.asarray(theirs, np.int16))
    assert ours.size == theirs.size == (128, 128) and diff.max() <= 1


def test_styles_and_models_over_both(local: Local, live: LiveServer, image_dir: Path) -> None:
    style = image_dir / "style" / "starry_night.jpg"
    with Client(live.url) as client:
        for engine in (local, client):
            record = engine.register_style(style)
            assert len(record["id"]) == 64 and record["model"] == "magenta-mobile/1"
            assert engine.get_style(record["id"])["embedding"] == record["embedding"]
            listing = engine.list_styles()
            assert record["id"] in {item["id"] for item in listing["items"]}
            assert len(listing["presets"]) == 26
            assert {m["name"] for m in engine.list_models()} == {"magenta-mobile", "presets-26"}
            stylized = engine.stylize_bytes(
                image_dir / "content" / "tubingen.jpg", style_id=record["id"], max_side=96, format="jpeg"
            )
            assert stylized.media_type == "image/jpeg" and stylized.style_id == record["id"]
            assert stylized.image().size == (96, 72)


@pytest.mark.parametrize("where", ["local", "client"])
def test_problems_raise_with_status_and_title(where: str, local: Local, live: LiveServer, image_dir: Path) -> None:
    with Client(live.url) as client:
        engine = local if where == "local" else client
        with pytest.raises(atelier.ProblemError) as unknown:
            engine.get_style("0" * 64)
        assert unknown.value.status == 404 and unknown.value.title == "Unknown style"
        with pytest.raises(atelier.ProblemError) as bad:
            engine.stylize(b"not an image", preset="3")
        assert bad.value.status == 415 and bad.value.is_client_error
        with pytest.raises(atelier.ProblemError) as invalid:
            engine.stylize(image_dir / "content" / "tubingen.jpg", preset="3", format="gif")
        assert invalid.value.status == 422 and "format 'gif'" in invalid.value.detail
        with pytest.raises(atelier.InputError):
            engine.stylize(image_dir / "content" / "missing.jpg", preset="3")


def test_batch_over_both(local: Local, live: LiveServer, image_dir: Path) -> None:
    contents = [image_dir / "content" / name for name in ("tubingen.jpg", "eiffel_tower.jpg")] + [b"broken"]
    with Client(live.url) as client:
        for engine in (local, client):
            results = engine.stylize_batch(contents, preset="style-02", max_side=64)
            assert [type(r).__name__ for r in results] == ["Stylized", "Stylized", "ProblemError"]
            assert results[0].image().size == (64, 48) and results[2].status == 415
