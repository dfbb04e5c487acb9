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
        "data_source": "data dir /data"             # optional: where the examples came from
      },
      "invertibility": {"n": 512, "max_abs_error": 1e-6, "mean_abs_error": 1e-8,
                        "tolerance": 1e-4, "passed": true},     # null: not invertible
      "oracle": {"name": "…", "exact": false, "description": "…", "path": "…",
                 "sha256": "…", "origin": "default: the zoo oracle for mnist", …} | null,
      "attacks": {
        "metamer": {
          "kind": "invariance",                      # or "sensitivity"
          "summary": "one line",
          "n": 512,                                  # samples behind every rate
          "ci95_halfwidth": 0.043,                   # worst case (p = 1/2) for that n
          "metrics": {...},                          # the attack's metrics, as measured
          "settings": {...},                         # options, budget, dataset, oracle
          "records": "metamer.csv",                  # per-sample rows, beside report.json
          "figures": ["figures/metamer.png"]         # relative to report.json
        }, ...
      },
      "warnings": [{"name": "oracle_weak", "method": null, "message": "…"}],
      "environment": {"invaudit": "…", "python": "…", "torch": "…", "torchvision": "…",
                      "foolbox": "…", "numpy": "…", "platform": "…", "device": "cpu",
                      "dtype": "float32", "threads": 2, "seed": 0},
      "timing": {"total_seconds": 93.1, "invertibility_seconds": 0.4,
                 "clean_accuracy_seconds": 7.2, "attacks": {"metamer": 3.1, ...}}
    }

Keys added to version 1 later are optional, so older reports still read:
``model.data_source`` (e.g. ``"data dir /data"`` or ``"embedded MNIST t10k: fit on
images 0-4999, test on 5000-9999 (…)"``) and ``oracle.origin`` (who chose the oracle).

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
ATTACK_KEYS = (
    "kind", "summary", "n", "ci95_halfwidth", "metrics", "settings", "records", "figures"
)


def ci95_halfwidth(n: int | None) -> float | None:
    """The widest 95 % normal-approximation half-width of a rate over ``n`` samples (p = 1/2)."""
    if not n:
        return None
    return 1.959964 * math.sqrt(0.25 / n)


def check_report(report: Any, where: str = "report") -> dict[str, Any]:
    """``report`` if it is a schema-1 report; otherwise a one-line :class:`ConfigError`."""
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
    model = report["model"]
    if not isinstance(model, Mapping):
        raise ConfigError(f"{where}: 'model' is not an object")
    if not isinstance(model.get("data_source"), str | None):
        raise ConfigError(f"{where}: model.data_source is not text")
    if not isinstance(report["attacks"], Mapping):
        raise ConfigError(f"{where}: 'attacks' is not an object")
    for method, record in report["attacks"].items():
        absent = [k for k in ATTACK_KEYS if not isinstance(record, Mapping) or k not in record]
        if absent:
            raise ConfigError(f"{where}: attack {method!r} lacks {', '.join(absent)}")
    if not isinstance(report["warnings"], list):
        raise ConfigError(f"{where}: 'warnings' is not a list")
    return dict(report)
