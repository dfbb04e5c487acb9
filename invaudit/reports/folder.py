"""Write a report folder all at once: fill a hidden sibling, then swap it in.

A report is several files that only make sense together (``report.json``
names its CSVs and figures).  Writing them one by one into ``--out`` would
leave a killed run's folder half new and half old.  Instead everything goes
into ``.NAME.partial-*`` beside the target and the finished folder replaces
the target by renames; a previous report in the target is removed only after
the new one is in place.  A folder holding anything else is refused before
any work starts, so nothing of the user's is ever deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..atomic import default_mode
from ..errors import ConfigError

#: Files that mark a folder as one this tool wrote (and may therefore replace).
MARKERS = ("report.json", "compare.json")


def _is_ours(folder: Path) -> bool:
    for marker in MARKERS:
        path = folder / marker
        if path.is_file():
            try:
                return json.loads(path.read_text()).get("schema", "").startswith("invaudit.")
            except (OSError, ValueError, AttributeError):
                return False
    return False


def check_out_folder(out: str | os.PathLike, option: str = "--out") -> Path:
    """``out`` as a Path if a report may be written there; one-line ConfigError if not.

    Allowed: a path that does not exist yet (its parent is created), an empty
    folder, or a folder holding an earlier invaudit report or comparison.
    """
    folder = Path(out)
    if folder.exists():
        if not folder.is_dir():
            raise ConfigError(f"{option} {folder} exists and is not a folder")
        if any(folder.iterdir()) and not _is_ours(folder):
            raise ConfigError(
                f"{option} {folder} holds files that are not an invaudit report; "
                "choose a new or empty folder (nothing there is overwritten)"
            )
    return folder


def replace_folder(out: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Call ``fill(staging)``, then move the filled folder to ``out`` atomically enough:

    a reader sees either the complete old folder or the complete new one, except
    for the instant between two renames when ``out`` does not exist at all.
    """
    target = check_out_folder(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        os.chmod(staging, default_mode(directory=True))
        fill(staging)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "previous")
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
