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

    ``scale_bound > 0`` keeps ``|log_scale| < scale_bound`` (a soft clamp,
    ``bound * tanh(raw / bound)``): the inverse divides by ``exp(log_scale)``,
    so an unbounded scale is an unbounded inverse gain (Behrmann et al., 2021).
    With the bound the layer's inverse amplifies by at most ``exp(scale_bound)``.
    """

    def __init__(self, channels: int, eps: float = 1e-6, scale_bound: float = 0.0) -> None:
        super().__init__()
        if scale_bound < 0:
            raise ValueError(f"actnorm scale_bound must be >= 0, got {scale_bound}")
        self.bias = nn.Parameter(torch.zeros(channels))
        # With a bound, the raw parameter; ``bounded_log_scale()`` is what the map uses.
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.eps = eps
        self.scale_bound = float(scale_bound)
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
        target = -torch.log(std + self.eps)
        if self.scale_bound:
            limit = 0.99 * self.scale_bound
            target = self.scale_bound * torch.atanh(target.clamp(-limit, limit) / self.scale_bound)
        self.log_scale.copy_(target)
        self.initialized.fill_(True)

    def bounded_log_scale(self) -> torch.Tensor:
        """The per-channel log-scale the map applies (the parameter itself when unbounded)."""
        if not self.scale_bound:
            return self.log_scale
        return self.scale_bound * torch.tanh(self.log_scale / self.scale_bound)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not bool(self.initialized):
            self.initialize(x)
        log_scale = self.bounded_log_scale()
        y = (x + self._view(self.bias, x)) * torch.exp(self._view(log_scale, x))
        pixels = x[0, 0].numel()
        logdet = (log_scale.sum() * pixels).expand(x.shape[0])
        return y, logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        log_scale = self.bounded_log_scale()
        return y * torch.exp(-self._view(log_scale, y)) - self._view(self.bias, y)
