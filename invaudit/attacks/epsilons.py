"""The ε of an ε-attack: default lists per dataset and norm, validation, labels, norms.

Default ε (``epsilons=None``), per dataset and norm:

==================  ======================  ===========================
dataset             L∞                      L2
==================  ======================  ===========================
mnist, fashion-     0.1, 0.2, 0.3           1.0, 2.0
mnist
spheres (R2 = 10)   0.01, 0.05, 0.1         0.1, 0.5, 1.0, 2.0
imagenet            1/255, 2/255, 4/255     0.25, 0.5, 1.0
anything else       MNIST's × bound width   MNIST's × bound width
==================  ======================  ===========================

Spheres values scale with the outer radius (the bounds are ±R2), so a run
with another R2 keeps the same relative sizes.  Which norm an attack's ε
measure is its declaration's :attr:`~invaudit.attacks.declaration.Attack.norm`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..data.audit import AuditData
from ..errors import ConfigError
from .declaration import NORMS

__all__ = [
    "NORM_LABEL",
    "check_epsilons",
    "default_epsilons",
    "eps_label",
    "epsilons_for",
    "perturbation_norms",
]

#: How reports write each norm.
NORM_LABEL = {"linf": "L∞", "l2": "L2"}
_MNIST_EPSILONS = {"linf": (0.1, 0.2, 0.3), "l2": (1.0, 2.0)}
_DEFAULT_EPSILONS: dict[str, dict[str, tuple[float, ...]]] = {
    "mnist": _MNIST_EPSILONS,
    "fashion-mnist": _MNIST_EPSILONS,
    "imagenet": {"linf": (1 / 255, 2 / 255, 4 / 255), "l2": (0.25, 0.5, 1.0)},
}
# At the default outer radius R2 = 10; scaled by R2 / 10 for other radii.
_SPHERES_EPSILONS = {"linf": (0.01, 0.05, 0.1), "l2": (0.1, 0.5, 1.0, 2.0)}


def default_epsilons(data: AuditData, norm: str) -> list[float]:
    """The ε a run uses when given none: see the table in the module docstring."""
    if norm not in NORMS:
        raise ConfigError(f"unknown norm {norm!r}; expected linf or l2")
    low, high = data.bounds
    if data.name == "spheres":
        scale = max(abs(low), abs(high)) / 10.0
        return [e * scale for e in _SPHERES_EPSILONS[norm]]
    if data.name in _DEFAULT_EPSILONS:
        return list(_DEFAULT_EPSILONS[data.name][norm])
    return [e * (high - low) for e in _MNIST_EPSILONS[norm]]


def eps_label(eps: float) -> str:
    """How an ε names a metric key and a record column (``0.1``, ``2``, ``0.00392157``)."""
    return f"{eps:g}"


def epsilons_for(value: Any, data: AuditData, norm: str) -> list[float]:
    """The validated ε list of a run, ascending and without repeats (None: the default)."""
    if value is None:
        return default_epsilons(data, norm)
    return check_epsilons(value)


def check_epsilons(value: Any) -> list[float]:
    """``value`` (one ε or a list) as the ascending ε list without repeats; a one-line
    :class:`ConfigError` unless it holds at least one finite number >= 0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"epsilons: expected a list of numbers, got {value!r}")
    if not value:
        raise ConfigError("epsilons: expected at least one value, got an empty list")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
        raise ConfigError(f"epsilons: expected numbers, got {list(value)!r}")
    bad = [v for v in value if not math.isfinite(v) or v < 0]
    if bad:
        raise ConfigError(f"epsilons: expected finite values >= 0, got {bad[0]!r}")
    values = sorted({float(v) for v in value})
    labels = [eps_label(v) for v in values]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"epsilons: values too close to tell apart in reports: {values}")
    return values


def perturbation_norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per row, the ``norm`` of a perturbation, in float64."""
    flat = delta.flatten(1).double()
    return flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)


# -- the other options of the ε-attacks ---------------------------------------------


def positive_int(name: str, value: Any, default: int) -> int:
    """``value`` as an int >= 1 (None: ``default``), or a one-line :class:`ConfigError`."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: expected an integer >= 1, got {value!r}")
    return value


def finite_number(name: str, value: Any, *, positive: bool) -> float:
    """``value`` as a finite float >= 0 (> 0 if ``positive``), or a one-line error."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"{name}: expected a finite number {bound}, got {value!r}")
    return float(value)


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    return value
