"""The foolbox ε-baselines against what a linear classifier makes exact.

For a two-class linear model the distance from x to the decision boundary is
known in closed form (|margin| / ‖w₁ − w₀‖₂ in L2, / ‖w₁ − w₀‖₁ in L∞), and
FGSM / PGD reach it exactly.  So the attacks' per-sample verdicts and the
reported distances can be checked number by number, not just "it ran".
"""

from __future__ import annotations

import inspect
import io
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from invaudit.attacks.base import AuditContext
from invaudit.attacks.eps_figures import figures
from invaudit.attacks.epsilons import default_epsilons
from invaudit.attacks.perturbation import (
    ATTACKS,
    run_cw_l2,
    run_deepfool_l2,
    run_deepfool_linf,
    run_fgsm,
    run_pgd_l2,
    run_pgd_linf,
)
from invaudit.data.audit import AuditData
from invaudit.errors import ConfigError, DataError
from invaudit.models import build

DIM = 5
WEIGHT = torch.tensor([[0.5, -1.0, 0.25, 0.8, -0.3], [-0.5, 0.6, -0.4, 0.1, 0.9]])
BIAS = torch.tensor([0.1, -0.2])
W_DIFF, B_DIFF = WEIGHT[1] - WEIGHT[0], BIAS[1] - BIAS[0]
EPS_LINF = [0.0, 0.05, 0.1, 0.2]
EPS_L2 = [0.0, 0.1, 0.25, 0.5]


class Linear(nn.Module):
    """A plain (non-invertible) two-class classifier with known weights."""

    num_classes = 2
    input_shape = (DIM,)

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(DIM, 2)
        with torch.no_grad():
            self.lin.weight.copy_(WEIGHT)
            self.lin.bias.copy_(BIAS)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


class Exploding(Linear):
    """Proves validation happens before any model call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the model was called")


def margins(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(predicted class, exact L2 distance, exact L∞ distance) to the linear boundary."""
    score = x @ W_DIFF + B_DIFF
    return (score > 0).long(), score.abs() / W_DIFF.norm(), score.abs() / W_DIFF.abs().sum()


def linear_points(count: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Points well inside the ±10 box whose distances keep 8 % away from every ε,
    so an attack's verdict cannot hinge on rounding; labels random (some wrong)."""
    gen = torch.Generator().manual_seed(1)
    x = 0.3 * torch.randn(2000, DIM, generator=gen)
    y = torch.randint(0, 2, (2000,), generator=gen)
    _, l2, linf = margins(x)
    keep = torch.ones(len(x), dtype=torch.bool)
    for dist, epsilons in ((l2, EPS_L2), (linf, EPS_LINF)):
        keep &= dist > 0.02
        for e in epsilons:
            keep &= (dist - e).abs() > 0.08 * max(e, 0.02)
    return x[keep][:count], y[keep][:count]


def spheres_data(x: torch.Tensor, y: torch.Tensor, radius: float = 10.0) -> AuditData:
    info = {
        "name": "spheres",
        "bounds": (-radius, radius),
        "input_shape": [x.shape[1]],
        "num_classes": 2,
    }
    return AuditData("spheres", info, TensorDataset(x, y), lambda: TensorDataset(x, y))


def linear_ctx(model: nn.Module | None = None, **kw) -> AuditContext:
    x, y = linear_points()
    kw = {"seed": 0, "batch_size": 16, **kw}
    return AuditContext(model=model or Linear(), data=spheres_data(x, y), **kw)


def analytic_robust(epsilons: list[float], norm: str) -> np.ndarray:
    """[n, len(epsilons)]: clean-correct and farther than ε from the boundary."""
    x, y = linear_points()
    pred, l2, linf = margins(x)
    dist = l2 if norm == "l2" else linf
    correct = pred == y
    return np.stack([(correct & (dist > e)).numpy() for e in epsilons], axis=1)


def robust_columns(result, epsilons: list[float]) -> np.ndarray:
    return result.records[[f"robust@{e:g}" for e in epsilons]].to_numpy(dtype=bool)


# -- exact answers on a linear model -------------------------------------------


@pytest.mark.parametrize(
    "run, epsilons, norm, options",
    [
        (run_fgsm, EPS_LINF, "linf", {}),
        (run_pgd_linf, EPS_LINF, "linf", {}),
        (run_pgd_l2, EPS_L2, "l2", {}),
    ],
    ids=["fgsm", "pgd-linf", "pgd-l2"],
)
def test_fixed_eps_attacks_reach_the_analytic_verdict(run, epsilons, norm, options):
    result = run(linear_ctx(), epsilons=epsilons, **options)
    expected = analytic_robust(epsilons, norm)
    np.testing.assert_array_equal(robust_columns(result, epsilons), expected)
    for k, e in enumerate(epsilons):
        assert result.metrics["robust_accuracy"][f"{e:g}"] == pytest.approx(expected[:, k].mean())
    assert result.records["distance"].isna().all()
    assert result.settings["norm"] == norm and result.settings["epsilons"] == epsilons


def test_deepfool_l2_distance_is_the_analytic_margin():
    x, y = linear_points()
    pred, l2, _ = margins(x)
    correct = (pred == y).numpy()
    # Without overshoot DeepFool lands 1e-4 past the boundary of a linear model.
    exact = run_deepfool_l2(linear_ctx(), epsilons=EPS_L2, overshoot=0.0)
    found = exact.records["distance"].to_numpy()
    np.testing.assert_allclose(found[correct], l2.numpy()[correct], atol=1e-3)
    assert (found[~correct] == 0).all()
    assert exact.metrics["median_distance"] == pytest.approx(np.median(l2[correct]), abs=1e-3)
    assert exact.metrics["mean_distance"] == pytest.approx(l2[correct].mean().item(), abs=1e-3)
    assert exact.metrics["median_distance_failures"] == 0
    np.testing.assert_array_equal(robust_columns(exact, EPS_L2), analytic_robust(EPS_L2, "l2"))
    # foolbox's default overshoot of 2 % shows as distances 2 % too large, never smaller.
    default = run_deepfool_l2(linear_ctx(), epsilons=EPS_L2)
    ratio = default.records["distance"].to_numpy()[correct] / l2.numpy()[correct]
    assert ratio.min() >= 1.0 and ratio.max() <= 1.03


def test_deepfool_linf_distance_is_the_analytic_margin():
    x, y = linear_points()
    pred, _, linf = margins(x)
    correct = (pred == y).numpy()
    result = run_deepfool_linf(linear_ctx(), epsilons=EPS_LINF, overshoot=0.0)
    found = result.records["distance"].to_numpy()
    np.testing.assert_allclose(found[correct], linf.numpy()[correct], atol=1e-3)
    np.testing.assert_array_equal(
        robust_columns(result, EPS_LINF), analytic_robust(EPS_LINF, "linf")
    )


def test_cw_l2_finds_near_minimal_adversarials():
    ctx = linear_ctx(n=16, batch_size=16)
    xs, ys = ctx.test_examples()
    pred, exact, _ = margins(xs)
    correct = (pred == ys).numpy()
    result = run_cw_l2(ctx, epsilons=EPS_L2, stepsize=0.001)
    np.testing.assert_array_equal(result.records["clean_correct"].to_numpy(), correct)
    found = result.records["distance"].to_numpy()[correct]
    exact = exact.numpy()[correct]
    # No adversarial can be closer than the boundary; C&W gets within 2 % of it.
    assert len(found) > 0 and np.isfinite(found).all()
    assert (found >= exact - 1e-4).all()
    assert (found <= 1.02 * exact + 1e-4).all()


class Constant(Linear):
    """Zero weights: the decision never changes, so every minimal attack must fail."""

    def __init__(self) -> None:
        super().__init__()
        with torch.no_grad():
            self.lin.weight.zero_()


@pytest.mark.parametrize(
    "run, options",
    [(run_deepfool_l2, {}), (run_cw_l2, {"steps": 5, "binary_search_steps": 2})],
    ids=["deepfool-l2", "cw-l2"],
)
def test_a_failing_minimal_attack_reports_failures_not_a_fake_median(run, options):
    result = run(linear_ctx(Constant()), epsilons=EPS_L2, **options)
    correct = result.records["clean_correct"].to_numpy()
    distance = result.records["distance"].to_numpy()
    assert np.isinf(distance[correct]).all() and (distance[~correct] == 0).all()
    assert result.metrics["median_distance"] is None
    assert result.metrics["mean_distance"] is None
    assert result.metrics["median_distance_failures"] == correct.sum() > 0
    clean = result.metrics["clean_accuracy"]
    assert all(v == clean for v in result.metrics["robust_accuracy"].values())
    assert not result.examples["success"].any()
    torch.testing.assert_close(result.examples["adversarial"], result.examples["clean"])


class Bump(nn.Module):
    """1-D: class 1 only in the slab 0.07 < x < 0.13, uphill from x = 0."""

    num_classes = 2
    input_shape = (1,)

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.tensor(0.1))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bump = 0.03 - (x[:, 0] - self.anchor).abs()
        return torch.stack([torch.zeros_like(bump), bump], dim=1)


def test_an_adversarial_within_a_smaller_eps_breaks_every_larger_one():
    # FGSM from x = 0 lands in the slab at ε = 0.1 but jumps over it at ε = 0.2.
    x, y = torch.zeros(4, 1), torch.zeros(4, dtype=torch.long)
    ctx = AuditContext(model=Bump(), data=spheres_data(x, y), seed=0)
    result = run_fgsm(ctx, epsilons=[0.0, 0.1, 0.2])
    assert not result.examples["success"].any()  # the attack itself failed at 0.2 ...
    assert result.metrics["robust_accuracy"] == {"0": 1.0, "0.1": 0.0, "0.2": 0.0}  # ... yet


# -- properties on an image classifier -------------------------------------------


class TinyImageNet(nn.Module):
    """A plain linear 10-class classifier on 1×28×28 images (random weights)."""

    num_classes = 10
    input_shape = (1, 28, 28)

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mnist_ctx(count: int = 12) -> AuditContext:
    model = TinyImageNet()
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(count, 1, 28, 28, generator=gen)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[-3:] = (y[-3:] + 1) % 10  # a few misclassified samples
    info = {"name": "mnist", "bounds": (0.0, 1.0), "input_shape": [1, 28, 28], "num_classes": 10}
    data = AuditData("mnist", info, TensorDataset(x, y), lambda: TensorDataset(x, y))
    return AuditContext(model=model, data=data, seed=0, batch_size=8)


@pytest.mark.parametrize("run", [run_fgsm, run_pgd_linf, run_pgd_l2], ids=["fgsm", "linf", "l2"])
def test_fixed_eps_curve_and_examples_stay_in_the_ball(run):
    ctx = mnist_ctx()
    result = (
        run(ctx, epsilons=[0.0, 0.01, 0.5], steps=10)
        if run is not run_fgsm
        else run(ctx, epsilons=[0.0, 0.01, 0.5])
    )
    robust = list(result.metrics["robust_accuracy"].values())
    clean = result.metrics["clean_accuracy"]
    assert clean == pytest.approx(9 / 12)
    assert robust[0] == clean
    assert all(a >= b for a, b in zip(robust, robust[1:], strict=False))
    assert robust[-1] < clean  # a large ε must break a random linear model
    ex = result.examples
    eps = float(ex["epsilon"])
    assert eps == 0.5 and len(ex["clean"]) == 8
    delta = (ex["adversarial"] - ex["clean"]).flatten(1)
    size = delta.abs().amax(1) if result.settings["norm"] == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-5).all()
    assert ex["adversarial"].min() >= 0.0 and ex["adversarial"].max() <= 1.0
    # Successful adversarials change the decision; the figure's labels say so.
    assert (ex["adv_pred"][ex["success"]] != ex["label"][ex["success"]]).all()


def test_minimal_examples_lie_at_their_distance_and_in_bounds():
    result = run_deepfool_l2(mnist_ctx(), epsilons=[0.0, 0.1, 1.0])
    ex = result.examples
    size = (ex["adversarial"] - ex["clean"]).flatten(1).norm(dim=1).double()
    ok = ex["success"]
    torch.testing.assert_close(size[ok], ex["distance"][ok], atol=1e-4, rtol=1e-4)
    assert ex["adversarial"].min() >= 0.0 and ex["adversarial"].max() <= 1.0
    assert (ex["adv_pred"][ok] != ex["label"][ok]).all()
    records = result.records
    for e in (0.0, 0.1, 1.0):
        expected = records["clean_correct"] & (records["distance"] > e)
        assert (records[f"robust@{e:g}"] == expected).all()


def test_default_epsilons_follow_the_dataset():
    ctx = mnist_ctx()
    assert default_epsilons(ctx.data, "linf") == [0.1, 0.2, 0.3]
    assert default_epsilons(ctx.data, "l2") == [1.0, 2.0]
    spheres = spheres_data(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    assert default_epsilons(spheres, "l2") == [0.1, 0.5, 1.0, 2.0]
    assert default_epsilons(spheres, "linf") == [0.01, 0.05, 0.1]
    wide = spheres_data(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), radius=20.0)
    assert default_epsilons(wide, "l2") == [0.2, 1.0, 2.0, 4.0]
    result = run_fgsm(ctx)
    assert result.settings["epsilons"] == [0.1, 0.2, 0.3]
    assert list(result.metrics["robust_accuracy"]) == ["0.1", "0.2", "0.3"]


# -- contract: validation, determinism, registry, figures ----------------------


@pytest.mark.parametrize(
    "run, options, message",
    [
        (run_fgsm, {"epsilons": [0.1, -0.1]}, ">= 0"),
        (run_fgsm, {"epsilons": []}, "empty"),
        (run_pgd_linf, {"epsilons": [math.inf]}, ">= 0"),
        (run_pgd_l2, {"epsilons": [float("nan")]}, ">= 0"),
        (run_pgd_linf, {"steps": 0}, "steps"),
        (run_pgd_l2, {"rel_stepsize": 0.0}, "rel_stepsize"),
        (run_deepfool_l2, {"steps": 0}, "steps"),
        (run_deepfool_linf, {"overshoot": -1.0}, "overshoot"),
        (run_cw_l2, {"steps": 0}, "steps"),
        (run_cw_l2, {"binary_search_steps": 0}, "binary_search_steps"),
        (run_cw_l2, {"epsilons": ["a"]}, "numbers"),
    ],
)
def test_bad_options_raise_one_line_before_any_model_call(run, options, message):
    with pytest.raises(ConfigError, match=message) as err:
        run(linear_ctx(Exploding()), **options)
    assert "\n" not in str(err.value)


def test_inputs_outside_the_bounds_raise_before_any_model_call():
    x, y = linear_points()
    data = spheres_data(x * 100, y)
    with pytest.raises(DataError, match="outside the dataset bounds"):
        run_pgd_linf(AuditContext(model=Exploding(), data=data), epsilons=[0.1])


def test_same_seed_gives_identical_results_and_leaves_the_global_rng_alone():
    ctx = linear_ctx()  # building the model draws from the global RNG: do it first
    state = torch.random.get_rng_state()
    first = run_pgd_l2(ctx, epsilons=EPS_L2, steps=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    second = run_pgd_l2(linear_ctx(), epsilons=EPS_L2, steps=5)
    assert first.metrics == second.metrics
    assert first.records.equals(second.records)
    torch.testing.assert_close(first.examples["adversarial"], second.examples["adversarial"])


def test_invertible_classifier_is_attacked_through_its_logits():
    model = build("firevnet-fc", dim=4, num_classes=2, blocks=1, hidden=8).eval()
    gen = torch.Generator().manual_seed(2)
    x = (2 * torch.randn(32, 4, generator=gen)).clamp(-9, 9)
    y = torch.randint(0, 2, (32,), generator=gen)
    ctx = AuditContext(model=model, data=spheres_data(x, y), seed=0, batch_size=16)
    result = run_deepfool_l2(ctx, epsilons=[0.0, 0.5])
    with torch.no_grad():
        predicted = model.predict(x)
    assert result.metrics["clean_accuracy"] == pytest.approx((predicted == y).double().mean())
    np.testing.assert_array_equal(result.records["clean_pred"].to_numpy(), predicted.numpy())
    ex = result.examples
    with torch.no_grad():
        assert torch.equal(ex["adv_pred"], model.predict(ex["adversarial"]))
    assert (ex["adv_pred"][ex["success"]] != ex["label"][ex["success"]]).all()
    assert result.metrics["median_distance_failures"] == 0


def test_registry_entries_match_their_run_functions():
    names = [a.name for a in ATTACKS]
    assert names == ["fgsm", "pgd-linf", "pgd-l2", "deepfool-l2", "deepfool-linf", "cw-l2"]
    norms = {a.name: a.norm for a in ATTACKS}
    assert norms == {"fgsm": "linf", "pgd-linf": "linf", "pgd-l2": "l2", "deepfool-l2": "l2",
                     "deepfool-linf": "linf", "cw-l2": "l2"}  # fmt: skip
    for attack in ATTACKS:
        assert attack.kind == "sensitivity" and not attack.needs_invertible
        assert attack.datasets is None and "\n" not in attack.summary
        params = inspect.signature(attack.run).parameters
        keyword = {k: p.default for k, p in params.items() if p.kind is p.KEYWORD_ONLY}
        assert keyword == attack.options, attack.name


def test_figures_are_drawn_with_labels():
    image = run_deepfool_l2(mnist_ctx(), epsilons=[0.1, 1.0])
    figs = figures(image)
    assert set(figs) == {"robust_accuracy", "distances", "examples"}
    curve = figs["robust_accuracy"].axes[0]
    assert "ε" in curve.get_xlabel() and curve.get_ylabel() == "accuracy"
    for fig in figs.values():
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        assert buffer.getvalue()[:4] == b"\x89PNG"
    points = run_fgsm(linear_ctx(), epsilons=EPS_LINF)
    assert set(figures(points)) == {"robust_accuracy"}  # no images, no distances
