"""``build(arch, **config)``: the one way to make an untrained model by name."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from .classifier import InvertibleClassifier
from .firevnet import FCConfig, ImageNetConfig, MNISTConfig, build_fc, build_imagenet, build_mnist

ARCHS: dict[str, tuple[type, Callable[[Any], InvertibleClassifier]]] = {
    "firevnet-fc": (FCConfig, build_fc),
    "firevnet-mnist": (MNISTConfig, build_mnist),
    "firevnet-imagenet": (ImageNetConfig, build_imagenet),
}


def default_config(arch: str) -> dict[str, Any]:
    """The config keys ``arch`` accepts, with their defaults."""
    config_cls, _ = _lookup(arch)
    return dataclasses.asdict(config_cls())


def _lookup(arch: str) -> tuple[type, Callable[[Any], InvertibleClassifier]]:
    if arch not in ARCHS:
        raise ConfigError(f"unknown arch {arch!r}; expected one of {', '.join(ARCHS)}")
    return ARCHS[arch]


def build(arch: str, **config: Any) -> InvertibleClassifier:
    """An untrained model of architecture ``arch`` with ``config`` over its defaults."""
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
        if expected is bool and not isinstance(value, bool):
            raise ConfigError(f"{arch}: {key} must be true or false, got {value!r}")
        if expected is not bool and (isinstance(value, bool) or not isinstance(value, expected)):
            raise ConfigError(f"{arch}: {key} must be {expected.__name__}, got {value!r}")
    try:
        return builder(config_cls(**config))
    except ValueError as err:  # a layer refusing a shape the config implies
        raise ConfigError(f"{arch}: {err}") from err
