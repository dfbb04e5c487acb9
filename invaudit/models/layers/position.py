"""Position readout: each logit is one channel's value at one spatial position (issue 15).

The DCT readout reads the logits as the lowest frequencies of the last
stage's maps; when that stage has fewer channels than classes, several
logits are frequencies of the same map and their neighbouring frequencies
(left in z_n) carry the same shape.  Here every logit owns a channel: the
first ``num_classes`` channels at one position (the centre) are the logits,
each through its own invertible affine map (what an eval-mode BatchNorm1d
on the logits is, as in the authors' MNIST code), and every other value of
the maps goes to z_n in a fixed order.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import InvertibleLayer, Shape


class PositionReadout(InvertibleLayer):
    """``[B, C, H, W] -> [B, C*H*W]``: logits = ``exp(s) * x[:, :K, h0, w0] + b`` first."""

    def __init__(self, input_shape: Shape, num_classes: int) -> None:
        super().__init__()
        channels, h, w = input_shape
        if not 1 <= num_classes <= channels:
            raise ValueError(
                f"a position readout needs at least {num_classes} channels, got {channels}"
            )
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.position = (h // 2, w // 2)
        flat = torch.arange(channels * h * w).view(channels, h, w)
        logits = flat[:num_classes, self.position[0], self.position[1]]
        mask = torch.ones(channels * h * w, dtype=torch.bool)
        mask[logits] = False
        order = torch.cat([logits, flat.flatten()[mask]])
        self.register_buffer("order", order)
        self.register_buffer("inverse_order", torch.argsort(order))
        self.log_scale = nn.Parameter(torch.zeros(num_classes))
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.flatten(1)[:, self.order]
        k = self.num_classes
        logits = flat[:, :k] * torch.exp(self.log_scale) + self.bias
        logdet = self.log_scale.sum().expand(x.shape[0])
        return torch.cat([logits, flat[:, k:]], dim=1), logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        k = self.num_classes
        logits = (y[:, :k] - self.bias) * torch.exp(-self.log_scale)
        flat = torch.cat([logits, y[:, k:]], dim=1)[:, self.inverse_order]
        return flat.view(-1, *self.input_shape)

    def output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)
