"""The `atelier` command: the same pixels in process, with --server and over HTTP; folders, stdin/stdout,
--json, sheet, models, info; exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.helpers.cli import Run, pixels, run_cli
from tests.helpers.server import LiveServer


def one_error_line(run: Run) -> str:
    lines = run.stderr.strip().splitlines()
    assert run.code == 2, (run.code, run.stderr)
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert lines[0].startswith("atelier: error: ")
    return lines[0]


CASES = {
    "style-image": (
        ["--style", "{style}", "--strength", "0.7", "--preserve-color"],
        {"strength": "0.7", "preserve_color": "true"},
    ),
    "preset-blend": (
        ["--preset", "3:0.25,style-07:0.75"],
        {"styles": "preset:3,preset:style-07", "weights": "0.25,0.75"},
    ),
    "brush": (["--preset", "2", "--stroke-scale", "2"], {"preset": "2", "stroke_scale": "2"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_pixels_in_process_with_server_and_over_http(
    case: str, live: LiveServer, cli_env: dict[str, str], image_dir: Path, tmp_path: Path
) -> None:
    content = image_dir / "content" / "tubingen.jpg"
    style = image_dir / "style" / "the_scream.jpg"
    args, form = CASES[case]
    args = [a.format(style=style) for a in args] + ["--max-side", "320"]
    local = run_cli(["stylize", str(content), "-o", str(tmp_path / "local.png"), *args], cwd=tmp_path, env=cli_env)
    assert local.code == 0, local.stderr
    remote = run_cli(
        ["stylize", str(content), "-o", str(tmp_path / "remote.png"), "--server", live.url, *args],
        cwd=tmp_path,
        env=cli_env,
    )
    assert remote.code == 0, remote.stderr
    files = {"content": content.read_bytes()}
    if "--style" in args:
        files["style"] = style.read_bytes()
    answer = httpx.post(live.url + "/v1/stylize", data={**form, "max_side": "320"}, files=files, timeout=120)
    assert answer.status_code == 200, answer.text
    http = pixels(answer.content)
    for name in ("local.png", "remote.png"):
        image = pixels((tmp_path / name).read_bytes())
        assert image.shape == http.shape == (240, 320, 3)
        assert np.abs(image - http).max() <= 1, name


def test_folder_keeps_relative_paths_and_json_lines(cli_env: dict[str, str], image_dir: Path, tmp_path: Path) -> None:
    from tests.helpers.cli import small_images

    photos = tmp_path / "photos"
    sources = small_images(photos, 6)
    (photos / "notes.txt").write_text("not an image: skipped")
    out = tmp_path / "out"
    run = run_cli(
        ["stylize", str(photos), "-o", str(out), "--preset", "4", "--format", "jpeg", "--json"],
        cwd=tmp_path,
        env=cli_env,
    )
    assert run.code == 0, run.stderr
    records = [json.loads(line) for line in run.text.splitlines()]
    assert len(records) == 6
    written = sorted(p.relative_to(out) for p in out.rglob("*.jpg"))
    assert written == sorted(p.relative_to(photos).with_suffix(".jpg") for p in sources)
    for record in records:
        assert record["media_type"] == "image/jpeg" and record["style_id"] == "preset:style-04"
        assert Image.open(record["output"]).size == (record["width"], record["height"])
    # stderr is not a terminal here: no progress bar, only the summary line.
    assert "\r" not in run.stderr and run.stderr.strip().startswith("6 of 6 images in ")
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_progress_bar_on_a_terminal(cli_env: dict[str, str], tmp_path: Path) -> None:
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    from tests.helpers.cli import small_images

    small_images(tmp_path / "photos", 4)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 wide
    try:
        done = subprocess.run(
            [sys.executable, "-m", "atelier", "stylize", "photos", "-o", "out", "--preset", "2", "--json"],
            cwd=tmp_path,
            env={**os.environ, **cli_env},
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=300,
        )
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert done.returncode == 0, shown
    assert b"| 0/4 [" in shown and b"img/s]" in shown, shown  # tqdm's bar, on the terminal only
    assert len(done.stdout.decode().splitlines()) == 4


def test_stdin_to_stdout(cli_env: dict[str, str], image_dir: Path, tmp_path: Path) -> None:
    content = (image_dir / "content" / "golden_gate_sq.jpg").read_bytes()
    run = run_cli(
        ["stylize", "-", "--preset", "style-04", "--max-side", "96", "-o", "-"],
        cwd=tmp_path,
        env=cli_env,
        stdin=content,
    )
    assert run.code == 0, run.stderr
    assert run.stdout[:8] == b"\x89PNG\r\n\x1a\n"
    assert pixels(run.stdout).shape == (96, 96, 3)
    assert run.stderr == ""


def test_single_file_json_is_one_object(cli_env: dict[str, str], image_dir: Path, tmp_path: Path) -> None:
    content = image_dir / "content" / "eiffel_tower.jpg"
    run = run_cli(
        [
            "stylize",
            str(content),
            "--style",
            str(image_dir / "style" / "starry_night.jpg"),
            "--max-side",
            "128",
            "--json",
        ],
        cwd=tmp_path,
        env=cli_env,
    )
    assert run.code == 0, run.stderr
    record = json.loads(run.text)
    assert record["output"] == "eiffel_tower.stylized.png" and (tmp_path / record["output"]).is_file()
    assert record["model"] == "magenta-mobile/1" and len(record["style_id"]) == 64
    assert max(record["width"], record["height"]) == 128


def test_sheet_has_every_preset(cli_env: dict[str, str], image_dir: Path, tmp_path: Path) -> None:
    run = run_cli(
        [
            "sheet",
            str(image_dir / "content" / "golden_gate_sq.jpg"),
            "--tile",
            "64",
            "--columns",
            "9",
            "-o",
            "sheet.png",
            "--json",
        ],
        cwd=tmp_path,
        env=cli_env,
    )
    assert run.code == 0, run.stderr
    record = json.loads(run.text)
    assert record["presets"] == 26 and record["model"] == "presets-26/1"
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.size == (record["width"], record["height"])
    assert sheet.width >= 9 * 64 and sheet.height >= 3 * 64  # 27 tiles (the photo first) in 3 rows of 9
    # Every tile differs from its neighbour: 26 different presets were applied, not one 26 times.
    grid = np.asarray(sheet.convert("L"), dtype=np.float32)
    cell = sheet.width // 9
    rows = [grid[6 : 6 + 64, 6 + i * cell : 6 + i * cell + 64] for i in range(9)]
    assert all(np.abs(a - b).mean() > 2 for a, b in zip(rows, rows[1:], strict=False))


@pytest.mark.parametrize(
    "args, expected",
    [
        (["stylize", "{missing}", "--preset", "3"], "does not exist"),
        (["stylize", "{bad}", "--preset", "3"], "Unsupported or undecodable image"),
        (["stylize", "{good}", "--preset", "no-such-preset"], "Unknown preset"),
        (["stylize", "{good}", "--style", "{missing}"], "does not exist"),
        (["stylize", "{good}"], "give exactly one of --style, --style-id or --preset"),
        (["stylize", "{good}", "--preset", "3", "--strength", "2"], "--strength"),
        (["sheet", "{missing}"], "does not exist"),
        (["stylize", "{good}", "--preset", "3", "--model-dir", "{empty}"], "no models in"),
    ],
)
def test_input_errors_exit_2_with_one_line(
    args: list[str], expected: str, cli_env: dict[str, str], image_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "bad.jpg").write_text("this is not a JPEG")
    (tmp_path / "empty").mkdir()
    names = {
        "missing": str(tmp_path / "missing.jpg"),
        "bad": str(tmp_path / "bad.jpg"),
        "good": str(image_dir / "content" / "tubingen.jpg"),
        "empty": str(tmp_path / "empty"),
    }
    run = run_cli([a.format(**names) for a in args], cwd=tmp_path, env=cli_env)
    assert expected in one_error_line(run)
    assert not list(tmp_path.glob("*.stylized.*"))


def test_server_that_does_not_answer_exits_1(cli_env: dict[str, str], image_dir: Path, tmp_path: Path) -> None:
    run = run_cli(
        ["stylize", str(image_dir / "content" / "tubingen.jpg"), "--preset", "3", "--server", "http://127.0.0.1:9"],
        cwd=tmp_path,
        env=cli_env,
    )
    assert run.code == 1 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "no answer from http://127.0.0.1:9" in run.stderr


def test_models_show_provenance_and_parity(cli_env: dict[str, str], tmp_path: Path) -> None:
    run = run_cli(["models", "--json"], cwd=tmp_path, env=cli_env)
    assert run.code == 0, run.stderr
    rows = {row["name"]: row for row in map(json.loads, run.text.splitlines())}
    assert set(rows) >= {"magenta-mobile", "presets-26"}
    mobile = rows["magenta-mobile"]
    assert mobile["kind"] == "arbitrary" and mobile["verified"]
    assert "styletransfer" in mobile["provenance"]["source"] and mobile["provenance"]["licence"]
    assert mobile["parity"] and all(isinstance(v, float) for v in mobile["parity"].values())
    assert len(rows["presets-26"]["presets"]) == 26
    text = run_cli(["models"], cwd=tmp_path, env=cli_env)
    assert "parity vs PyTorch" in text.text and "magenta-mobile/1" in text.text


def test_models_over_http(live: LiveServer, cli_env: dict[str, str], tmp_path: Path) -> None:
    run = run_cli(["models", "--json", "--server", live.url], cwd=tmp_path, env=cli_env)
    assert run.code == 0, run.stderr
    assert {json.loads(line)["name"] for line in run.text.splitlines()} >= {"magenta-mobile", "presets-26"}


def test_info(cli_env: dict[str, str], tmp_path: Path) -> None:
    run = run_cli(["info", "--json"], cwd=tmp_path, env=cli_env)
    assert run.code == 0, run.stderr
    info = json.loads(run.text)
    assert "CPUExecutionProvider" in info["available_providers"]
    assert info["usable_cores"] >= 1 and info["onnxruntime"] and info["atelier"]
    assert "magenta-mobile/1" in info["models"]


def test_train_without_torch_prints_the_install_line(tmp_path: Path) -> None:
    """As on a service-only install: `import torch` fails (sys.modules None blocks it, as a missing package)."""
    import subprocess
    import sys

    code = "import sys; sys.modules['torch'] = None; from atelier.cli import main; sys.exit(main(sys.argv[1:]))"
    for command in ("train", "export"):
        done = subprocess.run(
            [sys.executable, "-c", code, command, "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == (
            f"atelier: error: `atelier {command}` needs PyTorch, the train extra: "
            "pip install 'atelier[train]'  (from a checkout: pip install -e '.[train]')"
        )


def test_help_shows_examples(tmp_path: Path) -> None:
    for command in ([], ["stylize"], ["sheet"], ["models"], ["info"], ["serve"]):
        run = run_cli([*command, "--help"], cwd=tmp_path)
        assert run.code == 0 and "  atelier " in run.text, command
    assert "video" in run_cli(["--help"], cwd=tmp_path).text
