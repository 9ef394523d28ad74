"""The documentation site: `mkdocs build --strict` passes, a broken internal link fails it, and the
architecture page's module map names every module of the three packages, and only those."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "onnx_export", "training")


def build(config_dir: Path, site: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]
    return subprocess.run(command, cwd=config_dir, capture_output=True, text=True, timeout=120)


def test_the_docs_build_strictly(tmp_path: Path) -> None:
    result = build(REPO, tmp_path / "site")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "performance" / "index.html").is_file()
    # The benchmark JSON the performance page links to travels with the site.
    assert (tmp_path / "site" / "repo" / "bench" / "results" / "load-cpu2.json").is_file()
    page = (tmp_path / "site" / "performance" / "index.html").read_text()
    assert 'href="../repo/bench/results/load-cpu2.json"' in page


@pytest.fixture
def docs_copy(tmp_path: Path) -> Path:
    """The repository as mkdocs sees it, with a private copy of docs/ to break."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for entry in REPO.iterdir():
        if entry.name == "docs":
            shutil.copytree(entry, copy / "docs")
        elif entry.name == "mkdocs.yml":
            shutil.copy(entry, copy / entry.name)
        elif not entry.name.startswith("."):
            (copy / entry.name).symlink_to(entry)
    return copy


@pytest.mark.parametrize(
    ("link", "complaint"),
    [
        ("[gone](no-such-page.md)", "no-such-page.md"),
        ("[gone](api.md#no-such-section)", "no-such-section"),
        ("[gone](../bench/results/no-such.json)", "no-such.json"),
    ],
    ids=["page", "anchor", "repository-file"],
)
def test_a_broken_internal_link_fails_the_build(docs_copy: Path, tmp_path: Path, link: str, complaint: str) -> None:
    assert build(docs_copy, tmp_path / "intact").returncode == 0  # the copy itself builds
    page = docs_copy / "docs" / "configuration.md"
    page.write_text(page.read_text() + f"\nSee {link}.\n")
    result = build(docs_copy, tmp_path / "broken")
    assert result.returncode != 0
    assert complaint in result.stderr


def test_the_module_map_is_complete_and_current() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    packages = "|".join(PACKAGES)
    named = set(re.findall(rf"`((?:{packages})/[\w/]+\.py)`", text))
    present = {
        path.relative_to(REPO).as_posix()
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if path.name != "__init__.py" or path.parent.name == "routes"
    }
    assert sorted(present - named) == [], "modules missing from docs/architecture.md"
    assert sorted(named - present) == [], "docs/architecture.md names modules that do not exist"
