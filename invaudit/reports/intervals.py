"""Exact 95 % intervals for the rates a report states (issue 14, item 11).

A rate in a report is a share ``k / n`` of ``n`` audited samples (metamers,
test inputs, paths).  Its uncertainty is stated as the Clopper–Pearson
("exact") binomial interval, computed with scipy's beta quantiles.  Unlike the
worst-case normal half-width ``1.96·√(0.25/n)`` that reports carried before,
it is as narrow as the data allow near 0 % and 100 %: 99.8 % at n = 1000 is
[99.28, 99.98], 0 % at n = 256 is [0, 1.43].  It never leaves [0, 1].

Which metrics are rates, and over which count, each attack declares
(:attr:`invaudit.attacks.base.Attack.rates`); ``report.json`` stores
``attacks.METHOD.intervals[METRIC] = {"low", "high", "n"}`` (for a map-valued
metric such as ``robust_accuracy`` one such entry per key) and
``model.clean_accuracy_interval``.  Reports written before those keys existed
get the same intervals computed from their rates and counts when rendered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

# The interval formatters live with the others; sanity and older callers import them here.
from .formats import fmt_interval, fmt_interval_fraction

__all__ = [
    "CONFIDENCE",
    "METHOD",
    "attack_intervals",
    "clean_accuracy_interval",
    "declared_rates",
    "fmt_interval",
    "fmt_interval_fraction",
    "interval_of",
    "proportion_interval",
    "rate_interval",
    "rate_intervals",
    "width",
]
#: The coverage of every interval a report states.
CONFIDENCE = 0.95
#: How reports name the interval.
METHOD = "Clopper-Pearson exact 95 % interval"

Interval = dict[str, Any]  # {"low": float, "high": float, "n": int}


@lru_cache(maxsize=4096)
def proportion_interval(
    successes: int, n: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The Clopper–Pearson interval of ``successes`` out of ``n`` (``0 <= successes <= n``)."""
    from scipy.stats import beta

    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    alpha = 1.0 - confidence
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return low, high


def _count(n: Any) -> int | None:
    if isinstance(n, bool) or not isinstance(n, int | float) or not math.isfinite(n) or n < 1:
        return None
    return int(n)


def rate_interval(rate: Any, n: Any) -> Interval | None:
    """The interval of a rate (a fraction of ``n`` samples), or None when either is missing."""
    count = _count(n)
    if count is None or isinstance(rate, bool) or not isinstance(rate, int | float):
        return None
    if not math.isfinite(rate) or not -1e-9 <= rate <= 1 + 1e-9:
        return None
    low, high = proportion_interval(round(rate * count), count)
    return {"low": low, "high": high, "n": count}


def rate_intervals(rates: Mapping[str, str], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared rate's interval: ``{metric: interval}``, ``{metric: {key: interval}}``
    for a map-valued one; rates that are null (no oracle) or lack their count are left out."""
    out: dict[str, Any] = {}
    for metric, count_key in rates.items():
        value, n = metrics.get(metric), metrics.get(count_key)
        if isinstance(value, Mapping):
            per_key = {str(k): rate_interval(v, n) for k, v in value.items()}
            per_key = {k: v for k, v in per_key.items() if v is not None}
            if per_key:
                out[metric] = per_key
        else:
            interval = rate_interval(value, n)
            if interval is not None:
                out[metric] = interval
    return out


def declared_rates(method: str) -> Mapping[str, str]:
    """The rates ``method`` declares (empty for a method this invaudit does not know)."""
    from ..attacks import ATTACKS

    attack = ATTACKS.get(method)
    return attack.rates if attack is not None else {}


def attack_intervals(method: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """A report's ``attacks[method]`` intervals: stored ones, else computed from its metrics."""
    stored = record.get("intervals")
    if isinstance(stored, Mapping):
        return dict(stored)
    metrics = dict(record.get("metrics") or {})
    metrics.setdefault("n", record.get("n"))
    return rate_intervals(declared_rates(method), metrics)


def interval_of(
    intervals: Mapping[str, Any], metric: str, key: str | None = None
) -> Interval | None:
    """One entry of :func:`attack_intervals` (``key`` for a map-valued metric)."""
    entry = intervals.get(metric)
    if key is not None and isinstance(entry, Mapping):
        entry = entry.get(key)
    if isinstance(entry, Mapping) and "low" in entry and "high" in entry:
        return dict(entry)
    return None


def clean_accuracy_interval(model: Mapping[str, Any]) -> Interval | None:
    """``model.clean_accuracy_interval``, else computed from the accuracy and its n."""
    stored = model.get("clean_accuracy_interval")
    if isinstance(stored, Mapping) and "low" in stored:
        return dict(stored)
    return rate_interval(model.get("clean_accuracy"), model.get("clean_accuracy_n"))


def width(interval: Mapping[str, Any]) -> float:
    return float(interval["high"]) - float(interval["low"])
