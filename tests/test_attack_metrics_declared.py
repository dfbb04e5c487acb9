"""Every registered attack returns exactly the metrics it declares.

``Attack.metrics`` is what the CI gate validates ``--fail-if`` paths against
before any attack runs (``invaudit.reports.suite.planned_metrics``).  A metric
an attack returns but does not declare would be refused by the gate; one it
declares but does not return would pass validation and then fail after the
whole audit ran.  So each attack runs here, cheaply, on every kind of data it
applies to: spheres with the exact oracle, and small images without an oracle
(where the oracle rates are null but must still be present).  Each runs with the
options its declaration gives for a smoke run (``Attack.smoke``), so a new attack
is tested here by its registry line alone.
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


def small_options(name: str, attack: Any) -> dict[str, Any]:
    """The attack's declared smoke options (each run then takes well under a second)."""
    options = dict(attack.smoke)
    assert set(options) <= set(attack.options), f"stale smoke options for {name}"
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


def test_every_attack_runs_on_some_data_here() -> None:
    """Both tests above together cover every registered attack (a dataset-only attack
    for another dataset would need data of its own here)."""
    here = {"spheres", "mnist"}
    covered = {n for n, a in ATTACKS.items() if a.datasets is None or here & set(a.datasets)}
    assert covered == set(ATTACKS)


def test_declared_headline_and_suites_name_what_the_attack_has() -> None:
    """The declaration checks itself when built; here, what it cannot check alone."""
    for name, attack in ATTACKS.items():
        assert attack.name == name
        for budget in attack.suites.values():
            assert budget.n is None or budget.n >= 1, name
        assert all(h.metric in attack.metrics for h in attack.headline), name
        # A rate is a share of the count it names, which the attack must report too.
        assert set(attack.rates.values()) <= set(attack.metrics), name
