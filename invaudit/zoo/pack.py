"""From a finished training checkpoint to a zoo file: read it, check it, pack it.

A training checkpoint (``invaudit train --out``) holds the model, its config,
the dataset record and the training history, plus ``train_state``: the
optimiser and iCE game state that only ``--resume`` needs.  The zoo file is
the same checkpoint without ``train_state``, written atomically; that keeps
each bundled model under :data:`LIMIT_BYTES`.  The bytes depend only on the
training checkpoint, so packing the same run again gives the same sha256.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_atomic
from ..errors import CheckpointError, OutputError
from ..models.checkpoint import read_checkpoint

__all__ = [
    "LIMIT_BYTES",
    "TRAINING_ONLY",
    "check_finished",
    "pack_checkpoint",
    "read_training_checkpoint",
    "slim_payload",
]

#: A bundled zoo file's size limit (5 MB).
LIMIT_BYTES = 5 * 1024 * 1024
#: The checkpoint sections a zoo file leaves out: what only ``--resume`` reads.
TRAINING_ONLY = ("train_state",)


def read_training_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The whole checkpoint ``invaudit train`` wrote to ``path`` (weights-only load).

    :class:`CheckpointError` when it is no invaudit checkpoint or lacks the
    training record (``training`` with ``settings``, ``epochs_done`` and ``history``).
    """
    payload = read_checkpoint(path)
    training = payload.get("training")
    if not isinstance(training, dict) or not all(
        key in training for key in ("settings", "epochs_done", "history")
    ):
        raise CheckpointError(f"{path}: holds no training record (not written by invaudit train)")
    return payload


def check_finished(payload: dict[str, Any], where: str | os.PathLike[str]) -> None:
    """:class:`CheckpointError` unless the run finished every epoch its settings asked for."""
    training = payload["training"]
    done, wanted = training["epochs_done"], training["settings"]["epochs"]
    if done != wanted:
        raise CheckpointError(
            f"{where} stopped after {done} of {wanted} epochs; resume it with --resume"
        )


def slim_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint without its :data:`TRAINING_ONLY` sections (same order otherwise)."""
    return {key: value for key, value in payload.items() if key not in TRAINING_ONLY}


def _refuse_foreign(out: Path) -> None:
    """A file at ``out`` may be replaced only if it is an invaudit checkpoint."""
    if not (out.exists() or out.is_symlink()):
        return
    if out.is_symlink() or not out.is_file():
        raise OutputError(f"{out} is not a plain file; not replaced")
    try:
        read_checkpoint(out)
    except CheckpointError:
        raise OutputError(
            f"{out} is not an invaudit checkpoint; not replaced (move it or choose another name)"
        ) from None


def pack_checkpoint(
    payload: dict[str, Any], out: str | os.PathLike[str], *, limit_bytes: int = LIMIT_BYTES
) -> Path:
    """Write the zoo file of a training checkpoint's ``payload`` to ``out`` (atomically).

    Refused before anything is written: a file over ``limit_bytes``
    (:class:`CheckpointError`), and an ``out`` that exists but is not an invaudit
    checkpoint (:class:`OutputError`).  Returns ``out`` as a Path.
    """
    out = Path(out)
    _refuse_foreign(out)
    buffer = io.BytesIO()
    torch.save(slim_payload(payload), buffer)
    data = buffer.getvalue()
    if len(data) > limit_bytes:
        raise CheckpointError(
            f"{out.name}: the packed model is {len(data)} bytes, over the limit of {limit_bytes}"
        )
    write_atomic(out, lambda f: f.write(data))
    return out
