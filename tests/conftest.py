"""Shared helpers: give layers non-trivial parameters before checking them."""

from __future__ import annotations

import torch
from torch import nn


def randomize(module: nn.Module, x: torch.Tensor, *, scale: float = 0.05, seed: int = 0) -> None:
    """Initialise data-dependent layers on ``x``, then move every parameter off its init.

    Zero-initialised couplings are the identity and would pass any check;
    perturbing every parameter (and BatchNorm's running statistics) makes
    each test exercise the real maps.  Leaves ``module`` in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    module.train()
    with torch.no_grad():
        module(x)
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(1 + 0.1 * torch.rand(m.running_var.shape, generator=gen))
    module.eval()
