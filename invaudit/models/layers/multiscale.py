"""Factor-out (multi-scale, Dinh et al. 2017): half the channels leave early."""

from __future__ import annotations

import math

import torch

from .base import InvertibleLayer, Shape


class FactorOut(InvertibleLayer):
    """Send the last half of the channels straight to the output; ``inner`` gets the rest.

    The output is flat: ``[inner(x_keep).flatten(), x_out.flatten()]``, so the
    variables that ``inner`` produces (the logits among them) come first and
    the factored-out ones after.  Nesting one ``FactorOut`` inside another
    gives the usual multi-scale architecture while every layer still has one
    tensor in and one tensor out.
    """

    def __init__(self, input_shape: Shape, inner: InvertibleLayer) -> None:
        super().__init__()
        channels, *spatial = input_shape
        if channels < 2:
            raise ValueError(f"factor-out needs at least 2 channels, got {channels}")
        self.out_channels = channels // 2
        self.keep_shape: Shape = (channels - self.out_channels, *spatial)
        self.out_shape: Shape = (self.out_channels, *spatial)
        self.inner = inner
        self.inner_shape: Shape = inner.output_shape(self.keep_shape)
        self.inner_size = math.prod(self.inner_shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep, out = x[:, : self.keep_shape[0]], x[:, self.keep_shape[0] :]
        y, logdet = self.inner(keep)
        return torch.cat([y.flatten(1), out.flatten(1)], dim=1), logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        inner_y = y[:, : self.inner_size].reshape(-1, *self.inner_shape)
        out = y[:, self.inner_size :].reshape(-1, *self.out_shape)
        return torch.cat([self.inner.inverse(inner_y), out], dim=1)

    def output_shape(self, input_shape: Shape) -> Shape:
        return (self.inner_size + math.prod(self.out_shape),)
