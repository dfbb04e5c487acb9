"""metamer and interpolate stream their pairs: the metrics do not depend on the batch size
nor on how the positions are split over processes, and they follow from the records alone."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
import torch
from test_attacks_invariance import context, spheres_data, trained_like_fc

from invaudit.attacks import ATTACKS, Progress, run_attack

N = 40
RUNS = [("metamer", {"examples": 3}), ("interpolate", {"steps": 3, "examples": 3})]


@dataclass
class FakeDist:
    """What the context reads of a torchrun process: its rank and the world's size."""

    rank: int
    world_size: int
    distributed: bool = True


class StrictProgress(Progress):
    """Counts the steps and fails on a bar started inside another one."""

    def __init__(self) -> None:
        self.open = False
        self.steps = 0

    def start(self, label: str, total: int) -> None:
        assert not self.open, f"nested bar {label!r}"
        self.open = True

    def advance(self, steps: int = 1) -> None:
        self.steps += steps

    def finish(self) -> None:
        self.open = False


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return trained_like_fc(6)


def assert_same(a: Any, b: Any, where: str) -> None:
    """Counts and labels exactly, floats to 1e-6 (NaN equals NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-6, (where, a, b)
    else:
        assert a == b and type(a) is type(b), (where, a, b)


def assert_same_metrics(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert_same(a[key], b[key], key)


def run_shards(method, options, model, world: int, n: int = N) -> list[Any]:
    """Each rank's own result over its block (what every torchrun process computes before
    rank 0 gathers the records)."""
    data = spheres_data(6)
    run = ATTACKS[method].run
    return [
        run(context(model, data, n=n, batch_size=7, dist=FakeDist(rank, world)), **options)
        for rank in range(world)
    ]


def gathered(method: str, parts: list[Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """What rank 0 makes of every shard's result: the records in order, their metrics."""
    records = pd.concat([p.records for p in parts], ignore_index=True)
    records = records.sort_values("index", kind="stable").reset_index(drop=True)
    return records, ATTACKS[method].summarise(records, parts[0].settings)


@pytest.mark.parametrize("method, options", RUNS)
def test_the_batch_size_does_not_change_the_metrics(method, options, model) -> None:
    data = spheres_data(6)
    small = run_attack(method, context(model, data, n=N, batch_size=7), **options)
    large = run_attack(method, context(model, data, n=N, batch_size=64), **options)
    assert_same_metrics(small.metrics, large.metrics)
    pd.testing.assert_frame_equal(small.records, large.records, check_exact=False, atol=1e-6)
    for name, kept in large.examples.items():
        assert torch.allclose(small.examples[name], kept, atol=1e-6), name


@pytest.mark.parametrize("method, options", RUNS)
def test_two_shards_gather_to_the_single_process_result(method, options, model) -> None:
    whole = run_attack(method, context(model, spheres_data(6), n=N, batch_size=64), **options)
    parts = run_shards(method, options, model, world=2)
    assert [len(p.records) for p in parts] == [N // 2, N // 2]
    records, metrics = gathered(method, parts)
    assert list(records["index"]) == list(range(N))
    pd.testing.assert_frame_equal(records, whole.records, check_exact=False, atol=1e-6)
    assert_same_metrics(metrics, whole.metrics)
    # Rank 0 holds the first positions: the figure's examples are the single process's.
    for name in ("label", "nuisance_label"):
        assert torch.equal(parts[0].examples[name], whole.examples[name]), name


@pytest.mark.parametrize("method, options", RUNS)
@pytest.mark.parametrize("oracle", [True, False])
def test_the_metrics_are_the_summary_of_the_records(method, options, oracle, model) -> None:
    ctx = context(model, spheres_data(6), n=N, batch_size=7)
    if not oracle:
        ctx.oracle = None
    ctx.progress = progress = StrictProgress()
    result = run_attack(method, ctx, **options)
    assert ATTACKS[method].summarise(result.records, result.settings) == result.metrics
    assert result.metrics["n"] == N and not progress.open
    assert progress.steps >= math.ceil(N / 7)  # the bar moved at least once a batch
    oracle_metric = "invariance_success_rate" if method == "metamer" else "oracle_flip_rate"
    assert (result.metrics[oracle_metric] is None) is not oracle


def test_the_spheres_radii_come_from_the_records(model) -> None:
    result = run_attack("metamer", context(model, spheres_data(6), n=N, batch_size=7), examples=2)
    ex = result.examples
    assert len(ex["metamer"]) == 2 and len(ex["metamer_norm"]) == len(ex["source_norm"]) == N
    assert torch.allclose(ex["metamer_norm"][:2], ex["metamer"].flatten(1).norm(dim=1))
    assert torch.allclose(ex["source_norm"][:2], ex["logit_source"].flatten(1).norm(dim=1))
    assert set(ATTACKS["metamer"].figures(result)) == {"metamer_radii"}


@pytest.mark.parametrize("method, options", RUNS)
def test_a_shard_without_positions_still_has_every_column(method, options, model) -> None:
    """More processes than examples: a rank audits nothing, and rank 0 may be that one."""
    n = 4
    parts = run_shards(method, options, model, world=n + 1, n=n)
    assert [len(p.records) for p in parts] == [0, 1, 1, 1, 1]
    assert all(list(p.records.columns) == list(parts[1].records.columns) for p in parts)
    assert all(p.examples.keys() == parts[1].examples.keys() for p in parts)
    whole = run_attack(method, context(model, spheres_data(6), n=n), **options)
    records, metrics = gathered(method, parts)
    assert_same_metrics(metrics, whole.metrics)
