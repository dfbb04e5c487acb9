"""An orthogonal 1x1 convolution: channel mixing whose inverse cannot amplify.

Glow's LU-parametrised 1x1 convolution may drift towards a nearly singular
matrix during training, and its inverse then amplifies by ``1 / sigma_min``
(Behrmann et al., 2021).  Keeping the matrix orthogonal (torch's
``parametrizations.orthogonal``) fixes every singular value at 1: the layer
preserves volume (log-determinant 0 up to rounding) and distances, forward and back.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrizations

from .base import InvertibleLayer
from .conv1x1 import channel_mix


class OrthogonalConv1x1(InvertibleLayer):
    """``y = W x`` over channels with ``W`` orthogonal, started at a seeded random rotation."""

    def __init__(self, channels: int, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=gen))
        self.mix = nn.Linear(channels, channels, bias=False)
        parametrizations.orthogonal(self.mix, "weight")
        with torch.no_grad():
            self.mix.weight = q  # through the parametrization's right inverse

    def weight(self) -> torch.Tensor:
        return self.mix.weight

    def inverse_weight(self) -> torch.Tensor:
        # The solve, not the transpose: W is orthogonal only to float rounding, and
        # the exact inverse of the matrix actually applied keeps round trips exact.
        w = self.mix.weight
        return torch.linalg.inv(w.double()).to(w.dtype)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weight()
        # 0 up to rounding; computed rather than assumed, so the log-determinant is
        # exactly that of the matrix applied (a float32 rotation is not one in float64).
        pixels = x[0, 0].numel()
        logdet = (torch.linalg.slogdet(w)[1] * pixels).expand(x.shape[0])
        return channel_mix(x, w), logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return channel_mix(y, self.inverse_weight())
