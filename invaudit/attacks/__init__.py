"""The audits, by name: invariance (metamers, interpolation, probes and the spheres'
extras for invertible models; feature matching and Tramèr et al.'s ε-moves for any
model) and sensitivity (foolbox ε-attacks).

Every entry is an :class:`~invaudit.attacks.declaration.Attack`, declared once at
the end of its module and registered here with one line (:func:`register`); the
suites, reports, comparison and CI gate read the declaration.  ``run_attack(name,
ctx, **options)`` checks the name and the options before any work starts.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from . import (
    boundary,
    feature_match,
    interpolation,
    invariance_eps,
    metamer,
    misaligned,
    perturbation,
    probe,
)
from .base import AttackResult, AuditContext, Progress, require_invertible
from .declaration import Attack, Budget, Headline, Readout
from .oracle import ClassifierOracle, Oracle, SpheresOracle, default_oracle
from .sharded import execute

#: Every attack by name, in the order suites run them and reports list them.
ATTACKS: dict[str, Attack] = {}

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackResult",
    "AuditContext",
    "Budget",
    "ClassifierOracle",
    "Headline",
    "Oracle",
    "Progress",
    "Readout",
    "SpheresOracle",
    "check_attack",
    "default_oracle",
    "get_attack",
    "register",
    "run_attack",
]


def register(*attacks: Attack) -> None:
    """Add each declared attack to :data:`ATTACKS` (after those already there).

    Raises:
        ValueError: an attack of that name is registered already.
    """
    for attack in attacks:
        if attack.name in ATTACKS:
            raise ValueError(f"an attack named {attack.name!r} is registered already")
        ATTACKS[attack.name] = attack


# The registry: one line per attack module.
register(metamer.ATTACK)
register(interpolation.ATTACK)
register(probe.ATTACK)
register(misaligned.ATTACK)
register(boundary.ATTACK)
register(feature_match.ATTACK)
register(invariance_eps.ATTACK)
register(*perturbation.ATTACKS)


def get_attack(name: str) -> Attack:
    if name not in ATTACKS:
        raise ConfigError(f"unknown method {name!r}; expected one of {', '.join(ATTACKS)}")
    return ATTACKS[name]


def check_attack(name: str, dataset: str, options: dict[str, Any]) -> Attack:
    """The attack ``name`` after checking it applies to ``dataset`` and takes ``options``."""
    attack = get_attack(name)
    if attack.datasets is not None and dataset not in attack.datasets:
        raise ConfigError(
            f"{name} applies to {', '.join(attack.datasets)} only; the model was trained "
            f"on {dataset}"
        )
    unknown = sorted(set(options) - set(attack.options))
    if unknown:
        accepted = ", ".join(attack.options) or "none"
        raise ConfigError(f"{name} takes no option {', '.join(unknown)} (it takes: {accepted})")
    return attack


def run_attack(name: str, ctx: AuditContext, **options: Any) -> AttackResult:
    """Run attack ``name`` on ``ctx`` with ``options`` over its defaults."""
    attack = check_attack(name, ctx.data.name, options)
    if attack.needs_invertible:
        require_invertible(ctx.model, "model", name)
    return execute(attack, ctx, options)
