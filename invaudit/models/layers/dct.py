"""Orthogonal 2D DCT-II readout: an invertible global average pooling (B.3)."""

from __future__ import annotations

import math

import torch

from .base import InvertibleLayer, Shape, zero_logdet


def dct_matrix(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``D`` (``D @ D.T = I``) of size ``n``."""
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype)


def frequency_order(h: int, w: int) -> torch.Tensor:
    """Flat indices of the ``h x w`` frequencies from low to high (zig-zag bands)."""
    pairs = sorted(((u, v) for u in range(h) for v in range(w)), key=lambda p: (p[0] + p[1], p))
    return torch.tensor([u * w + v for u, v in pairs])


class DCTReadout(InvertibleLayer):
    """``[B, C, H, W] -> [B, C*H*W]``: per-channel 2D DCT-II, lowest frequencies first.

    The output lists the DC component of every channel, then every channel's
    next-lowest frequency, and so on.  The first ``C`` outputs are therefore
    the channels' global averages (scaled by ``sqrt(H*W)``), which is where a
    fiRevNet reads its logits.  Orthogonal, so the log-determinant is 0 and
    the inverse is the transpose.
    """

    def __init__(self, input_shape: Shape) -> None:
        super().__init__()
        self.input_shape = input_shape
        _, h, w = input_shape
        # Built per dtype and device on first use rather than stored as buffers: a
        # float32 buffer cast to float64 would keep float32's rounding.
        self._matrices: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, ...]] = {}
        order = frequency_order(h, w)
        self.register_buffer("order", order)
        self.register_buffer("inverse_order", torch.argsort(order))

    def _dct(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (t.dtype, t.device)
        if key not in self._matrices:
            _, h, w = self.input_shape
            self._matrices[key] = (
                dct_matrix(h).to(device=t.device, dtype=t.dtype),
                dct_matrix(w).to(device=t.device, dtype=t.dtype),
            )
        dct_h, dct_w = self._matrices[key]
        return dct_h, dct_w

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dct_h, dct_w = self._dct(x)
        coeffs = dct_h @ x @ dct_w.T  # [B, C, H, W]
        flat = coeffs.flatten(2)[:, :, self.order]  # [B, C, HW], low frequencies first
        return flat.transpose(1, 2).flatten(1), zero_logdet(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        c, h, w = self.input_shape
        flat = y.reshape(-1, h * w, c).transpose(1, 2)[:, :, self.inverse_order]
        coeffs = flat.reshape(-1, c, h, w)
        dct_h, dct_w = self._dct(y)
        return dct_h.T @ coeffs @ dct_w

    def output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)
