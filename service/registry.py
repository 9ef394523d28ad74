"""The model registry: reads the repository with ``onnx_export.manifest``, checks every sha256, opens
ONNX Runtime sessions, warms them up and looks models up by name.

A model is addressed as ``name`` (its highest version) or ``name/version``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onnx_export.manifest import Manifest, ManifestError, list_models, read_manifest
from service.config import Settings
from service.errors import BadRequest, UnknownModel
from service.runtime import CUDA, OnnxModel, ProviderPreference, wants_cuda

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """One model version: its manifest and its sessions (a predictor only for arbitrary models)."""

    manifest: Manifest
    transformer: OnnxModel
    predictor: OnnxModel | None
    warmup_s: float = 0.0
    statistics_form: OnnxModel | None = None  # the two forms for tiling (onnx_export/statistics.py)
    given_statistics_form: OnnxModel | None = None

    @property
    def can_tile(self) -> bool:
        return self.statistics_form is not None and self.given_statistics_form is not None

    @property
    def label(self) -> str:
        return self.manifest.label

    @property
    def kind(self) -> str:
        return self.manifest.kind

    @property
    def providers(self) -> list[str]:
        sessions = [self.transformer] + ([self.predictor] if self.predictor else [])
        return sorted({s.active_provider for s in sessions})

    def _input_name(self, role: str, index: int) -> str:
        return self.manifest.files[role].inputs[index].name

    def predict(self, style: np.ndarray) -> np.ndarray:
        """style images [N,3,S,S] in [0, 1] -> embeddings [N,E]."""
        if self.predictor is None:
            raise BadRequest(f"model {self.label} is an N-style model and has no style predictor")
        return self.predictor.run({self._input_name("predictor", 0): style})

    def transform(self, content: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        """content [N,3,H,W] (H, W already padded) and embeddings [N,E] -> stylised [N,3,H,W]."""
        return self.transformer.run(
            {self._input_name("transformer", 0): content, self._input_name("transformer", 1): embedding}
        )

    def statistics(self, content: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        """A thumbnail [N,3,h,w] (padded) and embeddings -> every conditioned layer's statistics [N,S]."""
        assert self.statistics_form is not None
        return self.statistics_form.run({"content_image": content, "embedding": embedding})

    def transform_given(self, content: np.ndarray, embedding: np.ndarray, statistics: np.ndarray) -> np.ndarray:
        """``transform`` of a tile, normalised with the given statistics instead of its own."""
        assert self.given_statistics_form is not None
        return self.given_statistics_form.run(
            {"content_image": content, "embedding": embedding, "statistics": statistics}
        )

    def warm_up(self) -> None:
        started = time.perf_counter()
        m = self.manifest
        side = -(-max(m.min_side, 64) // m.size_multiple) * m.size_multiple
        self.transform(
            np.zeros((1, 3, side, side), np.float32), np.full((1, m.embedding_size), 1.0 / m.embedding_size, np.float32)
        )
        if self.predictor is not None and m.style_size:
            self.predict(np.zeros((1, 3, m.style_size, m.style_size), np.float32))
        if self.can_tile:
            image = np.zeros((1, 3, side, side), np.float32)
            vector = np.full((1, m.embedding_size), 1.0 / m.embedding_size, np.float32)
            self.transform_given(image, vector, self.statistics(image, vector))
        self.warmup_s = time.perf_counter() - started


def load_model(
    folder: Path, preference: ProviderPreference, intra_op_threads: int, large_pixels: int = 0
) -> LoadedModel:
    manifest = read_manifest(folder, verify_files=True)
    # Only the transformer's input grows with the request; the predictor's is the style size.
    transformer = OnnxModel(folder / manifest.files["transformer"].path, preference, intra_op_threads, large_pixels)
    predictor = None
    if "predictor" in manifest.files:
        predictor = OnnxModel(folder / manifest.files["predictor"].path, preference, intra_op_threads)
    forms = [
        OnnxModel(folder / manifest.files[form].path, preference, intra_op_threads, large_pixels)
        if form in manifest.forms
        else None
        for form in ("statistics", "given_statistics")
    ]
    model = LoadedModel(manifest, transformer, predictor, 0.0, *forms)
    model.warm_up()
    return model


@dataclass
class ModelRegistry:
    """Every loadable model version in the repository, by name and version."""

    models: dict[str, dict[int, LoadedModel]]
    default_model: str
    presets_model: str
    preference: ProviderPreference
    failures: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, settings: Settings) -> ModelRegistry:
        repository = settings.model_dir
        found = list_models(repository)
        if not found:
            raise ManifestError(f"no models in {repository}: run `make models` or set ATELIER_MODEL_DIR")
        models: dict[str, dict[int, LoadedModel]] = {}
        failures: dict[str, str] = {}
        preference = settings.providers
        for name, versions in found.items():
            for version in versions:
                folder = repository / name / str(version)
                try:
                    model = load_model(folder, preference, settings.ort_intra_op_threads, settings.arena_max_pixels)
                except ManifestError as exc:
                    failures[f"{name}/{version}"] = str(exc)
                    log.error("model %s/%s refused: %s", name, version, exc)
                    continue
                if preference == "auto" and wants_cuda("auto") and CUDA not in model.providers:
                    # ONNX Runtime lists CUDA but could not load it (no driver or libraries): say so
                    # once and open the remaining sessions on the CPU instead of failing again.
                    log.warning("CUDA is offered by ONNX Runtime but not usable here; running on the CPU")
                    preference = "cpu"
                models.setdefault(name, {})[version] = model
                log.info(
                    "model %s loaded",
                    model.label,
                    extra={"kind": model.kind, "providers": model.providers, "warmup_s": round(model.warmup_s, 3)},
                )
        registry = cls(models, settings.default_model, settings.presets_model, settings.providers, failures)
        registry.get(settings.default_model)  # the default must be there: fail start-up otherwise
        return registry

    def get(self, reference: str | None) -> LoadedModel:
        """``None`` (the default model), ``name`` (its highest version) or ``name/version``."""
        reference = reference or self.default_model
        name, _, version_text = reference.partition("/")
        versions = self.models.get(name)
        if not versions:
            raise UnknownModel(f"no model named {name!r}; available: {', '.join(sorted(self.models)) or 'none'}")
        if not version_text:
            return versions[max(versions)]
        if not (version_text.isascii() and version_text.isdigit()) or int(version_text) not in versions:
            raise UnknownModel(f"model {name!r} has no version {version_text!r}; available: {sorted(versions)}")
        return versions[int(version_text)]

    def all(self) -> list[LoadedModel]:
        return [model for versions in self.models.values() for model in versions.values()]

    @property
    def on_gpu(self) -> bool:
        """Every model runs on CUDA."""
        return all(CUDA in m.providers for m in self.all())

    def provider_problem(self) -> str | None:
        """Why the requested execution provider is not the active one, or None when it is."""
        if self.preference != "cuda":
            return None
        wrong = [f"{m.label} on {'+'.join(m.providers)}" for m in self.all() if CUDA not in m.providers]
        if wrong:
            return f"CUDA was requested but ONNX Runtime runs {', '.join(wrong)}"
        return None
