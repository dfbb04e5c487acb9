"""Training: CE learns, iCE's nuisance term has the sign that empties z_n, runs resume."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from invaudit.attacks.probe_fit import features, fit_probe
from invaudit.data.splits import Splits
from invaudit.errors import ConfigError
from invaudit.models.checkpoint import load_model, read_checkpoint
from invaudit.training.losses import FactorialGaussian, ICEConfig, bits_per_dim
from invaudit.training.trainer import Trainer, TrainSettings


def gaussian_splits(dim: int = 8) -> Splits:
    """Two Gaussian classes whose means differ in *every* coordinate.

    A CE-trained bijection has no reason to move that information out of z_n,
    so a fresh probe reads y from z_n; iCE must push it into z_s.
    """

    def sample(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        y = torch.arange(n) % 2
        return torch.randn(n, dim, generator=gen) + (2 * y[:, None] - 1), y

    info = {"name": "gaussians", "input_shape": [dim], "num_classes": 2, "bounds": (-9.0, 9.0)}
    return Splits(TensorDataset(*sample(4000, 0)), TensorDataset(*sample(2000, 1)), info)


def small_settings(loss: str, **overrides) -> TrainSettings:
    base = dict(
        dataset="spheres",
        arch="firevnet-fc",
        arch_config={"hidden": 32, "blocks": 2},
        loss=loss,
        epochs=6,
        lr=1e-3,
        batch_size=64,
        device="cpu",
        ice=ICEConfig(nuisance_hidden=64),
    )
    base.update(overrides)
    return TrainSettings(**base)


def probe_on_nuisance(model, splits: Splits) -> float:
    _, zn_train, y_train = features(model, DataLoader(splits.train, batch_size=1024))
    _, zn_test, y_test = features(model, DataLoader(splits.test, batch_size=1024))
    return fit_probe(zn_train, y_train, zn_test, y_test, 2, hidden=64, epochs=5).test_accuracy


def test_ice_removes_label_information_from_z_n(tmp_path) -> None:
    """The sign check of Definition 7: a fresh probe on z_n does worse after iCE than CE."""
    results = {}
    for loss in ("ce", "ice"):
        trainer = Trainer(small_settings(loss), tmp_path / f"{loss}.pt", splits=gaussian_splits())
        metrics = trainer.fit()
        assert metrics["logit_test_acc"] >= 0.97  # both still classify (Bayes rate ~0.9999)
        results[loss] = probe_on_nuisance(load_model(tmp_path / f"{loss}.pt"), gaussian_splits())
    assert results["ce"] >= 0.95
    assert results["ice"] <= results["ce"] - 0.15, results


def test_spheres_ce_reaches_full_holdout_accuracy(tmp_path) -> None:
    settings = TrainSettings(
        dataset="spheres",
        arch="firevnet-fc",
        loss="ce",
        epochs=3,
        device="cpu",
        dim=10,
        n_train=6000,
        n_test=2000,
        lr=1e-3,
        arch_config={"hidden": 64},
    )
    metrics = Trainer(settings, tmp_path / "s.pt").fit()
    assert metrics["logit_test_acc"] >= 0.99
    payload = torch.load(tmp_path / "s.pt", weights_only=True)  # plain data only
    assert payload["dataset"]["name"] == "spheres" and payload["loss"] == "ce"
    assert len(payload["training"]["history"]) == 3
    model = load_model(tmp_path / "s.pt")
    assert not model.training


def test_resume_continues_exactly_where_the_last_epoch_ended(tmp_path) -> None:
    full = Trainer(small_settings("ice", epochs=2), tmp_path / "full.pt", splits=gaussian_splits())
    full.fit()
    first = Trainer(small_settings("ice", epochs=1), tmp_path / "part.pt", splits=gaussian_splits())
    first.fit()
    # Same run, asked for 2 epochs now: it must start at epoch 2 from the saved state.
    resumed = Trainer(
        small_settings("ice", epochs=2), tmp_path / "part.pt", resume=True, splits=gaussian_splits()
    )
    assert resumed.start_epoch == 1
    resumed.fit()
    a = read_checkpoint(tmp_path / "full.pt")
    b = read_checkpoint(tmp_path / "part.pt")
    for key, value in a["state_dict"].items():
        assert torch.allclose(value.float(), b["state_dict"][key].float(), atol=1e-6), key
    assert a["training"]["history"][1]["loss"] == b["training"]["history"][1]["loss"]


def test_mle_term_is_bits_per_dim_of_the_change_of_variables() -> None:
    prior = FactorialGaussian(3)
    z = torch.zeros(4, 3)
    logdet = torch.full((4,), 2.0)
    # N(0, 1) at 0: 0.5 log(2 pi) nats per dim; minus logdet 2 over d = 5 dims.
    expected = (3 * 0.5 * torch.log(torch.tensor(2 * torch.pi)) - 2.0) / (
        5 * torch.log(torch.tensor(2.0))
    )
    assert torch.allclose(bits_per_dim(prior.nll(z), logdet, 5), expected)


def test_nll_weight_adds_the_likelihood_term_to_ce(tmp_path) -> None:
    """CE + w·MLE_n: the prior trains with F, and the loss is sCE + w·MLE_n exactly."""
    settings = small_settings("ce", epochs=1, nll_weight=0.5)
    trainer = Trainer(settings, tmp_path / "ce-nll.pt", splits=gaussian_splits())
    prior_ids = {id(p) for p in trainer.game.prior.parameters()}
    model_opt_ids = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert prior_ids <= model_opt_ids  # the prior is part of F's objective now
    metrics = trainer.fit()
    assert abs(metrics["loss"] - (metrics["sce"] + 0.5 * metrics["mle_bits_per_dim"])) < 1e-4
    plain = Trainer(small_settings("ce", epochs=1), tmp_path / "ce.pt", splits=gaussian_splits())
    assert not prior_ids & {id(p) for g in plain.optimizer.param_groups for p in g["params"]}
    assert plain.fit()["loss"] == pytest.approx(plain.history[-1]["sce"])


def test_nll_weight_is_refused_for_ice(tmp_path) -> None:
    with pytest.raises(ConfigError, match="mle-weight"):
        Trainer(small_settings("ice", nll_weight=1.0), tmp_path / "x.pt", splits=gaussian_splits())
