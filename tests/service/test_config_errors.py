"""Settings from the environment, the error hierarchy, and the service's independence from torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from service import config
from service.config import Settings
from service.errors import (
    AtelierError,
    BadRequest,
    ClientClosedRequest,
    ContentTooLarge,
    DeadlineExceeded,
    InvalidField,
    NotReady,
    Overloaded,
    Unauthorized,
    UnknownModel,
    UnknownPreset,
    UnknownStyle,
    UnsupportedImage,
    _unwrap_body_error,
)
from service.runtime import cuda_device_present

REPO = Path(__file__).resolve().parents[2]


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert defaults.default_model == "magenta-mobile" and defaults.presets_model == "presets-26"
    assert defaults.api_keys == [] and not defaults.auth_enabled
    assert defaults.max_output_side == 8192 and defaults.providers == "auto"
    monkeypatch.setenv("ATELIER_API_KEYS", " one, two ,")
    monkeypatch.setenv("ATELIER_MAX_PIXELS", "1000")
    monkeypatch.setenv("ATELIER_PROVIDERS", "cpu")
    configured = Settings()
    assert configured.api_keys == ["one", "two"] and configured.auth_enabled
    assert configured.max_pixels == 1000 and configured.providers == "cpu"
    monkeypatch.setenv("ATELIER_PROVIDERS", "tpu")
    with pytest.raises(ValueError):
        Settings()


def test_codec_threads_are_also_read_from_their_older_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """ATELIER_CODEC_THREADS was ATELIER_WORKERS; deployments that set the old name keep their setting."""
    assert Settings().codec_threads == 0 and Settings().codec_thread_count >= 2
    assert Settings(codec_threads=3).codec_thread_count == 3
    monkeypatch.setenv("ATELIER_WORKERS", "5")
    assert Settings().codec_threads == 5
    monkeypatch.setenv("ATELIER_CODEC_THREADS", "4")
    assert Settings().codec_threads == 4  # the current name wins
    monkeypatch.setenv("ATELIER_CODEC_THREADS", "-1")
    with pytest.raises(ValueError):
        Settings()


def test_batch_pixels_suit_the_device_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    # A CPU batches only small images (bigger batches cost more per image there); a GPU up to 4 Mpixel.
    assert Settings().batch_pixels(on_gpu=False) == 2 * 256 * 256
    assert Settings().batch_pixels(on_gpu=True) == 4 * 1024 * 1024
    monkeypatch.setenv("ATELIER_MAX_BATCH_PIXELS", "1000000")
    assert Settings().batch_pixels(on_gpu=False) == Settings().batch_pixels(on_gpu=True) == 1_000_000
    monkeypatch.setenv("ATELIER_MAX_BATCH_PIXELS", "0")
    with pytest.raises(ValueError):
        Settings()


def test_batch_size_suits_the_device_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    # A GPU runs images one at a time unless told otherwise: there the batcher lowered throughput.
    assert Settings().batch_size(on_gpu=False) == 8 and Settings().batch_size(on_gpu=True) == 1
    monkeypatch.setenv("ATELIER_MAX_BATCH_SIZE", "4")
    assert Settings().batch_size(on_gpu=False) == Settings().batch_size(on_gpu=True) == 4


def test_cpu_quota_caps_usable_cores(tmp_path: Path) -> None:
    assert config.cpu_quota_cores(tmp_path) is None  # no cgroup files
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert config.cpu_quota_cores(tmp_path) is None  # cgroup v1, no quota
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("250000\n")
    assert config.cpu_quota_cores(tmp_path) == 3  # 2.5 cores, rounded up
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert config.cpu_quota_cores(tmp_path) is None  # cgroup v2 says no quota, and wins
    (tmp_path / "cpu.max").write_text("400000 100000\n")
    assert config.cpu_quota_cores(tmp_path) == 4
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert config.cpu_quota_cores(tmp_path) == 1
    assert 1 <= config.usable_cores() <= len(os.sched_getaffinity(0))


def test_process_count_is_one_on_a_cpu_and_one_per_four_cores_up_to_four_on_a_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not cuda_device_present("cpu")
    monkeypatch.setenv("ATELIER_PROVIDERS", "cpu")
    assert Settings().process_count == 1
    monkeypatch.setattr(config, "cuda_device_present", lambda preference: preference != "cpu")
    assert Settings().process_count == 1  # the CPU was asked for
    monkeypatch.setenv("ATELIER_PROVIDERS", "auto")
    for cores, processes in ((16, 4), (64, 4), (8, 2), (2, 1)):
        monkeypatch.setattr(config, "usable_cores", lambda cores=cores: cores)
        assert Settings().process_count == processes, cores
        assert Settings().ort_intra_op_threads == max(1, cores // processes)
    monkeypatch.setenv("ATELIER_PROCESSES", "3")
    assert Settings().process_count == 3


def test_error_statuses() -> None:
    expected = {
        BadRequest: 400,
        Unauthorized: 401,
        UnknownModel: 404,
        UnknownStyle: 404,
        UnknownPreset: 404,
        ContentTooLarge: 413,
        UnsupportedImage: 415,
        InvalidField: 422,
        Overloaded: 429,
        ClientClosedRequest: 499,
        NotReady: 503,
        DeadlineExceeded: 504,
    }
    for cls, status in expected.items():
        assert issubclass(cls, AtelierError) and cls.status == status
    assert Overloaded("busy", 3).headers == {"Retry-After": "3"}
    assert Unauthorized("no").headers["WWW-Authenticate"].startswith("Bearer")


def test_form_errors_are_unwrapped() -> None:
    too_big = HTTPException(400, "Part exceeded maximum size of 64KB.")
    assert isinstance(_unwrap_body_error(too_big), ContentTooLarge)
    wrapped = HTTPException(400, "There was an error parsing the body")
    wrapped.__cause__ = ContentTooLarge("over")
    assert isinstance(_unwrap_body_error(wrapped), ContentTooLarge)
    garbled = HTTPException(400, "There was an error parsing the body")
    garbled.__cause__ = MultiPartException("Missing boundary in multipart.")
    assert isinstance(_unwrap_body_error(garbled), BadRequest)
    assert _unwrap_body_error(HTTPException(404, "Not Found")) is None


def test_service_never_imports_torch() -> None:
    code = (
        "import sys, service.main, service.__main__, service.openapi_dump\n"
        "service.main.create_app()\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
