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
from .registry import Model, build, stored_config

FORMAT = "invaudit-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("format", "format_version", "arch", "config", "state_dict")


def library_versions() -> dict[str, str]:
    import numpy
    import torchvision

    from .._version import __version__

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


#: The optional sections of a checkpoint and the type each must have when present.
OPTIONAL_SECTIONS: dict[str, type | tuple[type, ...]] = {
    "loss": str,
    "dataset": dict,
    "training": dict,
    "metrics": dict,
    "versions": dict,
    "num_classes": int,
    "input_shape": (list, tuple),
}


def _kind(value: Any) -> str:
    return type(value).__name__


def _field_problem(payload: dict[str, Any]) -> str | None:
    """What is wrong with the types of a checkpoint's fields (None: nothing)."""
    if not isinstance(payload["arch"], str):
        return f"'arch' is {_kind(payload['arch'])}, expected text"
    for section in ("config", "state_dict"):
        value = payload[section]
        if not isinstance(value, dict):
            return f"'{section}' is {_kind(value)}, expected a mapping"
        bad = next((k for k in value if not isinstance(k, str)), None)
        if bad is not None:
            return f"'{section}' has the key {bad!r}, expected text keys"
    tensor = next(
        ((k, v) for k, v in payload["state_dict"].items() if not isinstance(v, torch.Tensor)),
        None,
    )
    if tensor is not None:
        return f"state_dict[{tensor[0]!r}] is {_kind(tensor[1])}, expected a tensor"
    for section, expected in OPTIONAL_SECTIONS.items():
        value = payload.get(section)
        if value is not None and (isinstance(value, bool) or not isinstance(value, expected)):
            return f"'{section}' is {_kind(value)}, of the wrong type"
    dataset = payload.get("dataset") or {}
    if "name" in dataset and not isinstance(dataset["name"], str):
        return f"dataset name is {_kind(dataset['name'])}, expected text"
    if not isinstance(dataset.get("options", {}), dict):
        return f"dataset options are {_kind(dataset['options'])}, expected a mapping"
    return None


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a checkpoint's contents; :class:`CheckpointError` on any problem.

    Besides the format marker and version, every field this package reads must
    have its type (``config`` a mapping, ``state_dict`` a mapping of tensors, ...),
    so a damaged or hand-edited file is one line, never a traceback.
    """
    p = Path(path)
    if not p.is_file():
        hint = (
            "; zoo:NAME selectors are read by invaudit.load_model"
            if str(path).startswith("zoo:")
            else ""
        )
        raise CheckpointError(
            f"checkpoint {str(p)!r} not found (expected an invaudit .pt file){hint}"
        )
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
    problem = _payload_problem(payload)
    if problem is not None:
        raise CheckpointError(f"{p}: {problem}")
    return payload


def _payload_problem(payload: Any) -> str | None:
    """Why ``payload`` is not a checkpoint this invaudit reads (None: it is one)."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        return f"not an invaudit checkpoint (no '{FORMAT}' format marker)"
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        return (
            f"checkpoint format version {version!r}; this invaudit reads version {FORMAT_VERSION}"
        )
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        return f"checkpoint lacks {', '.join(missing)}"
    problem = _field_problem(payload)
    return None if problem is None else f"damaged checkpoint: {problem}"


def model_from_payload(payload: dict[str, Any], where: str = "checkpoint") -> Model:
    """Rebuild the model a checkpoint describes and load its weights (eval mode)."""
    try:
        model = build(payload["arch"], **stored_config(payload["arch"], payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except InvauditError as err:
        raise CheckpointError(f"{where}: {err}") from err
    except RuntimeError as err:
        raise CheckpointError(
            f"{where}: weights do not fit {payload['arch']}: {' '.join(str(err).split())[:200]}"
        ) from err
    return model.eval()


def load_model(path: str | os.PathLike) -> Model:
    """The eval-mode model stored in ``path``, ready to audit.

    ``invaudit.load_model`` also takes ``zoo:NAME``; this one takes a file path.
    """
    payload = read_checkpoint(path)
    try:
        model = model_from_payload(payload, str(path))
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise CheckpointError(
            f"{path}: cannot rebuild the model it describes: {' '.join(str(err).split())[:200]}"
        ) from err
    model.checkpoint_info = {
        k: payload.get(k) for k in ("loss", "dataset", "training", "metrics", "versions")
    }
    return model
