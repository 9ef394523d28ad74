"""examples/live_client.py, run as a user would, streams a Y4M clip through /v1/live of a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.helpers.server import REPO, LiveServer
from tests.web.fake_camera import y4m_clip

CLIENT = REPO / "examples" / "live_client.py"


def test_the_example_client_streams_a_clip(server: LiveServer, image_dir: Path, tmp_path: Path) -> None:
    clip = y4m_clip(image_dir / "content" / "golden_gate_sq.jpg", tmp_path / "clip.y4m", (640, 480), frames=12)
    out = tmp_path / "painted"
    url = server.url.replace("http://", "ws://") + "/v1/live"
    command = [sys.executable, str(CLIENT), str(clip), "--url", url, "--preset", "style-03", "--fps", "30"]
    done = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["sent"] == 12 and summary["errors"] == 0, summary
    assert summary["style"] == "preset:style-03"
    painted = sorted(out.glob("*.jpg"))
    assert len(painted) == summary["painted"] >= 1
    assert painted[-1].name == "000011.jpg", "the last frame sent is never dropped"
    assert summary["painted"] + summary["dropped"] == 12, summary
    assert summary["painted_fps"] > 0 and summary["latency_ms_median"] > 0
    with Image.open(painted[-1]) as image:
        assert (image.format, image.size) == ("JPEG", (320, 240))


def test_the_example_client_reports_a_refused_style(server: LiveServer, image_dir: Path, tmp_path: Path) -> None:
    clip = y4m_clip(image_dir / "content" / "tubingen.jpg", tmp_path / "clip.y4m", (320, 240), frames=2)
    url = server.url.replace("http://", "ws://") + "/v1/live"
    command = [sys.executable, str(CLIENT), str(clip), "--url", url, "--preset", "no-such-preset"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and "refused the settings" in done.stderr, done.stderr
