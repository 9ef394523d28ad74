"""Batch planning and running: the items of POST /v1/stylize/batch, each to a result or its own error."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

from service.deps import Services
from service.errors import AtelierError, BadRequest
from service.registry import LoadedModel
from service.style_resolution import StyleFields, StyleSpec
from service.stylist import StylizeJob, StylizeResult
from service.workers import within_deadline


@dataclass(frozen=True)
class Planned:
    """One item before it runs: its job, or the error that already stopped it."""

    job: StylizeJob | None
    error: AtelierError | None = None


Outcome = StylizeResult | AtelierError


def _style_sources(
    count: int,
    style: list[bytes] | None,
    style_id: list[str] | None,
    preset: list[str] | None,
    styles: str | None,
    weights: str | None,
    model: str | None,
) -> list[StyleFields]:
    """The style fields of each item: one source for all items, or one per item (pairs)."""
    given = {name: values for name, values in (("style", style), ("style_id", style_id), ("preset", preset)) if values}
    for name, values in given.items():
        if len(values) not in (1, count):
            raise BadRequest(f"{len(values)} `{name}` values for {count} content images; give one, or one per image")
    if len(given) + (styles is not None) != 1:
        named = [*given, *(["styles"] if styles is not None else [])]
        raise BadRequest(
            "give exactly one style source, `style`, `style_id`, `preset` or `styles`, once or once per image; "
            f"got {', '.join(named) or 'none'}"
        )

    def pick(values: list[Any] | None, index: int) -> Any:
        if not values:
            return None
        return values[0] if len(values) == 1 else values[index]

    return [
        StyleFields(pick(style, i), pick(style_id, i), pick(preset, i), styles, weights, model) for i in range(count)
    ]


async def _plan_and_run(
    services: Services, owner: str, template: StylizeJob, contents: list[bytes], sources: list[StyleFields]
) -> list[Outcome]:
    plans = await _plan(services, owner, template, contents, sources)
    return await _run_all(services, plans)


async def _plan(
    services: Services, owner: str, template: StylizeJob, contents: list[bytes], sources: list[StyleFields]
) -> list[Planned]:
    """Resolve each item's style. A style shared by every item is resolved (and embedded) once, and its
    errors fail the request; a per-item style's errors fail only its item."""
    shared = all(source == sources[0] for source in sources)
    if shared:
        chosen, spec = await _resolve(services, owner, sources[0])
        return [Planned(replace(template, model=chosen, content=data, style=spec)) for data in contents]
    plans = []
    for data, source in zip(contents, sources, strict=True):
        try:
            chosen, spec = await services.resolve(source, owner)
        except AtelierError as exc:
            plans.append(Planned(None, exc))
            continue
        plans.append(Planned(replace(template, model=chosen, content=data, style=spec)))
    return plans


async def _resolve(services: Services, owner: str, source: StyleFields) -> tuple[LoadedModel, StyleSpec]:
    chosen, spec = await services.resolve(source, owner)
    if spec.image is None:
        return chosen, spec
    reference, embedding = await services.stylist.style_embedding(chosen, spec.image)
    return chosen, StyleSpec(reference=reference, embedding=embedding)


async def _run_all(services: Services, plans: list[Planned]) -> list[Outcome]:
    async def one(plan: Planned) -> Outcome:
        if plan.job is None:
            assert plan.error is not None
            return plan.error
        try:
            work = services.stylist.run(plan.job)
            return await within_deadline(work, services.settings.request_timeout_s, services.metrics)
        except AtelierError as exc:
            return exc

    return list(await asyncio.gather(*(one(plan) for plan in plans)))
