"""Coupling layers: half of the variables are transformed given the other half.

The residual function is a RevNet-type ReLU bottleneck (Gomez et al., 2017;
Jacobsen et al., 2018).  Its last layer starts at zero, so every coupling
starts as the identity: a deep stack then trains from the first step instead
of amplifying noise through dozens of blocks.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrizations

from .base import InvertibleLayer, zero_logdet

#: How a coupling's residual function is normalised: not at all (RevNet), or
#: spectrally, so that its Lipschitz constant, and with it the inverse's, is bounded.
RESIDUAL_NORMS = ("none", "spectral")


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
    first, middle, last = _maps(in_channels, out_channels, width, conv=conv)
    norm = nn.BatchNorm2d if conv else nn.BatchNorm1d
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return _stack(first, middle, last, norm if batchnorm else None, width)


def _maps(
    in_channels: int, out_channels: int, width: int, *, conv: bool
) -> tuple[nn.Module, nn.Module, nn.Module]:
    """The bottleneck's three linear maps: 3x3 → 1x1 → 3x3 convolutions, or linear layers."""
    if conv:
        return (
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.Conv2d(width, width, 1),
            nn.Conv2d(width, out_channels, 3, padding=1),
        )
    return (
        nn.Linear(in_channels, width),
        nn.Linear(width, width),
        nn.Linear(width, out_channels),
    )


def _stack(
    first: nn.Module, middle: nn.Module, last: nn.Module, norm: type | None, width: int
) -> nn.Sequential:
    layers: list[nn.Module] = [first]
    batchnorm = norm is not None
    if batchnorm:
        layers.append(norm(width))
    layers += [nn.ReLU(), middle]
    if batchnorm:
        layers.append(norm(width))
    layers += [nn.ReLU(), last]
    return nn.Sequential(*layers)


class SpectralResidual(nn.Module):
    """A bottleneck whose every weight is spectrally normalised, behind a bounded gate.

    Each linear map is divided by its largest singular value (torch's
    ``parametrizations.spectral_norm``; for a convolution, that of its
    reshaped kernel, Miyato et al.'s estimate), ReLU is 1-Lipschitz, and a
    per-channel gate ``bound * tanh(g)`` in (-bound, bound) scales the output.
    So the function is about ``bound``-Lipschitz at most, and an additive
    coupling built on it is bi-Lipschitz with constant about ``1 + bound`` in
    both directions.  The gate
    starts at 0, so the coupling starts as the identity, as the plain
    bottleneck does with its zero-initialised last layer (a zero weight
    cannot be spectrally normalised).  No BatchNorm: in eval mode it divides
    by a running std, an amplification nothing bounds.
    """

    def __init__(
        self, in_channels: int, out_channels: int, width: int, *, conv: bool, bound: float = 1.0
    ) -> None:
        super().__init__()
        if not bound > 0:
            raise ValueError(f"the residual bound must be > 0, got {bound}")
        self.bound = float(bound)
        maps = _maps(in_channels, out_channels, width, conv=conv)
        for layer in maps:
            parametrizations.spectral_norm(layer)
        self.body = _stack(*maps, None, width)
        self.gate = nn.Parameter(torch.zeros(out_channels))
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.bound * torch.tanh(self.gate)
        if self.conv:
            gate = gate.view(1, -1, 1, 1)
        return gate * self.body(x)


def residual_function(
    in_channels: int,
    out_channels: int,
    width: int,
    *,
    conv: bool,
    batchnorm: bool,
    residual_norm: str,
    residual_bound: float = 1.0,
) -> nn.Module:
    """The coupling's residual function for ``residual_norm`` (one of ``RESIDUAL_NORMS``)."""
    if residual_norm == "spectral":
        if batchnorm:
            raise ValueError("residual_norm='spectral' excludes batchnorm (set batchnorm=false)")
        return SpectralResidual(in_channels, out_channels, width, conv=conv, bound=residual_bound)
    if residual_norm != "none":
        raise ValueError(f"residual_norm must be one of {', '.join(RESIDUAL_NORMS)}")
    return bottleneck(in_channels, out_channels, width, conv=conv, batchnorm=batchnorm)


class _Coupling(InvertibleLayer):
    """Shared split/merge logic and residual function; ``parity`` picks which half is
    transformed.

    Args:
        channels: the variables (channels of a map, or entries of a vector), at least 2.
        width: the residual function's hidden width.
        conv: convolutions on ``[B, C, H, W]`` maps, else linear layers on ``[B, C]``.
        batchnorm: BatchNorm inside the residual function (not with ``spectral``).
        parity: 0 transforms the second half given the first, 1 the first given the second.
        residual_norm: one of ``RESIDUAL_NORMS``.
        residual_bound: the gate bound of a ``spectral`` residual function.
    """

    #: Outputs of the residual function per transformed variable.
    residual_outputs = 1

    def __init__(
        self,
        channels: int,
        width: int,
        *,
        conv: bool,
        batchnorm: bool = False,
        parity: int = 0,
        residual_norm: str = "none",
        residual_bound: float = 1.0,
    ) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f"a coupling needs at least 2 channels, got {channels}")
        self.channels = channels
        self.parity = parity
        self.split_at = channels // 2 if parity == 0 else channels - channels // 2
        sizes = (self.split_at, channels - self.split_at)
        # (conditioning size, transformed size)
        self.sizes = sizes if parity == 0 else (sizes[1], sizes[0])
        cond, moved = self.sizes
        self.residual = residual_function(
            cond,
            self.residual_outputs * moved,
            width,
            conv=conv,
            batchnorm=batchnorm,
            residual_norm=residual_norm,
            residual_bound=residual_bound,
        )

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = x[:, : self.split_at], x[:, self.split_at :]
        return (a, b) if self.parity == 0 else (b, a)

    def _merge(self, cond: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
        parts = (cond, moved) if self.parity == 0 else (moved, cond)
        return torch.cat(parts, dim=1)


class AdditiveCoupling(_Coupling):
    """``y_b = x_b + f(x_a)``; volume preserving, so its log-determinant is 0.

    The arguments are :class:`_Coupling`'s; ``f`` outputs one shift per transformed variable.
    """

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
    ``exp(-bound)``, so reconstructions stay exact in float32.  The other
    arguments are :class:`_Coupling`'s; the residual function outputs a
    log-scale and a shift per transformed variable.
    """

    residual_outputs = 2

    def __init__(
        self, channels: int, width: int, *, scale_bound: float = 2.0, **options: Any
    ) -> None:
        super().__init__(channels, width, **options)
        self.moved = self.sizes[1]
        self.scale_bound = scale_bound

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
