"""Write a report folder all at once: fill a hidden sibling, then swap it in.

A report is several files that only make sense together (``report.json``
names its CSVs and figures).  Writing them one by one into ``--out`` would
leave a killed run's folder half new and half old.  Instead everything goes
into ``.NAME.partial-PID-*`` beside the target and the finished folder
replaces the target by renames; a previous report in the target is removed
only after the new one is in place.

What may be replaced (checked before any work starts, and again just before
the swap): a folder that does not exist, an empty folder, or an invaudit
report or comparison folder that holds **only** files invaudit wrote there:

- a report: ``report.json`` (schema ``invaudit.report``), ``report.md``,
  ``report.html`` and the CSVs and figures its ``report.json`` names, and a
  JUnit file of an invaudit gate (``--junit`` may point into the folder);
- a comparison: ``compare.json`` (schema ``invaudit.compare``), ``compare.csv``,
  ``compare.md``, ``compare.html``, ``figures/compare-*.png`` and one report
  folder per model it names.

Any other file (``NOTES.txt``, ``mydata/keep.csv``, a hidden file) makes the
folder the user's: the run is refused with a one-line error naming the file,
and nothing there is touched.  The folder must not be, or hold, the current
folder either.

Staging folders of runs that were killed are removed by the next run that
writes the same target, once its own folder is in place: ``.NAME.partial-PID-*``
and ``.NAME.old-PID-*`` siblings whose process PID no longer runs on this
machine, and pid-less ``.NAME.partial-XXXXXXXX`` / ``.NAME.old-XXXXXXXX`` ones
(named by invaudit before it recorded pids) untouched for
:data:`STALE_LEGACY_SECONDS`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..atomic import default_mode
from ..errors import ConfigError
from ..outputs import check_not_current_folder, check_writable, pid_alive, require_path
from .gate import is_invaudit_junit

#: Files that mark a folder as one this tool wrote (and may therefore replace).
MARKERS = ("report.json", "compare.json")
REPORT_FILES = ("report.json", "report.md", "report.html")
COMPARE_FILES = ("compare.json", "compare.csv", "compare.md", "compare.html")
#: A pid-less staging folder (invaudit before pids were recorded) untouched this long
#: belongs to a run that ended: no run spends an hour writing its files.
STALE_LEGACY_SECONDS = 3600


def _read_marker(path: Path, schema: str) -> dict[str, Any] | None:
    """The JSON record in ``path`` if it carries invaudit's ``schema`` marker, else None."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(record, dict) and record.get("schema") == schema:
        return record
    return None


def _relative(name: Any) -> str | None:
    """A relative path named by a record, normalised; None if it is not one."""
    if not isinstance(name, str) or not name or os.path.isabs(name):
        return None
    norm = os.path.normpath(name)
    return None if norm.startswith("..") else norm


def _report_files(record: dict[str, Any]) -> set[str]:
    own = set(REPORT_FILES)
    attacks = record.get("attacks")
    for rec in attacks.values() if isinstance(attacks, dict) else ():
        if not isinstance(rec, dict):
            continue
        names = [rec.get("records")]
        figures = rec.get("figures")
        names += figures if isinstance(figures, list) else []
        own.update(n for n in map(_relative, names) if n is not None)
    return own


def _own_files(folder: Path) -> set[str] | None:
    """The relative paths of the files invaudit wrote in ``folder``; None if no marker."""
    report = _read_marker(folder / "report.json", "invaudit.report")
    if report is not None:
        return _report_files(report)
    comparison = _read_marker(folder / "compare.json", "invaudit.compare")
    if comparison is None:
        return None
    own = set(COMPARE_FILES)
    own.update(str(p.relative_to(folder)) for p in (folder / "figures").glob("compare-*.png"))
    models = comparison.get("models")
    for model in models if isinstance(models, list) else ():
        label = _relative(model.get("label")) if isinstance(model, dict) else None
        if label is None or os.sep in label:
            continue
        inner = _read_marker(folder / label / "report.json", "invaudit.report")
        if inner is not None:
            own.update(os.path.join(label, name) for name in _report_files(inner))
    return own


def _entries(folder: Path) -> Iterable[str]:
    """Every file (and empty folder) under ``folder``, relative, in a stable order."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        rel = os.path.relpath(root, folder)
        if not dirs and not files and rel != ".":
            yield rel + os.sep
        for name in sorted(files):
            yield os.path.normpath(os.path.join(rel, name))


def foreign_files(folder: Path) -> list[str]:
    """The entries of ``folder`` invaudit did not write there (relative paths).

    An empty folder has none; a folder without an invaudit marker has all of
    its entries; a report or comparison folder has the entries beyond its own
    files and beyond JUnit files an invaudit gate wrote (``--junit`` may point
    into the report folder).
    """
    own = _own_files(folder)
    if own is None:
        return list(_entries(folder))
    return [
        entry
        for entry in _entries(folder)
        if entry not in own and not (entry.endswith(".xml") and is_invaudit_junit(folder / entry))
    ]


def check_out_folder(out: str | os.PathLike, option: str = "--out") -> Path:
    """``out`` as a Path if a report may be written there; one-line error if not.

    Allowed: a path that does not exist yet (its parent is created), an empty
    folder, or a folder holding only an earlier invaudit report or comparison.
    The folder must not be (or hold) the current folder, and its parent must take
    new entries (the staging folder and the swap are made there).
    """
    folder = require_path(out, option)
    check_not_current_folder(folder, option)
    if folder.exists():
        if not folder.is_dir():
            raise ConfigError(f"{option} {folder} exists and is not a folder")
        foreign = foreign_files(folder)
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            if _own_files(folder) is None:
                raise ConfigError(
                    f"{option} {folder} holds files that are not an invaudit report "
                    f"({foreign[0]}{more}); choose a new or empty folder (nothing there "
                    "is overwritten)"
                )
            raise ConfigError(
                f"{option} {folder} holds {foreign[0]}{more}, not written by invaudit; move "
                "it out or choose another folder (nothing there is overwritten)"
            )
    check_writable(folder, option)
    return folder


def _staging_pattern(name: str) -> re.Pattern[str]:
    # PID-tagged (this version) or an 8-character mkdtemp suffix (before pids were kept).
    return re.compile(
        rf"\.{re.escape(name)}\.(?:partial|old)-(?:(?P<pid>\d+)-[a-z0-9_]{{8}}|[a-z0-9_]{{8}})"
    )


def stale_staging(target: Path, now: float | None = None) -> list[Path]:
    """The staging siblings of ``target`` left by runs that no longer run (see module doc)."""
    parent = target.parent
    pattern = _staging_pattern(target.name)
    now = time.time() if now is None else now
    stale = []
    try:
        siblings = sorted(parent.iterdir())
    except OSError:
        return []
    for path in siblings:
        match = pattern.fullmatch(path.name)
        if match is None or path.is_symlink() or not path.is_dir():
            continue
        pid = match.group("pid")
        if pid is not None:
            if not pid_alive(int(pid)):
                stale.append(path)
        else:
            try:
                if now - path.stat().st_mtime > STALE_LEGACY_SECONDS:
                    stale.append(path)
            except OSError:
                continue
    return stale


def replace_folder(out: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Call ``fill(staging)``, then move the filled folder to ``out`` atomically enough:

    a reader sees either the complete old folder or the complete new one, except
    for the instant between two renames when ``out`` does not exist at all.
    Afterwards the staging folders of dead runs on the same target are removed.
    """
    folder = check_out_folder(out)
    target = Path(os.path.abspath(folder))
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-"
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-{tag}", dir=target.parent))
    try:
        os.chmod(staging, default_mode(directory=True))
        fill(staging)
        if target.exists():
            check_out_folder(out)  # the user may have added a file while the audit ran
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{tag}", dir=target.parent))
            try:
                os.replace(target, old / "previous")
            except BaseException:
                shutil.rmtree(old, ignore_errors=True)
                raise
            try:
                os.replace(staging, target)
            except BaseException:
                os.replace(old / "previous", target)  # put the previous report back
                shutil.rmtree(old, ignore_errors=True)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for stale in stale_staging(target):
        shutil.rmtree(stale, ignore_errors=True)
    return folder


__all__ = [
    "MARKERS",
    "STALE_LEGACY_SECONDS",
    "check_out_folder",
    "foreign_files",
    "replace_folder",
    "stale_staging",
]
