"""feature-match and invariance-eps stream their examples: the batch size and the number
of shards change nothing, and the metrics are those of the records alone.

Each attack runs on the zoo oracle CNN (the zoo fiRevNet as its oracle) over a few
dozen embedded MNIST examples, once with batches of 64 (one batch), once with batches
of 5, and once as two shards whose records are concatenated as rank 0 gathers them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
from zoo_audit import ModelOracle

from invaudit.attacks import ATTACKS, AuditContext, run_attack

N = 23  # odd and not a multiple of 5: uneven last batch, uneven shards
TOL = 1e-6

CASES = {
    "feature-match": {"epsilon": 0.3, "steps": 5, "examples": 4},
    "invariance-eps": {"epsilons": [0.1, 0.3], "pgd_steps": 2, "train_limit": 300, "examples": 4},
}


@dataclass
class Rank:
    """What the context reads of a torchrun process: its rank among ``world_size``."""

    rank: int
    world_size: int
    distributed: bool = True


def context(cnn, firevnet, data, *, batch_size: int, dist: Any = None) -> AuditContext:
    return AuditContext(
        cnn, data, oracle=ModelOracle(firevnet), n=N, seed=0, batch_size=batch_size, dist=dist
    )


def assert_same_metrics(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Counts exactly, floats to :data:`TOL`, None as None; maps key by key."""
    assert set(got) == set(want)
    for name, value in want.items():
        if isinstance(value, dict):
            assert_same_metrics(got[name], value)
        elif value is None or isinstance(value, int):
            assert got[name] == value, name
        elif math.isnan(value):
            assert math.isnan(got[name]), name
        else:
            assert got[name] == pytest.approx(value, rel=TOL, abs=TOL), name


@pytest.fixture(scope="module", params=sorted(CASES))
def runs(request, cnn, firevnet, data) -> dict[str, Any]:
    """One attack's whole run with batches of 64 and of 5, and its two shards' runs."""
    name, options = request.param, CASES[request.param]
    whole = run_attack(name, context(cnn, firevnet, data, batch_size=64), **options)
    small = run_attack(name, context(cnn, firevnet, data, batch_size=5), **options)
    # Each rank's own run, before any gather (the stand-in cannot gather).
    shards = [
        ATTACKS[name].run(context(cnn, firevnet, data, batch_size=5, dist=Rank(r, 2)), **options)
        for r in range(2)
    ]
    return {"name": name, "whole": whole, "small": small, "shards": shards}


def test_the_batch_size_changes_no_metric(runs) -> None:
    assert runs["whole"].metrics["n"] == N
    assert_same_metrics(runs["small"].metrics, runs["whole"].metrics)
    # The records agree too, row by row: the verdicts exactly.
    whole, small = runs["whole"].records, runs["small"].records
    assert list(small.columns) == list(whole.columns)
    assert small["index"].tolist() == list(range(N))
    for column in whole.columns:
        if whole[column].dtype == bool or column in ("index", "label", "prediction"):
            assert small[column].tolist() == whole[column].tolist(), column


def test_two_shards_gathered_give_the_single_process_metrics(runs) -> None:
    attack = ATTACKS[runs["name"]]
    first, second = runs["shards"]
    # Contiguous blocks, rank 0 first: the concatenation is in position order.
    assert first.records["index"].tolist() == list(range(len(first.records)))
    assert second.records["index"].tolist() == list(range(len(first.records), N))
    gathered = pd.concat([first.records, second.records], ignore_index=True)
    assert attack.summarise is not None
    assert_same_metrics(attack.summarise(gathered, first.settings), runs["whole"].metrics)
    # Each shard's own metrics are its block's.
    assert first.metrics["n"] + second.metrics["n"] == N


def test_the_partners_do_not_depend_on_the_shard(runs) -> None:
    if runs["name"] != "feature-match":
        pytest.skip("only feature-match pairs positions")
    gathered = pd.concat([s.records for s in runs["shards"]], ignore_index=True)
    assert gathered["partner"].tolist() == runs["whole"].records["partner"].tolist()


def test_the_metrics_are_the_records_summarised(runs) -> None:
    attack = ATTACKS[runs["name"]]
    assert attack.summarise is not None
    for result in (runs["whole"], runs["small"], *runs["shards"]):
        assert attack.summarise(result.records, result.settings) == result.metrics


def test_the_figure_examples_are_the_first_positions(runs) -> None:
    """Rank 0 keeps the first positions, as a single process does, batch size aside."""
    whole, small, first = runs["whole"], runs["small"], runs["shards"][0]
    key = "source" if runs["name"] == "feature-match" else "clean"
    assert len(whole.examples[key]) == 4
    for result in (small, first):
        assert result.examples["label"].tolist() == whole.examples["label"].tolist()
        assert (result.examples[key] - whole.examples[key]).abs().max() <= TOL
    figures = ATTACKS[runs["name"]].figures(small)
    assert figures
    for figure in figures.values():
        figure.clear()
