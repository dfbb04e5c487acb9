"""What every ordinary (non-invertible) classifier here shares: logits only, no inverse.

:class:`~invaudit.models.oracle_cnn.OracleCNN` (and ``cnn``) and
:class:`~invaudit.models.foreign.ForeignClassifier` subclass it: a forward that
gives the logits ``[B, num_classes]``, ``logits`` and ``predict`` named like
:class:`~invaudit.models.classifier.InvertibleClassifier`'s, and
``invertible = False`` for the audits that need F⁻¹.
"""

from __future__ import annotations

import torch
from torch import nn


class PlainClassifier(nn.Module):
    """``x -> logits [B, num_classes]``; subclasses set ``arch``, ``input_shape``,
    ``num_classes`` and implement ``forward``."""

    arch = "plain"
    invertible = False
    input_shape: tuple[int, ...]
    num_classes: int

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Same as ``forward``; named like :meth:`InvertibleClassifier.logits`."""
        return self(x)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The decision ``argmax`` of the logits."""
        return self(x).argmax(dim=1)

    def extra_repr(self) -> str:
        return f"arch={self.arch}, input_shape={self.input_shape}, num_classes={self.num_classes}"
