"""How every report, table and sentence writes a number: one family of formatters.

``fmt_value`` for any value (null as ``n/a``, floats to 4 significant digits),
``fmt_percent`` for a fraction, ``fmt_interval`` / ``fmt_interval_fraction`` for an
exact 95 % interval (:mod:`invaudit.reports.intervals`), ``fmt_rate`` for a rate
with its interval, ``fmt_seconds`` for a duration.  Markdown, HTML, ``compare``,
the verdict and the story all write through these, so they always agree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "NA",
    "fmt_interval",
    "fmt_interval_fraction",
    "fmt_percent",
    "fmt_rate",
    "fmt_seconds",
    "fmt_value",
]

#: What a missing value reads.
NA = "n/a"


def fmt_value(value: Any) -> str:
    """``value`` as a table cell: null as ``n/a``, floats to 4 significant digits."""
    if value is None:
        return NA
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def fmt_percent(value: Any) -> str:
    """A fraction in [0, 1] as a percentage; one decimal unless that would show 0.0."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return fmt_value(value)
    if not math.isfinite(value):
        return NA
    percent = 100 * value
    if percent != 0 and abs(percent) < 0.05:
        return f"{percent:.2g}%"
    return f"{percent:.1f}%"


def fmt_interval(interval: Mapping[str, Any] | None) -> str:
    """``[84.3, 90.2]`` in percent; two decimals when the interval is under a point wide,
    so 99.8 % at n = 1000 reads ``[99.28, 99.98]`` rather than ``[99.3, 100.0]``."""
    if not interval:
        return ""
    low, high = 100 * float(interval["low"]), 100 * float(interval["high"])
    digits = 2 if high - low < 1 else 1
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def fmt_interval_fraction(interval: Mapping[str, Any] | None) -> str:
    """``[0.843, 0.902]``: the bounds as fractions, beside a rate written as one."""
    if not interval:
        return ""
    return f"[{float(interval['low']):.4g}, {float(interval['high']):.4g}]"


def fmt_rate(value: Any, interval: Mapping[str, Any] | None) -> str:
    """A rate as a percentage followed by its interval: ``87.5% [84.3, 90.2]`` (the
    percentage alone without one)."""
    text = fmt_percent(value)
    shown = fmt_interval(interval)
    return f"{text} {shown}" if shown else text


def fmt_seconds(value: Any) -> str:
    """A duration to a tenth of a second (anything else as :func:`fmt_value`)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.1f}"
    return fmt_value(value)
