"""The audits, by name: invariance (metamers, interpolation, probes, spheres) and
sensitivity (foolbox ε-attacks).

Every entry is an :class:`~invaudit.attacks.base.Attack`; ``run_attack(name,
ctx, **options)`` checks the name and the options before any work starts.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from . import interpolation, metamer, perturbation, probe, spheres
from .base import Attack, AttackResult, AuditContext, Progress, require_invertible
from .oracle import ClassifierOracle, Oracle, SpheresOracle, default_oracle

ATTACKS: dict[str, Attack] = {
    a.name: a
    for a in (
        metamer.ATTACK,
        interpolation.ATTACK,
        probe.ATTACK,
        *spheres.ATTACKS,
        *perturbation.ATTACKS,
    )
}

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackResult",
    "AuditContext",
    "ClassifierOracle",
    "Oracle",
    "Progress",
    "SpheresOracle",
    "check_attack",
    "default_oracle",
    "get_attack",
    "run_attack",
]


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
    return attack.run(ctx, **options)
