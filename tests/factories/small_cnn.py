"""A small MNIST CNN built by ``py:factories.small_cnn:build`` (tests put tests/ on sys.path).

Each factory takes no arguments, as the ``py:`` source calls it, and draws its initial
weights from a fixed seed without touching the caller's random stream.
"""

from __future__ import annotations

import torch
from torch import nn


def small_cnn(in_channels: int = 1, num_classes: int = 10, seed: int = 0) -> nn.Module:
    """``[B, in_channels, 28, 28] -> [B, num_classes]``: two conv layers and a linear head."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 7 * 7, num_classes),
        ).eval()


def build() -> nn.Module:
    """The MNIST classifier: 1 input channel, 10 classes."""
    return small_cnn()


def not_a_model() -> dict[str, int]:
    """A factory that returns no module (refused)."""
    return {"layers": 2}
