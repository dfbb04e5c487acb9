"""Optimiser presets of Appendix B, with step schedules scaled to the run's length."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Preset:
    """One optimiser recipe: the paper's epochs and decay steps, rescaled per run."""

    optimizer: str
    lr: float
    weight_decay: float = 0.0
    momentum: float = 0.0
    decay: float = 1.0
    decay_every: int = 0  # epochs of the paper's schedule between decays; 0: constant
    paper_epochs: int = 1
    batch_size: int = 64

    def step_size(self, epochs: int) -> int:
        """Epochs between decays, scaled so a short run sees the paper's number of decays."""
        if not self.decay_every:
            return 0
        return max(1, round(self.decay_every * epochs / self.paper_epochs))


PRESETS = {
    # B.1: Adam, lr 1e-4, otherwise PyTorch defaults; 10 epochs of 500k points.
    "spheres": Preset("adam", 1e-4, paper_epochs=10, batch_size=128),
    # B.2: Adamax lr 1e-3, x0.2 every 30 of 100 epochs, batch 64, weight decay 1e-4.
    "mnist": Preset("adamax", 1e-3, 1e-4, decay=0.2, decay_every=30, paper_epochs=100),
    # B.3: SGD momentum 0.9, lr 0.1, x0.1 every 32 of 128 epochs, weight decay 1e-4.
    "imagenet": Preset(
        "sgd", 0.1, 1e-4, 0.9, decay=0.1, decay_every=32, paper_epochs=128, batch_size=64
    ),
}
PRESETS["fashion-mnist"] = PRESETS["mnist"]


def make_optimizer(preset: Preset, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if preset.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=preset.weight_decay)
    if preset.optimizer == "adamax":
        return torch.optim.Adamax(params, lr=lr, weight_decay=preset.weight_decay)
    return torch.optim.SGD(
        params, lr=lr, momentum=preset.momentum, weight_decay=preset.weight_decay
    )


def make_scheduler(
    preset: Preset, optimizer: torch.optim.Optimizer, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler:
    step = preset.step_size(epochs)
    if not step:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step, gamma=preset.decay)
