"""The transformer in the two graph forms that tiled inference needs (URST's thumbnail instance norm).

Instance norm makes every pixel depend on the whole image through each conditioned layer's mean and
variance, so tiles stylised on their own disagree. URST (Chen et al., AAAI 2022, "Towards
Ultra-Resolution Neural Style Transfer via Thumbnail Instance Normalization") takes those statistics
from one low-resolution pass over a thumbnail and normalises every tile with them. Two forms:

  statistics.onnx        content_image [N,3,h,w], embedding [N,E] -> statistics [N,S]
  given_statistics.onnx  content_image [N,3,H,W], embedding [N,E], statistics [N,S] -> stylized [N,3,H,W]

``statistics`` holds, for each conditioned layer in the heads' order, its C channel means and then its
C biased variances (S = 2 x the conditioned channels, 442 for Magenta's mobile model). Fed the
statistics of the same image, the second form is the whole transformer: the parity check
(``check_statistics``) runs both forms end to end against the PyTorch network in float64.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from onnx_export.manifest import TensorSpec
from onnx_export.parity import TOLERANCE, Case, ParityError, embeddings_for, load_images, max_diff, reference, session
from onnx_export.polyphase import PolyphaseTransformer, run_polyphase
from training.checkpoint import StyleModel
from training.networks.transformer import CIN_EPS

# Small cases: the statistics form is checked on top of the whole form's own three cases.
STATISTICS_CASES = (Case(2, 128, 128), Case(1, 96, 160))


def _phase_view(x: Tensor, phases: int) -> Tensor:
    n, channels, height, width = x.shape
    return x if phases == 1 else x.reshape(n, channels // phases, phases * height, width)


def moments(x: Tensor, phases: int) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance [N,C], computed as conditional_instance_norm does (rows first)."""
    v = _phase_view(x, phases)
    mean = v.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
    centred = v - mean
    var = (centred * centred).mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
    return mean[:, :, 0, 0], var[:, :, 0, 0]


def normalise_with(x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, var: Tensor, phases: int) -> Tensor:
    """Conditional instance norm of x with given statistics mean, var [N,C] instead of its own."""
    v = _phase_view(x, phases)
    scale = gamma[:, :, None, None] * torch.rsqrt(var[:, :, None, None] + CIN_EPS)
    y = (v - mean[:, :, None, None]) * scale + beta[:, :, None, None]
    return y if phases == 1 else y.reshape(x.shape)


def statistics_size(transformer: nn.Module) -> int:
    return 2 * sum(head.out_features for head in transformer.heads.gamma)


class StatisticsForm(nn.Module):
    """content, embedding -> every conditioned layer's [means, variances], concatenated: [N,S]."""

    def __init__(self, polyphase: PolyphaseTransformer) -> None:
        super().__init__()
        self.net = polyphase

    def forward(self, content_image: Tensor, embedding: Tensor) -> Tensor:
        recorded: list[Tensor] = []

        def record(x: Tensor, gamma: Tensor, beta: Tensor, phases: int) -> Tensor:
            mean, var = moments(x, phases)
            recorded.extend((mean, var))
            return normalise_with(x, gamma, beta, mean, var, phases)

        run_polyphase(self.net, content_image, embedding, record)
        return torch.cat(recorded, dim=1)


class GivenStatisticsForm(nn.Module):
    """content, embedding, statistics [N,S] -> stylized: every conditioned layer normalised with the given
    statistics (a tile with the thumbnail's)."""

    def __init__(self, polyphase: PolyphaseTransformer) -> None:
        super().__init__()
        self.net = polyphase
        self.channels = [head.out_features for head in polyphase.heads.gamma]

    def forward(self, content_image: Tensor, embedding: Tensor, statistics: Tensor) -> Tensor:
        parts = iter(torch.split(statistics, [c for c in self.channels for _ in (0, 1)], dim=1))

        def given(x: Tensor, gamma: Tensor, beta: Tensor, phases: int) -> Tensor:
            return normalise_with(x, gamma, beta, next(parts), next(parts), phases)

        return run_polyphase(self.net, content_image, embedding, given)


def export_statistics_forms(transformer: nn.Module, folder: Path) -> dict[str, tuple[list, list]]:
    """Write statistics.onnx and given_statistics.onnx into ``folder``; returns their tensor specs by role."""
    from onnx_export.export import SIZE_MULTIPLE, _export

    polyphase = PolyphaseTransformer(transformer.eval())
    e, s = transformer.config.embedding_size, statistics_size(transformer)
    side = 16 * SIZE_MULTIPLE
    content, embedding = torch.rand(2, 3, side, side + SIZE_MULTIPLE), torch.rand(2, e)
    image_axes = {0: "batch", 2: "height", 3: "width"}
    image = TensorSpec(name="content_image", shape=["batch", 3, "height", "width"])
    vector = TensorSpec(name="embedding", shape=["batch", e])
    stats = TensorSpec(name="statistics", shape=["batch", s])
    _export(
        StatisticsForm(polyphase),
        (content, embedding),
        folder / "statistics.onnx",
        ["content_image", "embedding"],
        ["statistics"],
        {"content_image": image_axes, "embedding": {0: "batch"}, "statistics": {0: "batch"}},
    )
    with torch.no_grad():
        example = StatisticsForm(polyphase)(content, embedding)
    _export(
        GivenStatisticsForm(polyphase),
        (content, embedding, example),
        folder / "given_statistics.onnx",
        ["content_image", "embedding", "statistics"],
        ["stylized"],
        {"content_image": image_axes, "embedding": {0: "batch"}, "statistics": {0: "batch"}, "stylized": image_axes},
    )
    return {
        "statistics": ([image, vector], [stats]),
        "given_statistics": (
            [image, vector, stats],
            [TensorSpec(name="stylized", shape=["batch", 3, "height", "width"])],
        ),
    }


def check_statistics(model: StyleModel, folder: Path, cases: tuple[Case, ...] = STATISTICS_CASES) -> dict[str, float]:
    """Both forms against PyTorch in float64: the statistics (relative to their size), and the given-statistics
    form fed the exported statistics of the same image against the whole network's output."""
    stats_session, given_session = session(folder / "statistics.onnx"), session(folder / "given_statistics.onnx")
    statistics_module = StatisticsForm(PolyphaseTransformer(model.transformer.eval()))
    report = {}
    for case in cases:
        content = load_images("content", case.batch, case.height, case.width)
        embedding = embeddings_for(model, case.batch)
        (stats,) = stats_session.run(["statistics"], {"content_image": content, "embedding": embedding})
        exact = reference(statistics_module, content, embedding)
        relative = float(np.max(np.abs(stats.astype(np.float64) - exact) / (1.0 + np.abs(exact))))
        (out,) = given_session.run(
            ["stylized"], {"content_image": content, "embedding": embedding, "statistics": stats}
        )
        diff = max_diff(out, reference(model.transformer, content, embedding))
        report[f"statistics_{case.label}"], report[f"given_statistics_{case.label}"] = relative, diff
        if stats.shape != exact.shape or relative > TOLERANCE or diff > TOLERANCE:
            raise ParityError(
                f"statistics forms at {case.label}: statistics relative diff {relative:.3g}, "
                f"output max abs diff {diff:.3g} (tolerance {TOLERANCE})"
            )
    return report
