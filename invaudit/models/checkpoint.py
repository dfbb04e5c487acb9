"""Checkpoints: one ``.pt`` file of tensors and plain data, loaded without unpickling code.

The file holds the model's state, everything needed to rebuild it (arch and
config), the dataset it was trained on, the final metrics, and, for
``--resume``, the optimiser state.  It loads with
``torch.load(path, weights_only=True)``: a file that would need arbitrary
unpickling is refused, never executed.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_atomic
from ..errors import CheckpointError, InvauditError
from .classifier import InvertibleClassifier
from .registry import Model, build

FORMAT = "invaudit-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("format", "format_version", "arch", "config", "state_dict")


def library_versions() -> dict[str, str]:
    import numpy
    import torchvision

    from .. import __version__

    return {
        "invaudit": __version__,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "numpy": str(numpy.__version__),
    }


def model_payload(model: InvertibleClassifier) -> dict[str, Any]:
    """The part of a checkpoint that describes and holds the model."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": model.arch,
        "config": dict(model.config),
        "num_classes": model.num_classes,
        "input_shape": list(model.input_shape),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "versions": library_versions(),
    }


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically: a killed run leaves the previous file intact."""
    write_atomic(path, lambda f: torch.save(payload, f))


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a checkpoint's contents; :class:`CheckpointError` on any problem."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {str(p)!r} not found (expected an invaudit .pt file)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about foreign pickle protocols
            payload = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" in str(err).lower():  # a class or function to import: possibly code
            raise CheckpointError(
                f"{p}: refused to load: it holds objects beyond tensors and plain data "
                "(a pickle that could run code); nothing in it was executed"
            ) from err
        raise CheckpointError(
            f"{p}: not a readable torch checkpoint (another format or corrupt); "
            "nothing in it was executed"
        ) from err
    except Exception as err:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(
            f"{p}: not a readable torch checkpoint (truncated or another format): "
            f"{' '.join(str(err).split())[:160]}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not an invaudit checkpoint (no '{FORMAT}' format marker)")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{p}: checkpoint format version {version!r}; this invaudit reads version "
            f"{FORMAT_VERSION}"
        )
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise CheckpointError(f"{p}: checkpoint lacks {', '.join(missing)}")
    return payload


def model_from_payload(payload: dict[str, Any], where: str = "checkpoint") -> Model:
    """Rebuild the model a checkpoint describes and load its weights (eval mode)."""
    try:
        model = build(payload["arch"], **payload["config"])
        model.load_state_dict(payload["state_dict"])
    except InvauditError as err:
        raise CheckpointError(f"{where}: {err}") from err
    except RuntimeError as err:
        raise CheckpointError(
            f"{where}: weights do not fit {payload['arch']}: {' '.join(str(err).split())[:200]}"
        ) from err
    return model.eval()


def load_model(path: str | os.PathLike) -> Model:
    """The eval-mode model stored in ``path``, ready to audit."""
    payload = read_checkpoint(path)
    model = model_from_payload(payload, str(path))
    model.checkpoint_info = {
        k: payload.get(k) for k in ("loss", "dataset", "training", "metrics", "versions")
    }
    return model
