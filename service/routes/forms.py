"""Form fields that POST /v1/stylize and POST /v1/stylize/batch share: one definition, one schema."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form

from service.imaging import OutputFormat

BlendStyles = Annotated[
    str | None, Form(max_length=4096, description="comma list of style ids or preset:<index|name> to blend")
]
BlendWeights = Annotated[
    str | None, Form(max_length=1024, description="comma list of non-negative blend weights, one per style")
]
Strength = Annotated[float, Form(ge=0.0, le=1.0, allow_inf_nan=False, description="0 = content, 1 = style")]
PreserveColor = Annotated[bool, Form(description="keep the content's colours")]
Format = Annotated[OutputFormat, Form(description="output image format")]
Quality = Annotated[int, Form(ge=1, le=100, description="JPEG/WebP quality")]
ModelName = Annotated[str | None, Form(max_length=128, description="model name or name/version")]
