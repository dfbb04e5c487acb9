"""The ``report.json`` schema, version 1, and a check that a report follows it.

A report is one JSON object::

    {
      "schema": "invaudit.report",
      "schema_version": 1,
      "created": "2026-11-28T19:40:00+00:00",        # UTC, not part of any result
      "suite": {"name": "quick", "seed": 0, "n": 512, "methods": ["metamer", ...]},
      "model": {
        "path": "runs/mnist-ce.pt", "sha256": "…", "arch": "firevnet-mnist",
        "loss": "ce", "dataset": "mnist", "input_shape": [1, 28, 28],
        "num_classes": 10, "parameters": 123456, "invertible": true,
        "clean_accuracy": 0.9928, "clean_accuracy_n": 10000,
        "clean_accuracy_interval": {"low": 0.991, "high": 0.994, "n": 10000},
        "data_source": "data dir /data"             # optional: where the examples came from
      },
      "invertibility": {"n": 512, "max_abs_error": 1e-6, "mean_abs_error": 1e-8,
                        "tolerance": 1e-4, "passed": true,      # null: not invertible
                        "metamer_gain": {"n": 64, "median": 29.8, "max": 49.0,
                                         "largest_layer": "stage 1 AdditiveCoupling (layers.9)",
                                         "largest_layer_median_gain": 4.58,
                                         "stage_log10_gain": {"stage 1": 1.97, …},
                                         "largest_stage": "stage 1"},   # null: one class
                        "data_gain": {"n": 64, "median": 24.9, "max": 36.0}},
      "oracle": {"name": "…", "exact": false, "description": "…", "path": "…",
                 "sha256": "…", "origin": "default: the zoo oracle for mnist", …} | null,
      "attacks": {
        "metamer": {
          "kind": "invariance",                      # or "sensitivity"
          "summary": "one line",
          "n": 512,                                  # samples behind every rate
          "intervals": {                             # Clopper-Pearson 95 % per rate
            "invariance_success_rate": {"low": 0.84, "high": 0.90, "n": 512}, ...
          },                                         # (robust_accuracy: one per ε key)
          "metrics": {...},                          # the attack's metrics, as measured
          "settings": {...},                         # options, budget, dataset, oracle
          "records": "metamer.csv",                  # per-sample rows, beside report.json
          "figures": ["figures/metamer.png"]         # relative to report.json
        }, ...
      },
      "warnings": [{"name": "oracle_weak", "method": null, "message": "…"}],
      "gate": {"passed": false, "checks": 2, "failed": 1,              # optional: --fail-if
               "results": [{"check": "probe.nuisance_accuracy > 0.5", "failed": true,
                            "value": 0.98, "message": "…"}, …]},
      "environment": {"invaudit": "…", "python": "…", "torch": "…", "torchvision": "…",
                      "foolbox": "…", "numpy": "…", "platform": "…", "device": "cpu",
                      "dtype": "float32", "threads": 2, "seed": 0},
      "timing": {"total_seconds": 93.1, "invertibility_seconds": 0.4,
                 "metamer_gain_seconds": 3.0, "data_gain_seconds": 1.5,
                 "clean_accuracy_seconds": 7.2, "attacks": {"metamer": 3.1, ...}}
    }

Keys added to version 1 later are optional, so older reports still read:
``model.data_source`` (e.g. ``"data dir /data"`` or ``"embedded MNIST t10k: fit on
images 0-4999, test on 5000-9999 (…)"``), ``oracle.origin`` (who chose the oracle),
``invertibility.metamer_gain`` and ``invertibility.data_gain`` (the local gain of F⁻¹,
the largest singular value of its Jacobian, at metamer points and at test inputs:
:func:`invaudit.models.stability.inverse_gain`; ``docs/reports.md``) with their
``timing.*_gain_seconds``, and the metamer / interpolate metrics ``near_box_share``
and ``bounds_excursion_mean`` the sanity flags read.

Intervals (issue 14): reports written since state every rate's exact 95 % interval
(``attacks.*.intervals``, ``model.clean_accuracy_interval``:
:mod:`invaudit.reports.intervals`) instead of the worst-case normal half-width
``ci95_halfwidth = 1.96·√(0.25/n)`` earlier reports carried.  An attack record holds
one of the two; readers compute the intervals of an older report from its rates and
counts.  ``gate`` (optional) is the verdict of the ``--fail-if`` / ``--policy`` checks
the report was written with, so ``report.md`` can state it.

Everything a rerun with the same seed on the same CPU must reproduce lives in
``model``, ``invertibility`` and ``attacks.*.metrics``; ``created``,
``environment`` and ``timing`` describe the run.  Non-finite floats are
written as ``null``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

SCHEMA = "invaudit.report"
SCHEMA_VERSION = 1
SECTIONS = (
    "schema",
    "schema_version",
    "created",
    "suite",
    "model",
    "invertibility",
    "oracle",
    "attacks",
    "warnings",
    "environment",
    "timing",
)
ATTACK_KEYS = ("kind", "summary", "n", "metrics", "settings", "records", "figures")
#: An attack record states its precision one of these ways (new reports: intervals).
PRECISION_KEYS = ("intervals", "ci95_halfwidth")


def ci95_halfwidth(n: int | None) -> float | None:
    """The widest 95 % normal-approximation half-width of a rate over ``n`` samples (p = 1/2).

    What reports before issue 14 stored as ``ci95_halfwidth``; new reports state each
    rate's exact interval instead (:mod:`invaudit.reports.intervals`).
    """
    if not n:
        return None
    return 1.959964 * math.sqrt(0.25 / n)


def _check_header(report: Any, where: str) -> None:
    """That ``report`` is an object marked as a schema-1 report that holds every section."""
    if not isinstance(report, Mapping):
        raise ConfigError(f"{where}: not a JSON object")
    if report.get("schema") != SCHEMA:
        raise ConfigError(f"{where}: not an invaudit report (schema {report.get('schema')!r})")
    if report.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(
            f"{where}: schema version {report.get('schema_version')!r}; this invaudit reads "
            f"version {SCHEMA_VERSION}"
        )
    missing = [s for s in SECTIONS if s not in report]
    if missing:
        raise ConfigError(f"{where}: missing section(s) {', '.join(missing)}")


def _check_model(report: Mapping[str, Any], where: str) -> None:
    model = report["model"]
    if not isinstance(model, Mapping):
        raise ConfigError(f"{where}: 'model' is not an object")
    if not isinstance(model.get("data_source"), str | None):
        raise ConfigError(f"{where}: model.data_source is not text")


def _check_invertibility(report: Mapping[str, Any], where: str) -> None:
    inv = report["invertibility"]
    if inv is not None and not isinstance(inv, Mapping):
        raise ConfigError(f"{where}: 'invertibility' is neither an object nor null")
    for key in ("metamer_gain", "data_gain"):
        if inv and not isinstance(inv.get(key), Mapping | None):
            raise ConfigError(f"{where}: invertibility.{key} is neither an object nor null")


def _check_attacks(report: Mapping[str, Any], where: str) -> None:
    if not isinstance(report["attacks"], Mapping):
        raise ConfigError(f"{where}: 'attacks' is not an object")
    for method, record in report["attacks"].items():
        absent = [k for k in ATTACK_KEYS if not isinstance(record, Mapping) or k not in record]
        if not absent and not any(k in record for k in PRECISION_KEYS):
            absent = [" or ".join(PRECISION_KEYS)]
        if absent:
            raise ConfigError(f"{where}: attack {method!r} lacks {', '.join(absent)}")
        if not isinstance(record.get("intervals", {}), Mapping):
            raise ConfigError(f"{where}: attack {method!r}: 'intervals' is not an object")


def _check_warnings_and_gate(report: Mapping[str, Any], where: str) -> None:
    if not isinstance(report["warnings"], list):
        raise ConfigError(f"{where}: 'warnings' is not a list")
    if not isinstance(report.get("gate"), Mapping | None):
        raise ConfigError(f"{where}: 'gate' is neither an object nor null")


#: What :func:`check_report` checks, in order: each part may rely on those before it.
_REPORT_CHECKS = (
    _check_header,
    _check_model,
    _check_invertibility,
    _check_attacks,
    _check_warnings_and_gate,
)


def check_report(report: Any, where: str = "report") -> dict[str, Any]:
    """``report`` if it is a schema-1 report; otherwise a one-line :class:`ConfigError`."""
    for check in _REPORT_CHECKS:
        check(report, where)
    return dict(report)
