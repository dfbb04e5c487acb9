"""Adversarial training of plain CNNs (``invaudit train --adversarial``): the attack it
trains on, the runs it refuses, and that it buys robustness on a task that allows it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from test_oracle_cnn import tiny_settings, tiny_splits

from invaudit.cli import main
from invaudit.errors import ConfigError
from invaudit.models import build
from invaudit.models.checkpoint import read_checkpoint
from invaudit.training.adversarial import default_step_size, linf_attack, ramped_epsilon
from invaudit.training.trainer import ROBUST_TEST_STEPS, Trainer, robust_test_accuracy

EPSILON = 0.2  # the two classes' halves differ by 0.5: a robust rule exists at this ε


def test_the_attack_stays_in_the_ball_and_the_box_and_raises_the_loss() -> None:
    torch.manual_seed(0)
    model = build("cnn", image_size=12, num_classes=2, width=4, hidden=16).eval()
    x, y = tiny_splits().test.tensors
    x, y = x[:64], y[:64]
    adv = linf_attack(model, x, y, epsilon=0.1, steps=5, step_size=0.05, bounds=(0.0, 1.0))
    assert (adv - x).abs().max() <= 0.1 + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert not adv.requires_grad
    with torch.no_grad():
        assert F.cross_entropy(model(adv), y) > F.cross_entropy(model(x), y)


def test_epsilon_ramps_linearly_then_holds() -> None:
    assert ramped_epsilon(0.3, 0, 0.0) == 0.3
    assert ramped_epsilon(0.3, 2, 0.5) == pytest.approx(0.075)
    assert ramped_epsilon(0.3, 2, 2.0) == ramped_epsilon(0.3, 2, 7.5) == 0.3
    assert default_step_size("fgsm-rs", 0.3, 1) == pytest.approx(0.375)
    assert default_step_size("pgd", 0.3, 10) == pytest.approx(0.075)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"arch": "firevnet-mnist", "arch_config": {}}, "invertible"),
        ({"adv_epsilon": 0.0}, "--adv-epsilon must be positive"),
        ({"adv_steps": 0}, "--adv-steps must be at least 1"),
        ({"adversarial": "cw"}, "unknown --adversarial"),
    ],
)
def test_runs_it_cannot_do_are_refused_before_any_data(overrides, fragment, tmp_path) -> None:
    settings = tiny_settings(adversarial=overrides.pop("adversarial", "pgd"), **overrides)
    with pytest.raises(ConfigError, match=fragment):
        Trainer(settings, tmp_path / "o.pt", splits=tiny_splits())
    assert not (tmp_path / "o.pt").exists()


def robust_accuracy(model) -> float:
    torch.manual_seed(1)
    splits = tiny_splits()
    loader = torch.utils.data.DataLoader(splits.test, batch_size=256)
    from invaudit.training.distributed import DistContext

    return robust_test_accuracy(model, loader, DistContext.setup("cpu"), EPSILON, (0.0, 1.0))


def test_pgd_training_buys_robustness_plain_training_does_not_have(tmp_path) -> None:
    common = dict(arch="cnn", arch_config={"width": 4, "hidden": 16}, epochs=3, seed=0)
    plain = Trainer(tiny_settings(**common), tmp_path / "plain.pt", splits=tiny_splits())
    plain.fit()
    robust = Trainer(
        tiny_settings(**common, adversarial="pgd", adv_epsilon=EPSILON, adv_steps=3),
        tmp_path / "robust.pt",
        splits=tiny_splits(),
    )
    metrics = robust.fit()
    assert metrics["adv_epsilon"] == pytest.approx(EPSILON)
    assert metrics["logit_test_acc"] >= 0.95
    # The per-epoch monitor is the same PGD-10 the test below recomputes.
    assert 0 <= metrics["pgd10_test_acc"] <= 1 and ROBUST_TEST_STEPS == 10
    robust_acc, plain_acc = robust_accuracy(robust.model), robust_accuracy(plain.model)
    assert robust_acc >= 0.9 and robust_acc > plain_acc + 0.2, (robust_acc, plain_acc)
    stored = read_checkpoint(tmp_path / "robust.pt")["training"]["settings"]
    assert stored["adversarial"] == "pgd" and stored["adv_epsilon"] == EPSILON


def test_a_resumed_adversarial_run_attacks_as_an_uninterrupted_one(tmp_path) -> None:
    settings = dict(arch="cnn", arch_config={"width": 4, "hidden": 16}, adversarial="fgsm-rs",
                    adv_epsilon=EPSILON, adv_ramp_epochs=1)  # fmt: skip
    Trainer(tiny_settings(**settings), tmp_path / "full.pt", splits=tiny_splits()).fit()
    Trainer(tiny_settings(**settings, epochs=1), tmp_path / "part.pt", splits=tiny_splits()).fit()
    Trainer(tiny_settings(**settings), tmp_path / "part.pt", resume=True,
            splits=tiny_splits()).fit()  # fmt: skip
    a, b = read_checkpoint(tmp_path / "full.pt"), read_checkpoint(tmp_path / "part.pt")
    for key, value in a["state_dict"].items():
        assert torch.allclose(value.float(), b["state_dict"][key].float(), atol=1e-6), key


def test_the_cli_refuses_adversarial_training_of_a_firevnet(tmp_path) -> None:
    result = CliRunner().invoke(
        main,
        ["train", "--dataset", "spheres", "--adversarial", "pgd", "--out", str(tmp_path / "s.pt"),
         "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--adversarial trains plain classifiers" in result.stderr
    assert not (tmp_path / "s.pt").exists()
