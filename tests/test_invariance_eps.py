"""invariance-eps on real models: the zoo oracle CNN audited, a zoo fiRevNet as its oracle.

The nearest-neighbour search runs over the first few hundred training images
(``train_limit``) and PGD takes a few steps, so each test takes seconds on one core.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import TensorDataset
from zoo_audit import ModelOracle

from invaudit.attacks import ATTACKS, AuditContext, SpheresOracle, run_attack
from invaudit.attacks.invariance_eps import move_towards, nearest_other_class
from invaudit.data.audit import AuditData
from invaudit.data.spheres import spheres_splits
from invaudit.errors import ConfigError
from invaudit.models import build

N = 32
LIMIT = 600
EPS = [0.1, 0.3]
TOL = 1e-6


def context(model, data, oracle=None, n: int = N) -> AuditContext:
    return AuditContext(model, data, oracle=oracle, n=n, seed=0, batch_size=16)


@pytest.fixture(scope="module")
def linf_run(cnn, firevnet, data) -> Any:
    ctx = context(cnn, data, ModelOracle(firevnet))
    return run_attack(
        "invariance-eps", ctx, epsilons=EPS, pgd_steps=3, train_limit=LIMIT, examples=N
    )


def test_the_neighbour_is_the_nearest_of_another_class(data) -> None:
    x, y = context(None, data).test_examples()
    train = TensorDataset(*[t[:LIMIT] for t in _tensors(data.train())])
    index, distance = nearest_other_class(x, y, data.train(), limit=LIMIT, chunk=128, batch=5)
    tx, ty = train.tensors
    brute = torch.cdist(x.flatten(1).double(), tx.flatten(1).double())
    brute[y.view(-1, 1) == ty.view(1, -1)] = float("inf")
    assert (index < LIMIT).all() and (ty[index] != y).all()
    # float64 throughout: any tie the expanded form could misjudge is within 1e-7.
    assert distance.numpy() == pytest.approx(brute.min(dim=1).values.numpy(), rel=1e-7)
    exact = (x - tx[index]).flatten(1).double().norm(dim=1)
    assert distance.numpy() == pytest.approx(exact.numpy(), rel=1e-7)


def test_the_move_is_the_papers_formula() -> None:
    x = torch.tensor([[0.0, 0.5, 1.0, 0.2]])
    near = torch.tensor([[1.0, 0.4, 0.0, 0.2]])
    linf = move_towards(x, near, 0.3, "linf", (0.0, 1.0))
    assert torch.allclose(linf, torch.tensor([[0.3, 0.4, 0.7, 0.2]]))
    l2 = move_towards(x, near, 0.5, "l2", (0.0, 1.0))
    gap = near - x
    assert torch.allclose(l2, x + 0.5 * gap / gap.norm())
    assert torch.allclose(move_towards(x, near, 10.0, "l2", (0.0, 1.0)), near)


def _tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[i] for i in range(LIMIT)]
    return torch.stack([a for a, _ in items]), torch.stack([torch.as_tensor(b) for _, b in items])


def test_x_eps_lies_in_the_linf_ball_and_the_box(linf_run) -> None:
    ex = linf_run.examples
    x, moved, near = ex["clean"], ex["moved"], ex["neighbour"]
    assert moved.shape == (len(EPS), *x.shape) and len(x) == N
    for k, eps in enumerate(EPS):
        step = (moved[k] - x).abs().flatten(1).amax(1)
        assert float(step.max()) <= eps + TOL
        assert float(moved[k].min()) >= 0.0 and float(moved[k].max()) <= 1.0
        # It moved as far as the ball allows: by ε wherever x_near differs by more.
        gap = (near - x).abs().flatten(1).amax(1)
        assert step.numpy() == pytest.approx(gap.clamp(max=eps).numpy(), abs=TOL)
    records = linf_run.records
    assert (records["neighbour_label"] != records["label"]).all()
    assert (records["neighbour_index"] < LIMIT).all()


def test_the_rates_are_what_the_records_say(linf_run, cnn, firevnet) -> None:
    records, metrics = linf_run.records, linf_run.metrics
    moved = linf_run.examples["moved"]
    correct = records["prediction"] == records["label"]
    assert metrics["clean_accuracy"] == pytest.approx(correct.mean())
    for k, eps in enumerate(EPS):
        key = f"{eps:g}"
        with torch.no_grad():
            model, oracle = cnn.logits(moved[k]).argmax(1), firevnet.logits(moved[k]).argmax(1)
        assert records[f"prediction@{key}"].tolist() == model.tolist()
        assert records[f"oracle@{key}"].tolist() == oracle.tolist()
        kept = records[f"prediction@{key}"] == records["label"]
        changed = records[f"oracle@{key}"] != records["label"]
        assert records[f"invariant@{key}"].tolist() == (kept & changed).tolist()
        assert metrics["model_kept"][key] == pytest.approx(kept.mean())
        assert metrics["oracle_changed"][key] == pytest.approx(changed.mean())
        assert metrics["invariance_rate"][key] == pytest.approx((kept & changed).mean())
        robust = records[f"robust@{key}"].astype(bool)
        assert metrics["robust_accuracy"][key] == pytest.approx(robust.mean())
        # Robust at ε means classified right to begin with.
        assert not (robust & (records["prediction"] != records["label"])).any()
        for metric in ATTACKS["invariance-eps"].maps:
            assert 0.0 <= metrics[metric][key] <= 1.0, (metric, key)
    assert set(metrics) == set(ATTACKS["invariance-eps"].metrics)


def test_robust_accuracy_is_the_pgd_attacks_own(linf_run, cnn, firevnet, data) -> None:
    """The same PGD (steps, seed, batches) as the registered pgd-linf: the same verdicts."""
    pgd = run_attack("pgd-linf", context(cnn, data), epsilons=EPS, steps=3)
    assert pgd.metrics["robust_accuracy"] == linf_run.metrics["robust_accuracy"]
    assert linf_run.settings["pgd"]["steps"] == 3


def test_l2_reaches_the_neighbour_once_the_ball_holds_it(cnn, data) -> None:
    """Without an oracle the oracle rates are null; at an ε beyond every neighbour's
    distance x_ε is x_near itself, so the model decides on x_near."""
    result = run_attack(
        "invariance-eps", context(cnn, data, n=8), epsilons=[2.0, 100.0], norm="l2",
        pgd_steps=0, train_limit=LIMIT, examples=8,
    )  # fmt: skip
    ex, metrics = result.examples, result.metrics
    size = (ex["moved"][0] - ex["clean"]).flatten(1).norm(dim=1)
    assert float(size.max()) <= 2.0 * (1 + TOL)
    assert torch.allclose(ex["moved"][1], ex["neighbour"], atol=1e-6)
    with torch.no_grad():
        on_neighbour = cnn.logits(ex["neighbour"]).argmax(1)
    assert result.records["prediction@100"].tolist() == on_neighbour.tolist()
    assert metrics["invariance_rate"] == {"2": None, "100": None}
    assert metrics["oracle_changed"] == {"2": None, "100": None}
    assert metrics["robust_accuracy"] == {"2": None, "100": None}  # pgd_steps=0
    assert 0.0 <= metrics["model_kept"]["2"] <= 1.0


def test_the_exact_spheres_oracle_sees_every_neighbour_change_class() -> None:
    radii, dim = (1.0, 10.0), 6
    train, test = spheres_splits(dim=dim, radii=radii, seed=0, n_train=300, n_test=40)
    info = {"name": "spheres", "bounds": (-10.0, 10.0), "input_shape": [dim], "num_classes": 2}
    data = AuditData(
        "spheres", info, TensorDataset(*test.tensors()), lambda: TensorDataset(*train.tensors())
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build("firevnet-fc", dim=dim, hidden=16, blocks=2).double().eval()
    ctx = AuditContext(model, data, oracle=SpheresOracle(radii), n=20, seed=0)
    result = run_attack("invariance-eps", ctx, epsilons=[0.0, 50.0], norm="l2", pgd_steps=0)
    assert result.metrics["oracle_changed"] == {"0": 0.0, "50": 1.0}
    kept = result.metrics["model_kept"]["50"]
    assert result.metrics["invariance_rate"]["50"] == pytest.approx(kept)


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"epsilons": [-0.1]}, "epsilons: expected finite values >= 0"),
        ({"norm": "l1"}, "unknown norm 'l1'"),
        ({"train_limit": 0}, "train_limit must be an integer >= 1"),
        ({"pgd_steps": -1}, "pgd_steps must be an integer >= 0"),
    ],
)
def test_a_bad_option_is_one_line(cnn, data, options, fragment) -> None:
    with pytest.raises(ConfigError, match=fragment) as caught:
        run_attack("invariance-eps", context(cnn, data, n=4), **options)
    assert "\n" not in str(caught.value)
