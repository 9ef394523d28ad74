"""Short-term temporal consistency for stylised video, and the warping error that measures it.

The method follows the short-term constraint of Ruder, Dosovitskiy and Brox 2016 ("Artistic style
transfer for videos"), applied to a feed-forward network as a blend: the previous stylised frame is
warped to the current one by the optical flow between the *content* frames, and blended into the new
stylised frame where that flow is reliable,

    out_t = s_t + w * c_t * (G * warp(out_{t-1}) - G * s_t)

with ``G *`` a Gaussian blur of ``DETAIL_SIGMA`` pixels (the blend acts on the coarse band; each
frame keeps its own finest texture, which a full blend washes out), ``w`` the ``consistency``
option and ``c_t`` the reliability mask of Ruder et al.: the forward-backward check (the backward
flow and the forward flow at its target must cancel out,
|b + f(x+b)|^2 <= 0.01 (|b|^2 + |f(x+b)|^2) + 0.5) and, to drop cuts and disocclusions that the
flow check misses, a photometric check on the warped content. The flow is OpenCV's DIS flow
(Kroeger et al. 2016), computed on grey frames scaled to at most ``FLOW_SIDE`` pixels on the
longest side.

The measure is the warping error of Lai et al. 2018 ("Learning Blind Video Temporal Consistency"):
the mean over frames of the squared colour difference between each output frame and the previous
output frame warped to it, over the pixels the mask marks valid (``warping_error``).
"""

from __future__ import annotations

import numpy as np

try:
    import cv2
except ImportError:  # the optional `video` extra is absent; video_io.require_video_support answers 501 first
    cv2 = None

FLOW_SIDE = 480  # longest side of the frames the flow is computed on
PHOTOMETRIC_LIMIT = 24.0  # grey levels (0..255) between a content frame and the previous one warped to it
MAX_WEIGHT = 0.95  # 1 would freeze the first frame wherever the flow holds
DETAIL_SIGMA = 1.0  # px: the Gaussian that splits a frame into the blended coarse band and its own detail


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs, ys


def warp(image: np.ndarray, flow: np.ndarray, grid: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Sample ``image`` at x + flow(x): with ``flow`` the backward flow (current -> previous), the
    previous frame moved to the current one. Bilinear; out-of-frame samples repeat the border."""
    height, width = flow.shape[:2]
    xs, ys = grid if grid is not None else _grid(height, width)
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def inside(flow: np.ndarray, grid: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Where x + flow(x) falls inside the frame."""
    height, width = flow.shape[:2]
    xs, ys = grid if grid is not None else _grid(height, width)
    tx, ty = xs + flow[..., 0], ys + flow[..., 1]
    return (tx >= 0) & (tx <= width - 1) & (ty >= 0) & (ty <= height - 1)


class TemporalBlender:
    """Per clip state: the previous content frame (grey, at the flow's scale) and the previous output."""

    def __init__(self, weight: float) -> None:
        self.weight = float(min(max(weight, 0.0), MAX_WEIGHT))
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._prev_grey: np.ndarray | None = None
        self._prev_out: np.ndarray | None = None
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _grid(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        key = (height, width)
        if key not in self._grids:
            self._grids[key] = _grid(height, width)
        return self._grids[key]

    def __call__(self, content: np.ndarray, stylised: np.ndarray) -> np.ndarray:
        """content uint8 HxWx3, stylised float32 HxWx3 in [0, 1] -> the blended frame (float32)."""
        if self.weight <= 0.0:
            return stylised
        height, width = content.shape[:2]
        scale = min(1.0, FLOW_SIDE / max(height, width))
        small = (max(8, round(width * scale)), max(8, round(height * scale)))
        grey = cv2.cvtColor(content, cv2.COLOR_RGB2GRAY)
        if small != (width, height):
            grey = cv2.resize(grey, small, interpolation=cv2.INTER_AREA)
        prev_grey, prev_out = self._prev_grey, self._prev_out
        out = stylised
        if prev_grey is not None and prev_out is not None and prev_grey.shape == grey.shape:
            mask_small, back_small = self._reliable(grey, prev_grey)
            back = back_small
            if small != (width, height):
                back = cv2.resize(back_small, (width, height), interpolation=cv2.INTER_LINEAR)
                back[..., 0] *= width / small[0]
                back[..., 1] *= height / small[1]
                mask_small = cv2.resize(mask_small, (width, height), interpolation=cv2.INTER_LINEAR)
            grid = self._grid(height, width)
            warped = warp(prev_out, back, grid)
            mask = mask_small * inside(back, grid)
            alpha = (self.weight * mask)[..., None]
            # Only the coarse band is blended: averaging two frames' fine brush texture washes it out
            # (the style loss rose 80-100% at 0.6 with a full blend), and each frame keeps its own detail.
            # The blur is linear: G*warped - G*stylised is one blur of the difference.
            out = stylised + alpha * cv2.GaussianBlur(warped - stylised, (0, 0), DETAIL_SIGMA)
        self._prev_grey, self._prev_out = grey, out
        return out

    def _reliable(self, grey: np.ndarray, prev_grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The backward flow (current -> previous) and its soft reliability mask in [0, 1]."""
        back = self._dis.calc(grey, prev_grey, None)
        fwd = self._dis.calc(prev_grey, grey, None)
        grid = self._grid(*grey.shape)
        fwd_at = warp(fwd, back, grid)
        # Per component plane: numpy reduces over a trailing axis of 2 several times slower.
        bx, by = cv2.split(back)
        fx, fy = cv2.split(fwd_at)
        sx, sy = bx + fx, by + fy
        error = sx * sx + sy * sy
        bound = 0.01 * (bx * bx + by * by + fx * fx + fy * fy) + 0.5
        photometric = np.abs(warp(prev_grey, back, grid).astype(np.float32) - grey.astype(np.float32))
        mask = ((error <= bound) & (photometric <= PHOTOMETRIC_LIMIT)).astype(np.float32)
        # Soft edges: a hard mask prints its outline into the blended frame.
        return cv2.GaussianBlur(mask, (5, 5), 0), back


def warping_error(frames: list[np.ndarray], flows: list[np.ndarray], masks: list[np.ndarray]) -> float:
    """Lai et al. 2018's E_warp over a clip: ``frames`` [T] float HxWx3 in [0, 1]; ``flows[t-1]`` the
    backward flow of frame t (t -> t-1) and ``masks[t-1]`` its valid pixels (occlusions and the frame's
    edge excluded). The mean over t of sum(M ||V_t - warp(V_{t-1})||^2) / sum(M)."""
    errors = []
    for t in range(1, len(frames)):
        flow, mask = flows[t - 1], masks[t - 1].astype(np.float32) * inside(flows[t - 1])
        diff = ((frames[t] - warp(frames[t - 1], flow)) ** 2).sum(-1)
        errors.append(float((mask * diff).sum() / max(mask.sum(), 1.0)))
    return float(np.mean(errors)) if errors else 0.0
