"""The invertible classifier every audit works on (the contract in DESIGN.md).

``z = F(x)`` has exactly as many coordinates as ``x``; the first
``num_classes`` are the logits ``z_s``, the rest the nuisance ``z_n`` that the
decision never looks at.  Inputs are checked here, once, so that a wrong
tensor fails with one clear line instead of deep inside a convolution.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..errors import InputError
from .layers import InvertibleLayer


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"{x.dtype} tensor of shape {list(x.shape)} on {x.device}"
    return type(x).__name__


def check_batch(t: Any, ref: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
    """Refuse (one-line :class:`InputError`) anything but a non-empty batch ``[B, *shape]``
    of finite values with ``ref``'s dtype and device: a clear line instead of an error
    deep inside a layer.  Every classifier here checks its inputs with it."""
    expected = f"a {ref.dtype} tensor of shape [B, {', '.join(map(str, shape))}]"
    if not isinstance(t, torch.Tensor):
        raise InputError(f"{what}: expected {expected}, got {_describe(t)}")
    if t.dtype != ref.dtype:
        raise InputError(f"{what}: expected dtype {ref.dtype}, got {_describe(t)}")
    if t.dim() != len(shape) + 1 or tuple(t.shape[1:]) != shape or t.shape[0] == 0:
        raise InputError(f"{what}: expected {expected}, got {_describe(t)}")
    if t.device != ref.device:
        raise InputError(f"{what}: expected a tensor on {ref.device}, got {_describe(t)}")
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"{what}: expected finite values, got NaN or inf in {_describe(t)}")


class InvertibleClassifier(nn.Module):
    """A bijection ``F: R^d -> R^d`` whose first ``num_classes`` outputs are logits."""

    def __init__(
        self,
        flow: InvertibleLayer,
        input_shape: tuple[int, ...],
        num_classes: int,
        arch: str,
        config: dict[str, Any],
    ) -> None:
        super().__init__()
        self.flow = flow
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.arch = arch
        self.config = dict(config)
        self.dim = math.prod(self.input_shape)
        # Set by load_model: the checkpoint's loss, dataset, training, metrics and versions.
        self.checkpoint_info: dict[str, Any] | None = None

    # -- checks ---------------------------------------------------------------
    def _reference(self) -> torch.Tensor:
        return next(self.parameters())

    def _check(self, t: Any, shape: tuple[int, ...], what: str) -> None:
        check_batch(t, self._reference(), shape, what)

    # -- the bijection --------------------------------------------------------
    def forward_logdet(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z [B, d], log|det dF/dx| [B])``."""
        self._check(x, self.input_shape, "input")
        z, logdet = self.flow(x)
        return z.reshape(x.shape[0], self.dim), logdet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``z = F(x)``, shape ``[B, d]``."""
        return self.forward_logdet(x)[0]

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``x = F^{-1}(z)``, shape ``[B, *input_shape]``."""
        self._check(z, (self.dim,), "latent z")
        return self.flow.inverse(z).reshape(z.shape[0], *self.input_shape)

    # -- the readout ----------------------------------------------------------
    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z_s [B, C], z_n [B, d - C])``."""
        return z[:, : self.num_classes], z[:, self.num_classes :]

    def merge(self, z_s: torch.Tensor, z_n: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`split`."""
        if z_s.shape[-1] != self.num_classes or z_n.shape[-1] != self.dim - self.num_classes:
            raise InputError(
                f"merge: expected z_s [B, {self.num_classes}] and "
                f"z_n [B, {self.dim - self.num_classes}], "
                f"got {list(z_s.shape)} and {list(z_n.shape)}"
            )
        return torch.cat([z_s, z_n], dim=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``z_s``: what a softmax classifier would call its logits."""
        return self.split(self.forward(x))[0]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The decision ``D(x) = argmax z_s``."""
        return self.logits(x).argmax(dim=1)

    def extra_repr(self) -> str:
        return f"arch={self.arch}, input_shape={self.input_shape}, num_classes={self.num_classes}"
