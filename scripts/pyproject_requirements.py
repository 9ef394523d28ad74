"""Print pyproject.toml's requirements, one a line, for `pip install -r` in the Dockerfile.

Usage: python pyproject_requirements.py [pyproject.toml] dependencies [EXTRA ...]
`dependencies` is the base (service) list; any other name is an optional extra such as `train`.
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


if __name__ == "__main__":
    args = sys.argv[1:]
    path = Path(args.pop(0)) if args and args[0].endswith(".toml") else Path("pyproject.toml")
    print("\n".join(requirements(path, args)))
