"""One attack's files: ``NAME.json``, ``NAME.csv`` and its figures as PNG.

The JSON is written last, so a folder with ``NAME.json`` holds a complete
result; every file is written atomically.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..attacks.base import AttackResult
from .figures import save_png


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None and tuples as lists (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return json_safe(value.item())
    return str(value)


def result_record(
    result: AttackResult, model: dict[str, Any], seconds: float | None = None
) -> dict[str, Any]:
    """The JSON record of one attack on one model (``seconds``: its wall time)."""
    return json_safe(
        {
            "method": result.method,
            "n": result.metrics.get("n"),
            "metrics": result.metrics,
            "settings": result.settings,
            "model": model,
            "seconds": seconds,
        }
    )


def write_attack_files(
    result: AttackResult,
    figures: dict[str, Any],
    model: dict[str, Any],
    out: str | os.PathLike,
    seconds: float | None = None,
) -> list[Path]:
    """Write the CSV, the PNGs, then the JSON of ``result`` into ``out``; returns the paths."""
    folder = Path(out)
    written = []
    csv_path = folder / f"{result.method}.csv"
    text = result.records.to_csv(index=False).encode()
    write_atomic(csv_path, lambda f: f.write(text))
    written.append(csv_path)
    for name, fig in figures.items():
        png = folder / f"{name}.png"
        save_png(fig, png)
        written.append(png)
    json_path = folder / f"{result.method}.json"
    record = result_record(result, model, seconds)
    body = json.dumps(record, indent=2, allow_nan=False).encode() + b"\n"
    write_atomic(json_path, lambda f: f.write(body))
    written.append(json_path)
    return written
