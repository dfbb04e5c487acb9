"""Gate checks validated against a planned suite, before any attack runs.

A typo in ``--fail-if`` must cost the user one second, not the ten minutes
of the audit it gates: method and metric names come from the attacks'
declarations (:attr:`Attack.metrics`), and the ε keys of ``robust_accuracy``
from the ε lists the suite will use (:attr:`Attack.norm` says which).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..attacks import ATTACKS
from ..attacks.epsilons import default_epsilons, eps_label
from ..data.audit import AuditData
from ..errors import ConfigError
from .gate import Check, _where, load_policy, parse_check, validate
from .suite import GAIN_KEYS, Suite, map_keys, planned_metrics


def read_checks(fail_if: Sequence[str], policy: str | os.PathLike | None) -> list[Check]:
    """The ``--fail-if`` expressions and the ``--policy`` file's checks, parsed."""
    checks = [parse_check(expression) for expression in fail_if]
    if policy is not None:
        checks += load_policy(policy)
    return checks


def planned_epsilons(suite: Suite, data: AuditData) -> dict[str, set[str]]:
    """For each ε-attack of ``suite`` (one that declares a norm): the ``robust_accuracy``
    keys its report will hold."""
    keys = {}
    for step in suite.steps:
        norm = ATTACKS[step.method].norm
        if norm is None:
            continue
        epsilons = step.options.get("epsilons") or default_epsilons(data, norm)
        keys[step.method] = {eps_label(float(e)) for e in epsilons}
    return keys


def validate_plan(
    checks: Sequence[Check], suite: Suite, *, invertible: bool, data: AuditData | None = None
) -> None:
    """Raise a one-line ConfigError for a check the planned report cannot answer."""
    validate(checks, planned_metrics(suite, invertible=invertible))
    for check in checks:
        where = _where(check.expression, check.source)
        keys = map_keys(check.method, check.metric)
        gain = check.method == "invertibility" and keys is not None
        if keys is not None and check.key is None:
            if gain:
                raise ConfigError(
                    f"{where}: {check.method}.{check.metric} is a summary of the inverse's "
                    f"gain; pick an entry, e.g. {check.method}.{check.metric}[max]"
                )
            raise ConfigError(
                f"{where}: {check.method}.{check.metric} is a map from {keys[0]} to a rate; "
                f"pick an entry, e.g. {check.method}.{check.metric}[{keys[1]}]"
            )
        if check.key is not None and keys is None:
            raise ConfigError(f"{where}: {check.path} is a number, not a map; drop [{check.key}]")
        if gain and check.key not in GAIN_KEYS:
            raise ConfigError(
                f"{where}: {check.method}.{check.metric} has no number [{check.key}]; "
                f"pick one of {', '.join(GAIN_KEYS)}"
            )
    if data is None:
        return
    epsilons = planned_epsilons(suite, data)
    for check in checks:
        if check.key is None or check.metric != "robust_accuracy":
            continue
        known = epsilons.get(check.method)
        if known is not None and check.key not in known:
            raise ConfigError(
                f"{_where(check.expression, check.source)}: {check.method} will attack at ε "
                f"{', '.join(sorted(known, key=float))}, not {check.key} (set --epsilons)"
            )
