"""Print pyproject.toml's requirements, one a line, for `pip install -r` in the Dockerfile.

Usage: python pyproject_requirements.py [pyproject.toml] [--onnxruntime NAME] dependencies [EXTRA ...]
`dependencies` is the base (service) list; any other name is an optional extra such as `train`.
`--onnxruntime onnxruntime` swaps the pinned onnxruntime-gpu for the CPU build of the same version
(the CPU image: no CUDA provider libraries).
Installing these instead of the project keeps the image on its own source tree and lets Docker
cache the dependency layer until pyproject.toml changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib


def requirements(pyproject: Path, groups: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    return [r for g in groups for r in (project[g] if g == "dependencies" else project["optional-dependencies"][g])]


def with_onnxruntime(lines: list[str], package: str) -> list[str]:
    """The requirements with the onnxruntime-gpu pin (``onnxruntime-gpu==V``) renamed to ``package==V``."""
    renamed = [package + r.removeprefix("onnxruntime-gpu") if r.startswith("onnxruntime-gpu") else r for r in lines]
    if package != "onnxruntime-gpu" and renamed == lines:
        raise SystemExit("pyproject.toml pins no onnxruntime-gpu to swap")
    return renamed


if __name__ == "__main__":
    args = sys.argv[1:]
    path = Path(args.pop(0)) if args and args[0].endswith(".toml") else Path("pyproject.toml")
    onnxruntime = "onnxruntime-gpu"
    if args and args[0] == "--onnxruntime":
        onnxruntime = args[1]
        args = args[2:]
    print("\n".join(with_onnxruntime(requirements(path, args), onnxruntime)))
