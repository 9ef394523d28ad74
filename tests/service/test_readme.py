"""The curl examples of README.md and docs/api.md run as written against a live server, and
docs/configuration.md documents every setting."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from PIL import Image

from service.config import Settings
from tests.helpers.server import LiveServer

REPO = Path(__file__).resolve().parents[2]
DEFAULT_URL = "ATELIER=http://127.0.0.1:8000\n"


def section(text: str, heading: str) -> str:
    """From ``heading`` to the next heading of the same level."""
    assert heading in text, heading
    rest = text[text.index(heading) :]
    level = heading.split(" ")[0]
    following = re.search(rf"\n{level} ", rest[len(heading) :])
    return rest[: len(heading) + following.start()] if following else rest


def bash_blocks(text: str) -> str:
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    assert blocks, "no bash examples"
    return "\n".join(blocks)


def run_examples(script: str, server: LiveServer, image_dir: Path, tmp_path: Path) -> tuple[Path, str]:
    """The script as written, from a working folder laid out like the repository, against ``server``."""
    assert DEFAULT_URL in script
    script = script.replace(DEFAULT_URL, f"ATELIER={server.url}\n")  # the only change: the test server's port
    # The examples read ../shared/data/images relative to the repository root: mirror that layout.
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "images").symlink_to(image_dir)
    workdir = tmp_path / "repo"
    workdir.mkdir()
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=workdir, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return workdir, result.stdout


def assert_images(workdir: Path, expected: dict[str, str]) -> None:
    for name, fmt in expected.items():
        with Image.open(workdir / name) as image:
            assert image.format == fmt, name
    with Image.open(workdir / "half.jpg") as image:
        assert max(image.size) == 512


def test_readme_examples_run_as_written(server: LiveServer, image_dir: Path, tmp_path: Path) -> None:
    script = bash_blocks(section((REPO / "README.md").read_text(), "## Try the API"))
    workdir, stdout = run_examples(script, server, image_dir, tmp_path)
    assert_images(workdir, {"out.png": "PNG", "half.jpg": "JPEG", "preset.webp": "WEBP"})
    assert '"magenta-mobile"' in stdout and '"presets-26"' in stdout


def test_api_page_examples_run_as_written(server: LiveServer, image_dir: Path, tmp_path: Path) -> None:
    workdir, stdout = run_examples(bash_blocks((REPO / "docs" / "api.md").read_text()), server, image_dir, tmp_path)
    expected = {
        "out.png": "PNG",
        "half.jpg": "JPEG",
        "by-id.png": "PNG",
        "blend.png": "PNG",
        "preset.webp": "WEBP",
        "presets.png": "PNG",
    }
    assert_images(workdir, expected)
    assert "x-model: presets-26/1" in stdout.lower()
    assert "urn:atelier:problem:unknown-style" in stdout
    assert '"status":"ready"' in stdout
    assert "atelier_embedding_cache_hits_total" in stdout
    assert "x-items: 3" in stdout.lower()
    assert '{"items": [{"index": 0, "status": 200' in stdout  # the batch answer as JSON


def test_every_setting_is_documented() -> None:
    page = (REPO / "docs" / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"`ATELIER_{name.upper()}`" in page, name
