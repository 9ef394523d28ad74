"""Training on the shared corpus at small sizes: loss goes down, resume is exact, DDP replicas agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from training import checkpoint
from training.data import ImageFolder
from training.train import TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[2]


def config(image_dir: Path, out: Path, mode: str, **overrides: object) -> TrainConfig:
    style = image_dir / "style" / "starry_night.jpg" if mode == "single" else image_dir / "style"
    base = TrainConfig(
        mode=mode,
        content=image_dir / "content",
        style=style,
        out=out,  # type: ignore[arg-type]
        steps=30,
        batch_size=2,
        image_size=64,
        lr=1e-2,
        alpha=0.25,
        backbone="mobilenet_v2",
        checkpoint_every=1000,
        sample_every=1000,
        log_every=1,
        workers=0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def losses_of(trainer: Trainer, steps: int) -> list[float]:
    return [trainer.train_step()["total"] for _ in range(steps)]


def held_out_loss(trainer: Trainer, image_dir: Path) -> float:
    """Total loss of the network in eval mode on a fixed batch: 2 photos x 2 styles."""
    contents = ImageFolder(image_dir / "content", trainer.config.image_size, seed=999)
    content = torch.stack([contents[(0, i)][0] for i in (0, 4)]).to(trainer.device)
    if trainer.config.mode == "arbitrary":
        paintings = ImageFolder(image_dir / "style", trainer.config.image_size, seed=999)
        style = torch.stack([paintings[(0, i)][0] for i in (2, 9)])
        grams = trainer.loss.style_targets(style)
    else:
        index = torch.tensor([0, len(trainer.styles) - 1])
        style = torch.nn.functional.one_hot(index, len(trainer.styles)).float()
        grams = {k: v[index] for k, v in trainer.table_grams.items()}
    trainer.net.eval()
    with torch.no_grad():
        total = float(trainer.loss(trainer.net(content, style), content, grams)["total"])
    trainer.net.train()
    return total


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "overrides"),
    [
        ("single", {}),
        ("nstyle", {"steps": 50}),
        ("arbitrary", {"lr": 1e-3, "steps": 40}),
        ("arbitrary", {"lr": 1e-4, "init": "magenta-mobile", "freeze_predictor": True, "steps": 40}),
    ],
)
def test_training_lowers_the_loss(image_dir: Path, tmp_path: Path, mode: str, overrides: dict[str, object]) -> None:
    cfg = config(image_dir, tmp_path, mode, **overrides)
    trainer = Trainer(cfg)
    before = held_out_loss(trainer, image_dir)
    losses = losses_of(trainer, cfg.steps)
    after = held_out_loss(trainer, image_dir)
    print(
        f"{mode} {overrides}: held-out loss {before:.4g} -> {after:.4g}; "
        f"training loss {np.mean(losses[:5]):.4g} -> {np.mean(losses[-5:]):.4g}"
    )
    assert after < 0.7 * before


def test_resume_reproduces_the_next_steps_exactly(image_dir: Path, tmp_path: Path) -> None:
    straight = Trainer(config(image_dir, tmp_path / "a", "nstyle", steps=6))
    expected = losses_of(straight, 6)

    first = Trainer(config(image_dir, tmp_path / "b", "nstyle", steps=3, checkpoint_every=3))
    first.run()
    assert (tmp_path / "b" / "checkpoint.pt").is_file()
    resumed = Trainer(config(image_dir, tmp_path / "b", "nstyle", steps=6), resume=True)
    assert resumed.step == 3
    assert losses_of(resumed, 3) == pytest.approx(expected[3:], rel=1e-6, abs=1e-9)


def test_run_writes_logs_samples_and_a_servable_checkpoint(image_dir: Path, tmp_path: Path) -> None:
    cfg = config(image_dir, tmp_path, "nstyle", steps=4, checkpoint_every=2, sample_every=2)
    Trainer(cfg).run()
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 5
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    model = checkpoint.load(tmp_path / "checkpoint.pt")
    assert model.kind == "nstyle" and len(model.presets) == 11 and "starry_night" in model.presets
    assert checkpoint.read(tmp_path / "checkpoint.pt")["training"]["step"] == 4


@pytest.mark.slow
def test_torchrun_two_ranks_with_gloo_keep_identical_weights(image_dir: Path, tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "training.train",
        "--mode",
        "single",
        "--content",
        str(image_dir / "content"),
        "--style",
        str(image_dir / "style" / "the_scream.jpg"),
        "--out",
        str(tmp_path),
        "--steps",
        "3",
        "--batch-size",
        "1",
        "--image-size",
        "64",
        "--alpha",
        "0.25",
        "--workers",
        "0",
        "--lr",
        "1e-2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "distributed.json").read_text())
    assert report["world_size"] == 2 and report["step"] == 3
    rank0, rank1 = report["checksums"]
    assert rank0 == rank1
    # and they are the weights rank 0 saved
    saved = checkpoint.load(tmp_path / "checkpoint.pt")
    flat = torch.cat([p.detach().double().flatten() for p in saved.transformer.parameters()])
    assert float(flat.sum()) == pytest.approx(rank0[0], rel=1e-9)


def test_bad_images_are_skipped_and_counted(image_dir: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos" / "nested"
    photos.mkdir(parents=True)
    for name in ("golden_gate_sq.jpg", "eiffel_tower.jpg"):
        (photos / name).write_bytes((image_dir / "content" / name).read_bytes())
    (photos / "notes.png").write_text("not an image")
    (photos / "empty.jpg").write_bytes(b"")
    cfg = replace(config(image_dir, tmp_path / "run", "single"), content=tmp_path / "photos", steps=2)
    trainer = Trainer(cfg)
    assert trainer.skipped == 2
    trainer.run()
