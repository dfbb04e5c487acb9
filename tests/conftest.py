"""Shared helpers: give layers non-trivial parameters before checking them; the audit
data and zoo models the invariance attacks for any model are tested on."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from zoo_audit import INFO

import invaudit
from invaudit.data.audit import AuditData
from invaudit.data.embedded import embedded_mnist_splits


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


# -- the embedded MNIST splits and two zoo models (tests of feature-match, invariance-eps) --


@pytest.fixture(scope="module")
def data() -> AuditData:
    fit, test = embedded_mnist_splits()
    return AuditData("mnist", dict(INFO), test, lambda: fit, source="embedded")


@pytest.fixture(scope="module")
def cnn() -> torch.nn.Module:
    return invaudit.load_model("zoo:mnist-oracle").eval()


@pytest.fixture(scope="module")
def firevnet() -> torch.nn.Module:
    return invaudit.load_model("zoo:mnist-ce").eval()
