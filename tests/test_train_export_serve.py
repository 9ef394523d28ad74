"""End to end: a tiny model trained a few steps, exported, then served by a real service process."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from training import checkpoint
from training.train import TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_trained_model_is_served_next_to_the_defaults(image_dir: Path, model_repository: Path,
                                                      tmp_path: Path) -> None:
    style = image_dir / "style" / "the_scream.jpg"
    run = tmp_path / "run"
    Trainer(TrainConfig(mode="single", content=image_dir / "content", style=style, out=run, steps=10,
                        batch_size=2, image_size=64, lr=1e-2, alpha=0.25, workers=0, checkpoint_every=10,
                        sample_every=1000)).run()
    repository = tmp_path / "models"
    repository.mkdir()
    for name in ("magenta-mobile", "presets-26"):  # the defaults, as a deployment would have them
        (repository / name).symlink_to(model_repository / name)
    export = subprocess.run([sys.executable, "-m", "onnx_export", "--repository", str(repository), "checkpoint",
                             str(run / "checkpoint.pt"), "--name", "scream-tiny", "--version", "1"],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert export.returncode == 0, export.stderr

    port = free_port()
    env = {**os.environ, "ATELIER_MODEL_DIR": str(repository), "ATELIER_STYLE_DIR": str(tmp_path / "styles"),
           "HOST": "127.0.0.1", "PORT": str(port)}
    env.pop("ATELIER_PORT", None)
    env.pop("ATELIER_HOST", None)
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "service"], cwd=REPO, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(0.5)
        ready = httpx.get(f"{base}/readyz").json()
        assert any(m["name"] == "scream-tiny" for m in ready["models"]), ready

        content = (image_dir / "content" / "golden_gate_sq.jpg").read_bytes()
        reply = httpx.post(f"{base}/v1/stylize", files={"content": ("photo.jpg", content, "image/jpeg")},
                           data={"model": "scream-tiny", "preset": "the_scream"}, timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.headers["X-Model"] == "scream-tiny/1"
        served = np.asarray(Image.open(io.BytesIO(reply.content)).convert("RGB"), dtype=np.float32) / 255.0

        # the service's output is the trained network's output
        model = checkpoint.load(run / "checkpoint.pt")
        photo = np.asarray(Image.open(io.BytesIO(content)).convert("RGB"), dtype=np.float32) / 255.0
        import torch

        with torch.no_grad():
            expected = model.transformer(torch.from_numpy(photo.transpose(2, 0, 1))[None], torch.ones(1, 1))
        expected = expected[0].numpy().transpose(1, 2, 0)
        assert served.shape == expected.shape
        assert np.abs(served - expected).mean() < 2 / 255  # 8-bit rounding of the PNG, nothing else
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
