"""The README's service section: its curl examples run as written against a live server, and every
setting is documented."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from PIL import Image

from service.config import Settings
from tests.helpers.server import LiveServer

REPO = Path(__file__).resolve().parents[2]
HEADING = "## The HTTP API"


def service_section() -> str:
    """The section in README.md once merged there, else the draft in service/README_SECTION.md."""
    for path in (REPO / "README.md", REPO / "service" / "README_SECTION.md"):
        text = path.read_text() if path.is_file() else ""
        if HEADING in text:
            section = text[text.index(HEADING) :]
            following = re.search(r"\n## ", section[len(HEADING) :])
            return section[: len(HEADING) + following.start()] if following else section
    raise AssertionError(f"no {HEADING!r} section in README.md or service/README_SECTION.md")


def test_curl_examples_run_as_written(server: LiveServer, image_dir: Path, tmp_path: Path) -> None:
    blocks = re.findall(r"```bash\n(.*?)```", service_section(), flags=re.S)
    assert blocks, "no bash examples"
    script = "\n".join(blocks)
    default_url = "ATELIER=http://127.0.0.1:8000\n"
    assert default_url in script
    script = script.replace(default_url, f"ATELIER={server.url}\n")  # the only change: the test server's port
    # The examples read ../shared/data/images relative to the repository root: mirror that layout.
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "images").symlink_to(image_dir)
    workdir = tmp_path / "repo"
    workdir.mkdir()
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=workdir, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    expected = {
        "out.png": "PNG",
        "half.jpg": "JPEG",
        "by-id.png": "PNG",
        "blend.png": "PNG",
        "preset.webp": "WEBP",
        "presets.png": "PNG",
    }
    for name, fmt in expected.items():
        with Image.open(workdir / name) as image:
            assert image.format == fmt, name
    with Image.open(workdir / "half.jpg") as image:
        assert max(image.size) == 512
    assert "x-model: presets-26/1" in result.stdout.lower()
    assert "urn:atelier:problem:unknown-style" in result.stdout
    assert '"status":"ready"' in result.stdout
    assert "atelier_embedding_cache_hits_total" in result.stdout


def test_every_setting_is_documented() -> None:
    section = service_section()
    for name in Settings.model_fields:
        assert f"ATELIER_{name.upper()}" in section, name
