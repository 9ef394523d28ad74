"""What the local model repository holds, from the manifests alone (no ONNX Runtime session opens)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atelier.errors import InputError
from onnx_export.manifest import ManifestError, list_models, read_manifest
from service.config import Settings


def installed_models(model_dir: Path | None = None) -> list[dict[str, Any]]:
    """One row per model version: kind, sizes, presets, provenance, parity, and whether its files'
    sha256 match (a refused version says why)."""
    settings = Settings(model_dir=model_dir) if model_dir is not None else Settings()
    repository = settings.model_dir
    if not repository.is_dir():
        raise InputError(f"no model repository at {str(repository)!r}: run `make models` or set ATELIER_MODEL_DIR")
    rows: list[dict[str, Any]] = []
    for name, versions in list_models(repository).items():
        for version in versions:
            folder = repository / name / str(version)
            try:
                manifest = read_manifest(folder, verify_files=True)
            except ManifestError as exc:
                rows.append({"name": name, "version": version, "path": str(folder), "error": str(exc)})
                continue
            rows.append(
                {
                    "name": manifest.name,
                    "version": manifest.version,
                    "path": str(folder),
                    "kind": manifest.kind,
                    "embedding_size": manifest.embedding_size,
                    "style_size": manifest.style_size,
                    "presets": [p.name for p in manifest.presets],
                    "default": name in (settings.default_model, settings.presets_model),
                    "provenance": manifest.provenance.model_dump(mode="json"),
                    "parity": manifest.parity,
                    "files": {role: {"path": f.path, "sha256": f.sha256} for role, f in manifest.files.items()},
                    "verified": True,
                }
            )
    return rows
