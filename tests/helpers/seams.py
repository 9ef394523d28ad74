"""The seam metric of tiled output (tests/service/test_brush.py, bench/brush.py)."""

from __future__ import annotations

import numpy as np

from service import tiling


def seam_ratio(image: np.ndarray, plan: tiling.TilePlan) -> float:
    """Mean absolute gradient across the tile boundaries over the mean elsewhere, the larger of the two axes.

    A boundary is where one tile hands over to the next: the first, middle and last line of the blend
    between two neighbours (where a mismatch would show as a step)."""
    ratios = []
    for axis, spans in ((0, plan.rows), (1, plan.columns)):
        if len(spans) < 2:
            continue
        grad = np.abs(np.diff(image, axis=axis)).mean(axis=tuple(a for a in (0, 1, 2) if a != axis))
        lines = np.zeros(len(grad), bool)
        for i in range(len(spans) - 1):
            fading = np.flatnonzero((tiling.weights(spans, i) > 0) & (tiling.weights(spans, i) < 1)) + spans[i].start
            lines[[fading[0] - 1, (fading[0] + fading[-1]) // 2, fading[-1]]] = True
        ratios.append(grad[lines].mean() / grad[~lines].mean())
    return float(max(ratios))
