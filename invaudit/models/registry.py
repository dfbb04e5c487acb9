"""``build(arch, **config)``: the one way to make an untrained model by name."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from .classifier import InvertibleClassifier
from .cnn import CNN, CNNConfig
from .firevnet import (
    MNIST_LEGACY,
    FCConfig,
    ImageNetConfig,
    MNISTConfig,
    build_fc,
    build_imagenet,
    build_mnist,
)
from .oracle_cnn import OracleCNN, OracleCNNConfig

# What ``build`` returns: a fiRevNet, or an ordinary classifier (an oracle).
Model = InvertibleClassifier | OracleCNN

ARCHS: dict[str, tuple[type, Callable[[Any], Model]]] = {
    "firevnet-fc": (FCConfig, build_fc),
    "firevnet-mnist": (MNISTConfig, build_mnist),
    "firevnet-imagenet": (ImageNetConfig, build_imagenet),
    "oracle-cnn": (OracleCNNConfig, OracleCNN),
    "cnn": (CNNConfig, CNN),
}
# Ordinary classifiers (logits only: no inverse, no z_n): image oracles, and CNNs to audit.
PLAIN_ARCHS = frozenset({"oracle-cnn", "cnn"})
# Config keys added after checkpoints existed, with the value those checkpoints were
# built with: a stored config that lacks a key rebuilds the model it was saved from,
# not today's default.
LEGACY_CONFIG: dict[str, dict[str, Any]] = {"firevnet-mnist": MNIST_LEGACY}


def stored_config(arch: str, config: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's stored ``config`` completed with the legacy values of newer keys."""
    return {**LEGACY_CONFIG.get(arch, {}), **config}


def default_config(arch: str) -> dict[str, Any]:
    """The config keys ``arch`` accepts, with their defaults."""
    config_cls, _ = _lookup(arch)
    return dataclasses.asdict(config_cls())


def is_invertible(arch: str) -> bool:
    """Whether ``arch`` builds an invertible classifier (known before building it)."""
    _lookup(arch)
    return arch not in PLAIN_ARCHS


def _lookup(arch: str) -> tuple[type, Callable[[Any], Model]]:
    if arch not in ARCHS:
        raise ConfigError(f"unknown arch {arch!r}; expected one of {', '.join(ARCHS)}")
    return ARCHS[arch]


def build(arch: str, **config: Any) -> Model:
    """An untrained model of architecture ``arch`` with ``config`` over its defaults.

    An :class:`InvertibleClassifier`, or for the archs in ``PLAIN_ARCHS`` an
    ordinary classifier with the same descriptive attributes (``arch``,
    ``config``, ``num_classes``, ``input_shape``).
    """
    config_cls, builder = _lookup(arch)
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise ConfigError(
            f"{arch}: unknown config key(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(fields)}"
        )
    for key, value in config.items():
        expected = type(getattr(config_cls(), key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = config[key] = float(value)
        if expected is bool and not isinstance(value, bool):
            raise ConfigError(f"{arch}: {key} must be true or false, got {value!r}")
        if expected is not bool and (isinstance(value, bool) or not isinstance(value, expected)):
            raise ConfigError(f"{arch}: {key} must be {expected.__name__}, got {value!r}")
    try:
        return builder(config_cls(**config))
    except ValueError as err:  # a layer refusing a shape the config implies
        raise ConfigError(f"{arch}: {err}") from err
