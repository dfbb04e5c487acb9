"""Where datasets live on disk.

One rule for every command, so a user who set ``INVAUDIT_DATA`` once never has to
repeat ``--data-dir``, and nothing lands in the working directory by accident.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV_VAR", "resolve_data_dir"]

#: Environment variable naming the data directory when no explicit one is given.
DATA_ENV_VAR = "INVAUDIT_DATA"


def _user_cache_dir() -> Path:
    # XDG says to ignore a relative XDG_CACHE_HOME.
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "invaudit" / "data"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``data_dir`` if given, else ``$INVAUDIT_DATA``, else the
    per-user cache (``$XDG_CACHE_HOME/invaudit/data`` or ``~/.cache/invaudit/data``).

    ``~`` is expanded; the directory is not created (only a download needs it to exist).
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    from_env = os.environ.get(DATA_ENV_VAR, "")
    if from_env:
        return Path(from_env).expanduser()
    return _user_cache_dir()
