"""feature-match on real models: the zoo oracle CNN (a plain classifier) and a zoo fiRevNet.

Every run is a handful of pairs and a few dozen Adam steps, so each test takes
seconds on one core; the properties checked are those of any budget: x̃ stays in
the box and the ε-ball around x', the match error only falls, and every rate is
what its records say.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from zoo_audit import ModelOracle

from invaudit.attacks import ATTACKS, AuditContext, run_attack
from invaudit.errors import ConfigError

N = 16
TOL = 1e-6


def context(model, data, oracle=None, n: int = N) -> AuditContext:
    return AuditContext(model, data, oracle=oracle, n=n, seed=0, batch_size=8)


def triples(result) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ex = result.examples
    return ex["source"], ex["match"], ex["partner"]


@pytest.fixture(scope="module")
def linf_run(cnn, firevnet, data) -> Any:
    ctx = context(cnn, data, ModelOracle(firevnet))
    return run_attack("feature-match", ctx, epsilon=0.3, steps=20, examples=N)


def test_x_tilde_stays_in_the_box_and_the_linf_ball(linf_run) -> None:
    x, x_tilde, x_prime = triples(linf_run)
    assert len(x_tilde) == N == linf_run.metrics["n"]
    assert float(x_tilde.min()) >= 0.0 and float(x_tilde.max()) <= 1.0
    assert float((x_tilde - x_prime).abs().max()) <= 0.3 + TOL
    records = linf_run.records
    assert (records["linf_to_partner"] <= 0.3 + TOL).all()
    assert linf_run.metrics["linf_to_partner"] == pytest.approx(records["linf_to_partner"].mean())
    # The search moved: x̃ is not x' (and x, of another class, is far outside the ball).
    assert records["linf_to_partner"].max() > 0.1
    assert (records["linf_to_source"] > 0.3).all()


def test_the_match_error_falls_from_the_start(linf_run) -> None:
    records = linf_run.records
    assert (records["match_error"] <= records["start_match_error"] + 1e-12).all()
    assert records["match_error"].median() < 0.5 * records["start_match_error"].median()
    assert linf_run.metrics["start_match_error_median"] == pytest.approx(
        records["start_match_error"].median()
    )
    # Matching the logits: the matched features are the logits.
    assert records["logit_error"].to_numpy() == pytest.approx(
        records["match_error"].to_numpy(), rel=1e-4, abs=1e-5
    )
    share = (records["match_error"] <= 0.05).mean()
    assert linf_run.metrics["match_within_5pct"] == pytest.approx(share)


def test_the_rates_are_what_the_records_say(linf_run, cnn, firevnet) -> None:
    records, metrics = linf_run.records, linf_run.metrics
    _, x_tilde, _ = triples(linf_run)
    with torch.no_grad():
        model, oracle = cnn.logits(x_tilde).argmax(1), firevnet.logits(x_tilde).argmax(1)
    assert records["prediction"].tolist() == model.tolist()
    assert records["oracle"].tolist() == oracle.tolist()
    says_a = records["prediction"] == records["label"]
    oracle_b = records["oracle"] == records["partner_label"]
    assert metrics["model_says_a"] == pytest.approx(says_a.mean())
    assert metrics["oracle_says_b"] == pytest.approx(oracle_b.mean())
    assert metrics["invariance_success_rate"] == pytest.approx((says_a & oracle_b).mean())
    assert (records["partner_label"] != records["label"]).all()
    for rate in ATTACKS["feature-match"].rates:
        assert 0.0 <= metrics[rate] <= 1.0, rate


def test_the_l2_ball_and_no_oracle(cnn, data) -> None:
    result = run_attack(
        "feature-match", context(cnn, data, n=8), norm="l2", epsilon=2.0, steps=10, examples=8
    )
    _, x_tilde, x_prime = triples(result)
    size = (x_tilde - x_prime).flatten(1).norm(dim=1)
    assert float(size.max()) <= 2.0 * (1 + TOL)
    assert float(x_tilde.min()) >= 0.0 and float(x_tilde.max()) <= 1.0
    assert result.records["l2_to_partner"].max() <= 2.0 * (1 + TOL)
    for metric in ("oracle_says_b", "oracle_says_a", "invariance_success_rate"):
        assert result.metrics[metric] is None, metric
    assert set(result.metrics) == set(ATTACKS["feature-match"].metrics)


def test_a_named_layer_is_matched_through_a_hook(cnn, data) -> None:
    result = run_attack(
        "feature-match", context(cnn, data, n=8), layer="features.7", steps=10, examples=8
    )
    records = result.records
    assert result.settings["target"] == "activations of features.7"
    assert (records["match_error"] <= records["start_match_error"] + 1e-12).all()
    assert records["match_error"].median() < records["start_match_error"].median()
    # The hook is gone afterwards: the model's forward is untouched.
    assert not cnn.get_submodule("features.7")._forward_hooks


def test_on_a_firevnet_it_agrees_with_the_metamers(firevnet, data) -> None:
    """Metamers have exactly the logits of x (F is a bijection); unconstrained in the box,
    feature matching gets close to the same logits from the same partner x'."""
    ctx = context(firevnet, data)
    found = run_attack("feature-match", ctx, epsilon=1.0, steps=30, examples=0)
    metamers = run_attack("metamer", context(firevnet, data), examples=0)
    # The same seed pairs the same examples in both attacks.
    assert found.records["partner"].tolist() == metamers.records["nuisance_source"].tolist()
    assert metamers.metrics["prediction_preserved"] == 1.0
    assert found.metrics["match_error_median"] < 0.05
    assert found.metrics["start_match_error_median"] > 0.5
    assert found.metrics["model_says_a"] >= 0.8
    assert found.metrics["prediction_preserved"] >= 0.8


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"epsilon": -0.1}, "epsilon: expected a finite number > 0"),
        ({"norm": "l1"}, "unknown norm 'l1'"),
        ({"layer": "features.99"}, "no layer 'features.99'; its layers include: features, "),
        ({"steps": -1}, "steps must be an integer >= 0"),
        ({"step_size": 0}, "step_size: expected a finite number > 0"),
    ],
)
def test_a_bad_option_is_one_line(cnn, data, options, fragment) -> None:
    with pytest.raises(ConfigError, match=fragment) as caught:
        run_attack("feature-match", context(cnn, data, n=4), **options)
    assert "\n" not in str(caught.value)
