"""The brush size: which ``stroke_scale`` a request runs at, and the sizes it implies.

``stroke_scale`` s stylises the photo at ``output / s`` (service/upsampling.py brings it back up):
1 is the network's native stroke size in output pixels, 2 strokes twice as big. The network's
receptive field is fixed in pixels, so at a fixed s the strokes shrink relative to the picture as the
output grows. The default keeps them at the size they have when the network runs at ``brush_side``
pixels on the long side (``ATELIER_BRUSH_SIDE``): s = output long side / brush_side, never below 1
(no default asks for finer strokes than the native ones) nor above ``MAX_STROKE_SCALE``. docs/brush.md
has the measurements behind the default.
"""

from __future__ import annotations

import math

MIN_STROKE_SCALE = 0.5
MAX_STROKE_SCALE = 8.0


def default_stroke_scale(long_side: int, brush_side: int) -> float:
    """max(1, long_side / brush_side), capped, rounded to 2 decimals (what X-Stroke-Scale reports)."""
    return round(min(MAX_STROKE_SCALE, max(1.0, long_side / brush_side)), 2)


def network_size(width: int, height: int, stroke_scale: float) -> tuple[int, int]:
    """The size the network stylises at for an output of (width, height)."""
    return max(1, round(width / stroke_scale)), max(1, round(height / stroke_scale))


def network_long_side(long_side: int, stroke_scale: float) -> int:
    return max(1, math.floor(long_side / stroke_scale + 0.5))
