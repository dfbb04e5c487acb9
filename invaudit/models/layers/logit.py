"""A bounded input layer: the logit transform of RealNVP (Dinh et al., 2017).

``y = logit(alpha + (1 - 2 alpha) x)`` maps the data box [0, 1] onto a bounded
interval of R and, above all, its inverse ``x = (sigmoid(y) - alpha) / (1 - 2 alpha)``
maps *every* real ``y`` into ``(-alpha', 1 + alpha')`` with
``alpha' = alpha / (1 - 2 alpha)``.  Whatever the rest of the flow does off
the data, a decoded point can then never leave the data box by more than
``alpha'``: a metamer is at worst saturated, never a pixel value of 30.
"""

from __future__ import annotations

import math

import torch

from .base import InvertibleLayer


class LogitTransform(InvertibleLayer):
    """``x -> logit(alpha + (1 - 2 alpha) x)`` elementwise, with its exact log-determinant."""

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        if not 0.0 < alpha < 0.5:
            raise ValueError(f"the logit transform needs 0 < alpha < 0.5, got {alpha}")
        self.alpha = float(alpha)

    @property
    def excursion_bound(self) -> float:
        """The most a decoded value can lie outside [0, 1]."""
        return self.alpha / (1.0 - 2.0 * self.alpha)

    def _squash(self, x: torch.Tensor) -> torch.Tensor:
        p = self.alpha + (1.0 - 2.0 * self.alpha) * x
        # Only points outside the layer's own range reach the clamp (e.g. the
        # float rounding of a decoded 1 + alpha'); inside it changes nothing.
        tiny = torch.finfo(x.dtype).eps
        return p.clamp(tiny, 1.0 - tiny)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self._squash(x)
        y = torch.log(p) - torch.log1p(-p)
        # dy/dx = (1 - 2 alpha) / (p (1 - p))
        log_jac = math.log(1.0 - 2.0 * self.alpha) - torch.log(p) - torch.log1p(-p)
        return y, log_jac.flatten(1).sum(dim=1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (torch.sigmoid(y) - self.alpha) / (1.0 - 2.0 * self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}"

