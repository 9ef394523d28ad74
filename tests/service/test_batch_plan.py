"""service/batch_plan.py: which style each item gets, what is resolved once, and whose errors fail what.

``style_sources`` is a plain function; the planning and running go through POST /v1/stylize/batch
in-process (TestClient, the real models on the CPU), answered as JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.batch_plan import style_sources
from service.errors import BadRequest
from service.style_resolution import StyleFields
from service.stylist import StylizeOptions
from tests.helpers.images import encode_image, gradient_image
from tests.helpers.in_process import in_process_client, services_of

OPTIONS = StylizeOptions(styles=None, weights=None, model="magenta-mobile")
CONTENTS = [encode_image(gradient_image(32, 24 + 4 * i, seed=i), "PNG") for i in range(3)]


def test_one_style_source_is_given_to_every_item() -> None:
    fields = style_sources(3, None, ["abc"], None, OPTIONS)
    assert fields == [StyleFields(None, "abc", None, None, None, "magenta-mobile")] * 3


def test_one_value_per_item_pairs_them_in_order() -> None:
    fields = style_sources(3, [b"s0", b"s1", b"s2"], None, None, OPTIONS)
    assert [f.style for f in fields] == [b"s0", b"s1", b"s2"]
    assert all(f.model == "magenta-mobile" and f.style_id is None for f in fields)


def test_a_blend_from_the_options_is_shared_by_every_item() -> None:
    blend = StylizeOptions(styles="preset:1,preset:2", weights="1,1")
    fields = style_sources(2, None, None, None, blend)
    assert fields == [StyleFields(None, None, None, "preset:1,preset:2", "1,1", None)] * 2


@pytest.mark.parametrize("count, values", [(3, ["a", "b"]), (2, ["a", "b", "c"])])
def test_neither_one_nor_one_per_item_is_400(count: int, values: list[str]) -> None:
    with pytest.raises(BadRequest, match=f"{len(values)} `preset` values for {count} content images"):
        style_sources(count, None, None, values, OPTIONS)


@pytest.mark.parametrize(
    "style, style_id, preset, styles, named",
    [
        (None, None, None, None, "none"),
        ([b"s"], ["a"], None, None, "style, style_id"),
        (None, None, ["3"], "preset:1", "preset, styles"),
    ],
)
def test_exactly_one_style_source(style, style_id, preset, styles, named: str) -> None:
    with pytest.raises(BadRequest, match=f"got {named}$"):
        style_sources(2, style, style_id, preset, StylizeOptions(styles=styles))


@pytest.fixture(scope="module")
def client(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with in_process_client(model_repository, tmp_path_factory.mktemp("batch-plan"), max_batch_items=4) as c:
        yield c


def batch(client: TestClient, files: list[tuple[str, bytes]], **data: str | list[str]) -> list[dict]:
    reply = client.post(
        "/v1/stylize/batch",
        files=[(name, (f"{i}.png", body)) for i, (name, body) in enumerate(files)],
        data={"max_side": "16", **data},
        headers={"Accept": "application/json"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-items"] == str(len(reply.json()["items"]))
    return reply.json()["items"]


def predictor_runs(client: TestClient) -> tuple[float, float]:
    """(runs, items) of the predictor so far."""
    registry = services_of(client).metrics.registry
    labels = {"model": "magenta-mobile/1", "stage": "predictor"}
    runs = registry.get_sample_value("atelier_batch_size_count", labels) or 0.0
    return runs, registry.get_sample_value("atelier_batch_size_sum", labels) or 0.0


def test_a_shared_style_image_is_embedded_once_for_every_item(client: TestClient) -> None:
    style = encode_image(gradient_image(48, 48, seed=11), "PNG")
    before = predictor_runs(client)
    items = batch(client, [("content", c) for c in CONTENTS] + [("style", style)])
    after = predictor_runs(client)
    assert [item["status"] for item in items] == [200, 200, 200]
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)  # one run of one style image
    assert len({item["style_id"] for item in items}) == 1


def test_a_per_item_style_error_fails_only_its_item(client: TestClient) -> None:
    items = batch(client, [("content", c) for c in CONTENTS], preset=["3", "no-such-preset", "style-05"])
    assert [item["status"] for item in items] == [200, 404, 200]
    assert items[1]["problem"]["instance"] == "/v1/stylize/batch#1"
    assert [items[0]["style_id"], items[2]["style_id"]] == ["preset:style-03", "preset:style-05"]


def test_a_shared_style_error_fails_the_request(client: TestClient) -> None:
    reply = client.post(
        "/v1/stylize/batch",
        files=[("content", (f"{i}.png", c)) for i, c in enumerate(CONTENTS)],
        data={"style_id": "0" * 64},
    )
    assert reply.status_code == 404, reply.text
    assert reply.json()["type"].endswith("unknown-style")


def test_an_item_that_does_not_decode_fails_only_itself(client: TestClient) -> None:
    items = batch(client, [("content", CONTENTS[0]), ("content", b"not an image")], preset="3")
    assert [item["status"] for item in items] == [200, 415]


def test_more_items_than_the_limit_is_413(client: TestClient) -> None:
    reply = client.post("/v1/stylize/batch", files=[("content", ("c.png", CONTENTS[0]))] * 5, data={"preset": "3"})
    assert reply.status_code == 413, reply.text
    assert "the limit is 4" in reply.json()["detail"]
