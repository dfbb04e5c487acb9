"""Coupling layers: half of the variables are transformed given the other half.

The residual function is a RevNet-type ReLU bottleneck (Gomez et al., 2017;
Jacobsen et al., 2018).  Its last layer starts at zero, so every coupling
starts as the identity: a deep stack then trains from the first step instead
of amplifying noise through dozens of blocks.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import InvertibleLayer, zero_logdet


def bottleneck(
    in_channels: int,
    out_channels: int,
    width: int,
    *,
    conv: bool,
    batchnorm: bool = False,
) -> nn.Sequential:
    """The residual function: linear/conv → [BN] → ReLU → … → zero-initialised out.

    ``conv=True`` uses 3x3 → 1x1 → 3x3 convolutions on ``[B, C, H, W]`` maps,
    ``conv=False`` three linear layers on ``[B, C]`` vectors.
    """
    if conv:
        first = nn.Conv2d(in_channels, width, 3, padding=1)
        middle = nn.Conv2d(width, width, 1)
        last = nn.Conv2d(width, out_channels, 3, padding=1)
        norm = nn.BatchNorm2d
    else:
        first = nn.Linear(in_channels, width)
        middle = nn.Linear(width, width)
        last = nn.Linear(width, out_channels)
        norm = nn.BatchNorm1d
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    layers: list[nn.Module] = [first]
    if batchnorm:
        layers.append(norm(width))
    layers += [nn.ReLU(), middle]
    if batchnorm:
        layers.append(norm(width))
    layers += [nn.ReLU(), last]
    return nn.Sequential(*layers)


class _Coupling(InvertibleLayer):
    """Shared split/merge logic; ``parity`` picks which half is transformed."""

    def __init__(self, channels: int, parity: int) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f"a coupling needs at least 2 channels, got {channels}")
        self.channels = channels
        self.parity = parity
        self.split_at = channels // 2 if parity == 0 else channels - channels // 2
        sizes = (self.split_at, channels - self.split_at)
        # (conditioning size, transformed size)
        self.sizes = sizes if parity == 0 else (sizes[1], sizes[0])

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = x[:, : self.split_at], x[:, self.split_at :]
        return (a, b) if self.parity == 0 else (b, a)

    def _merge(self, cond: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
        parts = (cond, moved) if self.parity == 0 else (moved, cond)
        return torch.cat(parts, dim=1)


class AdditiveCoupling(_Coupling):
    """``y_b = x_b + f(x_a)``; volume preserving, so its log-determinant is 0."""

    def __init__(
        self,
        channels: int,
        width: int,
        *,
        conv: bool,
        batchnorm: bool = False,
        parity: int = 0,
    ) -> None:
        super().__init__(channels, parity)
        cond, moved = self.sizes
        self.residual = bottleneck(cond, moved, width, conv=conv, batchnorm=batchnorm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cond, moved = self._split(x)
        return self._merge(cond, moved + self.residual(cond)), zero_logdet(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        cond, moved = self._split(y)
        return self._merge(cond, moved - self.residual(cond))


class AffineCoupling(_Coupling):
    """``y_b = x_b * exp(s(x_a)) + t(x_a)`` with ``|s| < scale_bound``.

    The bound (a soft clamp ``bound * tanh(s / bound)``) keeps the inverse
    well conditioned: the scale can never shrink a variable by more than
    ``exp(-bound)``, so reconstructions stay exact in float32.
    """

    def __init__(
        self,
        channels: int,
        width: int,
        *,
        conv: bool,
        batchnorm: bool = False,
        parity: int = 0,
        scale_bound: float = 2.0,
    ) -> None:
        super().__init__(channels, parity)
        cond, moved = self.sizes
        self.moved = moved
        self.scale_bound = scale_bound
        self.residual = bottleneck(cond, 2 * moved, width, conv=conv, batchnorm=batchnorm)

    def _scale_shift(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.residual(cond)
        raw, shift = h[:, : self.moved], h[:, self.moved :]
        return self.scale_bound * torch.tanh(raw / self.scale_bound), shift

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cond, moved = self._split(x)
        log_scale, shift = self._scale_shift(cond)
        y = self._merge(cond, moved * torch.exp(log_scale) + shift)
        return y, log_scale.flatten(1).sum(dim=1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        cond, moved = self._split(y)
        log_scale, shift = self._scale_shift(cond)
        return self._merge(cond, (moved - shift) * torch.exp(-log_scale))
