"""One attack's files: ``METHOD.json``, ``METHOD.csv`` and its figures as ``METHOD*.png``.

The JSON is written last, so a folder with ``METHOD.json`` holds a complete
result; every file is written atomically.  Every file name starts with the
method, so two attacks written to one folder never replace each other's files.

What may be replaced (:func:`check_attack_out`, before any work): an attack's
files in ``--out`` are replaced only when ``METHOD.json`` there is an invaudit
record of the same method; a ``METHOD.json``, ``METHOD.csv`` or ``METHOD*.png``
beside no such record is the user's, and the run is refused.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_atomic
from ..errors import ConfigError
from ..outputs import check_writable, require_path

if TYPE_CHECKING:
    from ..attacks.base import AttackResult

#: Keys every attack record holds (what marks ``METHOD.json`` as invaudit's).
RECORD_KEYS = ("method", "n", "metrics", "settings", "model", "seconds")


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


def figure_stem(method: str, name: str) -> str:
    """The file stem of figure ``name``: prefixed with the method unless it starts with it."""
    return name if name.startswith(method) else f"{method}-{name}"


def _is_attack_record(path: Path, method: str) -> bool:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("method") == method
        and all(key in record for key in RECORD_KEYS)
        and all(isinstance(record[key], dict) for key in ("metrics", "settings", "model"))
    )


def _may_be_written(name: str, method: str) -> bool:
    """Whether a run of ``method`` may write a file called ``name``."""
    if name in (f"{method}.json", f"{method}.csv", f"{method}.png"):
        return True
    return name.endswith(".png") and name.startswith(method) and name[len(method)] in "-_"


def check_attack_out(out: str | os.PathLike, method: str, option: str = "--out") -> Path:
    """``out`` as a Path if ``method``'s files may be written there; a one-line error if not.

    Checked before any work: the path is not empty, not a file, can be written,
    and holds no file the run may write unless it is invaudit's (see module doc).
    """
    folder = require_path(out, option)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{option} {folder} exists and is not a folder")
    check_writable(folder, option, into=True)
    if not folder.is_dir():
        return folder
    taken = sorted(p.name for p in folder.iterdir() if _may_be_written(p.name, method))
    if taken and not _is_attack_record(folder / f"{method}.json", method):
        first = f"{method}.json" if f"{method}.json" in taken else taken[0]
        raise ConfigError(
            f"{option} {folder} holds {first}, not written by invaudit (no invaudit "
            f"{method}.json beside it); a {method} run would replace it, so move it out "
            "or choose another folder"
        )
    return folder


def write_attack_files(
    result: AttackResult,
    figures: dict[str, Any],
    model: dict[str, Any],
    out: str | os.PathLike,
    seconds: float | None = None,
) -> list[Path]:
    """Write the CSV, the PNGs, then the JSON of ``result`` into ``out``; returns the paths.

    Figure ``name`` goes to ``METHOD-name.png`` (or ``name.png`` when it starts with
    the method).  Call :func:`check_attack_out` before the attack runs.
    """
    from ..figures import save_png

    folder = Path(out)
    written = []
    csv_path = folder / f"{result.method}.csv"
    text = result.records.to_csv(index=False).encode()
    write_atomic(csv_path, lambda f: f.write(text))
    written.append(csv_path)
    for name, fig in figures.items():
        png = folder / f"{figure_stem(result.method, name)}.png"
        save_png(fig, png)
        written.append(png)
    json_path = folder / f"{result.method}.json"
    record = result_record(result, model, seconds)
    body = json.dumps(record, indent=2, allow_nan=False).encode() + b"\n"
    write_atomic(json_path, lambda f: f.write(body))
    written.append(json_path)
    return written
