"""iCE options beyond Definition 7: the HSIC penalty, warm-up and ramp schedules."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from invaudit.cli import main
from invaudit.errors import ConfigError
from invaudit.models.checkpoint import read_checkpoint
from invaudit.training.losses import (
    ICEConfig,
    NuisanceGame,
    class_mean_share,
    confusion,
    normalised_hsic,
)


def labels(n: int = 256, classes: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randint(classes, (n,), generator=torch.Generator().manual_seed(seed))


def test_hsic_is_near_zero_for_independent_and_large_for_dependent_features() -> None:
    y = labels()
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(len(y), 20, generator=gen)
    independent = normalised_hsic(noise, y, 4)
    dependent = normalised_hsic(noise + 3 * torch.nn.functional.one_hot(y, 20).float(), y, 4)
    # The biased estimator has a small floor at finite n (about 0.05 at n = 256).
    assert 0 <= independent < 0.08
    assert dependent > 0.3 and dependent > 5 * independent
    # The bandwidth follows the data: rescaling z changes nothing.
    scaled = normalised_hsic(1000 * noise, y, 4)
    assert torch.allclose(independent, scaled, rtol=1e-4, atol=1e-6)


def test_hsic_gradient_pushes_class_information_out() -> None:
    y = labels()
    z = (torch.randn(len(y), 8) + torch.nn.functional.one_hot(y, 8).float()).requires_grad_()
    before = normalised_hsic(z, y, 4)
    before.backward()
    with torch.no_grad():
        after = normalised_hsic(z - 0.5 * z.grad / z.grad.norm() * z.norm(), y, 4)
    assert after < before


def test_class_mean_share_is_the_variance_the_class_means_explain() -> None:
    y = labels(400, 4)
    onehot = torch.nn.functional.one_hot(y, 4).float()
    assert class_mean_share(onehot, y, 4).item() == pytest.approx(1.0)  # z is y itself
    noise = torch.randn(400, 6, generator=torch.Generator().manual_seed(2))
    centred = noise.clone()
    for c in range(4):  # remove every class's mean: nothing left to explain
        centred[y == c] -= centred[y == c].mean(0)
    assert class_mean_share(centred, y, 4).item() == pytest.approx(0.0, abs=1e-6)
    # Class means of size 1 on noise of variance 1 explain about 1/2 of the variance.
    signs = torch.randn(4, 6, generator=torch.Generator().manual_seed(3)).sign()
    half = class_mean_share(noise + onehot @ signs, y, 4).item()
    assert 0.3 < half < 0.7


@pytest.mark.parametrize(
    "warmup, ramp, points",
    [
        (0, 0, {0.0: 1.0, 3.0: 1.0}),
        (1, 0, {0.0: 0.0, 0.99: 0.0, 1.0: 1.0}),
        (1, 2, {0.5: 0.0, 1.0: 0.0, 2.0: 0.5, 3.0: 1.0, 5.0: 1.0}),
    ],
)
def test_schedule_warms_up_then_ramps(warmup, ramp, points) -> None:
    cfg = ICEConfig(warmup_epochs=warmup, ramp_epochs=ramp)
    for progress, factor in points.items():
        assert cfg.schedule(progress) == pytest.approx(factor)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"independence": "mmd"}, "independence"),
        ({"hsic_weight": -1.0}, "hsic_weight"),
        ({"mle_weight": float("nan")}, "mle_weight"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"nuisance_objective": "entropy"}, "nuisance_objective"),
    ],
)
def test_bad_ice_options_raise_one_line(kwargs, fragment) -> None:
    with pytest.raises(ConfigError, match=fragment):
        ICEConfig(**kwargs)


def game_terms(config: ICEConfig, schedule: float = 1.0):
    torch.manual_seed(0)
    game = NuisanceGame(dim=12, num_classes=3, hidden=16, config=config)
    y = labels(64, 3)
    z_s, z_n = torch.randn(64, 3), torch.randn(64, 9)
    nll, logdet = game.prior.nll(game.prior_input(z_s, z_n)), torch.zeros(64)
    return game, game.model_loss(game.classifier, z_s, z_n, nll, logdet, y, schedule=schedule)


def test_hsic_alone_ignores_the_adversary_and_schedule_zero_is_plain_ce() -> None:
    game, (loss, terms) = game_terms(ICEConfig(independence="hsic", mle_weight=0.0))
    expected = terms["sce"] + terms["hsic"]
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in game.classifier.parameters())
    _, (loss0, terms0) = game_terms(ICEConfig(independence="adversary+hsic"), schedule=0.0)
    assert loss0.item() == pytest.approx(terms0["sce"], rel=1e-6)


def test_cli_trains_with_hsic_and_a_warmup_epoch(tmp_path) -> None:
    out = tmp_path / "hsic.pt"
    args = [
        "train", "--dataset", "spheres", "--dim", "6", "--n-train", "1000", "--n-test", "200",
        "--device", "cpu", "--set", "hidden=32", "--epochs", "2", "--loss", "ice",
        "--independence", "hsic", "--warmup-epochs", "1", "--no-progress", "--out", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    payload = read_checkpoint(out)
    history = payload["training"]["history"]
    assert history[0]["schedule"] == 0.0  # the warm-up epoch: plain CE
    assert history[1]["schedule"] == 1.0
    assert 0.0 <= history[1]["hsic"] <= 1.0
    assert payload["training"]["settings"]["ice"]["independence"] == "hsic"


def test_confusion_is_zero_only_for_uniform_predictions_and_ignores_the_label() -> None:
    uniform = torch.zeros(5, 4)
    assert confusion(uniform).item() == pytest.approx(0.0, abs=1e-7)
    confident = torch.tensor([[5.0, 0.0, 0.0, 0.0]] * 5)
    assert confusion(confident).item() > 1.0


def test_confusion_objective_pulls_the_adversary_towards_uniform_not_towards_wrong() -> None:
    # Definition 7's term rewards a confidently wrong D_nc; confusion penalises it.
    game, (loss, terms) = game_terms(
        ICEConfig(nuisance_objective="confusion", mle_weight=0.0, normalize_nuisance=False)
    )
    assert loss.item() == pytest.approx(terms["sce"] + terms["confusion"], rel=1e-6)
    y = labels(64, 3)
    wrong = torch.nn.functional.one_hot((y + 1) % 3, 3).float() * 8
    right = torch.nn.functional.one_hot(y, 3).float() * 8
    ce_term = -torch.nn.functional.cross_entropy(wrong, y)  # what Definition 7 minimises
    assert ce_term < -torch.nn.functional.cross_entropy(torch.zeros(64, 3), y)
    assert confusion(wrong) > confusion(torch.zeros(64, 3))
    assert confusion(wrong).item() == pytest.approx(confusion(right).item())


def test_permuted_objective_is_ce_to_shuffled_labels_and_needs_no_true_label() -> None:
    """The authors' objective: F makes D_nc predict the batch's labels in random order."""
    game, (loss, terms) = game_terms(
        ICEConfig(nuisance_objective="permuted", mle_weight=0.0, normalize_nuisance=False)
    )
    assert loss.item() == pytest.approx(terms["sce"] + terms["permuted"], rel=1e-6)
    # A D_nc that predicts the label marginal scores the same on any permutation of y;
    # one that reads y from z_n scores worse on the shuffled labels than on y.
    y = labels(512, 3)
    torch.manual_seed(1)
    shuffled = y[torch.randperm(len(y))]
    marginal = torch.log(torch.bincount(y, minlength=3).float() / len(y)).expand(512, 3)
    ce = torch.nn.functional.cross_entropy
    assert ce(marginal, shuffled).item() == pytest.approx(ce(marginal, y).item(), rel=1e-6)
    reader = torch.nn.functional.one_hot(y, 3).float() * 4
    assert ce(reader, shuffled) > ce(marginal, shuffled) > ce(reader, y)


def test_mle_scope_z_puts_the_prior_on_every_coordinate() -> None:
    game = NuisanceGame(dim=12, num_classes=3, hidden=16, config=ICEConfig(mle_scope="z"))
    z_s, z_n = torch.randn(4, 3), torch.randn(4, 9)
    assert game.prior.beta.shape == (12,)
    assert torch.equal(game.prior_input(z_s, z_n), torch.cat([z_s, z_n], 1))
    default = NuisanceGame(dim=12, num_classes=3, hidden=16, config=ICEConfig())
    assert default.prior.beta.shape == (9,) and default.prior_input(z_s, z_n) is z_n
    with pytest.raises(ConfigError, match="mle_scope"):
        ICEConfig(mle_scope="logits")


def test_cli_trains_the_authors_objective(tmp_path) -> None:
    out = tmp_path / "authors.pt"
    result = CliRunner().invoke(main, [
        "train", "--dataset", "spheres", "--dim", "8", "--n-train", "256", "--n-test", "128",
        "--epochs", "1", "--loss", "ice", "--nuisance-objective", "permuted",
        "--nuisance-weight", "0.05", "--no-normalize-nuisance", "--adversary-steps", "5",
        "--mle-scope", "z", "--set", "hidden=16", "--no-progress", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = read_checkpoint(out)
    ice = payload["training"]["settings"]["ice"]
    assert (ice["nuisance_objective"], ice["mle_scope"], ice["adversary_steps"]) == (
        "permuted", "z", 5
    )
    assert "permuted" in payload["training"]["history"][-1]
