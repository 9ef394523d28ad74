"""Batch planning and running: the items of POST /v1/stylize/batch, each to a result or its own error.

``style_sources`` gives each item its style fields: one source for all items, or one per item
(pairs). ``plan`` resolves them: a style shared by every item is resolved (and its embedding
predicted) once, and its errors fail the whole request; a per-item style's errors fail only its
item. ``run`` stylises the planned items concurrently, each under the deadline.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from service.errors import AtelierError, BadRequest
from service.registry import LoadedModel
from service.services import Services
from service.style_resolution import StyleFields, StyleSpec
from service.stylist import StylizeJob, StylizeOptions, StylizeResult
from service.workers import within_deadline


@dataclass(frozen=True)
class Planned:
    """One item before it runs: its job, or the error that already stopped it."""

    job: StylizeJob | None
    error: AtelierError | None = None


Outcome = StylizeResult | AtelierError


def style_sources(
    count: int,
    style: list[bytes] | None,
    style_id: list[str] | None,
    preset: list[str] | None,
    options: StylizeOptions,
) -> list[StyleFields]:
    """The style fields of each item: one source for all items, or one per item (pairs)."""
    given = {name: values for name, values in (("style", style), ("style_id", style_id), ("preset", preset)) if values}
    for name, values in given.items():
        if len(values) not in (1, count):
            raise BadRequest(f"{len(values)} `{name}` values for {count} content images; give one, or one per image")
    if len(given) + (options.styles is not None) != 1:
        named = [*given, *(["styles"] if options.styles is not None else [])]
        raise BadRequest(
            "give exactly one style source, `style`, `style_id`, `preset` or `styles`, once or once per image; "
            f"got {', '.join(named) or 'none'}"
        )

    def pick(values: list[Any] | None, index: int) -> Any:
        if not values:
            return None
        return values[0] if len(values) == 1 else values[index]

    return [options.style_fields(pick(style, i), pick(style_id, i), pick(preset, i)) for i in range(count)]


async def plan_and_run(
    services: Services, owner: str, options: StylizeOptions, contents: list[bytes], sources: list[StyleFields]
) -> list[Outcome]:
    return await run(services, await plan(services, owner, options, contents, sources))


async def plan(
    services: Services, owner: str, options: StylizeOptions, contents: list[bytes], sources: list[StyleFields]
) -> list[Planned]:
    """Resolve each item's style. A style shared by every item is resolved (and embedded) once, and its
    errors fail the request; a per-item style's errors fail only its item."""
    shared = all(source == sources[0] for source in sources)
    if shared:
        chosen, spec = await _resolve_shared(services, owner, sources[0])
        return [Planned(options.job(chosen, data, spec)) for data in contents]
    plans = []
    for data, source in zip(contents, sources, strict=True):
        try:
            chosen, spec = await services.resolve(source, owner)
        except AtelierError as exc:
            plans.append(Planned(None, exc))
            continue
        plans.append(Planned(options.job(chosen, data, spec)))
    return plans


async def _resolve_shared(services: Services, owner: str, source: StyleFields) -> tuple[LoadedModel, StyleSpec]:
    """A shared style image is embedded once here rather than once per item."""
    chosen, spec = await services.resolve(source, owner)
    if spec.image is None:
        return chosen, spec
    reference, embedding = await services.stylist.style_embedding(chosen, spec.image)
    return chosen, StyleSpec(reference=reference, embedding=embedding)


async def run(services: Services, plans: list[Planned]) -> list[Outcome]:
    """Every planned item, concurrently, each under the deadline; an item's error is its outcome."""

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
