"""invaudit: audit classifiers for excessive invariance and excessive sensitivity.

``build`` and the models are imported on first use (they need torch, which
takes seconds to import), so ``invaudit --help`` and the error paths start fast.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import InvauditError

if TYPE_CHECKING:
    from .models import Model, build

__all__ = ["InvauditError", "__version__", "build", "load_model"]

_LAZY = {"build": "invaudit.models"}


def load_model(source: str | os.PathLike[str]) -> Model:
    """The eval-mode model stored in ``source``: a checkpoint path or ``zoo:NAME``.

    A zoo file's size and sha256 are checked against its card before it is read;
    every problem is a one-line :class:`InvauditError`.
    """
    from .models.checkpoint import load_model as load_path
    from .zoo import resolve_model_path

    return load_path(resolve_model_path(source))


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'invaudit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
