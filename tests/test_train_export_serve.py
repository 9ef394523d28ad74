"""End to end: a tiny model trained a few steps, exported, then served by a real service process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.helpers.images import decode_rgb
from tests.helpers.server import start_server, stop_server
from training import checkpoint
from training.train import TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_trained_model_is_served_next_to_the_defaults(image_dir: Path, model_repository: Path, tmp_path: Path) -> None:
    style = image_dir / "style" / "the_scream.jpg"
    run = tmp_path / "run"
    Trainer(
        TrainConfig(
            mode="single",
            content=image_dir / "content",
            style=style,
            out=run,
            steps=10,
            batch_size=2,
            image_size=64,
            lr=1e-2,
            alpha=0.25,
            workers=0,
            checkpoint_every=10,
            sample_every=1000,
        )
    ).run()
    repository = tmp_path / "models"
    repository.mkdir()
    for name in ("magenta-mobile", "presets-26"):  # the defaults, as a deployment would have them
        (repository / name).symlink_to(model_repository / name)
    export = subprocess.run(
        [
            sys.executable,
            "-m",
            "onnx_export",
            "--repository",
            str(repository),
            "checkpoint",
            str(run / "checkpoint.pt"),
            "--name",
            "scream-tiny",
            "--version",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert export.returncode == 0, export.stderr

    server = start_server(repository, tmp_path)
    try:
        base = server.url
        ready = httpx.get(f"{base}/readyz").json()
        assert any(m["name"] == "scream-tiny" for m in ready["models"]), ready

        content = (image_dir / "content" / "golden_gate_sq.jpg").read_bytes()
        reply = httpx.post(
            f"{base}/v1/stylize",
            files={"content": ("photo.jpg", content, "image/jpeg")},
            data={"model": "scream-tiny", "preset": "the_scream"},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        assert reply.headers["X-Model"] == "scream-tiny/1"
        served = decode_rgb(reply.content)

        # the service's output is the trained network's output
        model = checkpoint.load(run / "checkpoint.pt")
        photo = decode_rgb(content)
        import torch

        with torch.no_grad():
            expected = model.transformer(torch.from_numpy(photo.transpose(2, 0, 1))[None], torch.ones(1, 1))
        expected = expected[0].numpy().transpose(1, 2, 0)
        assert served.shape == expected.shape
        assert np.abs(served - expected).mean() < 2 / 255  # 8-bit rounding of the PNG, nothing else
    finally:
        stop_server(server)
