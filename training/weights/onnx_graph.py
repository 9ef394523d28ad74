"""Read float weights out of an ONNX graph, float32 or int8 QDQ.

In a QDQ graph every weight is an int8/int32 initializer behind a DequantizeLinear node:
``w = (q - zero_point) * scale``, with one scale per output channel (axis 0) for convs.
``OnnxWeights.value`` returns the float tensor for either a plain initializer name or the
output name of such a DequantizeLinear node (``<initializer>_dequant`` in tf2onnx graphs).
Activations are quantised too in those graphs; a float port ignores that.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from training.errors import WeightFileError


class OnnxWeights:
    """Float tensors by name from one ONNX file's bytes."""

    def __init__(self, data: bytes, label: str) -> None:
        self.label = label
        try:
            model = onnx.load_from_string(data)
        except Exception as exc:  # onnx raises DecodeError, RuntimeError, ... for bad protobufs
            raise WeightFileError(f"{label} is not a readable ONNX file: {exc}") from None
        graph = model.graph
        self.initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.dequantized_by = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}

    def value(self, name: str) -> torch.Tensor:
        if name in self.initializers:
            return torch.from_numpy(self.initializers[name].astype(np.float32))
        node = self.dequantized_by.get(name)
        if node is None:
            raise WeightFileError(f"{self.label} has no weight named {name!r}")
        q, scale, zero = (self._array(i) for i in node.input[:3])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale.ndim == 1 and scale.size > 1:  # per-channel: broadcast along `axis`
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        w = (q.astype(np.float64) - zero.astype(np.float64)) * scale.astype(np.float64)
        return torch.from_numpy(w.astype(np.float32))

    def _array(self, name: str) -> np.ndarray:
        try:
            return self.initializers[name]
        except KeyError:
            raise WeightFileError(f"{self.label}: quantisation parameter {name!r} is not a constant") from None
