"""Invertible 1x1 convolution with an LU-parametrised weight (Glow)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import InvertibleLayer


def channel_mix(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``w`` applied over dim 1 of ``[B, C]`` vectors or ``[B, C, H, W]`` maps."""
    if x.dim() == 2:
        return x @ w.T
    return F.conv2d(x, w.view(*w.shape, 1, 1))


class InvertibleConv1x1(InvertibleLayer):
    """A learnable channel mixing ``W = P L (U + diag(sign * exp(log_s)))``.

    ``P`` is a fixed permutation, ``L`` unit lower- and ``U`` strictly upper-
    triangular.  The factorisation makes ``log|det W| = sum(log_s)`` exact and
    cheap, and the inverse two triangular solves instead of a general inverse,
    so it stays exact after any number of optimiser steps.  Works on
    ``[B, C]`` vectors and ``[B, C, H, W]`` maps.
    """

    def __init__(self, channels: int, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=gen))
        p, lower, upper = torch.linalg.lu(q)
        diag = torch.diagonal(upper)
        self.register_buffer("perm", p)
        self.register_buffer("sign_s", torch.sign(diag))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(torch.abs(diag)))

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return lower, upper

    def weight(self) -> torch.Tensor:
        lower, upper = self._factors()
        return self.perm @ lower @ upper

    def inverse_weight(self) -> torch.Tensor:
        lower, upper = self._factors()
        eye = self.eye.to(lower.dtype)
        lower_inv = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
        upper_inv = torch.linalg.solve_triangular(upper, eye, upper=True)
        return upper_inv @ lower_inv @ self.perm.T

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = x[0, 0].numel()
        logdet = (self.log_s.sum() * pixels).expand(x.shape[0])
        return channel_mix(x, self.weight()), logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return channel_mix(y, self.inverse_weight())
