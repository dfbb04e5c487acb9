"""A training run's settings: built from plain option values, and compared.

``invaudit train`` builds its :class:`TrainSettings` here with
:func:`train_settings`; scripts that ask whether a checkpoint was trained by a
given command line (the zoo builder, the iCE study) compare the settings it
stored with :func:`settings_mismatches`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from .losses import ICEConfig

# Settings that may change between a run and its --resume (they do not change results).
RESUMABLE_CHANGES = {"device", "data_dir", "download", "workers", "epochs"}
# Settings added after checkpoints existed, with the value older runs had in effect.
LEGACY_SETTINGS: dict[str, Any] = {
    "nll_weight": 0.0,
    "adversarial": "none",
    "adv_epsilon": 0.3,
    "adv_steps": 7,
    "adv_step_size": 0.0,
    "adv_ramp_epochs": 0,
}


@dataclass
class TrainSettings:
    """Everything that defines a training run (saved in the checkpoint)."""

    dataset: str = "mnist"
    arch: str = "firevnet-mnist"
    arch_config: dict[str, Any] = field(default_factory=dict)
    loss: str = "ce"
    epochs: int = 10
    batch_size: int = 0  # 0: the dataset preset's
    lr: float = 0.0  # 0: the dataset preset's
    seed: int = 0
    device: str = "cpu"
    data_dir: str | None = None
    download: bool = False
    limit: int | None = None
    test_limit: int | None = None
    dim: int = 100
    radii: tuple[float, float] = (1.0, 10.0)
    n_train: int = 500_000
    n_test: int = 100_000
    image_size: int = 224
    # CE only: weight of MLE_n (the flow's NLL of z_n, bits/dim) added to the loss.
    nll_weight: float = 0.0
    ice: ICEConfig = field(default_factory=ICEConfig)
    # Plain archs only: train on L-inf attacks of each batch (training/adversarial.py).
    adversarial: str = "none"
    adv_epsilon: float = 0.3
    adv_steps: int = 7  # pgd only; fgsm-rs takes one step
    adv_step_size: float = 0.0  # 0: the attack's default (adversarial.default_step_size)
    adv_ramp_epochs: int = 0
    adversary_lr: float = 1e-3
    workers: int = 0

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["radii"] = list(self.radii)
        return d


#: The arch ``invaudit train`` builds for a dataset when no ``--arch`` is given.
DEFAULT_ARCH = {
    "spheres": "firevnet-fc",
    "mnist": "firevnet-mnist",
    "fashion-mnist": "firevnet-mnist",
    "imagenet": "firevnet-imagenet",
}

#: TrainSettings fields that say where a run happened, not what it computed.
PLACE_FIELDS = ("device", "data_dir", "download", "workers")

_ICE_FIELDS = frozenset(f.name for f in dataclasses.fields(ICEConfig))
_RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainSettings)) - {"ice"}


def train_settings(values: Mapping[str, Any]) -> TrainSettings:
    """The settings of flat option values, keyed as ``invaudit train``'s options are.

    Keys are :class:`TrainSettings`' fields and, flat beside them,
    :class:`ICEConfig`'s (e.g. ``warmup_epochs``); a missing key keeps its
    default.  ``arch`` None means the dataset's default arch (:data:`DEFAULT_ARCH`);
    ``batch_size`` and ``lr`` None mean the dataset preset's.
    """
    unknown = set(values) - _ICE_FIELDS - _RUN_FIELDS
    if unknown:
        raise TypeError(f"not a training setting: {', '.join(sorted(unknown))}")
    run = {key: value for key, value in values.items() if key in _RUN_FIELDS}
    dataset = run.get("dataset", TrainSettings.dataset)
    if not run.get("arch"):
        if dataset not in DEFAULT_ARCH:
            raise ConfigError(
                f"unknown dataset {dataset!r}; expected one of {', '.join(DEFAULT_ARCH)}"
            )
        run["arch"] = DEFAULT_ARCH[dataset]
    run["batch_size"] = run.get("batch_size") or 0
    run["lr"] = run.get("lr") or 0.0
    if "radii" in run:
        run["radii"] = tuple(run["radii"])
    ice = ICEConfig(**{key: value for key, value in values.items() if key in _ICE_FIELDS})
    return TrainSettings(**run, ice=ice)


def stored_settings(stored: Mapping[str, Any]) -> dict[str, Any]:
    """Settings a checkpoint stored, with every option added since read as its default.

    An option that did not exist yet when a run was saved was in effect at its
    default (:data:`LEGACY_SETTINGS` where that differs from today's default).
    """
    return {
        **LEGACY_SETTINGS,
        **stored,
        "ice": {**dataclasses.asdict(ICEConfig()), **(stored.get("ice") or {})},
    }


def differences(
    stored: Mapping[str, Any], wanted: TrainSettings, ignore: Collection[str]
) -> Iterator[tuple[str, Any, Any]]:
    """``(field, stored value, wanted value)`` for every field outside ``ignore`` that
    differs, in field order; iCE options one by one, as ``ice.FIELD``."""
    have = stored_settings(stored)
    for key, value in _plain(wanted.as_dict()).items():
        if key in ignore:
            continue
        if key == "ice":
            for name, wanted_value in value.items():
                if _plain(have["ice"].get(name)) != wanted_value:
                    yield f"ice.{name}", have["ice"].get(name), wanted_value
        elif _plain(have.get(key)) != value:
            yield key, have.get(key), value


def settings_mismatches(
    stored: Mapping[str, Any],
    wanted: TrainSettings,
    ignore: Collection[str] = PLACE_FIELDS,
) -> list[str]:
    """``"field: stored != wanted"`` for every field in which ``stored`` differs.

    ``stored`` is the settings dict a checkpoint holds (JSON-like: lists for
    tuples); fields in ``ignore`` (by default where the run happened) are not
    compared.  iCE options are compared one by one, as ``ice.FIELD``.
    """
    return [
        f"{key}: {have!r} != {want!r}" for key, have, want in differences(stored, wanted, ignore)
    ]


def settings_conflict(
    stored: Mapping[str, Any], settings: TrainSettings
) -> tuple[str, Any, Any] | None:
    """The first ``(field, stored, now)`` that forbids resuming a checkpoint that stored
    ``stored`` with ``settings`` (fields in :data:`RESUMABLE_CHANGES` may change); None if none."""
    return next(differences(stored, settings, RESUMABLE_CHANGES), None)


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively, so stored JSON-like data compares equal."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
