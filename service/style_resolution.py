"""Style resolution: the style fields of a stylize request to a model and a ``StyleSpec``.

``resolve_style`` turns the style fields (``style`` file, ``style_id``, ``preset`` or a ``styles``
blend) into a model and a ``StyleSpec``; it is cheap and runs on the event loop.

Rules:
- exactly one of ``style``, ``style_id``, ``preset``, ``styles`` (400 otherwise);
- ``style`` and ``style_id`` need an arbitrary model; a ``style_id`` defaults to the model it was
  registered with, and naming another model is a 400;
- presets are rows of an N-style model: ``model`` defaults to the presets model for them, and
  naming an arbitrary model is a 400;
- ``styles`` blends registered ids, or presets written ``preset:<index|name>``, never both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service import limits
from service.embeddings import MAX_BLEND, blend, one_hot, parse_weights, preset_index
from service.errors import BadRequest, CorruptStyle, InvalidField, UnknownStyle
from service.registry import LoadedModel, ModelRegistry
from service.styles import StyleRecord, StyleStore

PRESET_PREFIX = "preset:"


@dataclass(frozen=True)
class StyleSpec:
    """What to stylise with: a known embedding, or style image bytes for the predictor."""

    reference: str  # for the X-Style-Id header
    embedding: np.ndarray | None = None
    image: bytes | None = None


@dataclass(frozen=True)
class StyleFields:
    style: bytes | None
    style_id: str | None
    preset: str | None
    styles: str | None
    weights: str | None
    model: str | None


def require_kind(model: LoadedModel, kind: str, why: str) -> LoadedModel:
    if model.kind != kind:
        raise BadRequest(f"{why} needs a model of kind {kind!r}; {model.label} is {model.kind!r}")
    return model


def resolve_style(
    fields: StyleFields, registry: ModelRegistry, store: StyleStore, owner: str
) -> tuple[LoadedModel, StyleSpec]:
    limits.check_style_fields(vars(fields))
    given = [name for name in ("style", "style_id", "preset", "styles") if getattr(fields, name) is not None]
    if len(given) != 1:
        raise BadRequest(
            "give exactly one of `style` (image file), `style_id`, `preset` or `styles` (a blend); got "
            + (", ".join(given) or "none")
        )
    if fields.weights is not None and fields.styles is None:
        raise BadRequest("`weights` goes with `styles`")
    if fields.style is not None:
        model = require_kind(registry.get(fields.model), "arbitrary", "a style image")
        return model, StyleSpec(reference="", image=fields.style)
    if fields.style_id is not None:
        record = lookup_style(store, owner, fields.style_id.strip())
        model = _model_for_styles(registry, fields.model, [record.model])
        return model, StyleSpec(reference=record.id, embedding=_stored_embedding(record, model))
    if fields.preset is not None:
        model = _presets_model(registry, fields.model)
        index = preset_index(model, fields.preset)
        return model, StyleSpec(
            reference=f"{PRESET_PREFIX}{_preset_name(model, index)}", embedding=one_hot(index, _size(model))
        )
    assert fields.styles is not None
    return _resolve_blend(fields.styles, fields.weights, fields.model, registry, store, owner)


def _resolve_blend(
    styles: str, weights_text: str | None, model_ref: str | None, registry: ModelRegistry, store: StyleStore, owner: str
) -> tuple[LoadedModel, StyleSpec]:
    items = [item.strip() for item in styles.split(",")]
    if not all(items) or not 1 <= len(items) <= MAX_BLEND:
        raise InvalidField(f"`styles` must be 1 to {MAX_BLEND} comma-separated style ids or preset:<index|name> items")
    presets = [item.startswith(PRESET_PREFIX) for item in items]
    if any(presets) and not all(presets):
        raise BadRequest("a blend mixes registered styles and presets; they live in different models")
    weights = parse_weights(weights_text, len(items))
    if all(presets):
        model = _presets_model(registry, model_ref)
        indices = [preset_index(model, item[len(PRESET_PREFIX) :]) for item in items]
        rows = [one_hot(i, _size(model)) for i in indices]
        names = [f"{PRESET_PREFIX}{_preset_name(model, i)}" for i in indices]
        return model, StyleSpec(reference=",".join(names), embedding=blend(rows, weights))
    records = [lookup_style(store, owner, item) for item in items]
    model = _model_for_styles(registry, model_ref, [r.model for r in records])
    vectors = [_stored_embedding(r, model) for r in records]
    return model, StyleSpec(reference=",".join(r.id for r in records), embedding=blend(vectors, weights))


def lookup_style(store: StyleStore, owner: str, style_id: str) -> StyleRecord:
    """A registered style visible to ``owner``; ``UnknownStyle`` (404) when there is none."""
    record = store.get(owner, style_id)
    if record is None:
        raise UnknownStyle(f"no registered style {style_id[:80]!r}; register one with POST /v1/styles")
    return record


def _stored_embedding(record: StyleRecord, model: LoadedModel) -> np.ndarray:
    """A stored record's embedding, refused when it does not fit the model (it would fail in ONNX Runtime)."""
    size = model.manifest.embedding_size
    if len(record.embedding) != size:
        raise CorruptStyle(
            f"the stored style {record.id[:80]!r} has {len(record.embedding)} values; {model.label} takes "
            f"{size}; register its image again"
        )
    return np.asarray(record.embedding, np.float32)


def _model_for_styles(registry: ModelRegistry, model_ref: str | None, labels: list[str]) -> LoadedModel:
    if len(set(labels)) > 1:
        raise BadRequest(f"the styles belong to different models ({', '.join(sorted(set(labels)))})")
    model = registry.get(model_ref or labels[0])
    if model.label != labels[0]:
        raise BadRequest(f"the style was registered with model {labels[0]}, not {model.label}")
    return require_kind(model, "arbitrary", "a registered style")


def _presets_model(registry: ModelRegistry, model_ref: str | None) -> LoadedModel:
    return require_kind(registry.get(model_ref or registry.presets_model), "nstyle", "a preset")


def _preset_name(model: LoadedModel, index: int) -> str:
    names = {p.index: p.name for p in model.manifest.presets}
    return names.get(index, str(index))


def _size(model: LoadedModel) -> int:
    return model.manifest.embedding_size
