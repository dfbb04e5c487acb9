"""Everything an audit needs besides the attack: model on its device, data, oracle.

``invaudit attack`` and the report runner share this so a checkpoint is
loaded, cast and checked the same way whichever command audits it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from ..atomic import file_sha256
from ..data.audit import AuditData, audit_data
from ..devices import resolve_device
from ..errors import ConfigError
from ..models.checkpoint import load_model
from ..zoo import is_zoo_selector, resolve_model_path, zoo_oracle_for
from .oracle import ClassifierOracle, Oracle, default_oracle

#: ``--oracle none``: audit an image model without any oracle (the zoo's included).
NO_ORACLE = "none"


@dataclass
class LoadedModel:
    """A checkpoint read from disk, before any data is touched (cheap to check).

    ``path`` is the file itself, also for a ``zoo:NAME`` selector, so hashes and
    records name what was actually read.
    """

    path: str
    model: torch.nn.Module
    dataset: dict[str, Any]

    @property
    def dataset_name(self) -> str:
        return self.dataset.get("name", "?")

    @property
    def invertible(self) -> bool:
        from ..models.classifier import InvertibleClassifier

        return isinstance(self.model, InvertibleClassifier)


@dataclass
class AuditSetup:
    """A model ready to audit: on its device and dtype, with its test data and oracle."""

    path: str
    model: torch.nn.Module
    data: AuditData
    oracle: Oracle | None
    device: torch.device
    dtype: str


def read_model(path: str | os.PathLike) -> LoadedModel:
    """Load a checkpoint given as a path or a ``zoo:NAME`` selector."""
    path = resolve_model_path(path)
    model = load_model(path)
    dataset = (getattr(model, "checkpoint_info", None) or {}).get("dataset") or {}
    return LoadedModel(path, model, dataset)


def resolve_dtype(dtype: str, model: torch.nn.Module) -> str:
    """``auto``: float64 for vector models (cheap, and metamers far out keep their
    logits to 1e-10), float32 for images."""
    if dtype == "auto":
        return "float64" if len(model.input_shape) == 1 else "float32"
    if dtype not in ("float32", "float64"):
        raise ConfigError(f"dtype must be auto, float32 or float64, got {dtype!r}")
    return dtype


def choose_oracle(
    loaded: LoadedModel, oracle_path: str | os.PathLike | None, where: torch.device
) -> Oracle | None:
    """The oracle an audit of ``loaded`` uses.

    Spheres: always the exact one (any ``oracle_path`` is refused).  Images: the
    given checkpoint (a path or ``zoo:NAME``); by default the zoo's oracle for the
    dataset, if the zoo has one; none with ``"none"`` or when the zoo has none.

    An oracle with the audited checkpoint's content (same sha256) agrees with every
    decision by construction, so each oracle rate would read 0 and pass any gate:
    given as ``--oracle`` it is refused (one-line :class:`ConfigError`, before any
    work); the zoo's default oracle audited as the model itself is dropped (none).
    """
    exact = default_oracle(loaded.dataset)
    if exact is not None:
        if oracle_path is not None:
            raise ConfigError(
                f"{loaded.dataset_name} has an exact oracle; --oracle applies to images only"
            )
        return exact
    if oracle_path is not None and str(oracle_path).lower() == NO_ORACLE:
        return None
    if oracle_path is None:
        path = zoo_oracle_for(loaded.dataset_name)
        if path is None:
            return None
        origin = f"default: the zoo oracle for {loaded.dataset_name}"
    else:
        path = resolve_model_path(oracle_path)
        origin = f"--oracle {oracle_path}" if is_zoo_selector(oracle_path) else "--oracle"
    if _same_content(path, loaded.path):
        if oracle_path is None:
            return None
        raise ConfigError(
            f"--oracle {oracle_path} is the audited model itself (same sha256 as "
            f"{loaded.path}): it agrees with every decision, so every oracle rate would "
            "be 0 and pass any gate; give an independent classifier or --oracle none"
        )
    oracle = ClassifierOracle(path, where, origin=origin)
    oracle.check_compatible(loaded.model)
    return oracle


def _same_content(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two files hold the same bytes (same path, or equal size and sha256)."""
    try:
        if os.path.samefile(a, b):
            return True
        if os.path.getsize(a) != os.path.getsize(b):
            return False
    except OSError:
        return False  # a missing file is reported by whoever opens it
    return file_sha256(a) == file_sha256(b)


def prepare_audit(
    loaded: LoadedModel,
    *,
    device: str = "cpu",
    dtype: str = "auto",
    oracle_path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> AuditSetup:
    """Move the model to ``device``/``dtype`` in eval mode, find the oracle and the data.

    ``oracle_path``: None for the default (see :func:`choose_oracle`), ``"none"`` for
    no oracle, else a checkpoint path or ``zoo:NAME``.
    """
    where = resolve_device(device)
    dtype = resolve_dtype(dtype, loaded.model)
    model = loaded.model.to(device=where, dtype=getattr(torch, dtype)).eval()
    oracle = choose_oracle(loaded, oracle_path, where)
    data = audit_data(loaded.dataset, data_dir=data_dir, download=download)
    return AuditSetup(loaded.path, model, data, oracle, where, dtype)


def model_record(path: str, model: torch.nn.Module) -> dict[str, Any]:
    """Which checkpoint was audited: path, content hash, architecture and loss."""
    info = getattr(model, "checkpoint_info", None) or {}
    return {
        "path": str(path),
        "sha256": file_sha256(path),
        "arch": getattr(model, "arch", type(model).__name__),
        "loss": info.get("loss"),
    }
