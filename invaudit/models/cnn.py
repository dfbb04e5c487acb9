"""``cnn``: an ordinary CNN to be audited (the zoo's ``mnist-cnn`` and ``mnist-cnn-robust``).

The same layers as :class:`~invaudit.models.oracle_cnn.OracleCNN`, at half its
width and without dropout: cheap enough that adversarial training (a few attack
steps per batch) fits in an hour on two CPU cores.  It is a separate arch, not
an oracle-cnn with other settings, so that a report never mistakes an audited
CNN for the oracle judging it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .oracle_cnn import OracleCNN, OracleCNNConfig


@dataclass(frozen=True)
class CNNConfig(OracleCNNConfig):
    """Two conv blocks (``width`` and ``2 * width`` channels) and a ``hidden``-unit layer."""

    width: int = 16
    hidden: int = 128
    dropout: float = 0.0


class CNN(OracleCNN):
    """``x [B, C, H, W] -> logits [B, num_classes]``; no inverse, no nuisance part."""

    arch = "cnn"
