"""ActNorm (Kingma & Dhariwal, 2018): a per-channel affine map, data-initialised."""

from __future__ import annotations

import torch
from torch import nn

from .base import InvertibleLayer


class ActNorm(InvertibleLayer):
    """``y = (x + bias) * exp(log_scale)`` per channel (dim 1).

    The first forward pass sets ``bias`` and ``log_scale`` so that that batch
    leaves with zero mean and unit variance per channel, which is what lets a
    deep flow start training without BatchNorm on its main path.  Works on
    ``[B, C]`` vectors and ``[B, C, H, W]`` maps alike.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.eps = eps
        # A buffer, not a Python flag, so that checkpoints remember it.
        self.register_buffer("initialized", torch.tensor(False))

    def _view(self, p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return p.view(1, -1, *([1] * (x.dim() - 2)))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Data-dependent initialisation from one batch ``x``."""
        dims = [0] + list(range(2, x.dim()))
        mean = x.mean(dim=dims)
        std = x.std(dim=dims, unbiased=False)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not bool(self.initialized):
            self.initialize(x)
        y = (x + self._view(self.bias, x)) * torch.exp(self._view(self.log_scale, x))
        pixels = x[0, 0].numel()
        logdet = (self.log_scale.sum() * pixels).expand(x.shape[0])
        return y, logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(-self._view(self.log_scale, y)) - self._view(self.bias, y)
