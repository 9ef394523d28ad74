"""service/style_resolution.py: each rule of ``resolve_style``'s docstring, in-process through TestClient.

The app runs in this process on the real models (ONNX Runtime on the CPU), with a second version of
magenta-mobile in the repository so that "the model a style was registered with" and "the default
model" differ. Requests that break a rule are answered before any model runs; the ones that follow
a rule stylise a 32x32 image at 16 px.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from service.embeddings import MAX_BLEND
from tests.helpers.images import encode_image, gradient_image
from tests.helpers.in_process import in_process_client, repository_with_second_version

PROBLEM = "application/problem+json"
CONTENT = encode_image(gradient_image(32, 32), "PNG")


@pytest.fixture(scope="module")
def client(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("resolution")
    models = repository_with_second_version(model_repository, root / "models")
    with in_process_client(models, root) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def style_bytes() -> bytes:
    return encode_image(gradient_image(64, 64, seed=7), "PNG")


@pytest.fixture(scope="module")
def registered_v1(client: TestClient, style_bytes: bytes) -> str:
    """A style registered with magenta-mobile/1, while the default (highest) version is 2."""
    reply = client.post("/v1/styles", files={"style": style_bytes}, data={"model": "magenta-mobile/1"})
    assert reply.status_code == 201, reply.text
    assert reply.json()["model"] == "magenta-mobile/1"
    return reply.json()["id"]


def stylize(client: TestClient, files: dict[str, bytes] | None = None, **data: str) -> Response:
    return client.post("/v1/stylize", files={"content": CONTENT, **(files or {})}, data={"max_side": "16", **data})


def problem(reply: Response, status: int) -> str:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == PROBLEM
    return reply.json()["detail"]


# Rule 1: exactly one of `style`, `style_id`, `preset`, `styles` (400 otherwise).


def test_no_style_source_is_400(client: TestClient) -> None:
    assert "got none" in problem(stylize(client), 400)


def test_two_style_sources_are_400(client: TestClient, registered_v1: str) -> None:
    detail = problem(stylize(client, style_id=registered_v1, preset="3"), 400)
    assert "style_id, preset" in detail


def test_a_style_file_with_a_blend_is_400(client: TestClient, style_bytes: bytes) -> None:
    assert "style, styles" in problem(stylize(client, {"style": style_bytes}, styles="preset:1"), 400)


def test_weights_without_a_blend_are_400(client: TestClient) -> None:
    assert "`weights` goes with `styles`" in problem(stylize(client, preset="3", weights="1"), 400)


# Rule 2: `style` and `style_id` need an arbitrary model; a `style_id` defaults to the model it was
# registered with, and naming another model is a 400.


def test_a_style_file_runs_on_the_default_arbitrary_model(client: TestClient, style_bytes: bytes) -> None:
    reply = stylize(client, {"style": style_bytes})
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-model"] == "magenta-mobile/2"


def test_a_style_file_with_an_nstyle_model_is_400(client: TestClient, style_bytes: bytes) -> None:
    detail = problem(stylize(client, {"style": style_bytes}, model="presets-26"), 400)
    assert "a style image needs a model of kind 'arbitrary'" in detail


def test_a_style_id_defaults_to_the_model_it_was_registered_with(client: TestClient, registered_v1: str) -> None:
    reply = stylize(client, style_id=registered_v1)
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-model"] == "magenta-mobile/1"  # not the default, magenta-mobile/2
    assert reply.headers["x-style-id"] == registered_v1


def test_a_style_id_with_its_own_model_named_is_accepted(client: TestClient, registered_v1: str) -> None:
    assert stylize(client, style_id=registered_v1, model="magenta-mobile/1").status_code == 200


def test_a_style_id_with_another_model_named_is_400(client: TestClient, registered_v1: str) -> None:
    detail = problem(stylize(client, style_id=registered_v1, model="magenta-mobile/2"), 400)
    assert "registered with model magenta-mobile/1, not magenta-mobile/2" in detail


def test_a_style_id_with_an_nstyle_model_named_is_400(client: TestClient, registered_v1: str) -> None:
    problem(stylize(client, style_id=registered_v1, model="presets-26"), 400)


def test_an_unknown_style_id_is_404(client: TestClient) -> None:
    reply = stylize(client, style_id="0" * 64)
    assert "no registered style" in problem(reply, 404)
    assert reply.json()["type"].endswith("unknown-style")


# Rule 3: presets are rows of an N-style model: `model` defaults to the presets model for them, and
# naming an arbitrary model is a 400.


def test_a_preset_defaults_to_the_presets_model(client: TestClient) -> None:
    reply = stylize(client, preset="3")
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-model"] == "presets-26/1"
    assert reply.headers["x-style-id"] == "preset:style-03"


def test_a_preset_with_an_arbitrary_model_named_is_400(client: TestClient) -> None:
    assert "a preset needs a model of kind 'nstyle'" in problem(
        stylize(client, preset="3", model="magenta-mobile"), 400
    )


def test_a_preset_blend_with_an_arbitrary_model_named_is_400(client: TestClient) -> None:
    problem(stylize(client, styles="preset:1,preset:2", model="magenta-mobile"), 400)


# Rule 4: `styles` blends registered ids, or presets written `preset:<index|name>`, never both.


def test_a_blend_of_presets_runs_on_the_presets_model(client: TestClient) -> None:
    reply = stylize(client, styles="preset:1, preset:style-02", weights="1,3")
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-model"] == "presets-26/1"
    assert reply.headers["x-style-id"] == "preset:style-01,preset:style-02"


def test_a_blend_of_registered_styles_runs_on_their_model(client: TestClient, registered_v1: str) -> None:
    reply = stylize(client, styles=f"{registered_v1},{registered_v1}")
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-model"] == "magenta-mobile/1"


def test_a_blend_mixing_registered_styles_and_presets_is_400(client: TestClient, registered_v1: str) -> None:
    detail = problem(stylize(client, styles=f"preset:1,{registered_v1}"), 400)
    assert "mixes registered styles and presets" in detail


def test_a_blend_of_more_than_max_blend_styles_is_422(client: TestClient) -> None:
    many = ",".join(f"preset:{i % 26}" for i in range(MAX_BLEND + 1))
    assert f"1 to {MAX_BLEND}" in problem(stylize(client, styles=many), 422)
    assert stylize(client, styles=",".join(f"preset:{i}" for i in range(MAX_BLEND))).status_code == 200


def test_a_blend_with_an_empty_item_is_422(client: TestClient) -> None:
    problem(stylize(client, styles="preset:1,,preset:2"), 422)
