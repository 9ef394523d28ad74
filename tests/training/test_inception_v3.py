"""Inception-v3 to Mixed_6e: TF-slim sizes and padding, parameter count, gradients, ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from training.networks.inception_v3 import InceptionV3Features, avg_pool_same


def randomise_batch_norm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine terms, so eval-mode batch norm is not ~identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                c = bn.num_features
                bn.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
                bn.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=generator))
                bn.weight.copy_(0.5 + torch.rand(c, generator=generator))
                bn.bias.copy_(0.1 * torch.randn(c, generator=generator))
    return model


@pytest.fixture(scope="module")
def model() -> InceptionV3Features:
    torch.manual_seed(0)
    return randomise_batch_norm(InceptionV3Features()).eval()  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("n", "h", "w", "out"),
    [
        (2, 256, 256, (14, 14)),  # the predictor's style size: 256 -> 127 -> 125 -> 62 -> 60 -> 29 -> 14
        (1, 160, 224, (8, 12)),  # non-square
        (1, 43, 43, (1, 1)),  # the smallest input
    ],
)
def test_mixed_6e_sizes_match_tf_slim(model: InceptionV3Features, n: int, h: int, w: int, out: tuple[int, int]) -> None:
    with torch.no_grad():
        features = model(torch.rand(n, 3, h, w))
    assert features.shape == (n, model.out_channels, *out) and model.out_channels == 768
    assert torch.isfinite(features).all() and (features >= 0).all()  # Mixed_6e ends in ReLUs


def test_every_stage_has_the_size_of_the_paper_table(model: InceptionV3Features) -> None:
    """299x299 through each stage, as in Szegedy et al. 2016 table 1 and slim: catches a SAME/VALID mix-up."""
    sizes: dict[str, tuple[int, ...]] = {}
    hooks = [
        child.register_forward_hook(lambda module, args, out, name=name: sizes.update({name: out.shape[1:]}))
        for name, child in model.named_children()
    ]
    try:
        with torch.no_grad():
            model(torch.rand(1, 3, 299, 299))
    finally:
        for hook in hooks:
            hook.remove()
    assert sizes == {
        "Conv2d_1a_3x3": (32, 149, 149),
        "Conv2d_2a_3x3": (32, 147, 147),
        "Conv2d_2b_3x3": (64, 147, 147),
        "Conv2d_3b_1x1": (80, 73, 73),
        "Conv2d_4a_3x3": (192, 71, 71),  # max pools: 147 -> 73, 71 -> 35
        "Mixed_5b": (256, 35, 35),
        "Mixed_5c": (288, 35, 35),
        "Mixed_5d": (288, 35, 35),
        "Mixed_6a": (768, 17, 17),
        "Mixed_6b": (768, 17, 17),
        "Mixed_6c": (768, 17, 17),
        "Mixed_6d": (768, 17, 17),
        "Mixed_6e": (768, 17, 17),
    }


def test_parameter_count_is_inception_v3_up_to_mixed_6e() -> None:
    model = InceptionV3Features()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    weights = sum(c.weight.numel() for c in convs)
    total = sum(p.numel() for p in model.parameters())
    assert len(convs) == 70 and all(c.bias is None for c in convs)
    assert weights == 8_947_040  # conv kernels
    assert total == 8_965_856  # + gamma and beta of 70 batch norms (18,816); torchvision's Inception3 to Mixed_6e
    # Ghiasi et al. 2017: with the 768 -> 100 bottleneck and the 13 x 2 heads 100 -> C (sum C = 1,379) the
    # paper's predictor has about 9.3M parameters.
    assert 9.2e6 < total + (768 * 100 + 100) + 2 * 101 * 1379 < 9.4e6


def test_state_dict_uses_torchvision_names() -> None:
    keys = set(InceptionV3Features().state_dict())
    for key in (
        "Conv2d_1a_3x3.conv.weight",
        "Conv2d_4a_3x3.bn.running_var",
        "Mixed_5b.branch_pool.conv.weight",
        "Mixed_6a.branch3x3dbl_3.conv.weight",
        "Mixed_6e.branch7x7dbl_5.bn.bias",
    ):
        assert key in keys
    assert not any(key.startswith(("Mixed_7", "AuxLogits", "fc")) for key in keys)


def test_input_is_mapped_from_unit_range_to_plus_minus_one() -> None:
    model = InceptionV3Features().eval()
    seen: list[torch.Tensor] = []
    model.Conv2d_1a_3x3.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        model(x)
    assert torch.equal(seen[0], x * 2 - 1)


def test_average_pools_ignore_padding_like_tensorflow() -> None:
    # TF's SAME average pool divides by the pixels inside the image: a constant map stays constant
    # at the borders (zero padding counted in would give 4/9 in the corners).
    assert torch.equal(avg_pool_same(torch.full((1, 2, 5, 7), 3.0)), torch.full((1, 2, 5, 7), 3.0))


def test_gradients_reach_the_input_and_every_parameter() -> None:
    torch.manual_seed(0)
    model = InceptionV3Features().train()  # fine-tuned in training, batch statistics included
    x = torch.rand(2, 3, 75, 75, requires_grad=True)
    model(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_onnx_export_with_dynamic_batch_and_size_matches_pytorch(model: InceptionV3Features, tmp_path: Path) -> None:
    path = tmp_path / "inception_v3.onnx"
    torch.onnx.export(
        model,
        (torch.rand(2, 3, 128, 128),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["image"],
        output_names=["features"],
        dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "features": {0: "batch", 2: "h", 3: "w"}},
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(1)
    for shape in [(2, 3, 128, 128), (2, 3, 160, 224), (1, 3, 99, 131)]:
        x = torch.rand(*shape, generator=generator)
        with torch.no_grad():
            expected = model(x).numpy()
        (got,) = session.run(None, {"image": x.numpy()})
        assert got.shape == expected.shape
        assert np.abs(expected).max() > 0.1  # a real signal, not an all-zero map
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)  # measured: 2e-7
