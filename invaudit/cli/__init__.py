"""The ``invaudit`` command line: one module per command group.

- :mod:`.app`: the group ``main``, its examples and exit codes (0 done, 1 a
  failed gate, 2 bad input, 3 an invaudit bug, 130 interrupted);
- :mod:`.options`: options more than one command takes, and the ``KEY=VALUE`` parser;
- :mod:`.model_info`: ``archs``, ``check``, ``info``;
- :mod:`.train`: ``train``, and :func:`settings_from_train_args`;
- :mod:`.attack`: ``attack``;
- :mod:`.report`: ``report``, ``compare``, ``gate``;
- :mod:`.zoo`: ``zoo``.

``invaudit --help`` must start fast (benchmarks/cli_startup.py), so no module
here imports torch, foolbox, pandas or the models at import time: the commands
import what they use when they run.
"""

from __future__ import annotations

from . import attack, model_info, report, train, zoo  # noqa: F401  (each adds its commands)
from .app import main
from .train import settings_from_train_args

__all__ = ["main", "settings_from_train_args"]
