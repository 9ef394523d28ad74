"""Write one model version into the repository: models/<name>/<version>/.

Files are exported and checked in a temporary sibling folder that is renamed into place
only once parity passed and the manifest is written, so the service never sees a
half-built version.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from onnx_export import export, parity, statistics
from onnx_export.manifest import Manifest, ModelFile, Preset, Provenance, file_sha256, write_manifest
from training.checkpoint import StyleModel

log = logging.getLogger(__name__)


class VersionExistsError(Exception):
    """Raised when the target version folder exists and replacing it was not asked for."""


def build_manifest(
    model: StyleModel,
    name: str,
    version: int,
    folder: Path,
    files: dict[str, tuple[list, list]],
    parity_report: dict[str, float],
) -> Manifest:
    entries = {
        role: ModelFile(path=f"{role}.onnx", sha256=file_sha256(folder / f"{role}.onnx"), inputs=io[0], outputs=io[1])
        for role, io in files.items()
    }
    architecture: dict[str, object] = {"transformer": model.transformer.config.to_dict()}
    if model.predictor is not None:
        architecture["predictor"] = model.predictor.config.to_dict()
    return Manifest(
        name=name,
        version=version,
        kind=model.kind,
        embedding_size=model.transformer.config.embedding_size,
        style_size=model.predictor.config.style_size if model.predictor is not None else None,
        size_multiple=export.SIZE_MULTIPLE,
        opset=export.OPSET,
        ir_version=export.IR_VERSION,
        graph_form=export.GRAPH_FORM,
        forms=[f for f in export.FORMS if f == "whole" or f in files],
        files=entries,
        presets=[Preset(index=i, name=n) for i, n in enumerate(model.presets)],
        provenance=Provenance(**model.provenance),
        architecture=architecture,
        parity=parity_report,
    )


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_model(
    model: StyleModel,
    repository: Path,
    name: str,
    version: int,
    replace: bool = False,
    cases: tuple[parity.Case, ...] = parity.EXPORT_CASES,
) -> Manifest:
    """Export, check parity, write the manifest and move the folder into place."""
    target = repository / name / str(version)
    if target.exists() and not replace:
        raise VersionExistsError(f"{target} exists; choose another version or pass --replace")
    target.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".building-{version}-") as tmp:
        folder = Path(tmp)
        files = {"transformer": export.export_transformer(model.transformer, folder / "transformer.onnx")}
        report = parity.check_transformer(model, folder / "transformer.onnx", cases)
        files |= statistics.export_statistics_forms(model.transformer, folder)
        report |= statistics.check_statistics(model, folder)
        if model.predictor is not None:
            files["predictor"] = export.export_predictor(model.predictor, folder / "predictor.onnx")
            report |= parity.check_predictor(model, folder / "predictor.onnx")
        manifest = build_manifest(model, name, version, folder, files, report)
        write_manifest(folder, manifest)
        if target.exists():
            shutil.rmtree(target)
        # mkdtemp made the folder 0700; once in place it gets a plain mkdir's mode, so a service
        # running as another user (the image's non-root user, built as root) can read it.
        folder.chmod(0o777 & ~_current_umask())
        folder.rename(target)
        folder.mkdir()  # TemporaryDirectory cleans up the (now empty) path it created
    log.info("wrote %s (max parity diff %.2g)", target, max(report.values()))
    return manifest
