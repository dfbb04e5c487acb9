"""Where invaudit may write, checked before any work starts.

Every command that writes checks its destinations first and refuses with a
one-line :class:`~invaudit.errors.OutputError` (exit code 2):

- an empty path (``--out ''`` would mean the current folder);
- a folder that is replaced as a whole (a report) and is, or holds, the
  current folder;
- a destination whose nearest existing folder does not accept a new file
  (read-only, full, or a file where a folder should be).  This is probed by
  creating and removing a hidden file there, so it holds for root and for
  read-only file systems too.

Which existing files may be replaced is each writer's own rule (report folders:
:mod:`invaudit.reports.folder`; attack files: :mod:`invaudit.reports.attack_files`;
JUnit files: :mod:`invaudit.reports.gate`); docs/ci.md lists them all.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import OutputError

#: Prefix of the probe file :func:`check_writable` creates and removes at once.
PROBE_PREFIX = ".invaudit-probe-"


def require_path(text: str | os.PathLike[str], option: str) -> Path:
    """``text`` as a Path; an :class:`OutputError` when it is empty."""
    if not os.fspath(text).strip():
        raise OutputError(f"{option} is empty; give a file or folder name")
    return Path(text)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path: str | os.PathLike[str], option: str, *, into: bool = False) -> None:
    """Whether ``path`` can be written, before any work.

    ``into=False``: ``path`` itself is created or replaced (a file, or a folder
    swapped in by rename), so its parent folder must take new entries.
    ``into=True``: files are created inside the folder ``path`` (made if missing).
    Missing folders on the way count as creatable when their nearest existing
    ancestor takes new entries.
    """
    target = Path(os.path.abspath(path))
    where = target if into and target.is_dir() else target.parent
    existing = _nearest_existing(where)
    if not existing.is_dir():
        raise OutputError(f"cannot write {option} {path}: {existing} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise OutputError(f"cannot write {option} {path}: {existing}: {reason}") from None


def check_not_current_folder(folder: str | os.PathLike[str], option: str) -> None:
    """Refuse a folder that is replaced as a whole when it is, or holds, the current folder.

    Renaming it would pull the working directory (and every relative path after
    it, such as ``--junit gate.xml``) out from under the run and the user's shell.
    """
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:  # the current folder was removed: nothing to protect
        return
    target = os.path.realpath(os.path.abspath(folder))
    if cwd == target or cwd.startswith(target.rstrip(os.sep) + os.sep):
        raise OutputError(
            f"{option} {os.fspath(folder) or '.'} is the current folder or holds it; a report "
            f"folder is replaced as a whole, so name a folder inside it, e.g. {option} audit"
        )


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (another user's counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
