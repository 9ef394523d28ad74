"""What a Dockerfile stage puts on disk from the build context: its WORKDIR and its COPY lines."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    destination: PurePosixPath  # absolute, WORKDIR applied


def stage_instructions(dockerfile: Path, stage: str) -> list[str]:
    """The stage's instructions, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    current: str | None = None
    lines: list[str] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if match:
            current = match.group(1)
        if current == stage:
            lines.append(line)
    assert lines, f"{dockerfile} has no stage {stage!r}"
    return lines


def context_copies(dockerfile: Path, stage: str) -> list[Copy]:
    """The stage's COPY/ADD lines that take files from the build context (not `--from=` another stage)."""
    workdir = PurePosixPath("/")
    copies = []
    for line in stage_instructions(dockerfile, stage):
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "WORKDIR":
            workdir = workdir / rest.strip()
        elif keyword.upper() in ("COPY", "ADD"):
            words = rest.split()
            if any(w.startswith("--from=") for w in words):
                continue
            words = [w for w in words if not w.startswith("--")]
            copies.append(Copy(tuple(words[:-1]), workdir / words[-1]))
    return copies


def lay_out(context: Path, copies: list[Copy], root: Path) -> None:
    """Copy the context's files under ``root`` as the COPY lines place them in the image."""
    for copy in copies:
        target = root / copy.destination.relative_to("/")
        into_folder = str(copy.destination).endswith("/") or len(copy.sources) > 1
        for source in copy.sources:
            path = context / source
            if path.is_dir():  # a folder's contents go into the destination folder
                shutil.copytree(path, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                destination = target / path.name if into_folder else target
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)


def stage_workdir(dockerfile: Path, stage: str) -> PurePosixPath:
    workdir = PurePosixPath("/")
    for line in stage_instructions(dockerfile, stage):
        if line.upper().startswith("WORKDIR "):
            workdir = workdir / line.split(None, 1)[1].strip()
    return workdir
