"""A fresh classifier fitted on frozen features: what z_n (or z_s) really knows about y.

Fooling the adversarial nuisance classifier proves nothing (DESIGN.md's
calibration); the evidence is a new probe trained after F is frozen.  The
cross-entropy on held-out data gives Barber & Agakov's variational lower
bound I(y; features) >= H(y) - CE (Lemma 9/10), reported in bits.

The probe attack (:mod:`invaudit.attacks.probe`) and the spheres attacks fit
it; training never does, so it lives with the attacks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..models.heads import mlp_classifier


@dataclass(frozen=True)
class ProbeResult:
    train_accuracy: float
    test_accuracy: float
    test_ce_bits: float
    label_entropy_bits: float
    #: The fitted probe, standardisation included: ``predictor(features) -> logits``.
    predictor: nn.Module | None = field(default=None, compare=False, repr=False)

    @property
    def mi_lower_bound_bits(self) -> float:
        """``H(y) - CE`` on the test split, in bits (may be negative for a poor probe)."""
        return self.label_entropy_bits - self.test_ce_bits


def label_entropy_bits(y: torch.Tensor, num_classes: int) -> float:
    p = torch.bincount(y, minlength=num_classes).double() / len(y)
    p = p[p > 0]
    return float(-(p * torch.log2(p)).sum())


def fit_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    *,
    hidden: int = 512,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
) -> ProbeResult:
    """Train a 3-layer ReLU MLP on standardised ``train_x``; measure it on ``test_x``.

    Features are standardised with the training split's mean and std, so the
    probe's optimiser sees the same scale whatever F did to z_n.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    probe = mlp_classifier(train_x.shape[1], num_classes, hidden)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(train_y), generator=gen)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(probe(train_x[idx]), train_y[idx]).backward()
            opt.step()
    probe.eval()
    with torch.no_grad():
        train_acc = (probe(train_x).argmax(1) == train_y).double().mean().item()
        test_logits = probe(test_x)
        test_acc = (test_logits.argmax(1) == test_y).double().mean().item()
        ce_bits = F.cross_entropy(test_logits, test_y).item() / math.log(2)
    predictor = nn.Sequential(_Standardize(mean, std), probe).eval()
    return ProbeResult(
        train_acc, test_acc, ce_bits, label_entropy_bits(test_y, num_classes), predictor
    )


class _Standardize(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@torch.no_grad()
def features(
    model: torch.nn.Module, loader, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(z_s, z_n, y)`` of every example in ``loader`` under the frozen, eval-mode model."""
    model.eval()
    zs, zn, ys = [], [], []
    for x, y in loader:
        z_s, z_n = model.split(model(x.to(device)))
        zs.append(z_s.cpu())
        zn.append(z_n.cpu())
        ys.append(y)
    return torch.cat(zs), torch.cat(zn), torch.cat(ys)
