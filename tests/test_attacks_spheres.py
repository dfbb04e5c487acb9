"""The spheres-only audits: Example 6's misaligned classifier and Figure 3's decision planes."""

from __future__ import annotations

import inspect
import io
import math

import pytest
import torch
from conftest import randomize
from torch.utils.data import TensorDataset

from invaudit.attacks.base import AuditContext
from invaudit.attacks.boundary import ATTACK as BOUNDARY
from invaudit.attacks.boundary import orthonormal_basis, run_boundary
from invaudit.attacks.misaligned import ATTACK as MISALIGNED
from invaudit.attacks.misaligned import run_misaligned, shift_last_coordinate
from invaudit.attacks.oracle import SpheresOracle
from invaudit.data.audit import AuditData
from invaudit.data.spheres import spheres_splits
from invaudit.errors import ConfigError
from invaudit.models import build

RADII = (1.0, 10.0)
# A small probe and grid: enough to learn the radius from z_n at dim 10 in a second.
SMALL = dict(grid=21, probe_hidden=32, probe_epochs=3, probe_batch_size=64, train_n=2000)


def spheres_data(dim: int, n_train: int, n_test: int, name: str = "spheres") -> AuditData:
    train, test = spheres_splits(dim=dim, radii=RADII, seed=0, n_train=n_train, n_test=n_test)
    info = {
        "name": name,
        "bounds": (-10.0, 10.0),
        "input_shape": [dim],
        "num_classes": 2,
        "options": {"dim": dim, "radii": list(RADII), "seed": 0},
    }
    return AuditData(
        name, info, TensorDataset(*test.tensors()), lambda: TensorDataset(*train.tensors())
    )


def fc_model(dim: int, *, identity: bool = False) -> torch.nn.Module:
    """A small firevnet-fc: perturbed off the identity, or with every coupling zeroed.

    Zeroed couplings leave only the fixed permutations, so z is a shuffle of x:
    z_s is two input coordinates and z_n the other d − 2, which carry the radius.
    """
    with torch.random.fork_rng():  # build draws its init from the global RNG
        torch.manual_seed(0)
        model = build("firevnet-fc", dim=dim, hidden=16, blocks=2)
    if identity:
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        return model.eval()
    randomize(model, torch.randn(64, dim), scale=0.1)
    return model


def context(data: AuditData, model: torch.nn.Module | None = None, **kw) -> AuditContext:
    model = model if model is not None else fc_model(data.info["options"]["dim"])
    return AuditContext(model=model, data=data, oracle=SpheresOracle(RADII), **kw)


# -- misaligned ---------------------------------------------------------------------------------
def test_misaligned_is_perfect_then_at_chance():
    data = spheres_data(100, n_train=8, n_test=3000)
    result = run_misaligned(context(data))
    m = result.metrics
    assert m["n"] == 3000
    assert m["clean_accuracy"] == 1.0
    outer_share = float((data.test.tensors[1] == 1).double().mean())
    assert abs(m["shifted_accuracy"] - 0.5) <= 0.03
    assert m["shifted_accuracy"] == pytest.approx(outer_share)
    assert m["moved_share"] == pytest.approx(1 - outer_share)
    assert m["decision_unchanged_share"] == 1.0
    assert m["invariance_adversarial_share"] == pytest.approx(1 - outer_share)

    rec = result.records
    assert len(rec) == 3000
    assert (rec["oracle_after"] == 1).all()  # every point now lies on R2
    assert (rec["d_shifted"] == rec["d_clean"]).all()
    inner = rec["label"] == 0
    assert (rec.loc[inner, "radius_after"] - RADII[1]).abs().max() < 1e-4
    assert (rec.loc[~inner, "radius_after"] == rec.loc[~inner, "radius_before"]).all()
    assert (rec.loc[inner, "radius_before"] - RADII[0]).abs().max() < 1e-4


def test_shift_moves_only_the_last_coordinate():
    x, y = spheres_data(100, n_train=8, n_test=2000).test.tensors
    moved = y == 0
    shifted = shift_last_coordinate(x, moved, RADII[1])
    assert torch.equal(shifted[:, :-1], x[:, :-1])
    assert torch.equal(shifted[~moved], x[~moved])
    norms = shifted[moved].double().norm(dim=1)
    assert (norms - RADII[1]).abs().max() < 1e-4
    assert torch.equal(torch.sign(shifted[moved, -1]), torch.sign(x[moved, -1]))
    # sign 0 counts as +: a point with x_d = 0 moves up.
    zero = torch.tensor([[0.6, 0.8, 0.0]])
    out = shift_last_coordinate(zero, torch.tensor([True]), 10.0)
    assert out[0, -1] == pytest.approx(math.sqrt(99.0))


def test_misaligned_figure_renders():
    result = run_misaligned(context(spheres_data(20, n_train=8, n_test=200)))
    figures = MISALIGNED.figures(result)
    assert set(figures) == {"misaligned"}
    figures["misaligned"].savefig(io.BytesIO(), format="png")


# -- boundary -----------------------------------------------------------------------------------
def test_orthonormal_basis_spans_both_points():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 30, generator=gen)
    basis = orthonormal_basis(a, b)
    assert torch.allclose(basis @ basis.T, torch.eye(2, dtype=torch.float64), atol=1e-12)
    for v in (a, b):
        assert torch.allclose((basis @ v.double()) @ basis, v.double(), atol=1e-10)
    # parallel inputs still give a plane
    degenerate = orthonormal_basis(a, 2 * a)
    assert torch.allclose(degenerate @ degenerate.T, torch.eye(2, dtype=torch.float64))


def fc_result_model() -> torch.nn.Module:
    return fc_model(10)  # deterministic: the same perturbed weights every call


@pytest.fixture(scope="module")
def fc_result():
    data = spheres_data(10, n_train=2000, n_test=400)
    return run_boundary(context(data, fc_result_model()), **SMALL)


def test_boundary_metamer_keeps_logits_and_lies_in_its_plane(fc_result):
    m, ex = fc_result.metrics, fc_result.examples
    assert m["metamer_logit_match_max_abs"] <= 1e-4
    x, x_other, x_met = ex["metamer_inputs"]
    assert m["metamer_radius"] == pytest.approx(float(x_met.double().norm()))
    assert x.norm() == pytest.approx(RADII[0], abs=1e-4)
    assert x_other.norm() == pytest.approx(RADII[1], abs=1e-4)
    for plane, points in (("random", (x, x_other)), ("metamer", (x, x_met))):
        basis, anchors = ex[f"basis_{plane}"], ex[f"anchors_{plane}"]
        assert basis.shape == (2, 10) and anchors.shape == (2, 2)
        for coords, point in zip(anchors, points, strict=True):
            assert torch.allclose(coords @ basis, point.double(), atol=1e-4)
    # x is the first basis direction: it sits on the positive e1 axis at radius R1
    assert ex["anchors_metamer"][0].tolist() == pytest.approx([RADII[0], 0.0], abs=1e-5)


def test_boundary_grids_follow_the_radius_rule(fc_result):
    m, ex, grid = fc_result.metrics, fc_result.examples, SMALL["grid"]
    u = ex["grid_axis"]
    assert u[0] == pytest.approx(-1.3 * RADII[1]) and u[-1] == pytest.approx(1.3 * RADII[1])
    b, a = torch.meshgrid(u, u, indexing="ij")
    analytic = ((a**2 + b**2).sqrt() > sum(RADII) / 2).long()
    for plane in ("random", "metamer"):
        for name in ("logit", "nuisance", "oracle"):
            decisions = ex[f"grid_{plane}_{name}"]
            assert decisions.shape == (grid, grid) and decisions.dtype == torch.int64
            assert set(decisions.unique().tolist()) <= {0, 1}
        assert torch.equal(ex[f"grid_{plane}_oracle"], analytic)
        for name in ("logit", "nuisance"):
            for suffix in ("", "_annulus", "_balanced"):
                assert 0.0 <= m[f"{plane}_plane_{name}_accuracy{suffix}"] <= 1.0
            # the metric is the share of grid points agreeing with the oracle grid
            agree = ex[f"grid_{plane}_{name}"] == analytic
            accuracy = m[f"{plane}_plane_{name}_accuracy"]
            assert accuracy == pytest.approx(float(agree.double().mean()))
    # Cell [i, j] is the point u[j]·e1 + u[i]·e2: recompute D there independently.
    model = fc_result_model()
    for plane in ("random", "metamer"):
        points = (a.flatten()[:, None] * ex[f"basis_{plane}"][0]
                  + b.flatten()[:, None] * ex[f"basis_{plane}"][1])
        with torch.no_grad():
            expected = model.predict(points.float()).reshape(grid, grid)
        assert torch.equal(ex[f"grid_{plane}_logit"], expected)
    rec = fc_result.records
    assert len(rec) == 2 * grid * grid
    first = rec[rec["plane"] == "random"].iloc[grid + 2]  # row 1, column 2
    assert (first["row"], first["col"]) == (1, 2)
    assert (first["a"], first["b"]) == pytest.approx((float(u[2]), float(u[1])))
    assert set(rec["plane"]) == {"random", "metamer"}


def test_boundary_figure_renders(fc_result):
    figures = BOUNDARY.figures(fc_result)
    assert set(figures) == {"boundary"}
    fig = figures["boundary"]
    assert len(fig.axes) == 4
    fig.savefig(io.BytesIO(), format="png")


def test_boundary_exposes_an_invariant_logit_classifier():
    """z = a shuffle of x: D reads two coordinates, z_n holds the radius.

    The probe must read the class off z_n; the metamer keeps x's (inner)
    decision under D while landing near the outer sphere, where the oracle and
    the probe both call it outer; and over both planes the probe tracks the
    oracle far better than D, whose regions are half-planes (chance).
    """
    data = spheres_data(10, n_train=4000, n_test=400)
    model = fc_model(10, identity=True)
    result = run_boundary(context(data, model), **{**SMALL, "train_n": 4000})
    m = result.metrics
    x = result.examples["metamer_inputs"][:1]
    assert m["probe_test_accuracy"] >= 0.95
    assert m["metamer_logit_match_max_abs"] == 0.0
    assert m["metamer_radius"] > sum(RADII) / 2
    assert m["metamer_logit_decision"] == int(model.predict(x)[0])  # D cannot tell them apart
    assert m["metamer_oracle_label"] == 1 and m["metamer_nuisance_decision"] == 1
    for plane in ("random", "metamer"):
        logit, nuisance = (f"{plane}_plane_{name}_accuracy" for name in ("logit", "nuisance"))
        assert abs(m[logit + "_balanced"] - 0.5) < 0.1
        assert m[nuisance + "_annulus"] >= 0.85
        assert m[nuisance + "_annulus"] >= m[logit + "_annulus"] + 0.3
        assert m[nuisance + "_balanced"] >= m[logit + "_balanced"] + 0.1


def test_boundary_is_deterministic_per_seed():
    data = spheres_data(10, n_train=600, n_test=200)
    model = fc_model(10)
    options = {**SMALL, "grid": 7, "train_n": 600, "probe_epochs": 1}
    first = run_boundary(context(data, model, seed=3), **options)
    again = run_boundary(context(data, model, seed=3), **options)
    assert first.metrics == again.metrics
    assert torch.equal(first.examples["grid_metamer_nuisance"],
                       again.examples["grid_metamer_nuisance"])
    other = run_boundary(context(data, model, seed=4), **options)
    assert other.settings["anchor_indices"] != first.settings["anchor_indices"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"grid": 1}, "grid must be"),
        ({"probe_epochs": 0}, "probe_epochs must be"),
        ({"train_n": 0}, "train_n must be"),
        ({"probe_hidden": 0}, "probe_hidden must be"),
        ({"probe_lr": -1.0}, "probe_lr must be"),
    ],
)
def test_boundary_rejects_bad_options(options, message):
    ctx = context(spheres_data(10, n_train=8, n_test=8))
    with pytest.raises(ConfigError, match=message):
        run_boundary(ctx, **{**SMALL, **options})


def test_spheres_audits_reject_other_datasets():
    ctx = context(spheres_data(10, n_train=8, n_test=8, name="mnist"))
    expected = "boundary applies to the adversarial spheres only; this model was trained on mnist"
    with pytest.raises(ConfigError, match=expected):
        run_boundary(ctx, **SMALL)
    with pytest.raises(ConfigError, match="misaligned applies to the adversarial spheres only"):
        run_misaligned(ctx)


def test_boundary_needs_both_classes():
    ctx = context(spheres_data(10, n_train=8, n_test=8), n=1)
    with pytest.raises(ConfigError, match="both classes"):
        run_boundary(ctx, **SMALL)


def test_registry_entries_match_their_functions():
    by_name = {a.name: a for a in (MISALIGNED, BOUNDARY)}
    assert set(by_name) == {"misaligned", "boundary"}
    for attack in by_name.values():
        assert attack.kind == "invariance" and attack.datasets == ("spheres",)
        params = inspect.signature(attack.run).parameters
        keyword = {k: p.default for k, p in params.items() if p.kind is p.KEYWORD_ONLY}
        assert keyword == attack.options
    assert by_name["misaligned"].needs_invertible is False
    assert by_name["boundary"].needs_invertible is True
