"""Everything an audit needs besides the attack: model on its device, data, oracle.

``invaudit attack`` and the report runner share this so a checkpoint is
loaded, cast and checked the same way whichever command audits it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from ..data.audit import AuditData, audit_data
from ..devices import resolve_device
from ..errors import ConfigError
from ..models.checkpoint import load_model
from .oracle import ClassifierOracle, Oracle, default_oracle, file_sha256


@dataclass
class LoadedModel:
    """A checkpoint read from disk, before any data is touched (cheap to check)."""

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
    model = load_model(path)
    dataset = (getattr(model, "checkpoint_info", None) or {}).get("dataset") or {}
    return LoadedModel(str(path), model, dataset)


def resolve_dtype(dtype: str, model: torch.nn.Module) -> str:
    """``auto``: float64 for vector models (cheap, and metamers far out keep their
    logits to 1e-10), float32 for images."""
    if dtype == "auto":
        return "float64" if len(model.input_shape) == 1 else "float32"
    if dtype not in ("float32", "float64"):
        raise ConfigError(f"dtype must be auto, float32 or float64, got {dtype!r}")
    return dtype


def prepare_audit(
    loaded: LoadedModel,
    *,
    device: str = "cpu",
    dtype: str = "auto",
    oracle_path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> AuditSetup:
    """Move the model to ``device``/``dtype`` in eval mode, find the oracle and the data."""
    where = resolve_device(device)
    dtype = resolve_dtype(dtype, loaded.model)
    model = loaded.model.to(device=where, dtype=getattr(torch, dtype)).eval()
    oracle = default_oracle(loaded.dataset)
    if oracle_path is not None:
        if oracle is not None:
            raise ConfigError(
                f"{loaded.dataset_name} has an exact oracle; --oracle applies to images only"
            )
        oracle = ClassifierOracle(oracle_path, where)
        oracle.check_compatible(model)
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
