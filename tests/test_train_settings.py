"""Training settings: built once from plain values, compared once (issue 16)."""

from __future__ import annotations

import pytest

from invaudit.cli import settings_from_train_args
from invaudit.errors import ConfigError
from invaudit.training.losses import ICEConfig
from invaudit.training.settings import (
    DEFAULT_ARCH,
    PLACE_FIELDS,
    TrainSettings,
    settings_mismatches,
    train_settings,
)

ARGS = ("--dataset", "spheres", "--loss", "ice", "--epochs", "3", "--seed", "7",
        "--set", "blocks=2", "--warmup-epochs", "1", "--device", "cpu")  # fmt: skip


def test_the_cli_parses_a_train_command_line_without_running_it() -> None:
    settings = settings_from_train_args(ARGS)
    assert isinstance(settings, TrainSettings)
    assert (settings.dataset, settings.arch, settings.loss) == ("spheres", "firevnet-fc", "ice")
    assert (settings.epochs, settings.seed, settings.device) == (3, 7, "cpu")
    assert settings.arch_config == {"blocks": 2}
    assert settings.ice == ICEConfig(warmup_epochs=1)
    assert (settings.batch_size, settings.lr) == (0, 0.0)  # the preset's
    assert settings_from_train_args([*ARGS, "--out", "x.pt"]) == settings


def test_a_bad_train_command_line_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--epochs"):
        settings_from_train_args(["--epochs", "0"])
    with pytest.raises(ConfigError, match="--set expects KEY=VALUE"):
        settings_from_train_args(["--set", "blocks"])


def test_train_settings_from_plain_values() -> None:
    settings = train_settings({"dataset": "fashion-mnist", "radii": [1, 2], "mle_scope": "z"})
    assert settings.arch == DEFAULT_ARCH["fashion-mnist"]
    assert settings.radii == (1, 2) and settings.ice.mle_scope == "z"
    assert train_settings({}) == TrainSettings()
    with pytest.raises(TypeError, match="not a training setting: colour"):
        train_settings({"colour": "red"})


def _stored(settings: TrainSettings) -> dict:
    return settings.as_dict()  # what a checkpoint holds


def test_settings_that_match_have_no_mismatches() -> None:
    wanted = settings_from_train_args(ARGS)
    assert settings_mismatches(_stored(wanted), wanted) == []


def test_one_differing_field_is_named_alone() -> None:
    wanted = settings_from_train_args(ARGS)
    stored = {**_stored(wanted), "seed": 8}
    assert settings_mismatches(stored, wanted) == ["seed: 8 != 7"]
    stored = _stored(wanted)
    stored["ice"]["warmup_epochs"] = 0
    assert settings_mismatches(stored, wanted) == ["ice.warmup_epochs: 0 != 1"]


def test_place_fields_are_ignored_unless_asked() -> None:
    wanted = settings_from_train_args(ARGS)
    stored = {**_stored(wanted), "device": "cuda:3", "data_dir": "/elsewhere", "workers": 4}
    assert {"device", "data_dir", "workers"} <= set(PLACE_FIELDS)
    assert settings_mismatches(stored, wanted) == []
    assert settings_mismatches(stored, wanted, ignore=()) == [
        "device: 'cuda:3' != 'cpu'", "data_dir: '/elsewhere' != None", "workers: 4 != 0",
    ]  # fmt: skip


def test_a_key_missing_from_old_settings_reads_as_its_default() -> None:
    wanted = settings_from_train_args(ARGS)
    old = _stored(wanted)
    del old["nll_weight"]  # saved before --nll-weight existed: the run had 0
    del old["ice"]["mle_scope"]  # saved before --mle-scope existed: the run had z_n
    assert settings_mismatches(old, wanted) == []
    del old["ice"]
    assert settings_mismatches(old, wanted) == ["ice.warmup_epochs: 0 != 1"]
    nll = settings_from_train_args(["--dataset", "spheres", "--nll-weight", "1"])
    assert "nll_weight: 0.0 != 1.0" in settings_mismatches(old, nll)
