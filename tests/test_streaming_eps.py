"""The foolbox ε-attacks stream their examples and shard (issue 18).

Each example's PGD random start comes from its own generator, so the metrics do
not depend on the batch size nor on how the positions are split between
processes: two shards' records, concatenated, summarise to the metrics of one
process over every position (counts exactly, floats to 1e-6).  The PGD here takes
one short step from its random start, so its verdicts hinge on where it starts:
with a start drawn per batch, as foolbox draws it, they would change with the
batch size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import eagerpy as ep
import foolbox as fb
import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

from invaudit.attacks import eps_loop
from invaudit.attacks.base import AuditContext
from invaudit.attacks.eps_loop import summarise
from invaudit.attacks.foolbox_adapter import per_example_starts
from invaudit.attacks.perturbation import ATTACKS, run_deepfool_l2, run_pgd_l2, run_pgd_linf
from invaudit.data.audit import AuditData
from invaudit.data.spheres import spheres_splits
from invaudit.errors import DataError
from invaudit.models import build

N = 41  # odd: two shards of different sizes
DIM = 6

#: One short step from the random start: the verdicts depend on where PGD starts.
START_BOUND = {"steps": 1, "rel_stepsize": 0.05}
RUNS = {
    "pgd-linf": (run_pgd_linf, {"epsilons": [0.0, 0.5, 1.0, 2.0, 4.0], **START_BOUND}),
    "pgd-l2": (run_pgd_l2, {"epsilons": [0.0, 1.0, 2.0, 4.0, 8.0], **START_BOUND}),
    "deepfool-l2": (run_deepfool_l2, {"epsilons": [0.0, 0.5, 2.0], "steps": 10}),
}


@pytest.fixture(scope="module")
def spheres() -> tuple[AuditData, torch.nn.Module]:
    train, test = spheres_splits(dim=DIM, radii=(1.0, 10.0), seed=0, n_train=200, n_test=60)
    info = {"name": "spheres", "bounds": (-10.0, 10.0), "input_shape": [DIM], "num_classes": 2}
    data = AuditData(
        "spheres", info, TensorDataset(*test.tensors()), lambda: TensorDataset(*train.tensors())
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build("firevnet-fc", dim=DIM, hidden=16, blocks=2).double().eval()
    return data, model


def context(spheres, batch_size: int, dist: Any = None, n: int = N) -> AuditContext:
    data, model = spheres
    return AuditContext(model, data, n=n, seed=0, batch_size=batch_size, dist=dist)


def shard(rank: int, world: int) -> SimpleNamespace:
    """What the context reads of a torchrun process group."""
    return SimpleNamespace(rank=rank, world_size=world, distributed=True)


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Equal metrics: ints and None exactly, floats to 1e-6 (NaN equals NaN)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-6, (where, a, b)
    else:
        assert a == b and type(a) is type(b), (where, a, b)


def verdicts(records: pd.DataFrame) -> pd.DataFrame:
    """The columns that must agree exactly (distances are floats: compared apart)."""
    return records.drop(columns="distance").reset_index(drop=True)


@pytest.fixture(scope="module")
def whole(spheres) -> dict[str, Any]:
    """Each attack in one process, batch size 64 (a single batch)."""
    return {name: run(context(spheres, 64), **kw) for name, (run, kw) in RUNS.items()}


# -- batch size ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_batch_size_changes_nothing(name, spheres, whole) -> None:
    run, kw = RUNS[name]
    small = run(context(spheres, 3), **kw)
    big = whole[name]
    assert_same(small.metrics, big.metrics, name)
    pd.testing.assert_frame_equal(verdicts(small.records), verdicts(big.records))
    pd.testing.assert_series_equal(
        small.records["distance"], big.records["distance"], check_exact=False, atol=1e-6, rtol=0
    )
    torch.testing.assert_close(small.examples["adversarial"], big.examples["adversarial"])
    assert torch.equal(small.examples["adv_pred"], big.examples["adv_pred"])
    robust = list(big.metrics["robust_accuracy"].values())
    assert robust[0] > robust[-1]  # the attack does break something: the test has teeth


def test_with_foolbox_drawing_a_start_per_batch_the_batch_size_would_matter(
    spheres, whole, monkeypatch
) -> None:
    """Without per-example starts foolbox draws each batch's start from the (seeded)
    global RNG: the comparisons above would then fail, so they test the starts."""

    @contextmanager
    def per_batch(attack: Any, generators: list[torch.Generator]) -> Iterator[None]:
        yield

    monkeypatch.setattr(eps_loop, "per_example_starts", per_batch)
    for name in ("pgd-linf", "pgd-l2"):
        run, kw = RUNS[name]
        small, big = (run(context(spheres, size), **kw) for size in (3, 64))
        assert small.metrics["robust_accuracy"] != big.metrics["robust_accuracy"], name


# -- the random start, per example --------------------------------------------------------------


def starts(attack: Any, ctx: AuditContext, positions: list[int], epsilon: float) -> torch.Tensor:
    """The offsets ``attack`` starts from at ``positions`` (of zero inputs), two ε in turn."""
    x0 = ep.astensor(torch.zeros(len(positions), 2, 3))
    with per_example_starts(attack, ctx.example_generators(7, torch.tensor(positions))):
        first = attack.get_random_start(x0, epsilon).raw
        second = attack.get_random_start(x0, epsilon).raw
    return torch.stack([first, second])


@pytest.mark.parametrize("kind", [fb.attacks.LinfPGD, fb.attacks.L2PGD], ids=["linf", "l2"])
def test_each_example_draws_its_own_reproducible_start(kind, spheres) -> None:
    attack, ctx = kind(steps=1), context(spheres, 64)
    drawn = starts(attack, ctx, [4, 9], 0.5)
    assert drawn.dtype == torch.float32  # the input's dtype, drawn in float64
    assert not torch.equal(drawn[:, 0], drawn[:, 1])  # two examples, two starts
    assert not torch.equal(drawn[0], drawn[1])  # the next ε draws afresh
    # Reproducible, and the same whatever batch the example is drawn in or where in it.
    torch.testing.assert_close(starts(attack, ctx, [4, 9], 0.5), drawn, rtol=0, atol=0)
    torch.testing.assert_close(starts(attack, ctx, [9], 0.5)[:, 0], drawn[:, 1], rtol=0, atol=0)
    torch.testing.assert_close(starts(attack, ctx, [9, 4], 0.5)[:, 1], drawn[:, 0], rtol=0, atol=0)
    flat = drawn.flatten(2).double()
    size = flat.abs().amax(-1) if kind is fb.attacks.LinfPGD else flat.norm(dim=-1)
    assert (size <= 0.5 + 1e-6).all() and (size > 0).all()
    assert "get_random_start" not in vars(attack)  # foolbox's own method is back


def test_the_start_is_uniform_in_the_ball() -> None:
    """Many L2 starts in d = 6: inside the ball, and as many beyond radius 2^(-1/6)·ε as
    within it (half the ball's volume); L∞ starts fill the cube symmetrically."""
    ctx = AuditContext(None, None, seed=0)  # type: ignore[arg-type]
    gens = ctx.example_generators(3, torch.arange(4000))
    x0 = ep.astensor(torch.zeros(4000, DIM, dtype=torch.float64))
    attack = fb.attacks.L2PGD()
    with per_example_starts(attack, gens):
        radius = attack.get_random_start(x0, 2.0).raw.norm(dim=1)
    assert float(radius.max()) <= 2.0 + 1e-12
    inner = float((radius < 2.0 * 2 ** (-1 / DIM)).double().mean())
    assert abs(inner - 0.5) < 0.05
    cube = fb.attacks.LinfPGD()
    gens = ctx.example_generators(4, torch.arange(4000))
    with per_example_starts(cube, gens):
        offset = cube.get_random_start(x0, 2.0).raw
    assert float(offset.abs().max()) <= 2.0 and abs(float(offset.mean())) < 0.05
    assert abs(float((offset > 1.0).double().mean()) - 0.25) < 0.02


def test_an_attack_without_a_random_start_is_left_alone_and_an_unknown_ball_refused() -> None:
    fgsm = fb.attacks.FGSM()
    with per_example_starts(fgsm, []):
        assert "get_random_start" not in vars(fgsm)
    with pytest.raises(TypeError, match="L∞ or L2"):
        with per_example_starts(fb.attacks.L1PGD(), []):
            pass


def test_a_batch_with_the_wrong_number_of_generators_is_refused() -> None:
    attack = fb.attacks.LinfPGD()
    gens = [torch.Generator().manual_seed(0)]
    with per_example_starts(attack, gens), pytest.raises(ValueError, match="1 generator"):
        attack.get_random_start(ep.astensor(torch.zeros(2, 3)), 0.1)


# -- shards -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RUNS))
def test_two_shards_gathered_give_the_metrics_of_one_process(name, spheres, whole) -> None:
    run, kw = RUNS[name]
    parts = [run(context(spheres, 8, shard(rank, 2)), **kw) for rank in (0, 1)]
    assert [len(p.records) for p in parts] == [20, 21]
    assert list(parts[1].records["index"]) == list(range(20, N))  # global positions
    gathered = pd.concat([p.records for p in parts], ignore_index=True)
    assert_same(summarise(gathered, parts[0].settings), whole[name].metrics, name)
    pd.testing.assert_frame_equal(verdicts(gathered), verdicts(whole[name].records))
    # Rank 0 keeps its own first examples for the figure, at their global positions.
    assert parts[0].examples["index"].tolist() == whole[name].examples["index"].tolist()
    assert int(parts[1].examples["index"].min()) >= 20


def test_a_shard_without_positions_reports_empty_records(spheres) -> None:
    run, kw = RUNS["deepfool-l2"]
    empty = run(context(spheres, 8, shard(0, 2), n=1), **kw)
    alone = run(context(spheres, 8, shard(1, 2), n=1), **kw)
    assert len(empty.records) == 0 and empty.examples == {}
    assert list(empty.records.columns) == list(alone.records.columns)
    assert empty.metrics["n"] == 0 and math.isnan(empty.metrics["clean_accuracy"])
    gathered = pd.concat([empty.records, alone.records], ignore_index=True)
    assert_same(summarise(gathered, alone.settings), alone.metrics)


# -- metrics from the records alone ---------------------------------------------------------------


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_the_metrics_are_the_summary_of_the_records(attack, spheres) -> None:
    assert attack.summarise is summarise
    result = attack.run(context(spheres, 16), **attack.smoke)
    assert_same(summarise(result.records, result.settings), result.metrics, attack.name)
    assert set(result.metrics) == set(attack.metrics)
    # Settings written before ``minimal_norm`` existed: the distances say which family.
    older = {k: v for k, v in result.settings.items() if k != "minimal_norm"}
    assert_same(summarise(result.records, older), result.metrics, attack.name)


# -- streaming ----------------------------------------------------------------------------------


def test_inputs_are_loaded_a_batch_at_a_time_and_never_all_at_once(spheres) -> None:
    ctx = context(spheres, 5)
    loaded: list[int] = []
    load = ctx.load

    def counting_load(positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loaded.append(len(positions))
        return load(positions)

    def refuse() -> None:
        raise AssertionError("test_examples loads every audited input")

    ctx.load, ctx.test_examples = counting_load, refuse  # type: ignore[method-assign]
    run, kw = RUNS["pgd-l2"]
    run(ctx, **kw)
    assert loaded == [5] * 8 + [1]


def test_a_batch_outside_the_bounds_is_refused_when_it_is_loaded(spheres) -> None:
    data, model = spheres
    x, y = data.test.tensors
    x = x.clone()
    x[-1] = 50.0  # the last position only: found when its batch comes
    bad = AuditData("spheres", data.info, TensorDataset(x, y), data.load_train)
    ctx = AuditContext(model, bad, seed=0, batch_size=8)
    with pytest.raises(DataError, match="outside the dataset bounds"):
        run_pgd_linf(ctx, epsilons=[0.1], steps=1)
