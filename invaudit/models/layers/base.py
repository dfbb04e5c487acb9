"""The contract every invertible layer keeps.

A layer maps ``x`` to ``(y, logdet)`` where ``logdet[b] = log|det dy_b/dx_b|``
and has an exact ``inverse(y)``.  Layers that change the shape (squeeze,
factor-out, the DCT readout) say so in ``output_shape``.  The contract is the
one nflows and FrEIA use; keeping it everywhere lets one parametrised test
check every layer and every assembled network the same way.
"""

from __future__ import annotations

import torch
from torch import nn

Shape = tuple[int, ...]


class InvertibleLayer(nn.Module):
    """Base class: ``forward(x) -> (y, logdet[B])`` and ``inverse(y) -> x``."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def output_shape(self, input_shape: Shape) -> Shape:
        """Per-sample shape of the output for a per-sample input shape."""
        return input_shape


def zero_logdet(x: torch.Tensor) -> torch.Tensor:
    """A ``[B]`` zero log-determinant on the device and dtype of ``x``."""
    return x.new_zeros(x.shape[0])


class FlowSequence(InvertibleLayer):
    """Layers applied in order; log-determinants add, the inverse runs backwards."""

    def __init__(self, layers: list[InvertibleLayer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = zero_logdet(x)
        for layer in self.layers:
            x, step = layer(x)
            logdet = logdet + step
        return x, logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y

    def output_shape(self, input_shape: Shape) -> Shape:
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape
