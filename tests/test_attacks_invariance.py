"""metamer, interpolate and probe: known answers on a transparent model, invariants on real ones."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import randomize
from torch.utils.data import TensorDataset

from invaudit.attacks import AuditContext, SpheresOracle, run_attack
from invaudit.attacks.base import pair_other_class
from invaudit.data.audit import AuditData
from invaudit.data.spheres import spheres_splits
from invaudit.errors import ConfigError
from invaudit.models import build
from invaudit.models.classifier import InvertibleClassifier
from invaudit.models.layers import AdditiveCoupling, FlowSequence

RADII = (1.0, 10.0)


def spheres_data(dim: int, n_train: int = 2000, n_test: int = 400) -> AuditData:
    train, test = spheres_splits(dim, RADII, 0, n_train, n_test)
    info = {
        "name": "spheres",
        "bounds": (-RADII[1], RADII[1]),
        "input_shape": [dim],
        "num_classes": 2,
        "options": {"dim": dim, "radii": list(RADII), "seed": 0},
    }
    return AuditData(
        "spheres",
        info,
        TensorDataset(*test.tensors()),
        lambda: TensorDataset(*train.tensors()),
    )


def identity_model(dim: int, dtype=torch.float64) -> InvertibleClassifier:
    """F(x) = x exactly (a zero-initialised coupling): z_s = x[:2], z_n = x[2:]."""
    flow = FlowSequence([AdditiveCoupling(dim, 8, conv=False, parity=0)])
    return InvertibleClassifier(flow, (dim,), 2, "identity", {}).to(dtype).eval()


def trained_like_fc(dim: int, seed: int = 0) -> InvertibleClassifier:
    model = build("firevnet-fc", dim=dim, num_classes=2, blocks=2, hidden=32)
    x = spheres_data(dim).test.tensors[0][:256]
    randomize(model, x, scale=0.05, seed=seed)
    return model


def context(model, data, **kw) -> AuditContext:
    return AuditContext(model=model, data=data, oracle=SpheresOracle(RADII), seed=0, **kw)


def test_pairs_always_cross_classes() -> None:
    y = torch.tensor([0, 1, 2, 2, 1, 0, 0, 3])
    partner = pair_other_class(y, torch.Generator().manual_seed(0))
    assert (y[partner] != y).all()
    with pytest.raises(ConfigError, match="at least two classes"):
        pair_other_class(torch.zeros(5, dtype=torch.long), torch.Generator())


def test_metamer_of_the_identity_swaps_exactly_the_nuisance_coordinates() -> None:
    dim = 5
    data = spheres_data(dim)
    ctx = context(identity_model(dim), data, n=200)
    result = run_attack("metamer", ctx)
    x, y = ctx.test_examples()
    partner = torch.tensor(result.records["nuisance_source"].to_numpy())
    expected = torch.cat([x[:, :2], x[partner, 2:]], dim=1).double()
    keep = len(result.examples["metamer"])
    assert torch.allclose(result.examples["metamer"], expected[:keep], atol=1e-12)
    radius = expected.norm(dim=1)
    oracle = (radius > sum(RADII) / 2).long()
    decision = x[:, :2].double().argmax(1)
    m = result.metrics
    assert m["logit_match_max_abs"] <= 1e-12 and m["prediction_preserved"] == 1.0
    assert m["oracle_agrees_nuisance_source"] == pytest.approx(
        (oracle == y[partner]).double().mean()
    )
    assert m["invariance_success_rate"] == pytest.approx((oracle != decision).double().mean())
    assert m["l2_to_logit_source"] == pytest.approx((expected - x).norm(dim=1).mean().item())


def test_metamers_of_a_perturbed_firevnet_keep_logits_and_decisions() -> None:
    model = trained_like_fc(8)
    result = run_attack("metamer", context(model, spheres_data(8), n=300))
    m = result.metrics
    assert m["n"] == 300
    assert m["logit_match_max_abs"] <= 1e-4
    assert m["prediction_preserved"] == 1.0
    assert m["reconstruction_max_abs"] <= 1e-4
    assert 0.0 <= m["oracle_agrees_nuisance_source"] <= 1.0
    assert (result.records["label"] != result.records["nuisance_label"]).all()
    again = run_attack("metamer", context(model, spheres_data(8), n=300))
    assert again.metrics == m


def test_interpolation_of_the_identity_matches_the_radius_along_each_path() -> None:
    dim, steps = 4, 5
    data = spheres_data(dim)
    ctx = context(identity_model(dim), data, n=100)
    result = run_attack("interpolate", ctx, steps=steps, examples=3)
    x, y = ctx.test_examples()
    x = x.double()
    partner = torch.tensor(result.records["nuisance_source"].to_numpy())
    t = torch.linspace(0, 1, steps, dtype=torch.float64)
    paths = torch.cat(
        [
            x[:, None, :2].expand(-1, steps, -1),
            (1 - t)[None, :, None] * x[:, None, 2:] + t[None, :, None] * x[partner, None, 2:],
        ],
        dim=2,
    )
    assert torch.allclose(result.examples["paths"], paths[:3], atol=1e-12)
    oracle = (paths.norm(dim=2) > sum(RADII) / 2).long()
    flipped = (oracle != y[:, None]).any(1)
    m = result.metrics
    assert m["logit_drift_max_abs"] <= 1e-12 and m["decision_preserved_rate"] == 1.0
    assert m["oracle_flip_rate"] == pytest.approx(flipped.double().mean().item())
    assert m["endpoint_oracle_agrees_nuisance_source"] == pytest.approx(
        (oracle[:, -1] == y[partner]).double().mean().item()
    )
    first = (oracle != y[:, None]).double().argmax(1)
    if flipped.any():
        assert m["mean_flip_t"] == pytest.approx(t[first[flipped]].mean().item())


def test_interpolation_refuses_a_single_step() -> None:
    with pytest.raises(ConfigError, match="steps"):
        run_attack("interpolate", context(identity_model(3), spheres_data(3), n=10), steps=1)


def test_no_oracle_gives_null_oracle_metrics() -> None:
    ctx = AuditContext(model=trained_like_fc(6), data=spheres_data(6), n=50)
    m = run_attack("metamer", ctx).metrics
    assert m["oracle_agrees_nuisance_source"] is None and m["invariance_success_rate"] is None
    m = run_attack("interpolate", ctx, steps=3).metrics
    assert m["oracle_flip_rate"] is None and m["logit_drift_max_abs"] <= 1e-4


def test_probe_reads_the_radius_from_the_nuisances() -> None:
    """z_n of a bijection still holds the radius: a fresh probe must find it."""
    model = trained_like_fc(10)
    result = run_attack(
        "probe",
        context(model, spheres_data(10, n_train=3000)),
        probe_hidden=64,
        probe_epochs=8,
        train_n=3000,
    )
    m = result.metrics
    assert m["nuisance_accuracy"] >= 0.95
    assert m["nuisance_error"] == pytest.approx(1 - m["nuisance_accuracy"])
    assert m["mi_lower_bound_bits_nuisance"] > 0.7  # H(y) = 1 bit
    assert m["n_train"] == 3000 and m["n"] == 400
    assert m["label_entropy_bits"] == pytest.approx(1.0, abs=0.01)


def test_probe_finds_nothing_where_there_is_nothing() -> None:
    """Labels independent of the inputs: the probe must stay near chance."""
    gen = torch.Generator().manual_seed(0)
    x_train, x_test = torch.randn(2000, 6, generator=gen), torch.randn(1000, 6, generator=gen)
    y_train = torch.randint(2, (2000,), generator=gen)
    y_test = torch.randint(2, (1000,), generator=gen)
    info = {"name": "spheres", "bounds": (-10.0, 10.0), "input_shape": [6], "num_classes": 2}
    data = AuditData(
        "spheres", info, TensorDataset(x_test, y_test), lambda: TensorDataset(x_train, y_train)
    )
    m = run_attack(
        "probe", AuditContext(model=identity_model(6, torch.float32), data=data), probe_epochs=3
    ).metrics
    assert abs(m["nuisance_accuracy"] - 0.5) < 0.06
    assert m["mi_lower_bound_bits_nuisance"] < 0.05
    assert not math.isnan(m["logit_error"])


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"probe_epochs": 0}, "probe_epochs"),
        ({"train_n": -1}, "train_n"),
        ({"probe_lr": 0.0}, "probe_lr"),
        ({"nonsense": 1}, "takes no option nonsense"),
    ],
)
def test_probe_refuses_bad_options(options, fragment) -> None:
    with pytest.raises(ConfigError, match=fragment):
        run_attack("probe", context(identity_model(3), spheres_data(3)), **options)


def test_context_refuses_a_non_positive_n() -> None:
    with pytest.raises(ConfigError, match="n must be at least 1"):
        context(identity_model(3), spheres_data(3), n=0)
