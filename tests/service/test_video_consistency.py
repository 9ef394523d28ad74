"""Temporal consistency without the network: flicker is modelled as fresh noise on every frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from service.consistency import TemporalBlender, warping_error
from service.video_synth import frames

SIZE = (192, 112)


def _flickering(clip: list, seed: int = 0) -> list[np.ndarray]:
    """'Stylised' frames: the content plus blotchy texture noise (a few pixels across, like brush
    strokes) that changes every frame: the shimmer."""
    rng = np.random.default_rng(seed)
    noisy = []
    for f in clip:
        noise = cv2.GaussianBlur(rng.normal(0, 1.0, f.rgb.shape).astype(np.float32), (0, 0), 2.0)
        noisy.append(np.clip(f.rgb.astype(np.float32) / 255.0 + noise, 0, 1))
    return noisy


def test_the_true_flow_aligns_the_synthetic_clips(image_dir: Path) -> None:
    photo, cutout = image_dir / "content" / "tubingen.jpg", image_dir / "content" / "eiffel_tower.jpg"
    for kind in ("pan", "zoom", "rotate_zoom", "cutout"):
        clip = list(frames(photo, kind, 8, SIZE, cutout))
        rgb = [f.rgb.astype(np.float32) / 255.0 for f in clip]
        aligned = warping_error(rgb, [f.flow for f in clip[1:]], [f.valid for f in clip[1:]])
        zero = [np.zeros_like(f.flow) for f in clip[1:]]
        unaligned = warping_error(rgb, zero, [np.ones(f.valid.shape, bool) for f in clip[1:]])
        assert aligned < 0.25 * unaligned, (kind, aligned, unaligned)


def test_the_blend_cuts_the_warping_error_of_flicker(image_dir: Path) -> None:
    photo, cutout = image_dir / "content" / "tubingen.jpg", image_dir / "content" / "eiffel_tower.jpg"
    for kind in ("pan", "rotate_zoom", "cutout"):
        clip = list(frames(photo, kind, 12, SIZE, cutout))
        flows, masks = [f.flow for f in clip[1:]], [f.valid for f in clip[1:]]
        noisy = _flickering(clip)
        blender = TemporalBlender(0.9)
        blended = [blender(f.rgb, s) for f, s in zip(clip, noisy, strict=True)]
        before, after = warping_error(noisy, flows, masks), warping_error(blended, flows, masks)
        assert after < 0.5 * before, (kind, before, after)
        off = TemporalBlender(0.0)
        assert all(off(f.rgb, s) is s for f, s in zip(clip, noisy, strict=True))  # 0 = frame by frame


def test_a_cut_is_not_blended_into_the_next_shot(image_dir: Path) -> None:
    first = list(frames(image_dir / "content" / "tubingen.jpg", "pan", 3, SIZE))
    second = list(frames(image_dir / "content" / "golden_gate_sq.jpg", "pan", 2, SIZE))
    blender = TemporalBlender(0.9)
    for f in first:
        blender(f.rgb, f.rgb.astype(np.float32) / 255.0)
    stylised = second[0].rgb.astype(np.float32) / 255.0
    out = blender(second[0].rgb, stylised)
    # The reliability mask drops the previous shot almost everywhere.
    assert np.abs(out - stylised).mean() < 0.01
