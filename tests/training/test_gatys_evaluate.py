"""Gatys optimisation and the evaluation tool, on shared pairs at small sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from onnx_export.parity import Case
from onnx_export.repository import write_model
from training import checkpoint
from training.checkpoint import StyleModel
from training.data import load_rgb, to_tensor
from training.evaluate import Pair, checkpoint_stylizer, evaluate, onnx_stylizer, ssim
from training.gatys import Gatys, GatysConfig, fit, keep_colors, rgb_to_yuv
from training.networks.nstyle import build_nstyle
from training.train import TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[2]


def image(path: Path, size: int) -> torch.Tensor:
    return fit(to_tensor(load_rgb(path))[None], size)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_gatys_lowers_style_loss_by_a_large_factor(image_dir: Path, optimizer: str) -> None:
    content = image(image_dir / "content" / "golden_gate_sq.jpg", 96)
    style = image(image_dir / "style" / "starry_night.jpg", 96)
    steps = 40 if optimizer == "lbfgs" else 150
    gatys = Gatys(
        GatysConfig(steps=steps, optimizer=optimizer, lr=0.03, scales=(96,), style_size=96), device=torch.device("cpu")
    )
    before = gatys.losses(content, content, style)["style"]
    out = gatys.stylize(content, style)
    after = gatys.losses(out, content, style)["style"]
    print(f"gatys {optimizer} {steps} steps: style loss {before:.4g} -> {after:.4g} ({before / after:.1f}x)")
    assert out.shape == content.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert after < before / 10


def test_colour_preservation_keeps_content_chroma(image_dir: Path) -> None:
    content = image(image_dir / "content" / "golden_gate_sq.jpg", 64)
    stylized = image(image_dir / "style" / "the_scream.jpg", 64)[..., :64, :64]
    stylized = torch.nn.functional.interpolate(stylized, size=content.shape[-2:])
    kept = keep_colors(stylized, content)
    chroma = lambda x: rgb_to_yuv(x)[:, 1:]  # noqa: E731
    assert (chroma(kept) - chroma(content)).abs().mean() < 0.01
    assert (chroma(stylized) - chroma(content)).abs().mean() > 0.03


def test_ssim_is_one_for_identical_images_and_lower_for_noise(image_dir: Path) -> None:
    content = image(image_dir / "content" / "tubingen.jpg", 128)
    assert ssim(content, content) == pytest.approx(1.0, abs=1e-6)
    noisy = (content + 0.2 * torch.randn(content.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert ssim(noisy, content) < 0.6


@pytest.mark.slow
def test_a_styles_own_model_beats_an_untrained_network(image_dir: Path, tmp_path: Path) -> None:
    style = image_dir / "style" / "starry_night.jpg"
    cfg = TrainConfig(
        mode="single",
        content=image_dir / "content",
        style=style,
        out=tmp_path / "run",
        steps=80,
        batch_size=2,
        image_size=64,
        lr=1e-2,
        alpha=0.25,
        workers=0,
        checkpoint_every=80,
        sample_every=1000,
    )
    Trainer(cfg).run()
    trained = checkpoint.load(tmp_path / "run" / "checkpoint.pt")
    untrained = StyleModel("nstyle", build_nstyle(1, trained.transformer.config), presets=["starry_night"])
    write_model(trained, tmp_path / "models", "starry", 1, cases=(Case(1, 64, 64),))
    pairs = [Pair(c, style) for c in sorted((image_dir / "content").glob("*_sq.jpg"))]
    report = evaluate(
        {
            "trained": checkpoint_stylizer(trained),
            "untrained": checkpoint_stylizer(untrained),
            "exported": onnx_stylizer(tmp_path / "models" / "starry" / "1"),
        },
        pairs,
        96,
    )
    models = report["models"]
    print(json.dumps({k: {m: v[m] for m in ("style_loss", "content_loss", "ssim")} for k, v in models.items()}))
    assert models["trained"]["pairs"] == len(pairs) == 3
    assert models["trained"]["style_loss"] < 0.7 * models["untrained"]["style_loss"]
    assert models["exported"]["style_loss"] == pytest.approx(models["trained"]["style_loss"], rel=1e-3)


def test_evaluate_cli_prints_json_for_gatys(image_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    Image.open(image_dir / "content" / "eiffel_tower.jpg").save(tmp_path / "c" / "eiffel.png")
    cmd = [
        sys.executable,
        "-m",
        "training.evaluate",
        "--content",
        str(tmp_path / "c"),
        "--style",
        str(image_dir / "style" / "bricks_sq.jpg"),
        "--size",
        "64",
        "--gatys",
        "5",
        "--summary",
    ]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    entry = report["models"]["gatys:5"]
    assert report["pairs"] == ["eiffel+bricks_sq"] and entry["pairs"] == 1 and entry["style_loss"] > 0
    assert "per_pair" not in entry
