"""What the CLI tests share: the `atelier` command in a subprocess, small images, decoded pixels."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    code: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode()


def run_cli(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, stdin: bytes | None = None) -> Run:
    """`python -m atelier ARGS` as a user runs it: its own process, bytes in and out."""
    done = subprocess.run(
        [sys.executable, "-m", "atelier", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        input=stdin,
        capture_output=True,
        timeout=300,
    )
    return Run(done.returncode, done.stdout, done.stderr.decode())


def small_images(folder: Path, count: int, side: int = 48) -> list[Path]:
    """``count`` distinct small JPEGs in nested folders (a quarter in sub/, a quarter in sub/deeper/)."""
    rng = np.random.default_rng(7)
    paths = []
    for i in range(count):
        sub = folder / ("sub/deeper" if i % 4 == 3 else "sub" if i % 4 == 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(side, side + (i % 3) * 8, 3), dtype=np.uint8)
        path = sub / f"img{i:02d}.jpg"
        Image.fromarray(pixels).save(path, quality=92)
        paths.append(path)
    return paths


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
