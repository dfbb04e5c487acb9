"""Every registered attack returns exactly the metrics it declares.

``Attack.metrics`` is what the CI gate validates ``--fail-if`` paths against
before any attack runs (``invaudit.reports.suite.planned_metrics``).  A metric
an attack returns but does not declare would be refused by the gate; one it
declares but does not return would pass validation and then fail after the
whole audit ran.  So each attack runs here, cheaply, on every kind of data it
applies to: spheres with the exact oracle, and small images without an oracle
(where the oracle rates are null but must still be present).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import TensorDataset

from invaudit.attacks import ATTACKS, AuditContext, SpheresOracle
from invaudit.data.audit import AuditData
from invaudit.data.spheres import spheres_splits
from invaudit.models import build

RADII = (1.0, 10.0)
DIM = 6
# Small budgets: each attack finishes in well under a second on one core.
SMALL: dict[str, dict[str, Any]] = {
    "interpolate": {"steps": 3, "examples": 2},
    "metamer": {"examples": 2},
    "probe": {"probe_hidden": 16, "probe_epochs": 1, "train_n": 200, "probe_batch_size": 64},
    "boundary": {
        "grid": 9,
        "probe_hidden": 16,
        "probe_epochs": 1,
        "probe_batch_size": 64,
        "train_n": 200,
    },
    "pgd-linf": {"steps": 3},
    "pgd-l2": {"steps": 3},
    "deepfool-l2": {"steps": 5},
    "deepfool-linf": {"steps": 5},
    "cw-l2": {"steps": 5, "binary_search_steps": 2},
}


def small_options(name: str, attack: Any) -> dict[str, Any]:
    options = SMALL.get(name, {})
    assert set(options) <= set(attack.options), f"stale SMALL options for {name}"
    return options


def seeded_build(arch: str, **config: Any) -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build(arch, **config).eval()


@pytest.fixture(scope="module")
def spheres() -> tuple[AuditData, torch.nn.Module]:
    train, test = spheres_splits(dim=DIM, radii=RADII, seed=0, n_train=400, n_test=40)
    info = {
        "name": "spheres",
        "bounds": (-10.0, 10.0),
        "input_shape": [DIM],
        "num_classes": 2,
        "options": {"dim": DIM, "radii": list(RADII), "seed": 0},
    }
    data = AuditData(
        "spheres", info, TensorDataset(*test.tensors()), lambda: TensorDataset(*train.tensors())
    )
    model = seeded_build("firevnet-fc", dim=DIM, hidden=16, blocks=2).double()
    return data, model


@pytest.fixture(scope="module")
def images() -> tuple[AuditData, torch.nn.Module]:
    gen = torch.Generator().manual_seed(0)

    def split(n: int) -> TensorDataset:
        return TensorDataset(torch.rand(n, 1, 28, 28, generator=gen), torch.arange(n) % 10)

    test, train = split(20), split(60)
    info = {"name": "mnist", "bounds": (0.0, 1.0), "input_shape": [1, 28, 28], "num_classes": 10}
    model = seeded_build("firevnet-mnist", stages=2, blocks=1, hidden=8)
    return AuditData("mnist", info, test, lambda: train), model


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_spheres_run_returns_the_declared_metrics(name, spheres) -> None:
    attack = ATTACKS[name]
    assert attack.metrics, f"{name} declares no metrics"
    assert len(set(attack.metrics)) == len(attack.metrics), f"{name} declares a metric twice"
    data, model = spheres
    ctx = AuditContext(model, data, oracle=SpheresOracle(RADII), n=24, seed=0, batch_size=16)
    torch.manual_seed(0)
    result = attack.run(ctx, **small_options(name, attack))
    assert result.method == name
    assert set(result.metrics) == set(attack.metrics)
    assert result.metrics["n"] == 24


@pytest.mark.parametrize(
    "name", sorted(n for n, a in ATTACKS.items() if a.datasets is None or "mnist" in a.datasets)
)
def test_image_run_without_oracle_returns_the_declared_metrics(name, images) -> None:
    attack = ATTACKS[name]
    data, model = images
    ctx = AuditContext(model, data, oracle=None, n=10, seed=0, batch_size=8)
    torch.manual_seed(0)
    result = attack.run(ctx, **small_options(name, attack))
    assert set(result.metrics) == set(attack.metrics)
    assert result.metrics["n"] == 10


def test_every_attack_has_a_small_budget_or_needs_none() -> None:
    """A new attack with costly defaults must get an entry in SMALL (cheap ones need none)."""
    cheap_by_default = {"metamer", "misaligned", "fgsm"}
    assert set(ATTACKS) == set(SMALL) | cheap_by_default
