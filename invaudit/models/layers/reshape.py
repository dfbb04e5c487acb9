"""Volume-preserving rearrangements: squeeze and fixed permutations."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import InvertibleLayer, Shape, zero_logdet


class Squeeze(InvertibleLayer):
    """Invertible downsampling ``[C, H, W] -> [4C, H/2, W/2]`` (space-to-depth)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.pixel_unshuffle(x, 2), zero_logdet(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(y, 2)

    def output_shape(self, input_shape: Shape) -> Shape:
        c, h, w = input_shape
        if h % 2 or w % 2:
            raise ValueError(f"squeeze needs even height and width, got {h}x{w}")
        return (4 * c, h // 2, w // 2)


class Permutation(InvertibleLayer):
    """A fixed, seeded shuffle of dim 1 (features or channels)."""

    def __init__(self, channels: int, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(channels, generator=gen)
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[:, self.perm], zero_logdet(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y[:, self.inverse_perm]
