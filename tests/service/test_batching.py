"""The micro-batcher in-process, on the real ONNX Runtime models: batched rows equal unbatched runs.

The services are built as the app builds them (``service.services.running_services``).

Mixed sizes share a batch only when they pad to the same shape (253x255 and 256x256 both run as
256x256, each with its own reflect padding); the batched result of each, cropped back, must equal
the same input run alone to 1e-5.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from service import imaging
from service.batching import BatchKey, MicroBatcher, _run_stacked
from service.config import Settings
from service.embeddings import Embedder
from service.metrics import Metrics
from service.registry import LoadedModel
from service.services import Services, running_services
from tests.helpers.images import gradient_image

SIZES = [(256, 256), (253, 255), (255, 253), (254, 256), (256, 254)]  # width, height: all pad to 256x256


def _settings(model_repository: Path, tmp_path: Path) -> Settings:
    """Batches of up to 8 that wait long enough to fill, big enough for five 256x256 inputs."""
    return Settings(
        model_dir=model_repository,
        providers="cpu",
        style_dir=tmp_path / "styles",
        redis_url=None,
        cache_entries=16,
        codec_threads=2,
        max_batch_size=8,
        max_batch_wait_ms=500,
        max_batch_pixels=8 * 256 * 256,
    )


def _padded(width: int, height: int, seed: int, model: LoadedModel) -> np.ndarray:
    tensor = imaging.to_tensor(np.asarray(gradient_image(width, height, seed)))
    return imaging.pad_for_network(tensor, model.manifest.size_multiple, model.manifest.min_side)


def _batch_sizes(metrics: Metrics, model: str, stage: str) -> tuple[float, float]:
    """(number of runs, number of items) the batcher sent to ONNX Runtime for a model and stage."""
    count = metrics.registry.get_sample_value("atelier_batch_size_count", {"model": model, "stage": stage})
    total = metrics.registry.get_sample_value("atelier_batch_size_sum", {"model": model, "stage": stage})
    return count or 0.0, total or 0.0


def test_batched_transformer_equals_unbatched_for_mixed_sizes_in_one_bucket(
    model_repository: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    embeddings = [rng.normal(0, 1, 100).astype(np.float32) for _ in SIZES]

    async def batched() -> tuple[Services, list[np.ndarray], list[np.ndarray]]:
        async with running_services(_settings(model_repository, tmp_path)) as services:
            mobile = services.registry.get("magenta-mobile")
            inputs = [_padded(w, h, seed, mobile) for seed, (w, h) in enumerate(SIZES)]
            runs = (services.stylist.transform(mobile, x, e) for x, e in zip(inputs, embeddings, strict=True))
            return services, inputs, await asyncio.gather(*runs)

    services, inputs, outputs = asyncio.run(batched())
    mobile = services.registry.get("magenta-mobile")
    assert {x.shape for x in inputs} == {(1, 3, 256, 256)}
    assert _batch_sizes(services.metrics, mobile.label, "transformer") == (1, len(SIZES))  # one run of five
    for (width, height), x, e, out in zip(SIZES, inputs, embeddings, outputs, strict=True):
        alone = mobile.transform(x, e[None])
        batched_crop = imaging.crop(out, height, width)
        alone_crop = imaging.crop(alone, height, width)
        assert batched_crop.shape == (1, 3, height, width)
        assert np.abs(batched_crop - alone_crop).max() <= 1e-5


def test_batched_predictor_equals_unbatched(model_repository: Path, tmp_path: Path, image_dir: Path) -> None:
    names = ["starry_night.jpg", "the_scream.jpg", "bricks_sq.jpg"]
    datas = [(image_dir / "style" / name).read_bytes() for name in names]

    async def batched() -> tuple[Services, list[tuple[str, np.ndarray]]]:
        async with running_services(_settings(model_repository, tmp_path)) as services:
            mobile = services.registry.get("magenta-mobile")
            return services, await asyncio.gather(*(services.stylist.style_embedding(mobile, d) for d in datas))

    services, results = asyncio.run(batched())
    mobile = services.registry.get("magenta-mobile")
    assert _batch_sizes(services.metrics, mobile.label, "predictor") == (1, len(names))
    size = mobile.manifest.style_size
    assert size
    for data, (key, embedding) in zip(datas, results, strict=True):  # each against the predictor run alone
        expected = mobile.predict(imaging.style_tensor(data, size, max_pixels=36_000_000, min_side=8))[0]
        assert key == Embedder.style_id(mobile, data)
        assert np.abs(embedding - expected).max() <= 1e-5


def test_cancelled_items_never_run_and_errors_reach_every_caller() -> None:
    """The batcher's own rules, with a plain function at the one seam instead of a model."""
    runs: list[int] = []

    def double(x: np.ndarray) -> np.ndarray:
        runs.append(len(x))
        if (x < 0).any():
            raise ValueError("negative input")
        return x * 2

    async def scenario() -> None:
        batcher = MicroBatcher(max_batch_size=8, max_wait_s=0.2, threads=1, metrics=Metrics())
        key = BatchKey("fake", "double", ((1,),))
        try:
            calls = [asyncio.create_task(batcher.run(key, double, np.full((1, 1), i, np.float32))) for i in range(3)]
            await asyncio.sleep(0.01)
            calls[1].cancel()  # e.g. its client went away while the batch was filling
            assert [float(r[0, 0]) for r in await asyncio.gather(calls[0], calls[2])] == [0.0, 4.0]
            assert calls[1].cancelled() and runs == [2]

            failing = [batcher.run(key, double, np.full((1, 1), v, np.float32)) for v in (1, -1)]
            outcomes = await asyncio.gather(*failing, return_exceptions=True)
            assert all(isinstance(o, ValueError) for o in outcomes)
            assert runs == [2, 2]
        finally:
            await batcher.stop()

    asyncio.run(scenario())


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux thread names")
def test_codec_and_inference_threads_carry_their_names_in_the_os(model_repository: Path, tmp_path: Path) -> None:
    """bench.request_cost and `top -H` tell the roles apart by these names."""

    def os_name() -> str:
        return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()

    async def names() -> tuple[str, str]:
        inference: list[str] = []

        def record(x: np.ndarray) -> np.ndarray:
            inference.append(os_name())
            return x

        async with running_services(_settings(model_repository, tmp_path)) as services:
            await services.batcher.run(BatchKey("m", "s", ((1,),)), record, np.zeros((1, 1), np.float32))
            return await services.codec.run(os_name), inference[0]

    assert asyncio.run(names()) == ("atelier-codec", "atelier-infer")


def test_batches_stack_into_one_reused_buffer_per_input() -> None:
    """A 50 MB batch input is not allocated (and page-faulted in) afresh every run; a smaller batch
    after a bigger one uses the front of the same buffer and still gets its own rows right."""
    addresses: list[int] = []

    def fn(images: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        addresses.append(images.__array_interface__["data"][0])
        return images[:, 0, 0, 0] * 10 + vectors[:, 0]

    items = [(np.full((1, 3, 4, 4), i, np.float32), np.full((1, 2), -i, np.float32)) for i in range(4)]
    np.testing.assert_array_equal(_run_stacked(fn, items), [0, 9, 18, 27])
    np.testing.assert_array_equal(_run_stacked(fn, items[2:0:-1]), [18, 9])
    np.testing.assert_array_equal(_run_stacked(fn, items[:1]), [0])  # one item runs as it is
    assert addresses[0] == addresses[1]
    assert addresses[2] == items[0][0].__array_interface__["data"][0]
