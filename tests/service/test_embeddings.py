"""Unit tests of embedding arithmetic, the LRU cache and the style store."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from onnx_export.manifest import read_manifest
from service.cache import LruEmbeddingCache, embedding_key
from service.embeddings import blend, interpolate, normalise_weights, one_hot, parse_weights, preset_index
from service.errors import InvalidField, UnknownPreset
from service.registry import LoadedModel
from service.styles import StyleStore


def test_interpolate_endpoints_and_middle() -> None:
    a, b = np.zeros(4, np.float32), np.arange(4, dtype=np.float32)
    assert np.array_equal(interpolate(a, b, 0.0), a)
    assert np.array_equal(interpolate(a, b, 1.0), b)
    assert np.allclose(interpolate(a, b, 0.25), b / 4)


def test_weights_are_validated_and_normalised() -> None:
    assert np.allclose(parse_weights("1,3", 2), [0.25, 0.75])
    assert np.allclose(parse_weights(None, 4), [0.25] * 4)
    for bad, count in [("1", 2), ("1,-1", 2), ("0,0", 2), ("nan,1", 2), ("inf,1", 2), ("a,b", 2)]:
        with pytest.raises(InvalidField):
            parse_weights(bad, count)
    with pytest.raises(InvalidField):
        normalise_weights([], 1)


def test_blend_is_convex() -> None:
    rows = [one_hot(0, 3), one_hot(2, 3)]
    mixed = blend(rows, normalise_weights([1, 3], 2))
    assert np.allclose(mixed, [0.25, 0, 0.75]) and np.isclose(mixed.sum(), 1)


def test_preset_lookup_by_index_and_name(model_repository: Path) -> None:
    manifest = read_manifest(model_repository / "presets-26" / "1", verify_files=False)
    model = LoadedModel(manifest, transformer=None, predictor=None)  # type: ignore[arg-type]
    assert preset_index(model, "5") == 5
    assert preset_index(model, manifest.presets[7].name) == 7
    for bad in ("26", "-1", "\u00b2", "nope", ""):
        with pytest.raises(UnknownPreset):
            preset_index(model, bad)


def test_embedding_key_depends_on_bytes_model_and_preprocessing() -> None:
    base = embedding_key(b"abc", "m/1", "p")
    assert base == embedding_key(b"abc", "m/1", "p") and len(base) == 64
    assert (
        len(
            {
                base,
                embedding_key(b"abd", "m/1", "p"),
                embedding_key(b"abc", "m/2", "p"),
                embedding_key(b"abc", "m/1", "q"),
            }
        )
        == 4
    )


def test_lru_evicts_least_recently_used() -> None:
    cache = LruEmbeddingCache(2)
    cache.put("a", np.ones(2))
    cache.put("b", np.zeros(2))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", np.ones(2))
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert len(cache) == 2
    stored = cache.get("a")
    assert stored is not None and not stored.flags.writeable
    disabled = LruEmbeddingCache(0)
    disabled.put("a", np.ones(2))
    assert disabled.get("a") is None


def test_lru_is_thread_safe_and_bounded() -> None:
    cache = LruEmbeddingCache(50)

    def work(offset: int) -> None:
        for i in range(2000):
            cache.put(f"{offset}-{i % 80}", np.full(3, i, np.float32))
            cache.get(f"{offset}-{(i * 7) % 80}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 50


def test_style_store_persists_scopes_and_pages(tmp_path: Path) -> None:
    store = StyleStore(tmp_path)
    ids = [f"{i:064x}" for i in range(5)]
    for i, style_id in enumerate(ids):
        record, created = store.put("public", style_id, [float(i), 0.5], "m/1")
        assert created and record.id == style_id
    again, created = store.put("public", ids[0], [9.0, 9.0], "m/1")
    assert not created and again.embedding == [0.0, 0.5]
    assert store.get("key-other", ids[0]) is None
    page, total = store.page("public", 1, 2)
    assert total == 5 and [r.id for r in page] == ids[1:3]
    reloaded = StyleStore(tmp_path)
    assert reloaded.load() == 5
    assert reloaded.get("public", ids[3]) == store.get("public", ids[3])
    (tmp_path / "public" / "broken.json").write_text("{not json")
    assert StyleStore(tmp_path).load() == 5


def test_style_store_sees_styles_another_process_registered(tmp_path: Path) -> None:
    # Two stores on one folder, as the processes of one server (ATELIER_PROCESSES > 1) are.
    first, second = StyleStore(tmp_path), StyleStore(tmp_path)
    assert first.load() == second.load() == 0
    ids = [f"{i:064x}" for i in range(3)]
    first.put("public", ids[0], [1.0], "m/1")
    found = second.get("public", ids[0])
    assert found is not None and found == first.get("public", ids[0])
    first.put("public", ids[1], [2.0], "m/1")
    first.put("public", ids[2], [3.0], "m/1")
    page, total = second.page("public", 0, 10)
    assert total == 3 and [r.id for r in page] == ids
    assert second.get("public", f"{9:064x}") is None
    assert second.get("public", "../" + ids[0]) is None  # not an id: never becomes a path
    (tmp_path / "public" / f"{7:064x}.json").write_text("{not json")
    assert second.get("public", f"{7:064x}") is None
    assert second.page("public", 0, 10)[1] == 3
