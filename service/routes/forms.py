"""Form fields that POST /v1/stylize and POST /v1/stylize/batch share: one definition, one schema.

``StylizeOptionsDep`` reads them for both routes. FastAPI lists a dependency's form fields after the
route's own, so the routes' documented field order is content, the style sources, then these.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form

from service.brush import MAX_STROKE_SCALE, MIN_STROKE_SCALE
from service.imaging import OutputFormat
from service.stylist import StylizeOptions

BlendStyles = Annotated[
    str | None, Form(max_length=4096, description="comma list of style ids or preset:<index|name> to blend")
]
BlendWeights = Annotated[
    str | None, Form(max_length=1024, description="comma list of non-negative blend weights, one per style")
]
Strength = Annotated[float, Form(ge=0.0, le=1.0, allow_inf_nan=False, description="0 = content, 1 = style")]
PreserveColor = Annotated[bool, Form(description="keep the content's colours")]
MaxSide = Annotated[int | None, Form(ge=1, description="longest side of the output, in pixels")]
Format = Annotated[OutputFormat, Form(description="output image format")]
Quality = Annotated[int, Form(ge=1, le=100, description="JPEG/WebP quality")]
StrokeScale = Annotated[
    float | None,
    Form(
        ge=MIN_STROKE_SCALE,
        le=MAX_STROKE_SCALE,
        allow_inf_nan=False,
        description="brush size: 1 = the network's native strokes, 2 = strokes twice as big; default: "
        "output long side / ATELIER_BRUSH_SIDE, at least 1 (the scale that ran is in X-Stroke-Scale)",
    ),
]
ModelName = Annotated[str | None, Form(max_length=128, description="model name or name/version")]


def stylize_options(
    styles: BlendStyles = None,
    weights: BlendWeights = None,
    strength: Strength = 1.0,
    preserve_color: PreserveColor = False,
    max_side: MaxSide = None,
    format: Format = "png",
    quality: Quality = 90,
    model: ModelName = None,
    stroke_scale: StrokeScale = None,
) -> StylizeOptions:
    return StylizeOptions(styles, weights, strength, preserve_color, max_side, format, quality, model, stroke_scale)


StylizeOptionsDep = Annotated[StylizeOptions, Depends(stylize_options)]
